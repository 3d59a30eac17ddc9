"""Takes with the engine's layout made from numpy noise, no model needed.

For tests, the crash-recovery check (a child process "generates" with these) and demos. Positions follow
`Engine.regenerate`: a region take covers [start - crossfade, end + crossfade] clamped to the clip,
starts at the token holding `start`, and carries its crossfade lengths.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vaura_core.project.clip import ClipRef
from vaura_core.project.commands import AddMarker, AddTakes, CommitTake, NewRegion
from vaura_core.project.model import BASE, Marker, Project, Region
from vaura_core.project.takes import ProjectTake

SAMPLE_RATE = 44100
HOP = 512
N_CODEBOOKS = 9
CODEBOOK_SIZE = 1024
CROSSFADE = 0.05


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    # Decaying noise bursts: something that looks like Foley on a waveform and is never silent.
    t = np.arange(n) / SAMPLE_RATE
    envelope = 0.05 + 0.5 * np.exp(-((t * 3.0) % 1.0) * 6.0)
    return (rng.uniform(-1.0, 1.0, n) * envelope).astype(np.float32)


def base_take(duration: float, *, seed: int = 0, model: str = "synthetic", label: str = "") -> ProjectTake:
    """A whole-clip take of `duration` seconds."""
    rng = np.random.default_rng(seed)
    n = round(duration * SAMPLE_RATE)
    tokens = math.ceil(n / HOP)
    return ProjectTake.create(
        audio=_noise(rng, n),
        codes=rng.integers(0, CODEBOOK_SIZE, (N_CODEBOOKS, tokens)),
        model=model,
        seed=seed,
        params={"temperature": 0.95, "top_k": 128, "top_p": 0.0, "cfg_scale": 6.0, "greedy": False},
        stride_segments=1,
        start=0.0,
        end=duration,
        token_start=0,
        sample_start=0,
        label=label,
    )


def region_take(
    duration: float,
    start: float,
    end: float,
    *,
    seed: int = 0,
    crossfade: float = CROSSFADE,
    model: str = "synthetic",
    label: str = "",
) -> ProjectTake:
    """A take regenerating [start, end) of a clip of `duration` seconds."""
    rng = np.random.default_rng(seed)
    total = round(duration * SAMPLE_RATE)
    xf = round(crossfade * SAMPLE_RATE)
    s0, s1 = round(start * SAMPLE_RATE), min(round(end * SAMPLE_RATE), total)
    a, b = max(0, s0 - xf), min(total, s1 + xf)
    token0 = math.floor(start * SAMPLE_RATE / HOP)
    token1 = min(math.ceil(total / HOP), math.ceil(b / HOP) + 16)
    return ProjectTake.create(
        audio=_noise(rng, b - a),
        codes=rng.integers(0, CODEBOOK_SIZE, (N_CODEBOOKS, token1 - token0)),
        model=model,
        seed=seed,
        params={"temperature": 0.95, "top_k": 128, "top_p": 0.0, "cfg_scale": 6.0, "greedy": False},
        stride_segments=1,
        start=start,
        end=end,
        token_start=token0,
        sample_start=a,
        fade_in=s0 - a,
        fade_out=b - s1,
        label=label,
    )


def demo_project(
    clip: Path | str,
    *,
    duration: float = 3.0,
    regions: int = 2,
    variations: int = 3,
    seed: int = 0,
) -> Project:
    """A project on `clip` (any file; its timing is taken as given) with a committed base take, a few
    regions of `variations` takes each (the second committed), and a marker per region."""
    project = Project.new(ClipRef.from_file(clip, duration=duration, frame_rate=25.0), name="Demo")
    base = base_take(duration, seed=seed, label="whole clip")
    project.execute(AddTakes(BASE, (base,), commit=base.id))
    span = duration / (regions + 1)
    for i in range(regions):
        start, end = span * (i + 0.5), span * (i + 1.2)
        takes = tuple(
            region_take(duration, start, end, seed=seed + 100 * (i + 1) + v, label=f"take {v + 1}")
            for v in range(variations)
        )
        region = Region.new(start, end, colour=project.next_colour(), take_ids=tuple(t.id for t in takes))
        project.execute(NewRegion(region, takes))
        project.execute(CommitTake(region.id, takes[min(1, variations - 1)].id))
        project.execute(AddMarker(Marker.new(start, f"hit {i + 1}")))
    return project

"""The work the GUI asks of the engine thread: immutable requests, safe to hand to another thread.

A request carries everything the worker needs, so the worker never reads widget state. Arrays inside
a `RegenerateRequest.track` are shared, not copied: the GUI must not modify them in place while the
request is pending (committing a take with `apply_take` builds a new track, which is fine).

    request = GenerateRequest(clip_path, SamplingParams(temperature=0.9), seeds=[7, 8, 9])
    request_id = host.generate(request)

Constructing a request with impossible values (no seeds, end before start) raises ValueError: those
are programming errors of the caller. Whether the range fits the clip is checked by the worker, which
answers with a `failed` signal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vaura_core.engine.candidates import DEFAULT_CANDIDATES, MAX_CANDIDATES
from vaura_core.engine.chains import DEFAULT_CHAINS, MAX_CHAINS
from vaura_core.engine.engine import DEFAULT_CROSSFADE, Track
from vaura_core.generation.sampling import SamplingParams

MAX_SEEDS = 16  # variations are generated as one batch; more than this does not fit a consumer GPU


def _normalise(request: GenerateRequest | RegenerateRequest) -> None:
    """Check the fields every request shares and store them in canonical types (Path, tuple, float)."""
    seeds = tuple(int(s) for s in request.seeds)
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ValueError(f"a request needs between 1 and {MAX_SEEDS} seeds, got {len(seeds)}")
    start, end = float(request.start), request.end
    if not math.isfinite(start) or start < 0:
        raise ValueError(f"start must be a time >= 0 s, got {start}")
    if end is not None and not (math.isfinite(end) and end > start):
        raise ValueError(f"end must come after start ({start} s), got {end}")
    if int(request.stride_segments) < 1:
        raise ValueError(f"stride_segments must be >= 1, got {request.stride_segments}")
    if not 1 <= int(request.candidates) <= MAX_CANDIDATES:
        raise ValueError(f"candidates must be 1 to {MAX_CANDIDATES}, got {request.candidates}")
    # Frozen dataclasses: canonical values can only be stored this way, once, at construction.
    object.__setattr__(request, "clip_path", Path(request.clip_path))
    object.__setattr__(request, "seeds", seeds)
    object.__setattr__(request, "start", start)
    object.__setattr__(request, "end", None if end is None else float(end))
    object.__setattr__(request, "stride_segments", int(request.stride_segments))
    object.__setattr__(request, "candidates", int(request.candidates))


@dataclass(frozen=True)
class GenerateRequest:
    """Fresh audio for [start, end) of a clip (end None: to its end), one take per seed, one batch."""

    clip_path: Path
    params: SamplingParams = field(default_factory=SamplingParams)
    seeds: Sequence[int] = (0,)  # stored as a tuple
    stride_segments: int = 1  # window advance in 0.64 s segments (1, 2 or 3)
    start: float = 0.0
    end: float | None = None
    chains: int = DEFAULT_CHAINS  # stretches generated side by side (`Engine.generate`)
    candidates: int = DEFAULT_CANDIDATES  # samples per stretch, the best-aligned kept (one without cues)

    def __post_init__(self) -> None:
        _normalise(self)
        if not 1 <= int(self.chains) <= MAX_CHAINS:
            raise ValueError(f"chains must be 1 to {MAX_CHAINS}, got {self.chains}")
        object.__setattr__(self, "chains", int(self.chains))


@dataclass(frozen=True)
class RegenerateRequest:
    """New takes for [start, end) that continue `track` before `start` and crossfade back into it."""

    clip_path: Path
    track: Track
    start: float
    end: float
    params: SamplingParams = field(default_factory=SamplingParams)
    seeds: Sequence[int] = (0,)  # stored as a tuple
    stride_segments: int = 1
    crossfade: float = DEFAULT_CROSSFADE  # seconds on each side of the region
    candidates: int = DEFAULT_CANDIDATES  # as GenerateRequest's, judged on the region

    def __post_init__(self) -> None:
        _normalise(self)
        if not (math.isfinite(self.crossfade) and self.crossfade >= 0):
            raise ValueError(f"crossfade must be >= 0 s, got {self.crossfade}")
        object.__setattr__(self, "crossfade", float(self.crossfade))


EngineRequest = GenerateRequest | RegenerateRequest

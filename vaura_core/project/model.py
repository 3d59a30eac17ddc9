"""The project: one clip, its generated takes, the regions they belong to, lanes and markers.

The state is made of immutable pieces (frozen dataclasses, tuples, read-only arrays) that edits replace,
never mutate. Every edit is a data command (`vaura_core.project.commands`): `project.execute(cmd)`
applies it and returns the command that undoes it, so an undo stack only has to keep command pairs.
Nothing here knows about files; `vaura_core.project.storage` saves and loads projects.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import numpy as np

from vaura_core.engine.candidates import DEFAULT_CANDIDATES, MAX_CANDIDATES
from vaura_core.engine.chains import DEFAULT_CHAINS, MAX_CHAINS
from vaura_core.engine.splice import splice
from vaura_core.project.clip import ClipRef
from vaura_core.project.errors import CommandError
from vaura_core.project.takes import ID_PATTERN, MAX_LABEL, ProjectTake, new_id

if TYPE_CHECKING:
    from vaura_core.engine.engine import Track
    from vaura_core.project.commands import Command

log = logging.getLogger(__name__)

BASE = "base"  # the target name of the whole-clip takes; never a region id
LaneName = Literal["original", "generated"]
LANES: tuple[LaneName, ...] = ("original", "generated")
GAIN_DB_MIN = -96.0
GAIN_DB_MAX = 24.0
N_COLOURS = 12
MAX_COLOUR = 63
DEFAULT_MODEL = "vaura-tiny"  # vaura_core.weights.registry.DEFAULT_MODEL, without importing the registry
DEFAULT_SAMPLE_RATE = 44100
TIME_TOLERANCE = 1e-6  # seconds; region ends may sit on the clip's end up to float rounding
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as vaura_core.weights.registry names models


def _check_finite(name: str, value: float, lo: float, hi: float) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool)):
        raise CommandError(f"{name} must be a number")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise CommandError(f"{name} must be within [{lo:g}, {hi:g}], got {value!r}")


def _check_int(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise CommandError(f"{name} must be a whole number within [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class GenerationSettings:
    """The project's default generation parameters (the parameters panel starts from these)."""

    model: str = DEFAULT_MODEL
    temperature: float = 0.95
    top_k: int = 128
    top_p: float = 0.0  # 0 disables top-p
    cfg_scale: float = 6.0
    seed_mode: Literal["random", "locked"] = "random"
    seed: int = 0  # used when seed_mode is "locked"
    variations: int = 1
    stride_segments: int = 1
    chains: int = DEFAULT_CHAINS  # long clips as up to this many stretches side by side (engine.chains)
    # samples per stretch, the best-aligned kept (engine.candidates; models without cues make one)
    candidates: int = DEFAULT_CANDIDATES

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not MODEL_NAME.fullmatch(self.model):
            raise CommandError(f"model name {self.model!r} is not valid")
        _check_finite("temperature", self.temperature, 0.0, 10.0)
        _check_int("top-k", self.top_k, 0, 1 << 16)
        _check_finite("top-p", self.top_p, 0.0, 1.0)
        _check_finite("guidance", self.cfg_scale, 0.0, 100.0)
        if self.seed_mode not in ("random", "locked"):
            raise CommandError(f"seed mode must be 'random' or 'locked', got {self.seed_mode!r}")
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("variations", self.variations, 1, 16)
        _check_int("stride", self.stride_segments, 1, 15)
        _check_int("chains", self.chains, 1, MAX_CHAINS)
        _check_int("candidates", self.candidates, 1, MAX_CANDIDATES)

    def sampling_kwargs(self) -> dict[str, float | int]:
        """Keyword arguments of `vaura_core.generation.sampling.SamplingParams`."""
        return {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "cfg_scale": self.cfg_scale,
        }


@dataclass(frozen=True)
class LaneState:
    """Mixer state of one timeline lane. The original-audio lane starts muted, as the issue asks."""

    gain_db: float = 0.0
    muted: bool = False
    solo: bool = False

    def __post_init__(self) -> None:
        _check_finite("gain", self.gain_db, GAIN_DB_MIN, GAIN_DB_MAX)

    @property
    def linear_gain(self) -> float:
        return 10.0 ** (self.gain_db / 20.0)


def default_lanes() -> MappingProxyType[str, LaneState]:
    return MappingProxyType({"original": LaneState(muted=True), "generated": LaneState()})


@dataclass(frozen=True)
class Region:
    """A stretch of the clip that was regenerated: its candidate takes and the one committed to the track.

    A muted region keeps its takes but is not spliced in (the audio underneath plays).
    """

    id: str
    start: float
    end: float
    take_ids: tuple[str, ...] = ()
    committed: str | None = None
    colour: int = 0
    muted: bool = False

    def __post_init__(self) -> None:
        if not ID_PATTERN.fullmatch(self.id) or self.id == BASE:
            raise CommandError(f"region id {self.id!r} is not valid")
        _check_finite("region start", self.start, 0.0, math.inf)
        _check_finite("region end", self.end, 0.0, math.inf)
        if not self.start < self.end:
            raise CommandError(f"region {self.id}: start {self.start} is not before end {self.end}")
        _check_int("region colour", self.colour, 0, MAX_COLOUR)
        if len(set(self.take_ids)) != len(self.take_ids):
            raise CommandError(f"region {self.id} lists a take twice")
        if self.committed is not None and self.committed not in self.take_ids:
            raise CommandError(f"region {self.id}: committed take {self.committed} is not one of its takes")

    @classmethod
    def new(cls, start: float, end: float, *, colour: int = 0, take_ids: tuple[str, ...] = ()) -> Region:
        return cls(id=new_id("r"), start=float(start), end=float(end), take_ids=take_ids, colour=colour)


@dataclass(frozen=True)
class Marker:
    id: str
    time: float
    label: str = ""

    def __post_init__(self) -> None:
        if not ID_PATTERN.fullmatch(self.id):
            raise CommandError(f"marker id {self.id!r} is not valid")
        _check_finite("marker time", self.time, 0.0, math.inf)
        if len(self.label) > MAX_LABEL:
            raise CommandError(f"marker label longer than {MAX_LABEL} characters")

    @classmethod
    def new(cls, time: float, label: str = "") -> Marker:
        return cls(id=new_id("m"), time=float(time), label=label)


@dataclass(frozen=True)
class RenderProblem:
    take_id: str
    message: str


@dataclass(frozen=True)
class RenderedTrack:
    """The project's track: the fields of `vaura_core.engine.engine.Track`, read-only.

    The engine reads tracks by these fields (`Engine.regenerate` takes one as it is); `to_engine`
    makes the engine's own class. Kept separate so that rendering never imports torch.
    """

    codes: np.ndarray  # (Q, T) int64
    audio: np.ndarray  # (N,) float32
    sample_rate: int

    def to_engine(self) -> Track:
        """The engine's Track (imports torch). Codes are copied, being small and handed to torch,
        which wants writable arrays; the audio is shared."""
        from vaura_core.engine.engine import Track

        return Track(codes=self.codes.copy(), audio=self.audio, sample_rate=self.sample_rate)


@dataclass
class _RenderCache:
    key: tuple = ()
    track: RenderedTrack | None = None
    problems: tuple[RenderProblem, ...] = ()


@dataclass(eq=False)
class Project:
    """All of a session's work. Change it only through `execute`; read anything directly."""

    clip: ClipRef
    name: str = "Untitled"
    id: str = field(default_factory=lambda: new_id("p"))
    sample_rate: int = DEFAULT_SAMPLE_RATE
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    lanes: MappingProxyType[str, LaneState] = field(default_factory=default_lanes)
    base_take_ids: tuple[str, ...] = ()
    base_take: str | None = None  # the committed whole-clip take
    regions: tuple[Region, ...] = ()  # in the order they are spliced (later ones win where they overlap)
    takes: MappingProxyType[str, ProjectTake] = field(default_factory=lambda: MappingProxyType({}))
    markers: tuple[Marker, ...] = ()
    created: float = field(default_factory=time.time)
    revision: int = 0  # +1 for every executed command, kept across save and load
    saved_revision: int | None = None  # revision at the last save/load of `folder`
    folder: Path | None = None  # where it was last saved or opened from (None: never saved)
    _render: _RenderCache = field(default_factory=_RenderCache, init=False, repr=False)
    # Storage bookkeeping (vaura_core.project.storage): take ids whose files are known complete, by folder.
    _files_on_disk: dict[Path, set[str]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def new(
        cls,
        clip: ClipRef,
        *,
        name: str = "Untitled",
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        settings: GenerationSettings | None = None,
    ) -> Project:
        return cls(clip=clip, name=name, sample_rate=sample_rate, settings=settings or GenerationSettings())

    # --- state ---------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        """Changed since it was last saved (or, for a project never saved, since it was created)."""
        return self.revision != (self.saved_revision if self.saved_revision is not None else 0)

    @property
    def n_samples(self) -> int:
        """Length of the clip's track in samples."""
        return round(self.clip.duration * self.sample_rate)

    def execute(self, command: Command) -> Command:
        """Apply `command`; return the command that undoes it. Raises CommandError, leaving no change."""
        inverse = command.apply(self)
        self.revision += 1
        return inverse

    # --- look-ups ------------------------------------------------------------------
    def take(self, take_id: str) -> ProjectTake:
        try:
            return self.takes[take_id]
        except KeyError:
            raise CommandError(f"take {take_id} is not in the project") from None

    def region(self, region_id: str) -> Region:
        for region in self.regions:
            if region.id == region_id:
                return region
        raise CommandError(f"region {region_id} is not in the project")

    def region_index(self, region_id: str) -> int:
        for i, region in enumerate(self.regions):
            if region.id == region_id:
                return i
        raise CommandError(f"region {region_id} is not in the project")

    def takes_of(self, target: str) -> tuple[str, ...]:
        """Take ids of the base (`BASE`) or of a region, in their listed order."""
        return self.base_take_ids if target == BASE else self.region(target).take_ids

    def committed_of(self, target: str) -> str | None:
        return self.base_take if target == BASE else self.region(target).committed

    def owner_of(self, take_id: str) -> str | None:
        """`BASE`, the region id holding the take, or None."""
        if take_id in self.base_take_ids:
            return BASE
        for region in self.regions:
            if take_id in region.take_ids:
                return region.id
        return None

    def regions_at(self, seconds: float) -> list[Region]:
        return [r for r in self.regions if r.start <= seconds < r.end]

    def next_colour(self) -> int:
        """The first of the palette's colours no region uses (cycling when all are taken)."""
        used = [r.colour for r in self.regions]
        for colour in range(N_COLOURS):
            if colour not in used:
                return colour
        return len(self.regions) % N_COLOURS

    def check_time(self, name: str, seconds: float) -> None:
        _check_finite(name, seconds, 0.0, self.clip.duration + TIME_TOLERANCE)

    # --- rendering -----------------------------------------------------------------
    def render_key(self) -> tuple:
        """Everything the rendered track depends on. Takes are immutable and compare by identity, so
        holding them here also notices a take replaced under the same id (as loading does)."""
        base = self.takes.get(self.base_take) if self.base_take is not None else None
        spliced = tuple(
            (r.id, self.takes.get(r.committed)) for r in self.regions if r.committed and not r.muted
        )
        return (base, spliced, self.sample_rate)

    def render_track(self) -> RenderedTrack | None:
        """The committed base take with every region's committed take spliced in, in region order.

        This is what playback and export use (`vaura_core.engine.engine.apply_take` semantics, without
        importing torch). None while there is no usable base take. Takes that
        cannot be spliced (unavailable, or not fitting the base) are skipped and listed in
        `render_problems`. The result is cached until an edit changes what it depends on; its arrays are
        read-only and shared.
        """
        key = self.render_key()
        if self._render.key == key:
            return self._render.track
        track, problems = self._render_now()
        self._render = _RenderCache(key=key, track=track, problems=tuple(problems))
        return track

    @property
    def render_problems(self) -> tuple[RenderProblem, ...]:
        self.render_track()
        return self._render.problems

    def _render_now(self) -> tuple[RenderedTrack | None, list[RenderProblem]]:
        problems: list[RenderProblem] = []
        if self.base_take is None:
            return None, problems
        base = self.takes[self.base_take]
        if base.audio is None or base.codes is None:
            problems.append(RenderProblem(base.id, f"base take unavailable: {base.unavailable}"))
            return None, problems
        audio = base.audio.copy()
        codes = base.codes.copy()
        for region in self.regions:
            if region.committed is None or region.muted:
                continue
            take = self.takes[region.committed]
            problem = _splice_problem(take, audio, codes)
            if problem:
                problems.append(RenderProblem(take.id, problem))
                log.warning("region %s: take %s skipped: %s", region.id, take.id, problem)
                continue
            _commit(audio, codes, take)
        audio.setflags(write=False)
        codes.setflags(write=False)
        return RenderedTrack(codes=codes, audio=audio, sample_rate=self.sample_rate), problems


def _commit(audio: np.ndarray, codes: np.ndarray, take: ProjectTake) -> None:
    """`vaura_core.engine.engine.apply_take`, in place on the render's own buffers.

    Splicing the take's window alone gives the same samples as splicing the whole track (the fades
    are per sample) without copying the track once per region.
    """
    assert take.audio is not None and take.codes is not None
    codes[:, take.token_start : take.token_start + take.n_tokens] = take.codes
    a, b = take.sample_start, take.sample_end
    audio[a:b] = splice(audio[a:b], take.audio, 0, take.fade_in, take.fade_out)


def _splice_problem(take: ProjectTake, audio: np.ndarray, codes: np.ndarray) -> str | None:
    if take.audio is None or take.codes is None:
        return f"unavailable: {take.unavailable}"
    if take.sample_end > len(audio):
        return f"its audio ends at sample {take.sample_end}, after the track's {len(audio)}"
    if take.token_start + take.n_tokens > codes.shape[1] or take.n_codebooks != codes.shape[0]:
        return "its codes do not fit the track's"
    return None


def same_arrays(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Bit-identical arrays (or both missing)."""
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

"""A take as the project keeps it: the engine's result, an id, a label, and content checksums.

Arrays are owned, read-only and never copied again: undo commands, the render cache and save jobs all
share the same buffers, so an undo step costs a reference, not the audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vaura_core.engine.candidates import MAX_CANDIDATES
from vaura_core.engine.chains import MAX_CHAINS
from vaura_core.project.errors import CommandError

if TYPE_CHECKING:
    from vaura_core.engine.engine import Take

ParamValue = None | bool | int | float | str
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_PARAMS = 64
MAX_PARAM_KEY = 64
MAX_PARAM_STRING = 256
MAX_LABEL = 1000
MAX_CODE_VALUE = 1 << 20  # far above any codebook size; codes are token ids, never negative


class EngineTakeLike(Protocol):
    """The attributes of `vaura_core.engine.engine.Take` read here (no torch import needed)."""

    model: str
    seed: int
    params: dict
    stride_segments: int
    start: float
    end: float
    token_start: int
    codes: np.ndarray
    sample_start: int
    audio: np.ndarray
    fade_in: int
    fade_out: int
    chains: int
    candidates: int


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def audio_checksum(audio: np.ndarray) -> str:
    """SHA-256 of the samples as little-endian float32 (independent of the file format holding them)."""
    return hashlib.sha256(np.ascontiguousarray(audio, dtype="<f4").data).hexdigest()


def codes_checksum(codes: np.ndarray) -> str:
    """SHA-256 of the tokens as C-ordered little-endian int64."""
    return hashlib.sha256(np.ascontiguousarray(codes, dtype="<i8").data).hexdigest()


def check_params(params: Mapping[str, Any]) -> MappingProxyType[str, ParamValue]:
    """A read-only copy of sampling parameters, which must be flat JSON scalars."""
    if len(params) > MAX_PARAMS:
        raise CommandError(f"take parameters: more than {MAX_PARAMS} entries")
    out: dict[str, ParamValue] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_PARAM_KEY:
            raise CommandError(f"take parameters: invalid name {key!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise CommandError(f"take parameter {key!r} is not a finite number")
        if isinstance(value, str) and len(value) > MAX_PARAM_STRING:
            raise CommandError(f"take parameter {key!r} is longer than {MAX_PARAM_STRING} characters")
        if value is not None and not isinstance(value, bool | int | float | str):
            raise CommandError(f"take parameter {key!r} must be a number, text, true/false or null")
        out[key] = value
    return MappingProxyType(out)


def _frozen(array: np.ndarray, dtype: str) -> np.ndarray:
    """An owned, contiguous, read-only copy (one copy per take, at creation)."""
    out = np.array(array, dtype=dtype, copy=True, order="C")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class ProjectTake:
    """One generated take. `audio` and `codes` are None when its files could not be loaded."""

    id: str
    model: str
    seed: int
    params: Mapping[str, ParamValue]
    stride_segments: int
    start: float  # requested region, seconds
    end: float
    token_start: int
    sample_start: int
    fade_in: int
    fade_out: int
    n_samples: int
    n_codebooks: int
    n_tokens: int
    audio_sha256: str
    codes_sha256: str
    created: float  # seconds since the epoch
    label: str = ""
    chains: int = 1  # stretches generated side by side (`engine.chains`); 1 = sequential
    candidates: int = 1  # samples per stretch, the best kept (`engine.candidates`)
    audio: np.ndarray | None = None  # (n_samples,) float32, read-only
    codes: np.ndarray | None = None  # (n_codebooks, n_tokens) int64, read-only
    unavailable: str | None = None  # why the audio is missing, for takes loaded from damaged files

    @property
    def available(self) -> bool:
        return self.audio is not None and self.codes is not None

    @property
    def is_whole_clip(self) -> bool:
        """Can serve as the base track: starts at sample 0 with no crossfades."""
        return self.sample_start == 0 and self.fade_in == 0 and self.fade_out == 0

    @property
    def sample_end(self) -> int:
        return self.sample_start + self.n_samples

    @classmethod
    def create(
        cls,
        *,
        audio: np.ndarray,
        codes: np.ndarray,
        model: str,
        seed: int,
        params: Mapping[str, Any],
        stride_segments: int,
        start: float,
        end: float,
        token_start: int,
        sample_start: int,
        fade_in: int = 0,
        fade_out: int = 0,
        chains: int = 1,
        candidates: int = 1,
        label: str = "",
        created: float | None = None,
        take_id: str | None = None,
    ) -> ProjectTake:
        """Check a new take's data and freeze its arrays. Raises CommandError on anything inconsistent."""
        audio_arr = np.asarray(audio)
        codes_arr = np.asarray(codes)
        if audio_arr.ndim != 1 or audio_arr.dtype.kind != "f" or len(audio_arr) == 0:
            raise CommandError(f"take audio must be a non-empty 1-D float array, got {audio_arr.shape}")
        if codes_arr.ndim != 2 or codes_arr.dtype.kind not in "iu" or 0 in codes_arr.shape:
            raise CommandError(f"take codes must be a non-empty 2-D integer array, got {codes_arr.shape}")
        frozen_audio = _frozen(audio_arr, "<f4")
        if not np.isfinite(frozen_audio).all():
            raise CommandError("take audio contains NaN or infinite samples")
        if codes_arr.min() < 0 or codes_arr.max() >= MAX_CODE_VALUE:
            raise CommandError("take codes hold token ids out of range")
        frozen_codes = _frozen(codes_arr, "<i8")
        take = cls(
            id=take_id or new_id("t"),
            model=str(model),
            seed=int(seed),
            params=check_params(params),
            stride_segments=int(stride_segments),
            start=float(start),
            end=float(end),
            token_start=int(token_start),
            sample_start=int(sample_start),
            fade_in=int(fade_in),
            fade_out=int(fade_out),
            n_samples=len(frozen_audio),
            n_codebooks=frozen_codes.shape[0],
            n_tokens=frozen_codes.shape[1],
            audio_sha256=audio_checksum(frozen_audio),
            codes_sha256=codes_checksum(frozen_codes),
            created=time.time() if created is None else float(created),
            label=label,
            chains=int(chains),
            candidates=int(candidates),
            audio=frozen_audio,
            codes=frozen_codes,
        )
        take.check()
        return take

    @classmethod
    def from_engine(
        cls,
        take: EngineTakeLike,
        *,
        label: str = "",
        created: float | None = None,
        take_id: str | None = None,
    ) -> ProjectTake:
        """Adopt a take the engine produced (its arrays are copied once, here)."""
        return cls.create(
            audio=take.audio,
            codes=take.codes,
            model=take.model,
            seed=take.seed,
            params=take.params,
            stride_segments=take.stride_segments,
            start=take.start,
            end=take.end,
            token_start=take.token_start,
            sample_start=take.sample_start,
            fade_in=take.fade_in,
            fade_out=take.fade_out,
            chains=take.chains,
            candidates=take.candidates,
            label=label,
            created=created,
            take_id=take_id,
        )

    def check(self) -> None:
        """Raise CommandError unless the metadata is self-consistent (also used for loaded takes)."""
        problems = []
        if not ID_PATTERN.fullmatch(self.id):
            problems.append(f"invalid id {self.id!r}")
        if not (math.isfinite(self.start) and math.isfinite(self.end) and 0 <= self.start < self.end):
            problems.append(f"range [{self.start}, {self.end}] s is not a valid region")
        if self.stride_segments < 1:
            problems.append("stride must be at least one segment")
        if not 1 <= self.chains <= MAX_CHAINS:
            problems.append(f"chains must be 1 to {MAX_CHAINS}")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            problems.append(f"candidates must be 1 to {MAX_CANDIDATES}")
        if min(self.token_start, self.sample_start, self.fade_in, self.fade_out, self.seed) < 0:
            problems.append("negative position, crossfade or seed")
        if self.n_samples < 1 or self.n_codebooks < 1 or self.n_tokens < 1:
            problems.append("empty audio or codes")
        if self.fade_in + self.fade_out > self.n_samples:
            problems.append("crossfades longer than the audio")
        if len(self.label) > MAX_LABEL:
            problems.append(f"label longer than {MAX_LABEL} characters")
        if not math.isfinite(self.created):
            problems.append("invalid creation time")
        if problems:
            raise CommandError(f"take {self.id}: " + "; ".join(problems))

    def with_label(self, label: str) -> ProjectTake:
        """The same take (same arrays) under another label."""
        if len(label) > MAX_LABEL:
            raise CommandError(f"take {self.id}: label longer than {MAX_LABEL} characters")
        return dataclasses.replace(self, label=label)

    def record(self) -> dict[str, Any]:
        """What the take is and how to reproduce it (the engine's `Take.record()` plus identity)."""
        return {
            "id": self.id,
            "label": self.label,
            "model": self.model,
            "seed": self.seed,
            "params": dict(self.params),
            "stride_segments": self.stride_segments,
            "start": self.start,
            "end": self.end,
            "crossfade_samples": [self.fade_in, self.fade_out],
            "chains": self.chains,
            "candidates": self.candidates,
            "created": self.created,
        }

    def to_engine(self) -> Take:
        """The engine's view of this take (shares the read-only arrays)."""
        from vaura_core.engine.engine import Take

        if self.audio is None or self.codes is None:
            raise CommandError(f"take {self.id} is unavailable: {self.unavailable}")
        return Take(
            model=self.model,
            seed=self.seed,
            params=dict(self.params),
            stride_segments=self.stride_segments,
            start=self.start,
            end=self.end,
            token_start=self.token_start,
            codes=self.codes,
            sample_start=self.sample_start,
            audio=self.audio,
            fade_in=self.fade_in,
            fade_out=self.fade_out,
            chains=self.chains,
            candidates=self.candidates,
        )

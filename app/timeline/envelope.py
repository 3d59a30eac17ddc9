"""Waveform drawing data at any zoom: a min/max envelope pyramid and the slice of it a view needs.

A 10-minute 44.1 kHz lane has 26 million samples; drawing them, or even reducing them on every redraw,
is far too slow. The pyramid keeps per-bucket minima and maxima at bucket sizes BASE_BUCKET x 4^k, built
once. For a view, the level with the largest bucket that is still at most the samples per pixel is
reduced further by a whole factor, so one drawn bucket covers at least one pixel: at most one min/max
pair per pixel, whatever the zoom. Buckets are aligned to absolute sample indices, so panning at a fixed
zoom shows the same buckets (no shimmer). When a pixel holds less than one sample, the samples
themselves are drawn as a line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vaura_core.media import audio_envelope

BASE_BUCKET = 16  # samples per bucket of the finest stored level (finer views reduce the raw samples)
LEVEL_FACTOR = 4  # bucket growth from one level to the next
MIN_TOP_BUCKETS = 256  # stop adding levels once a level has this few buckets
Level = tuple[int, np.ndarray, np.ndarray]  # (samples per bucket, minima, maxima)
# Long signals are reduced in pieces so a background build releases the GIL often and can be cancelled.
_BUILD_CHUNK = 1 << 20


class BuildCancelled(Exception):
    """Raised by `EnvelopePyramid.build` when its `cancelled` callback says to stop."""


@dataclass(frozen=True)
class WaveSlice:
    """What to draw for a view: either an envelope (x, lo, hi) or, zoomed right in, samples (x, lo).

    `x` is float64 seconds (bucket centres, or sample instants); for a line `hi` is None.
    """

    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray | None
    bucket: int  # samples per drawn point (1: the samples themselves)

    @property
    def is_line(self) -> bool:
        return self.hi is None

    @property
    def points(self) -> int:
        """Vertices drawn: one per sample for a line, two per bucket (top and bottom) for an envelope."""
        return int(self.x.size if self.hi is None else 2 * self.x.size)


class EnvelopePyramid:
    """Min/max summaries of a mono signal at several bucket sizes, for fast waveform drawing."""

    def __init__(self, samples: np.ndarray, sample_rate: int, levels: list[Level]) -> None:
        self.samples = samples
        self.sample_rate = sample_rate
        self.levels = levels  # (bucket, mins, maxs), finest first; the raw samples are level "1"

    @classmethod
    def build(
        cls,
        samples: np.ndarray,
        sample_rate: int,
        cancelled: Callable[[], bool] | None = None,
    ) -> EnvelopePyramid:
        """Summarise `samples` (1-D, or (channels, n) which is averaged to mono) at `sample_rate` Hz."""
        mono = as_mono_float32(samples)
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        levels: list[Level] = []
        if mono.size > BASE_BUCKET:
            mins, maxs = _reduce_chunked(mono, BASE_BUCKET, cancelled)
            levels.append((BASE_BUCKET, mins, maxs))
            while mins.size > MIN_TOP_BUCKETS:
                if cancelled is not None and cancelled():
                    raise BuildCancelled
                mins, maxs = _merge(mins, maxs, LEVEL_FACTOR)
                levels.append((levels[-1][0] * LEVEL_FACTOR, mins, maxs))
        return cls(mono, sample_rate, levels)

    @property
    def duration(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def nbytes(self) -> int:
        return sum(lo.nbytes + hi.nbytes for _, lo, hi in self.levels)

    def slice(self, t0: float, t1: float, pixels: int) -> WaveSlice:
        """Drawing data for clip times [t0, t1] on `pixels` pixels: at most one point pair per pixel."""
        empty = np.zeros(0)
        n = self.samples.size
        if pixels < 1 or t1 <= t0 or n == 0:
            return WaveSlice(empty, empty, None, 1)
        samples_per_pixel = (t1 - t0) * self.sample_rate / pixels
        first = max(0, math.floor(t0 * self.sample_rate))
        last = min(n, math.ceil(t1 * self.sample_rate) + 1)  # one past the last sample needed
        if first >= last:
            return WaveSlice(empty, empty, None, 1)
        if samples_per_pixel <= 1.0:
            idx = np.arange(first, last, dtype=np.float64)
            return WaveSlice(idx / self.sample_rate, self.samples[first:last], None, 1)

        # The coarsest stored level whose bucket fits in a pixel, then a whole extra factor on top.
        bucket, mins, maxs = 1, self.samples, self.samples
        for level_bucket, level_mins, level_maxs in self.levels:
            if level_bucket > samples_per_pixel:
                break
            bucket, mins, maxs = level_bucket, level_mins, level_maxs
        factor = max(1, math.ceil(samples_per_pixel / bucket))
        drawn = bucket * factor
        # Whole drawn buckets, aligned to absolute sample indices, covering [first, last).
        k0 = first // drawn
        k1 = -(-last // drawn)
        lo_part = mins[k0 * factor : k1 * factor]
        hi_part = maxs[k0 * factor : k1 * factor]
        lo, hi = _merge(lo_part, hi_part, factor)
        centres = (np.arange(k0, k0 + lo.size, dtype=np.float64) + 0.5) * drawn
        # The last bucket of the signal may be shorter than the others.
        centres = np.minimum(centres, n - 0.5)
        return WaveSlice(centres / self.sample_rate, lo, hi, drawn)


MAX_CHANNELS = 8


def check_audio(samples: np.ndarray) -> np.ndarray:
    """`samples` as an array after checking its shape and type, without converting anything (cheap).

    Accepted: (n,), or (channels, n) with at most MAX_CHANNELS channels; float or integer samples.
    """
    x = np.asarray(samples)
    if x.ndim == 2 and x.shape[0] > MAX_CHANNELS:
        raise ValueError(f"expected audio as (channels, samples), got shape {x.shape}")
    if x.ndim not in (1, 2):
        raise ValueError(f"expected mono audio as a 1-D array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"expected audio samples as numbers, got dtype {x.dtype}")
    return x


def as_mono_float32(samples: np.ndarray) -> np.ndarray:
    """Mono float32 samples: channels averaged, integers scaled to [-1, 1); no copy when already so."""
    x = check_audio(samples)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max + 1.0)
    if x.ndim == 2:
        x = x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0]
    return np.ascontiguousarray(x, dtype=np.float32)


def _reduce_chunked(
    x: np.ndarray, bucket: int, cancelled: Callable[[], bool] | None
) -> tuple[np.ndarray, np.ndarray]:
    step = max(bucket, _BUILD_CHUNK // bucket * bucket)  # whole buckets per chunk
    mins, maxs = [], []
    for start in range(0, x.size, step):
        if cancelled is not None and cancelled():
            raise BuildCancelled
        lo, hi = audio_envelope(x[start : start + step], bucket)
        mins.append(lo)
        maxs.append(hi)
    return np.concatenate(mins), np.concatenate(maxs)


def _merge(mins: np.ndarray, maxs: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max over groups of `factor` consecutive buckets (the last group may be shorter)."""
    if factor == 1 or mins.size == 0:
        return mins, maxs
    starts = np.arange(0, mins.size, factor)
    return np.minimum.reduceat(mins, starts), np.maximum.reduceat(maxs, starts)

"""Equal-power crossfades for splicing a regenerated stretch into a track."""

from __future__ import annotations

import numpy as np


def equal_power_fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade_out, fade_in) of n samples with fade_out**2 + fade_in**2 == 1 at every sample."""
    x = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.cos(0.5 * np.pi * x).astype(np.float32), np.sin(0.5 * np.pi * x).astype(np.float32)


def splice(track: np.ndarray, new: np.ndarray, start: int, fade_in: int, fade_out: int) -> np.ndarray:
    """Return a copy of `track` with `new` placed at sample `start`.

    The first `fade_in` samples of `new` crossfade from the track into the new audio and its last
    `fade_out` samples crossfade back; samples outside [start, start + len(new)) are untouched.
    """
    end = start + len(new)
    if start < 0 or end > len(track):
        raise ValueError(f"splice [{start}, {end}) outside the track of {len(track)} samples")
    if fade_in + fade_out > len(new):
        raise ValueError("crossfades longer than the spliced audio")
    out = track.copy()
    seg = new.astype(np.float32, copy=True)
    if fade_in:
        f_out, f_in = equal_power_fades(fade_in)
        seg[:fade_in] = track[start : start + fade_in] * f_out + seg[:fade_in] * f_in
    if fade_out:
        f_out, f_in = equal_power_fades(fade_out)
        seg[-fade_out:] = seg[-fade_out:] * f_out + track[end - fade_out : end] * f_in
    out[start:end] = seg
    return out

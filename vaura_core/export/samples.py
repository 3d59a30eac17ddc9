"""Checks on the audio handed to the exporters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaura_core.export.errors import ExportError


def as_frames(samples: np.ndarray, sample_rate: int, dest: Path) -> np.ndarray:
    """Return float32 audio shaped (frames, channels); mono input may be 1-D.

    Raises ExportError for empty, non-finite or oddly shaped audio, or a bad rate.
    """
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ExportError(f"{dest}: invalid sample rate {sample_rate!r}")
    audio = np.asarray(samples)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise ExportError(f"{dest}: audio must be 1-D (mono) or (frames, channels), got shape {audio.shape}")
    if audio.shape[1] > 8:
        raise ExportError(
            f"{dest}: audio has {audio.shape[1]} channels; expected (frames, channels), at most 8 channels"
        )
    if audio.shape[0] == 0:
        raise ExportError(f"{dest}: there is no audio to export")
    if not np.issubdtype(audio.dtype, np.floating):
        # Integer PCM has a scale we would have to guess; callers convert to float in [-1, 1].
        raise ExportError(f"{dest}: audio samples must be floating point in [-1, 1], got {audio.dtype}")
    audio = audio.astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise ExportError(f"{dest}: the audio contains NaN or infinite samples")
    return audio

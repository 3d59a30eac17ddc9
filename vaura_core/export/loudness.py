"""Loudness normalisation to a LUFS target with a true-peak ceiling.

Integrated loudness is measured with pyloudnorm (ITU-R BS.1770-4 K-weighting and gating). The true
peak is the sample peak of a 4x oversampled copy (soxr), as BS.1770-4 Annex 2 suggests. When the
gain that reaches the loudness target would push the true peak over the ceiling, the gain is
lowered until the peak sits on the ceiling: the audio stays undistorted and comes out quieter
than the target, and the report says so. No limiter or compressor is applied.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pyloudnorm
import soxr

from vaura_core.export.errors import ExportError

# Presets named in the product brief: EBU R128 broadcast, ATSC A/85, streaming platforms.
EBU_R128_LUFS = -23.0
ATSC_A85_LUFS = -24.0
STREAMING_LUFS = -14.0

_OVERSAMPLING = 4
_MAX_LOUDNESS_CHANNELS = 5  # BS.1770 channel weights pyloudnorm knows
_GATE_RETRY_LU = 0.05  # re-aim once when the absolute gate moved the result by more than this
# Headroom under the ceiling for float rounding and the +-1 LSB of 16-bit dither.
_CEILING_MARGIN_DB = 0.01


@dataclass(frozen=True)
class LoudnessTarget:
    lufs: float = EBU_R128_LUFS
    true_peak_db: float = -1.0

    def __post_init__(self) -> None:
        if not (-70.0 <= self.lufs <= 0.0):
            raise ExportError(f"loudness target {self.lufs} LUFS is outside -70 to 0 LUFS")
        if not (-30.0 <= self.true_peak_db <= 0.0):
            raise ExportError(f"true-peak ceiling {self.true_peak_db} dBTP is outside -30 to 0 dBTP")


@dataclass(frozen=True)
class LoudnessReport:
    """What normalisation measured and did. Loudness in LUFS, peaks in dBTP, gain in dB."""

    input_lufs: float  # -inf for silence, NaN when not measured
    output_lufs: float
    input_true_peak_db: float
    output_true_peak_db: float
    gain_db: float
    peak_limited: bool  # the ceiling, not the target, set the gain
    skipped_reason: str | None = None  # set when the audio was left unchanged

    @property
    def summary(self) -> str:
        if self.skipped_reason is not None:
            return f"Loudness not normalised: {self.skipped_reason}."
        text = (
            f"Loudness {self.input_lufs:.1f} → {self.output_lufs:.1f} LUFS "
            f"(gain {self.gain_db:+.1f} dB), true peak {self.output_true_peak_db:.1f} dBTP"
        )
        if self.peak_limited:
            text += "; gain reduced to respect the true-peak ceiling"
        return text + "."


def _db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def true_peak_db(samples: np.ndarray, rate: int) -> float:
    """True peak in dBTP: the largest magnitude of the signal oversampled 4x (never below the sample peak)."""
    audio = np.asarray(samples, dtype=np.float32)
    if audio.size == 0:
        return -math.inf
    oversampled = soxr.resample(audio, rate, rate * _OVERSAMPLING, quality="HQ")
    peak = max(float(np.max(np.abs(audio))), float(np.max(np.abs(oversampled))) if oversampled.size else 0.0)
    return _db(peak)


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    """Integrated loudness in LUFS; -inf for silence. Raises ValueError for audio under 0.4 s."""
    meter = pyloudnorm.Meter(rate)
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(meter.integrated_loudness(np.asarray(samples, dtype=np.float64)))


def _unchanged(samples: np.ndarray, rate: int, lufs: float, reason: str) -> tuple[np.ndarray, LoudnessReport]:
    peak = true_peak_db(samples, rate)
    return samples, LoudnessReport(lufs, lufs, peak, peak, 0.0, False, reason)


def normalize_loudness(
    samples: np.ndarray, rate: int, target: LoudnessTarget
) -> tuple[np.ndarray, LoudnessReport]:
    """Scale `samples` ((frames,) or (frames, channels) float) to `target`; returns new float32 samples."""
    audio = np.asarray(samples, dtype=np.float32)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    if channels > _MAX_LOUDNESS_CHANNELS:
        reason = f"BS.1770 loudness is defined for at most 5 channels, not {channels}"
        return _unchanged(audio, rate, math.nan, reason)
    if audio.shape[0] <= pyloudnorm.Meter(rate).block_size * rate:
        return _unchanged(audio, rate, math.nan, "the audio is shorter than the 0.4 s loudness window")
    measured = integrated_loudness(audio, rate)
    if not math.isfinite(measured):
        return _unchanged(audio, rate, measured, "the audio is silent (below the -70 LUFS gate)")

    gain_db = target.lufs - measured
    output_lufs = integrated_loudness(audio * np.float32(10 ** (gain_db / 20)), rate)
    # Quiet passages may cross the -70 LUFS absolute gate after the gain, which shifts the
    # gated result slightly; aim once more from the new measurement.
    if math.isfinite(output_lufs) and abs(output_lufs - target.lufs) > _GATE_RETRY_LU:
        gain_db += target.lufs - output_lufs

    input_peak = true_peak_db(audio, rate)
    peak_limited = input_peak + gain_db > target.true_peak_db
    if peak_limited:
        gain_db = target.true_peak_db - _CEILING_MARGIN_DB - input_peak

    out = (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)
    report = LoudnessReport(
        input_lufs=measured,
        output_lufs=integrated_loudness(out, rate),
        input_true_peak_db=input_peak,
        output_true_peak_db=true_peak_db(out, rate),
        gain_db=gain_db,
        peak_limited=peak_limited,
    )
    return out, report

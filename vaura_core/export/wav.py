"""WAV export: range selection, high-quality resampling, loudness normalisation, dithered PCM."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from vaura_core.export.atomic import atomic_write_path, describe_os_error
from vaura_core.export.errors import ExportError
from vaura_core.export.loudness import LoudnessReport, LoudnessTarget, normalize_loudness
from vaura_core.export.samples import as_frames
from vaura_core.export.tasks import CancelToken, ProgressCallback, check_cancelled, report_progress

SUPPORTED_RATES = (44100, 48000)
WAV_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")

_BLOCK_FRAMES = 1 << 16
_CONTEXT_SECONDS = 0.05  # audio beyond the range fed to the resampler, well over its filter length
_DITHER_SEED = 0x5EED  # fixed, so exporting the same audio twice gives the same bytes
_RIFF_LIMIT = 0xFFFF_FFFF - 1024  # above this the sizes overflow a RIFF header: use RF64
# Full-scale factors match libsndfile's own float <-> int conversion, so files read back as written.
_INT_SCALE = {"PCM_16": 32768, "PCM_24": 8388608}


@dataclass(frozen=True)
class WavExportResult:
    path: Path
    sample_rate: int
    subtype: str
    frames: int
    loudness: LoudnessReport | None


def export_wav(
    samples: np.ndarray,
    sample_rate: int,
    dest: str | Path,
    *,
    out_rate: int = 48000,
    subtype: str = "PCM_24",
    start: float = 0.0,
    end: float | None = None,
    loudness: LoudnessTarget | None = None,
    dither: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> WavExportResult:
    """Write `samples` ((frames,) or (frames, channels) float in [-1, 1]) as a WAV file.

    `start`/`end` (seconds, end=None for the end of the audio) select a range; the file then has
    exactly round((end - start) * out_rate) frames. Resampling uses soxr at very high quality.
    `loudness` normalises the exported range (see `normalize_loudness`). 16-bit output gets TPDF
    dither unless `dither` is False. The file appears atomically: on any error or cancel
    (a set `cancel` token raises `Cancelled`) nothing is left behind and an existing `dest` is kept.
    """
    dest = Path(dest)
    if out_rate not in SUPPORTED_RATES:
        raise ExportError(f"{dest}: unsupported WAV sample rate {out_rate} Hz (use 44100 or 48000)")
    if subtype not in WAV_SUBTYPES:
        raise ExportError(f"{dest}: unsupported WAV sample format {subtype!r} (use PCM_16, PCM_24 or FLOAT)")
    audio = as_frames(samples, sample_rate, dest)
    first, last, frames = _range_frames(audio.shape[0], sample_rate, out_rate, start, end, dest)

    check_cancelled(cancel, dest)
    segment = _fit_length(_resample_range(audio, first, last, sample_rate, out_rate), frames)
    report_progress(progress, 0.1)

    report = None
    if loudness is not None:
        check_cancelled(cancel, dest)
        segment, report = normalize_loudness(segment, out_rate, loudness)
    report_progress(progress, 0.3)

    check_cancelled(cancel, dest)
    with atomic_write_path(dest) as temp:
        _write_wav(segment, out_rate, subtype, dither, temp, dest, progress, cancel)
    report_progress(progress, 1.0)
    return WavExportResult(dest, out_rate, subtype, frames, report)


def _range_frames(
    total: int, rate: int, out_rate: int, start: float, end: float | None, dest: Path
) -> tuple[int, int, int]:
    """Input frame range [first, last) and the exact output length for `start`..`end` seconds."""
    duration = total / rate
    end = duration if end is None else end
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ExportError(f"{dest}: the export range must be finite, got {start}–{end} s")
    # Half a sample of slack so an `end` computed from the duration in float still counts as inside.
    if start < 0 or end > duration + 0.5 / rate or end <= start:
        raise ExportError(
            f"{dest}: invalid export range {start:.3f}–{end:.3f} s (the audio is {duration:.3f} s long)"
        )
    first = round(start * rate)
    last = min(total, round(end * rate))
    frames = round((end - start) * out_rate)
    if frames < 1:
        raise ExportError(f"{dest}: the export range {start:.6f}–{end:.6f} s is shorter than one sample")
    return first, last, frames


def _resample_range(audio: np.ndarray, first: int, last: int, rate: int, out_rate: int) -> np.ndarray:
    """Resample audio[first:last], feeding the resampler the neighbouring audio as context.

    Without context the filter would see silence beyond the range and ring at both edges. The
    leading context is a whole number of resampling periods so the output grid still starts
    exactly at `first`.
    """
    if rate == out_rate:
        return audio[first:last]
    period = rate // math.gcd(rate, out_rate)  # input frames that map onto whole output frames
    lead = min(first, period * math.ceil(_CONTEXT_SECONDS * rate / period)) // period * period
    tail = min(audio.shape[0], last + round(_CONTEXT_SECONDS * rate))
    resampled = soxr.resample(audio[first - lead : tail], rate, out_rate, quality="VHQ")
    return resampled[lead * out_rate // rate :]


def _fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    """Trim or zero-pad to exactly `frames` (rounding of the range and the resampler differ by a sample)."""
    if audio.shape[0] >= frames:
        return audio[:frames]
    pad = np.zeros((frames - audio.shape[0], audio.shape[1]), dtype=audio.dtype)
    return np.concatenate([audio, pad])


def _quantize(block: np.ndarray, subtype: str, dither: bool, rng: np.random.Generator) -> np.ndarray:
    """Float block -> the array soundfile writes bit-exactly for `subtype` (clipped to full scale)."""
    if subtype == "FLOAT":
        return block.astype(np.float32, copy=False)
    scale = _INT_SCALE[subtype]
    scaled = block.astype(np.float64) * scale
    if dither and subtype == "PCM_16":
        # TPDF: the sum of two uniform variables, +-1 LSB peak, decorrelates the rounding error.
        scaled += rng.random(scaled.shape) - rng.random(scaled.shape)
    ints = np.clip(np.rint(scaled), -scale, scale - 1)
    if subtype == "PCM_16":
        return ints.astype(np.int16)
    # libsndfile stores the top 24 bits of int32 samples.
    return ints.astype(np.int32) << 8


class _ErrorKeepingFile:
    """An unbuffered file for soundfile's virtual I/O that remembers the OS error of a failed write.

    soundfile calls `write` from a C callback, where a Python exception would be printed and
    lost; returning a short count makes libsndfile fail, and we report the saved error instead.
    """

    def __init__(self, raw: io.RawIOBase) -> None:
        self.raw = raw
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            written = self.raw.write(data)
        except OSError as error:
            self.error = error
            return 0
        return len(data) if written is None else written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def read(self, size: int = -1) -> bytes:
        return self.raw.read(size) or b""


def _open_binary(path: Path) -> io.RawIOBase:
    return io.FileIO(path, "w+")


def _write_wav(
    audio: np.ndarray,
    rate: int,
    subtype: str,
    dither: bool,
    temp: Path,
    dest: Path,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> None:
    frames, channels = audio.shape
    sample_bytes = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype]
    container = "RF64" if frames * channels * sample_bytes > _RIFF_LIMIT else "WAV"
    rng = np.random.default_rng(_DITHER_SEED)
    raw = _open_binary(temp)
    sink = _ErrorKeepingFile(raw)
    try:
        with soundfile.SoundFile(
            sink, "w", samplerate=rate, channels=channels, subtype=subtype, format=container
        ) as out:
            for begin in range(0, frames, _BLOCK_FRAMES):
                check_cancelled(cancel, dest)
                out.write(_quantize(audio[begin : begin + _BLOCK_FRAMES], subtype, dither, rng))
                report_progress(progress, 0.3 + 0.7 * min(frames, begin + _BLOCK_FRAMES) / frames)
        if sink.error is not None:
            raise sink.error
    except (RuntimeError, AssertionError, OSError) as error:
        cause = sink.error or error
        reason = describe_os_error(cause) if isinstance(cause, OSError) else str(cause) or "write failed"
        raise ExportError(f"{dest}: could not write ({reason})") from error
    finally:
        raw.close()

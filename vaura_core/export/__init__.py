"""Export: WAV files and MP4/MOV files with the video stream copied. Every file is written atomically."""

from vaura_core.export.atomic import atomic_write_path
from vaura_core.export.errors import ExportError
from vaura_core.export.loudness import (
    ATSC_A85_LUFS,
    EBU_R128_LUFS,
    STREAMING_LUFS,
    LoudnessReport,
    LoudnessTarget,
    integrated_loudness,
    normalize_loudness,
    true_peak_db,
)
from vaura_core.export.mux import AUDIO_CODECS, MuxResult, mux_video
from vaura_core.export.tasks import CancelToken, ProgressCallback
from vaura_core.export.wav import SUPPORTED_RATES, WAV_SUBTYPES, WavExportResult, export_wav

__all__ = [
    "ATSC_A85_LUFS",
    "AUDIO_CODECS",
    "EBU_R128_LUFS",
    "STREAMING_LUFS",
    "SUPPORTED_RATES",
    "WAV_SUBTYPES",
    "CancelToken",
    "ExportError",
    "LoudnessReport",
    "LoudnessTarget",
    "MuxResult",
    "ProgressCallback",
    "WavExportResult",
    "atomic_write_path",
    "export_wav",
    "integrated_loudness",
    "mux_video",
    "normalize_loudness",
    "true_peak_db",
]

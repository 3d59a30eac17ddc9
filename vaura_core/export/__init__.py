"""Export: WAV files and MP4/MOV files with the video stream copied. Every file is written atomically.

Names are loaded on first use (PEP 562), so modules that only need `atomic_write_path` (projects,
autosave) do not pay for PyAV, soxr, scipy and pyloudnorm at import.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "atomic_write_path": "atomic",
    "ExportError": "errors",
    "ATSC_A85_LUFS": "loudness",
    "EBU_R128_LUFS": "loudness",
    "STREAMING_LUFS": "loudness",
    "LoudnessReport": "loudness",
    "LoudnessTarget": "loudness",
    "integrated_loudness": "loudness",
    "normalize_loudness": "loudness",
    "true_peak_db": "loudness",
    "AUDIO_CODECS": "mux",
    "MuxResult": "mux",
    "mux_video": "mux",
    "CancelToken": "tasks",
    "ProgressCallback": "tasks",
    "SUPPORTED_RATES": "wav",
    "WAV_SUBTYPES": "wav",
    "WavExportResult": "wav",
    "export_wav": "wav",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

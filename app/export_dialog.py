"""The export dialog: WAV or MP4/MOV (video stream copied), loudness, whole clip or selection.

`run_export` is the Qt-free job (it calls `vaura_core.export`); the dialog collects `ExportOptions`,
runs the job on a worker thread with progress and Cancel, and reports the result. The dialog is
non-modal, so a test (or the self-test) drives it like a user: `set_options(...)`, `start()`, then wait
for `export_finished`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.background import SerialExecutor
from vaura_core.errors import Cancelled, VauraError
from vaura_core.export import (
    ATSC_A85_LUFS,
    EBU_R128_LUFS,
    STREAMING_LUFS,
    LoudnessTarget,
    export_wav,
    mux_video,
    normalize_loudness,
)

log = logging.getLogger(__name__)

ExportFormat = Literal["wav", "mp4", "mov"]
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV audio", "WAV audio (*.wav)"),
    "mp4": ("MP4 video (picture copied, new sound)", "MP4 video (*.mp4)"),
    "mov": ("MOV video (picture copied, new sound)", "QuickTime movie (*.mov)"),
}
RATES = (44100, 48000)
SUBTYPES: dict[str, str] = {"PCM_16": "16-bit", "PCM_24": "24-bit", "FLOAT": "32-bit float"}
LOUDNESS: dict[str, tuple[str, float | None]] = {
    "off": ("Off (as generated)", None),
    "-23": ("−23 LUFS (EBU R128 broadcast)", EBU_R128_LUFS),
    "-24": ("−24 LUFS (ATSC A/85)", ATSC_A85_LUFS),
    "-14": ("−14 LUFS (streaming)", STREAMING_LUFS),
}
TRUE_PEAK_CEILING_DB = -1.0


@dataclass(frozen=True)
class ExportOptions:
    path: Path
    format: ExportFormat = "wav"
    sample_rate: int = 48000  # WAV only; videos carry the audio at its own rate
    subtype: str = "PCM_24"  # WAV only
    loudness: str = "off"  # a key of LOUDNESS
    keep_original_audio: bool = False  # videos only
    selection_only: bool = False

    @property
    def loudness_lufs(self) -> float | None:
        return LOUDNESS.get(self.loudness, ("", None))[1]


@dataclass(frozen=True)
class ExportSource:
    """What there is to export: the generated track (mono, with the lane gain applied) and the clip."""

    audio: np.ndarray
    sample_rate: int
    clip_path: Path
    duration: float
    selection: tuple[float, float] | None = None
    describe_range: Callable[[float, float], str] = field(default=lambda a, b: f"{a:.2f}–{b:.2f} s")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    summary: str
    start: float
    end: float


def run_export(
    source: ExportSource,
    options: ExportOptions,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> ExportResult:
    """Write the export described by `options`. Raises VauraError (Cancelled when cancelled)."""
    start, end = 0.0, source.duration
    if options.selection_only:
        if source.selection is None:
            raise VauraError(f"{options.path.name}: there is no selection to export; select a range first")
        start, end = source.selection
    target = None
    if options.loudness_lufs is not None:
        target = LoudnessTarget(lufs=options.loudness_lufs, true_peak_db=TRUE_PEAK_CEILING_DB)

    if options.format == "wav":
        result = export_wav(
            source.audio,
            source.sample_rate,
            options.path,
            out_rate=options.sample_rate,
            subtype=options.subtype,
            start=start,
            end=end,
            loudness=target,
            progress=progress,
            cancel=cancel,
        )
        summary = f"Exported {result.frames} samples at {result.sample_rate} Hz to {options.path.name}"
        if result.loudness is not None:
            summary += f". {result.loudness.summary}"
        return ExportResult(options.path, summary, start, end)

    audio = source.audio
    loudness_note = ""
    if target is not None:
        # The gain that brings the exported range to the target is applied to the whole track.
        first, last = round(start * source.sample_rate), round(end * source.sample_rate)
        _, report = normalize_loudness(audio[first:last], source.sample_rate, target)
        if report.skipped_reason is None:
            audio = (audio * np.float32(10.0 ** (report.gain_db / 20.0))).astype(np.float32)
        loudness_note = f". {report.summary}"
    muxed = mux_video(
        source.clip_path,
        options.path,
        audio,
        source.sample_rate,
        container=options.format,
        keep_original_audio=options.keep_original_audio,
        start=start if options.selection_only else None,
        end=end if options.selection_only else None,
        progress=progress,
        cancel=cancel,
    )
    summary = (
        f"Exported {options.path.name}: video copied ({muxed.video_packets} packets), "
        f"{muxed.audio_codec} audio"
    )
    if muxed.original_audio_kept:
        summary += " plus the original audio"
    return ExportResult(options.path, summary + loudness_note, muxed.start, muxed.end)


class ExportDialog(QDialog):
    """Signals: export_finished(ExportResult), export_failed(message), export_cancelled()."""

    export_finished = Signal(object)
    export_failed = Signal(str)
    export_cancelled = Signal()
    _progress = Signal(float)  # emitted from the worker thread; queued to the dialog

    def __init__(
        self,
        source: ExportSource,
        defaults: dict[str, Any] | None = None,
        folder: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.setObjectName("exportDialog")
        self.setModal(False)
        self.source = source
        self._jobs = SerialExecutor("export", self)
        self._cancel: threading.Event | None = None
        self.last_result: ExportResult | None = None
        defaults = defaults or {}
        folder = folder or source.clip_path.parent

        self.format_combo = QComboBox(self)
        for key, (label, _) in FORMATS.items():
            self.format_combo.addItem(label, key)
        self.format_combo.setToolTip(
            "WAV: the generated sound alone. MP4/MOV: the clip's picture copied bit for bit with the "
            "generated sound as its audio track."
        )
        self.path_edit = QLineEdit(self)
        self.path_edit.setToolTip("Where to write the file (it appears only once complete)")
        browse = QPushButton("Browse…", self)
        browse.setToolTip("Choose the file to write")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)

        self.rate_combo = QComboBox(self)
        for rate in RATES:
            self.rate_combo.addItem(f"{rate / 1000:g} kHz", rate)
        self.rate_combo.setToolTip("Sample rate of the WAV file (48 kHz is the standard for video)")
        self.subtype_combo = QComboBox(self)
        for key, label in SUBTYPES.items():
            self.subtype_combo.addItem(label, key)
        self.subtype_combo.setToolTip("Sample format of the WAV file (16-bit is dithered)")
        self.original_audio = QCheckBox("Keep the clip's original audio as a second track", self)
        self.original_audio.setToolTip("The source's own sound, copied unchanged, as an extra track")
        self.loudness_combo = QComboBox(self)
        for key, (label, _) in LOUDNESS.items():
            self.loudness_combo.addItem(label, key)
        self.loudness_combo.setToolTip(
            f"Normalise the integrated loudness to a delivery target, with a {TRUE_PEAK_CEILING_DB:g} dBTP "
            "true-peak ceiling (the gain is lowered rather than clipping)"
        )
        self.whole_radio = QRadioButton("Whole clip", self)
        self.selection_radio = QRadioButton("Selection", self)
        if source.selection is not None:
            self.selection_radio.setText(f"Selection ({source.describe_range(*source.selection)})")
        else:
            self.selection_radio.setEnabled(False)
            self.selection_radio.setToolTip("Select a range on the timeline to export only that")
        self._range_group = QButtonGroup(self)
        self._range_group.addButton(self.whole_radio)
        self._range_group.addButton(self.selection_radio)
        self.whole_radio.setChecked(True)
        range_row = QHBoxLayout()
        range_row.addWidget(self.whole_radio)
        range_row.addWidget(self.selection_radio)
        range_row.addStretch(1)

        form = QFormLayout()
        form.addRow("Format", self.format_combo)
        form.addRow("File", path_row)
        form.addRow("Sample rate", self.rate_combo)
        form.addRow("Bit depth", self.subtype_combo)
        form.addRow("", self.original_audio)
        form.addRow("Loudness", self.loudness_combo)
        form.addRow("Range", range_row)
        self._form = form

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._on_cancel_or_close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self._folder = folder
        self._progress.connect(self._on_progress)
        self.format_combo.currentIndexChanged.connect(self._on_format_changed)
        self._apply_defaults(defaults)
        self.resize(560, self.sizeHint().height())

    # --- options ------------------------------------------------------------------------------------

    def _apply_defaults(self, defaults: dict[str, Any]) -> None:
        self._select(self.format_combo, defaults.get("format", "wav"))
        self._select(self.rate_combo, defaults.get("sample_rate", 48000))
        self._select(self.subtype_combo, defaults.get("subtype", "PCM_24"))
        self._select(self.loudness_combo, defaults.get("loudness", "off"))
        self.original_audio.setChecked(bool(defaults.get("keep_original_audio", False)))
        self._on_format_changed()

    @staticmethod
    def _select(combo: QComboBox, value: object) -> None:
        index = combo.findData(value)
        if index >= 0:
            combo.setCurrentIndex(index)

    def options(self) -> ExportOptions:
        return ExportOptions(
            path=Path(self.path_edit.text()).expanduser(),
            format=self.format_combo.currentData(),
            sample_rate=int(self.rate_combo.currentData()),
            subtype=str(self.subtype_combo.currentData()),
            loudness=str(self.loudness_combo.currentData()),
            keep_original_audio=self.original_audio.isChecked(),
            selection_only=self.selection_radio.isChecked(),
        )

    def set_options(self, options: ExportOptions) -> None:
        self._select(self.format_combo, options.format)
        self.path_edit.setText(str(options.path))
        self._select(self.rate_combo, options.sample_rate)
        self._select(self.subtype_combo, options.subtype)
        self._select(self.loudness_combo, options.loudness)
        self.original_audio.setChecked(options.keep_original_audio)
        (self.selection_radio if options.selection_only else self.whole_radio).setChecked(True)
        self._on_format_changed()

    def _default_path(self, fmt: str) -> Path:
        return self._folder / f"{self.source.clip_path.stem}-foley.{fmt}"

    @Slot()
    def _on_format_changed(self) -> None:
        fmt = self.format_combo.currentData()
        is_wav = fmt == "wav"
        for widget in (self.rate_combo, self.subtype_combo):
            widget.setEnabled(is_wav)
            self._form.labelForField(widget).setEnabled(is_wav)
        self.original_audio.setEnabled(not is_wav)
        current = self.path_edit.text().strip()
        if not current:
            self.path_edit.setText(str(self._default_path(fmt)))
        else:
            path = Path(current)
            if path.suffix.lower().lstrip(".") in FORMATS and path.suffix.lower() != f".{fmt}":
                self.path_edit.setText(str(path.with_suffix(f".{fmt}")))

    @Slot()
    def _browse(self) -> None:
        fmt = self.format_combo.currentData()
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text(), FORMATS[fmt][1])
        if path:
            if Path(path).suffix.lower() != f".{fmt}":
                path += f".{fmt}"
            self.path_edit.setText(path)

    # --- running ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._cancel is not None

    @Slot()
    def start(self) -> bool:
        """Start exporting with the options shown; False (with a message) when they cannot work."""
        if self.running:
            return False
        options = self.options()
        if not self.path_edit.text().strip():
            self._fail("Choose a file to export to.")
            return False
        if not options.path.parent.is_dir():
            self._fail(f"{options.path}: the folder {options.path.parent} does not exist.")
            return False
        if options.format != "wav" and options.path.resolve() == self.source.clip_path.resolve():
            self._fail(f"{options.path.name}: this is the source clip; choose another file name.")
            return False
        cancel = threading.Event()
        self._cancel = cancel
        self._set_running(True)
        self.status.setText(f"Exporting {options.path.name}…")
        self.progress.setValue(0)
        source = self.source
        self._jobs.submit(
            lambda: run_export(source, options, self._progress.emit, cancel),
            on_done=self._on_done,
            on_error=self._on_error,
        )
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.status.setText("Cancelling…")

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        self.cancel_button.setText("Cancel" if running else "Close")
        self.cancel_button.setToolTip("Stop the export (nothing is written)" if running else "Close")
        for widget in (self.format_combo, self.path_edit, self.loudness_combo, self.whole_radio):
            widget.setEnabled(not running)
        self.selection_radio.setEnabled(not running and self.source.selection is not None)
        if not running:
            self._on_format_changed()
        else:
            for widget in (self.rate_combo, self.subtype_combo, self.original_audio):
                widget.setEnabled(False)

    @Slot(float)
    def _on_progress(self, fraction: float) -> None:
        if self.running:
            self.progress.setValue(round(fraction * 1000))

    def _on_done(self, result: ExportResult) -> None:
        self._cancel = None
        self._set_running(False)
        self.progress.setValue(1000)
        self.last_result = result
        self.status.setText(result.summary + ".")
        self.export_finished.emit(result)

    def _on_error(self, error: BaseException) -> None:
        self._cancel = None
        self._set_running(False)
        self.progress.setValue(0)
        if isinstance(error, Cancelled):
            self.status.setText("Export cancelled; nothing was written.")
            self.export_cancelled.emit()
            return
        if isinstance(error, VauraError):
            message = str(error)
        else:
            log.error("export failed", exc_info=error)
            message = f"The export failed unexpectedly ({error}); the log has the details."
        self._fail(message)

    def _fail(self, message: str) -> None:
        self.status.setText(message)
        self.export_failed.emit(message)

    @Slot()
    def _on_cancel_or_close(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.close()

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Wait for the export thread (tests); results arrive through the event loop afterwards."""
        return self._jobs.wait(timeout_s)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel()
        self._jobs.shutdown(wait=True)  # an export stops at its next progress step once cancelled
        self._jobs = SerialExecutor("export", self)
        self._cancel = None
        super().closeEvent(event)

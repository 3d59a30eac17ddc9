"""The model manager: what is installed, where models live, downloads, imports and removals.

`ModelManagerDialog` is a non-modal window over `ModelRegistry` (vaura_core.weights). It lists the
built-in, installed and downloadable models; downloads a catalogue model after a confirmation that
states its size, destination and the free space there (and refuses when the drive is too full), with
progress, speed and Cancel (the partial file is kept, so the next Download resumes it); imports local
weights; removes installed models; and lets the user choose the models folder (saved in the settings).

Long work runs on a worker thread (`app.background.SerialExecutor`), one job at a time; the dialog never
shows a traceback: user-facing errors (VauraError) are shown as they are, anything else is logged.

Everything that would open a modal window is an attribute holding a callable, so tests (and the
self-test) can answer instead of a user: `confirm`, `choose_folder`, `choose_import_paths`, `ask_name`
and `choose_preset`.

    dialog = ModelManagerDialog(settings, parent=window, current_model="vaura-tiny")
    dialog.model_chosen.connect(window.use_model)
    dialog.show()
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.background import SerialExecutor
from app.settings import AppSettings
from vaura_core.errors import Cancelled, CheckpointFormatError, VauraError
from vaura_core.model.config import PRESETS
from vaura_core.weights.catalog import CatalogEntry
from vaura_core.weights.download import FREE_SPACE_MARGIN
from vaura_core.weights.registry import DOWNLOADS, ModelInfo, ModelRegistry, is_model_dir, name_from_path

log = logging.getLogger(__name__)

JobKind = Literal["download", "import", "remove"]
Outcome = Literal["done", "cancelled", "failed"]

# At the peak of an install the drive holds the download, the checkpoint unpacked from it and the
# converted model (the first two are deleted afterwards), each about the size of the download.
INSTALL_SPACE_FACTOR = 3
PROGRESS_INTERVAL_S = 0.1  # the download reports every 64 KiB; the bar needs about ten updates a second
SPEED_WINDOW_S = 3.0
WEIGHT_FILE_FILTER = (
    "Model weights (*.tar.gz *.tgz *.tar *.ckpt *.safetensors *.pth *.pt *.bin *.zip);;All files (*)"
)

COLUMNS = ("Model", "Status", "Size", "Location", "About")
COL_NAME, COL_STATUS, COL_SIZE, COL_LOCATION, COL_ABOUT = range(len(COLUMNS))


def human_bytes(n: float) -> str:
    """Decimal units, as drives and download pages count them: "3.4 GB", "812 MB", "12 kB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def free_bytes(folder: Path) -> int | None:
    """Free space on the drive holding `folder`, or that will hold it (its nearest existing parent)."""
    probe = Path(folder).expanduser().absolute()
    while not probe.exists():
        if probe.parent == probe:
            return None
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def partial_bytes(registry: ModelRegistry, name: str) -> int:
    """Bytes of a catalogue model already downloaded (finished files and `.part` files) and kept."""
    entry = registry.catalog.get(name)
    if entry is None:
        return 0
    staging = registry.root / DOWNLOADS / name
    total = 0
    for remote in entry.files:
        for candidate in (staging / remote.filename, staging / f"{remote.filename}.part"):
            with contextlib.suppress(OSError):
                total += candidate.stat().st_size
    return total


def install_space_needed(download_bytes: int, already: int = 0) -> int:
    """Free space to install (INSTALL_SPACE_FACTOR); bytes already downloaded are not fetched again."""
    return INSTALL_SPACE_FACTOR * download_bytes - min(already, download_bytes) + FREE_SPACE_MARGIN


class SpeedMeter:
    """Bytes per second over the last few seconds of (time, bytes done) samples."""

    def __init__(self, window_s: float = SPEED_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, done: int) -> float | None:
        now = self._clock()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()
        first_time, first_done = self._samples[0]
        if now - first_time < 0.2:  # too short to mean anything
            return None
        return max(0.0, (done - first_done) / (now - first_time))


@dataclass
class _Job:
    kind: JobKind
    name: str
    cancel: threading.Event | None = None  # downloads only: the others cannot be interrupted
    stage: str = ""  # set once a download is converting (no byte progress, no cancel)
    meter: SpeedMeter = field(default_factory=SpeedMeter)
    # An import without a config hint, so a "pass a config hint" failure can be retried with a preset.
    retry: tuple[list[Path], str] | None = None


class ModelManagerDialog(QDialog):
    """The model manager window. See the module docstring.

    Signals:
      model_chosen(name): "Use This Model" on an installed model (the main window then loads it)
      models_changed(): a model was installed or removed, or the models folder changed
      download_progress(done, total | None): bytes of the download in progress (GUI thread, ~10 Hz)
      job_finished(kind, outcome, message): a download/import/remove ended as done/cancelled/failed
    """

    model_chosen = Signal(str)
    models_changed = Signal()
    download_progress = Signal(object, object)
    job_finished = Signal(str, str, str)

    # From the worker thread; queued to the GUI thread because the dialog lives there.
    _progress_relay = Signal(object, object)
    _stage_relay = Signal(str)

    def __init__(
        self,
        settings: AppSettings,
        parent: QWidget | None = None,
        *,
        current_model: str | None = None,
        welcome: bool = False,
        catalog: dict[str, CatalogEntry] | None = None,
        builtin_root: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelManager")
        self.setModal(False)
        self.settings = settings
        self.current_model = current_model
        self._catalog = catalog
        self._builtin_root = builtin_root
        self._jobs = SerialExecutor("models", self)
        self._job: _Job | None = None
        self._infos: dict[str, ModelInfo] = {}
        self.registry = self._make_registry()

        # Answers a user would give; replaced in tests.
        self.confirm: Callable[[str, str], bool] = self._ask_yes_no
        self.choose_folder: Callable[[Path], Path | None] = self._pick_folder
        self.choose_import_paths: Callable[[Literal["files", "folder"]], list[Path]] = self._pick_import
        self.ask_name: Callable[[str, str], str | None] = self._ask_name
        self.choose_preset: Callable[[str], str | None] = self._ask_preset

        self.intro = QLabel(self._intro_text(welcome), self)
        self.intro.setObjectName("modelIntro")
        self.intro.setWordWrap(True)
        self.intro.setTextFormat(Qt.TextFormat.RichText)

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        for column in (COL_NAME, COL_STATUS, COL_SIZE):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_LOCATION, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_ABOUT, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(COL_LOCATION, 260)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.use_model())

        self.folder_edit = QLineEdit(self)
        self.folder_edit.setReadOnly(True)
        self.folder_edit.setToolTip("Downloaded and imported models are stored here, one folder per model")
        self.change_folder_button = QPushButton("Change…", self)
        self.change_folder_button.setToolTip("Choose another folder (on another drive, for instance)")
        self.change_folder_button.clicked.connect(self._on_change_folder)
        self.default_folder_button = QPushButton("Use Default", self)
        self.default_folder_button.setToolTip("Go back to the standard models folder for this user")
        self.default_folder_button.clicked.connect(lambda: self.set_models_root(None))
        self.free_label = QLabel("", self)
        self.free_label.setObjectName("modelFreeSpace")
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Models folder:", self))
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.change_folder_button)
        folder_row.addWidget(self.default_folder_button)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel Download", self)
        self.cancel_button.setToolTip("Stop the download; the partial file is kept and Download resumes it")
        self.cancel_button.clicked.connect(self.cancel_job)
        self.cancel_button.setVisible(False)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.status = QLabel("", self)
        self.status.setObjectName("modelStatusLine")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.download_button = QPushButton("Download", self)
        self.download_button.setToolTip("Download the selected model (you are asked first)")
        self.download_button.clicked.connect(lambda: self.download())
        self.import_button = QPushButton("Import…", self)
        self.import_button.setToolTip(
            "Install weights you already have: a release tarball, a checkpoint or a folder"
        )
        import_menu = QMenu(self.import_button)
        import_menu.addAction("Tarball or Checkpoint File…", lambda: self._on_import("files"))
        import_menu.addAction("Extracted Release Folder…", lambda: self._on_import("folder"))
        self.import_button.setMenu(import_menu)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip(
            "Delete the selected model (or its partial download) from the models folder"
        )
        self.remove_button.clicked.connect(lambda: self.remove_model())
        self.use_button = QPushButton("Use This Model", self)
        self.use_button.setToolTip("Generate with the selected model")
        self.use_button.clicked.connect(lambda: self.use_model())
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for button in (self.download_button, self.import_button, self.remove_button, self.use_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.table, 1)
        layout.addLayout(folder_row)
        layout.addWidget(self.free_label)
        layout.addLayout(progress_row)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        self._progress_relay.connect(self._on_progress)
        self._stage_relay.connect(self._on_stage)
        self.resize(900, 480)
        self.refresh()

    # --- state ----------------------------------------------------------------------------------

    @property
    def models_root(self) -> Path:
        return self.registry.root

    @property
    def busy(self) -> bool:
        """Whether a download, import or removal is running."""
        return self._job is not None

    def _make_registry(self) -> ModelRegistry:
        return ModelRegistry(
            self.settings.models_root, catalog=self._catalog, builtin_root=self._builtin_root
        )

    def model_names(self) -> list[str]:
        return [self._row_name(row) for row in range(self.table.rowCount())]

    def cell(self, name: str, column: int) -> str:
        """The text shown for model `name` in `column` ("" when it is not listed)."""
        row = self._row_of(name)
        item = None if row is None else self.table.item(row, column)
        return item.text() if item is not None else ""

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._row_name(rows[0].row()) if rows else None

    def select(self, name: str) -> bool:
        row = self._row_of(name)
        if row is None:
            return False
        self.table.selectRow(row)
        return True

    def _info(self, name: str) -> ModelInfo | None:
        """What the registry knows of `name`; None (with the message shown) for an invalid name."""
        if name in self._infos:
            return self._infos[name]
        try:
            return self.registry.info(name)
        except VauraError as exc:
            self._show(str(exc), error=True)
            return None

    def _idle_target(self, name: str | None) -> tuple[str, ModelInfo] | None:
        """The model an action applies to (`name` or the selection), or None when busy or unknown."""
        name = name or self.selected_name()
        if self.busy or not name:
            return None
        info = self._info(name)
        return None if info is None else (name, info)

    def _row_name(self, row: int) -> str:
        item = self.table.item(row, COL_NAME)
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""

    def _row_of(self, name: str) -> int | None:
        for row in range(self.table.rowCount()):
            if self._row_name(row) == name:
                return row
        return None

    # --- listing --------------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Read the models folder again and redraw the table, keeping the selection."""
        selected = self.selected_name()
        self.registry = self._make_registry()
        try:
            infos = self.registry.list()
        except (VauraError, OSError) as exc:
            log.warning("listing models in %s failed: %s", self.registry.root, exc)
            self._show(f"Cannot list the models in {self.registry.root}: {exc}", error=True)
            infos = []
        self._infos = {info.name: info for info in infos}
        self.table.setRowCount(len(infos))
        for row, info in enumerate(infos):
            for column, (text, tip) in enumerate(self._describe(info)):
                item = QTableWidgetItem(text)
                item.setToolTip(tip or text)
                if column == COL_NAME:
                    item.setData(Qt.ItemDataRole.UserRole, info.name)
                self.table.setItem(row, column, item)
        self.table.resizeRowsToContents()
        if not (selected and self.select(selected)) and infos:
            self.select(self.current_model if self.current_model in self._infos else infos[0].name)
        self._show_folder()
        self._update_buttons()

    def _describe(self, info: ModelInfo) -> list[tuple[str, str]]:
        """(text, tooltip) for each column."""
        entry = self.registry.catalog.get(info.name)
        partial = 0 if info.installed else partial_bytes(self.registry, info.name)
        if info.builtin:
            status = "Built in" if info.installed else "Built in, missing"
        elif info.installed:
            status = "Installed"
        elif partial:
            status = "Partly downloaded"
        else:
            status = "Available to download"
        if info.name == self.current_model and info.installed:
            status += " · in use"

        if info.installed and info.size_bytes is not None:
            size = human_bytes(info.size_bytes)
        elif info.size_bytes is not None:
            size = f"about {human_bytes(info.size_bytes)} download"
        else:
            size = "unknown"
        if partial:
            size += f" ({human_bytes(partial)} downloaded)"

        if info.installed and info.path is not None:
            location = str(info.path)
        elif info.builtin:
            location = f"missing from {info.path}; reinstall VAURA Studio"
        else:
            location = f"{self.registry.root / info.name} (once installed)"

        about = info.description
        if entry is not None and entry.license:
            about += f". Licence: {entry.license}"
        source = f"Source: {info.source}" if info.source else ""
        return [
            (info.name, ""),
            (status, ""),
            (size, ""),
            (location, ""),
            (about, "\n".join([about, source])),
        ]

    def _show_folder(self) -> None:
        root = self.registry.root
        self.folder_edit.setText(str(root))
        free = free_bytes(root)
        where = "" if root.exists() else " (the folder is created when a model is installed)"
        shown = "unknown" if free is None else human_bytes(free)
        default = " · the default folder" if self.settings.models_root_is_default else ""
        self.free_label.setText(f"Free space on this drive: {shown}{where}{default}")
        self.default_folder_button.setEnabled(not self.busy and not self.settings.models_root_is_default)

    @Slot()
    def _update_buttons(self) -> None:
        name = self.selected_name()
        info = self._infos.get(name) if name else None
        idle = not self.busy
        can_download = info is not None and info.downloadable and not info.installed
        partial = partial_bytes(self.registry, info.name) if can_download and info is not None else 0
        self.download_button.setText("Resume Download" if partial else "Download")
        self.download_button.setEnabled(idle and can_download)
        removable = info is not None and not info.builtin and (info.installed or partial > 0)
        self.remove_button.setEnabled(idle and removable)
        self.remove_button.setText("Discard Partial Download" if partial and removable else "Remove")
        self.use_button.setEnabled(info is not None and info.installed)
        for widget in (self.import_button, self.change_folder_button):
            widget.setEnabled(idle)
        self.default_folder_button.setEnabled(idle and not self.settings.models_root_is_default)

    def _intro_text(self, welcome: bool) -> str:
        entry = self.registry.catalog.get("vaura")
        size = f" (about {human_bytes(entry.approx_bytes)})" if entry and entry.approx_bytes else ""
        if welcome:
            return (
                "<b>Welcome to VAURA Studio.</b> It comes with <b>vaura-tiny</b>, a small built-in model "
                "that works offline right away. The full <b>V-AURA</b> model" + size + " makes far better "
                "sound: download it here, or import the release tarball if you already have it. Nothing is "
                "downloaded unless you ask, and you choose where models are stored. This window is always "
                "available from <i>Models › Manage Models…</i>"
            )
        return (
            "Built-in models ship with VAURA Studio; downloaded and imported models are stored in the "
            "models folder below. Nothing is downloaded unless you ask."
        )

    # --- models folder --------------------------------------------------------------------------

    @Slot()
    def _on_change_folder(self) -> None:
        folder = self.choose_folder(self.registry.root)
        if folder is not None:
            self.set_models_root(folder)

    def set_models_root(self, folder: Path | None) -> bool:
        """Keep models in `folder` from now on (None: the default); False, with a message, if unusable."""
        if self.busy:
            self._show("Wait for the current job to finish before changing the models folder.", error=True)
            return False
        old = self.registry.root
        if folder is not None:
            folder = Path(folder).expanduser().absolute()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._show(f"Cannot use {folder} as the models folder: {exc.strerror or exc}.", error=True)
                return False
            if not os.access(folder, os.W_OK | os.X_OK):
                self._show(f"Cannot use {folder} as the models folder: it is not writable.", error=True)
                return False
        self.settings.models_root = folder
        self.refresh()
        new = self.registry.root
        if new != old:
            self._show(
                f"Models are now stored in {new}. Models already in {old} stay there (nothing was moved); "
                "choose that folder again to use them."
            )
            self.models_changed.emit()
        return True

    # --- download -------------------------------------------------------------------------------

    def download(self, name: str | None = None) -> bool:
        """Ask, then download and install catalogue model `name` (default: the selected one).

        False when nothing started: not downloadable, too little free space, or the user said no.
        """
        target = self._idle_target(name)
        if target is None:
            return False
        name, info = target
        if info.installed:
            self._show(f"{name} is already installed in {info.path}.")
            return False
        entry = self.registry.catalog.get(name)
        if entry is None:
            self._show(f"{name} cannot be downloaded: it is not in the download catalogue.", error=True)
            return False
        root = self.registry.root
        already = partial_bytes(self.registry, name)
        free = free_bytes(root)
        size = entry.approx_bytes
        host = ", ".join(sorted({_host(f) for f in entry.files}))
        if size is not None:
            need = install_space_needed(size, already)
            if free is not None and free < need:
                self._show(
                    f"Not enough free space to install {name} in {root}: it needs about {human_bytes(need)} "
                    f"(the {human_bytes(size)} download, the checkpoint unpacked from it and the converted "
                    f"model) but only {human_bytes(free)} is free. Free some space, or choose a models "
                    "folder on another drive with Change….",
                    error=True,
                )
                return False
            size_line = f"Download size: about {human_bytes(size)} from {host}"
            need_line = f" (about {human_bytes(need)} is needed while installing)"
        else:
            size_line = f"Download size: not published by {host}; the download stops if the drive fills up"
            need_line = ""
        lines = [
            f"Download and install {name}?",
            "",
            size_line,
            f"Destination: {root / name}",
            f"Free space there: {'unknown' if free is None else human_bytes(free)}{need_line}",
        ]
        if already:
            lines.append(f"Resumes the earlier download: {human_bytes(already)} are already here.")
        if entry.license:
            lines.append(f"Licence: {entry.license}")
        lines += [
            "",
            "You can cancel at any time: the partial file is kept and the next Download resumes it. "
            "The file is checked (sha256) and converted once downloaded.",
        ]
        if not self.confirm(f"Download {name}", "\n".join(lines)):
            self._show(f"Nothing was downloaded. {name} can be downloaded later from this window.")
            return False

        job = _Job("download", name, cancel=threading.Event())
        registry = self.registry
        last = [0.0]

        def report(done: int, total: int | None) -> None:  # worker thread
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or (total is not None and done >= total):
                last[0] = now
                self._emit_safely(self._progress_relay, done, total)

        def work() -> ModelInfo:
            return registry.download(name, progress=report, cancel=job.cancel, status=self._stage_from_worker)

        self._start(job, work, f"Downloading {name} into {root}…")
        self.cancel_button.setVisible(True)
        self.cancel_button.setEnabled(True)
        if already:
            self._show(f"Resuming the download of {name} ({human_bytes(already)} already downloaded)…")
        return True

    def _stage_from_worker(self, message: str) -> None:
        self._emit_safely(self._stage_relay, message)

    @staticmethod
    def _emit_safely(signal: object, *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the dialog was deleted while the job ran
            signal.emit(*args)  # type: ignore[attr-defined]

    @Slot(object, object)
    def _on_progress(self, done: int, total: int | None) -> None:
        job = self._job
        if job is None or job.kind != "download" or job.stage:
            return
        speed = job.meter.add(done)
        parts = [f"{human_bytes(done)} of {human_bytes(total)}" if total else f"{human_bytes(done)}"]
        if speed is not None:
            parts.append(f"{human_bytes(speed)}/s")
            if total and speed > 0:
                parts.append(_format_left((total - done) / speed))
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(min(1000, done * 1000 // max(1, total)))
        else:
            self.progress.setRange(0, 0)
        self._show(f"Downloading {job.name}: " + " · ".join(parts))
        self.download_progress.emit(done, total)

    @Slot(str)
    def _on_stage(self, message: str) -> None:
        job = self._job
        if job is None:
            return
        job.stage = message
        self.progress.setRange(0, 0)  # no byte progress while converting
        self.cancel_button.setEnabled(False)
        self._show(f"Download complete; {message}. This can take a few minutes and cannot be cancelled.")

    @Slot()
    def cancel_job(self) -> None:
        """Cancel the download in progress (imports and removals cannot be interrupted)."""
        job = self._job
        if job is not None and job.cancel is not None and not job.stage:
            job.cancel.set()
            self.cancel_button.setEnabled(False)
            self._show(f"Cancelling the download of {job.name}…")

    # --- import ---------------------------------------------------------------------------------

    def _on_import(self, kind: Literal["files", "folder"]) -> None:
        paths = self.choose_import_paths(kind)
        if paths:
            self.import_paths(paths)

    def import_paths(
        self, paths: Sequence[Path], name: str | None = None, config_hint: str | None = None
    ) -> bool:
        """Import local weights as model `name` (default: from the first file's name) in the background."""
        if self.busy or not paths:
            return False
        paths = [Path(p).expanduser() for p in paths]
        for path in paths:
            if not path.exists():
                self._show(f"Cannot import {path}: no such file or folder.", error=True)
                return False
        name = name or name_from_path(paths[0])
        while self._name_taken(name):
            where = (
                "built into VAURA Studio" if name in self.registry.builtin_names() else "already installed"
            )
            message = (
                f"A model named '{name}' is {where} (in {self.registry.root}). Choose another name for "
                f"the weights from {paths[0].name}, or cancel and remove the other model first."
            )
            answer = self.ask_name(message, _free_name(name, self._name_taken))
            if not answer or not answer.strip():
                self._show(f"Not imported: a model named '{name}' is {where}.", error=True)
                return False
            name = answer.strip()
        job = _Job("import", name, retry=(paths, name) if config_hint is None else None)
        registry = self.registry
        files = ", ".join(p.name for p in paths)

        def work() -> ModelInfo:
            return registry.import_path(paths, name=name, config_hint=config_hint)

        self._start(
            job, work, f"Importing {files} as {name} (reading and converting the weights)…", busy=True
        )
        return True

    def _name_taken(self, name: str) -> bool:
        return name in self.registry.builtin_names() or (self.registry.root / name).exists()

    # --- remove and use -------------------------------------------------------------------------

    def remove_model(self, name: str | None = None) -> bool:
        """Ask, then delete installed model `name` (or its partial download). Built-ins cannot be removed."""
        target = self._idle_target(name)
        if target is None:
            return False
        name, info = target
        if info.builtin:
            self._show(f"{name} is built into VAURA Studio and cannot be removed.", error=True)
            return False
        partial = 0 if info.installed else partial_bytes(self.registry, name)
        if info.installed:
            size = f" ({human_bytes(info.size_bytes)})" if info.size_bytes else ""
            text = f"Remove {name}? This deletes {info.path}{size}."
            if name == self.current_model:
                text += " It is the model in use: it stays loaded until you choose another one."
            if info.downloadable:
                text += " It can be downloaded again later."
        elif partial:
            text = (
                f"Discard the partial download of {name} ({human_bytes(partial)})? "
                "The next download starts over."
            )
        else:
            self._show(
                f"{name} is not installed in {self.registry.root}; there is nothing to remove.", error=True
            )
            return False
        if not self.confirm(f"Remove {name}", text):
            return False
        registry = self.registry
        self._start(_Job("remove", name), lambda: registry.remove(name), f"Removing {name}…", busy=True)
        return True

    def use_model(self, name: str | None = None) -> bool:
        """Generate with installed model `name` from now on: emits model_chosen (and closes when idle)."""
        name = name or self.selected_name()
        info = self._infos.get(name) if name else None
        if info is None or not info.installed:
            if name:
                self._show(f"{name} is not installed; download or import it first.", error=True)
            return False
        self.current_model = name
        self.model_chosen.emit(name)
        if self.busy:
            self.refresh()
            self._show(f"{name} is loading; the {self._job.kind if self._job else 'job'} goes on here.")
        else:
            self.accept()
        return True

    # --- jobs -----------------------------------------------------------------------------------

    def _start(self, job: _Job, work: Callable[[], object], message: str, busy: bool = False) -> None:
        self._job = job
        self.progress.setVisible(True)
        self.progress.setRange(0, 0 if busy else 1000)
        self.progress.setValue(0)
        self._show(message)
        self._update_buttons()
        self._jobs.submit(
            work,
            on_done=lambda result, j=job: self._on_job_done(j, result),
            on_error=lambda error, j=job: self._on_job_error(j, error),
        )

    def _end(self, job: _Job, outcome: Outcome, message: str) -> None:
        self._job = None
        self.progress.setVisible(False)
        self.progress.setRange(0, 1000)
        self.cancel_button.setVisible(False)
        self.refresh()
        if job.kind != "download" or outcome == "done":
            self.select(job.name)
        self._show(message, error=outcome == "failed")
        if outcome == "done" or job.kind == "download":
            self.models_changed.emit()  # a cancelled download leaves a partial file the list shows
        self.job_finished.emit(job.kind, outcome, message)

    def _on_job_done(self, job: _Job, result: object) -> None:
        if job is not self._job:  # the dialog was closed and stopped the job meanwhile
            return
        if job.kind == "remove":
            message = f"{job.name} was removed from {self.registry.root}."
        else:
            where = result.path if isinstance(result, ModelInfo) else self.registry.root / job.name
            verb = "downloaded and installed" if job.kind == "download" else "imported"
            message = f"{job.name} was {verb} in {where}. Choose it with Use This Model."
        self._end(job, "done", message)

    def _on_job_error(self, job: _Job, error: BaseException) -> None:
        if job is not self._job:
            return
        if isinstance(error, Cancelled):
            self._end(job, "cancelled", self._cancelled_message(job.name))
            return
        if isinstance(error, VauraError):
            message = str(error)
        else:
            log.error("%s of model %s failed", job.kind, job.name, exc_info=error)
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            message = f"The {job.kind} of {job.name} failed unexpectedly ({detail}); the log has the details."
        self._end(job, "failed", f"Could not {job.kind} {job.name}: {message}")
        if job.retry is not None and isinstance(error, CheckpointFormatError) and "config hint" in str(error):
            # Weights without hparams whose sizes are not the release's: ask which preset they follow.
            paths, name = job.retry
            preset = self.choose_preset(
                f"{message}\n\nThese weights do not say how the model is built. "
                "Which model sizes do they use?"
            )
            if preset:
                self.import_paths(paths, name=name, config_hint=preset)

    def _cancelled_message(self, name: str) -> str:
        kept = partial_bytes(self.registry, name)
        if kept:
            return (
                f"Download of {name} cancelled. The partial file ({human_bytes(kept)}) is kept in "
                f"{self.registry.root / DOWNLOADS / name}; Download resumes it."
            )
        return f"Download of {name} cancelled before anything was saved."

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Block until the job in progress has ended (tests); its result arrives through the event loop."""
        return self._jobs.wait(timeout_s)

    def _stop_job(self) -> None:
        """Cancel the download in progress and wait for the worker thread; ends the job now."""
        job = self._job
        if job is None:
            return
        if job.cancel is not None:
            job.cancel.set()
        self._jobs.shutdown(wait=True)
        self._jobs = SerialExecutor("models", self)
        # The stopped job's own callback arrives later and is ignored (it is no longer self._job).
        if job.kind == "download" and not is_model_dir(self.registry.root / job.name):
            self._end(job, "cancelled", self._cancelled_message(job.name))
        else:
            self._end(job, "done", f"The {job.kind} of {job.name} finished.")

    def shutdown(self) -> None:
        """For the main window closing: stop any job without asking, wait for it and close."""
        self._stop_job()
        super().done(QDialog.DialogCode.Rejected.value)

    def done(self, result: int) -> None:  # Close, Escape, the window's close button and accept()
        job = self._job
        if job is not None:
            if job.kind != "download" or job.stage:
                what = "the conversion of the download" if job.kind == "download" else f"the {job.kind}"
                self._show(
                    f"Please wait: {what} of {job.name} cannot be interrupted; close this window when it has "
                    "finished.",
                    error=True,
                )
                return
            if not self.confirm(
                "Cancel the download?",
                f"{job.name} is still downloading. Cancel the download and close? The partial file is kept; "
                "Download resumes it later.",
            ):
                return
            self._stop_job()
        super().done(result)

    # --- messages and default answers -----------------------------------------------------------

    def _show(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff8a80;" if error else "")
        if error:
            log.info("model manager: %s", text)

    def _ask_yes_no(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        )
        return answer == QMessageBox.StandardButton.Yes

    def _pick_folder(self, start: Path) -> Path | None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Models folder", str(start if start.exists() else Path.home())
        )
        return Path(chosen) if chosen else None

    def _pick_import(self, kind: Literal["files", "folder"]) -> list[Path]:
        start = str(Path.home())
        if kind == "folder":
            chosen = QFileDialog.getExistingDirectory(self, "Import an extracted release folder", start)
            return [Path(chosen)] if chosen else []
        files, _ = QFileDialog.getOpenFileNames(self, "Import model weights", start, WEIGHT_FILE_FILTER)
        return [Path(f) for f in files]

    def _ask_name(self, message: str, suggestion: str) -> str | None:
        text, ok = QInputDialog.getText(self, "Model name", message, QLineEdit.EchoMode.Normal, suggestion)
        return text if ok else None

    def _ask_preset(self, message: str) -> str | None:
        names = sorted(PRESETS)
        choice, ok = QInputDialog.getItem(self, "Model sizes", message, names, 0, False)
        return choice if ok and choice else None


def _host(remote: object) -> str:
    url = getattr(remote, "url", None)
    if isinstance(url, str):
        return url.split("//", 1)[-1].split("/", 1)[0]
    return "the Hugging Face Hub"


def _free_name(name: str, taken: Callable[[str], bool]) -> str:
    for number in range(2, 100):
        candidate = f"{name}-{number}"
        if not taken(candidate):
            return candidate
    return f"{name}-new"


def _format_left(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"about {seconds // 3600} h {seconds % 3600 // 60:02d} min left"
    if seconds >= 60:
        return f"about {seconds // 60} min {seconds % 60:02d} s left"
    return f"about {max(1, seconds)} s left"

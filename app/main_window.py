"""The main window: picture on top, parameters and takes beside it, the Foley timeline below.

The window owns no model code. It wires together
- `EngineHost` (app.worker): the model thread that generates and regenerates takes;
- `Player` (app.audio): playback of the lanes on the audio clock, auditions, scrub grains;
- `TimelineWidget` (app.timeline): ruler, pictures, lanes, regions, selection;
- the project (`vaura_core.project`): every edit is a data command pushed on the undo stack
  (`app.undo`), autosaved to a recovery copy after each generation and commit and every minute;
- the preview (`app.preview`), the panels (`app.panels`) and the export dialog.

Work that takes time runs off the GUI thread: generation on the engine thread, frame decoding, audio
decoding, autosaves and exports on worker threads (`app.background`).
"""

from __future__ import annotations

import datetime
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PySide6.QtCore import QMimeData, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QPalette,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.audio import LaneAudio, Player
from app.background import SerialExecutor
from app.export_dialog import ExportDialog, ExportResult, ExportSource
from app.model_manager import ModelManagerDialog
from app.panels import MessageBar, ParametersPanel, TakeRow, TakesPanel, TaskProgress
from app.preview import PREVIEW_MAX_SIDE, FrameLoader, VideoPreview, rgb_to_qimage
from app.requests import GenerateRequest, RegenerateRequest
from app.settings import SETTINGS_APPLICATION, SETTINGS_ORGANIZATION, AppSettings
from app.timeline import GENERATED_LANE, ORIGINAL_LANE, RegionView, TimelineWidget, format_timecode
from app.undo import ProjectHistory
from app.worker import EngineHost
from vaura_core.engine.engine import Track
from vaura_core.errors import VauraError
from vaura_core.media import ClipInfo, ThumbnailCache, frame_at, probe, read_audio_mono
from vaura_core.project import (
    BASE,
    AddTakes,
    Autosaver,
    ClipRef,
    Command,
    CommandError,
    CommitTake,
    DeleteRegion,
    DeleteTakes,
    NewRegion,
    Project,
    ProjectError,
    ProjectTake,
    RecoveryInfo,
    Region,
    SetClip,
    SetGain,
    SetLaneMuted,
    SetLaneSolo,
    SetSettings,
    discard_recovery,
    find_recoverable,
    load,
    recover,
    relink,
    save,
    save_as,
)
from vaura_core.project.model import GAIN_DB_MAX, GAIN_DB_MIN, GenerationSettings
from vaura_core.weights.registry import ModelRegistry

__all__ = [
    "APP_TITLE",
    "SETTINGS_APPLICATION",
    "SETTINGS_ORGANIZATION",
    "MainWindow",
    "apply_theme",
]

log = logging.getLogger(__name__)

APP_TITLE = "VAURA Studio"
PROJECT_SUFFIX = ".vaura"
AUTOSAVE_INTERVAL_MS = 60_000
THUMBNAIL_HEIGHT = 64
TIME_MATCH = 1e-6  # seconds: a selection this close to a region's bounds is that region

VIDEO_EXTENSIONS = (
    "mp4",
    "mov",
    "m4v",
    "mkv",
    "webm",
    "avi",
    "mpg",
    "mpeg",
    "wmv",
    "flv",
    "ts",
    "mts",
    "gif",
)
VIDEO_FILE_FILTER = "Video files (" + " ".join(f"*.{ext}" for ext in VIDEO_EXTENSIONS) + ");;All files (*)"
# FFmpeg also "plays" text files (rendered as ANSI art) through these demuxers; they are not clips.
_TEXT_ART_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})

Target = str  # BASE or a region id


@dataclass(frozen=True)
class _Pending:
    """A generation request in flight, and what to do with its takes."""

    kind: Literal["generate", "regenerate"]
    project_id: str
    start: float
    end: float
    region_id: str | None  # the region whose bounds were regenerated, when there was one


def _first_local_file(mime: QMimeData) -> Path | None:
    for url in mime.urls():
        if url.isLocalFile():
            return Path(url.toLocalFile())
    return None


def _is_project_path(path: Path) -> bool:
    return (path.is_dir() and (path.suffix == PROJECT_SUFFIX or (path / "project.json").is_file())) or (
        path.name == "project.json" and path.is_file()
    )


def _db_from_gain(gain: float) -> float:
    if gain <= 0.0 or not math.isfinite(gain):
        return GAIN_DB_MIN
    return min(max(20.0 * math.log10(gain), GAIN_DB_MIN), GAIN_DB_MAX)


def _available_devices() -> list[str]:
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


STYLE_SHEET = """
QMainWindow, QWidget#central { background: #1b1c20; }
QFrame#parametersPanel, QFrame#takesPanel { background: #222428; border: 1px solid #0e0f11; }
QLabel#panelTitle { color: #8b909a; font-weight: 700; letter-spacing: 1px; font-size: 11px; }
QLabel#takesTarget { color: #d7d9de; font-weight: 600; }
QLabel#abState { color: #ffd54a; font-weight: 700; }
QFrame#separator { color: #33363d; }
QToolButton#panelAction {
    background: #2f6fb3; color: #ffffff; border: 1px solid #1b4470; border-radius: 4px;
    padding: 6px 10px; font-weight: 600;
}
QToolButton#panelAction:hover { background: #3a7fc6; }
QToolButton#panelAction:disabled { background: #2a2c31; color: #5d626c; border-color: #1f2024; }
QToolButton#takeButton, QToolButton#seedLock, QToolButton#diceButton {
    background: #33363d; color: #d7d9de; border: 1px solid #15161a; border-radius: 3px; padding: 3px 8px;
}
QToolButton#takeButton:hover, QToolButton#seedLock:hover, QToolButton#diceButton:hover {
    background: #3d4149;
}
QToolButton#takeButton:disabled { color: #5d626c; background: #2a2c31; }
QToolButton#seedLock:checked { background: #d9a21b; color: #111111; border-color: #8a6510; }
QTreeWidget { background: #1d1f23; alternate-background-color: #212328; border: 1px solid #0e0f11; }
QTreeWidget::item:selected { background: #2f6fb3; color: #ffffff; }
QHeaderView::section { background: #2a2c32; color: #8b909a; border: 0; padding: 3px 6px; }
QFrame#messageBar { border: 1px solid #0e0f11; border-radius: 3px; background: #26374d; }
QFrame#messageBar[kind="warning"] { background: #4d3f1a; }
QFrame#messageBar[kind="error"] { background: #4d2323; }
QToolBar { background: #26282d; border-bottom: 1px solid #0e0f11; spacing: 4px; padding: 3px; }
QToolBar QToolButton { color: #d7d9de; padding: 4px 8px; border-radius: 3px; }
QToolBar QToolButton:hover { background: #3d4149; }
QToolBar QToolButton:checked { background: #2f6fb3; }
QToolBar QToolButton:disabled { color: #5d626c; }
QStatusBar { background: #26282d; color: #b9bdc6; border-top: 1px solid #0e0f11; }
QStatusBar QLabel#modelStatus, QStatusBar QLabel#audioStatus { color: #8b909a; padding: 0 6px; }
QStatusBar QLabel#modelStatus[state="ready"] { color: #7ee0a8; }
QStatusBar QLabel#modelStatus[state="failed"] { color: #ee6352; }
QProgressBar { background: #121316; border: 1px solid #0e0f11; border-radius: 3px; }
QProgressBar::chunk { background: #56d6c4; border-radius: 2px; }
QSplitter::handle { background: #0e0f11; }
"""


def apply_theme(app: QApplication) -> None:
    """The dark Fusion look every DAW user expects (call once, before the window is shown)."""
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#1b1c20",
        QPalette.ColorRole.WindowText: "#d7d9de",
        QPalette.ColorRole.Base: "#1d1f23",
        QPalette.ColorRole.AlternateBase: "#222428",
        QPalette.ColorRole.ToolTipBase: "#2a2c32",
        QPalette.ColorRole.ToolTipText: "#e6e8ec",
        QPalette.ColorRole.Text: "#d7d9de",
        QPalette.ColorRole.Button: "#2e3036",
        QPalette.ColorRole.ButtonText: "#d7d9de",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: "#2f6fb3",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#56a8f5",
        QPalette.ColorRole.PlaceholderText: "#6b6f78",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5d626c"))
    app.setPalette(palette)


class MainWindow(QMainWindow):
    """VAURA Studio's window.

    Options for tests and tools: `engine` shares an EngineHost (the window then does not shut it down);
    `model`/`device` override the saved choices for this session; `load_model=False` skips loading at
    start-up; `use_audio_device=False` plays silently; `confirm_close=False` never asks about unsaved
    changes; `check_recovery=False` does not look for crashed sessions; `recovery_root` is where
    recovery copies live (default: vaura_core.project.recovery_root()); `first_run=True` (app.main, for
    a user's start-up only) shows the model manager once, after the window, if it never has been.
    """

    clip_opened = Signal(object)  # the opened clip's Path
    clip_ready = Signal()  # the timeline shows the clip with its original audio
    project_changed = Signal()  # another project was opened, created or recovered
    takes_added = Signal(str, object)  # target (BASE or region id), list of take ids
    generation_failed = Signal(str)
    export_done = Signal(object)  # ExportResult

    def __init__(
        self,
        settings: QSettings | AppSettings | None = None,
        parent: QWidget | None = None,
        *,
        engine: EngineHost | None = None,
        model: str | None = None,
        device: str | None = None,
        load_model: bool = True,
        use_audio_device: bool = True,
        confirm_close: bool = True,
        check_recovery: bool = True,
        recovery_root: Path | None = None,
        first_run: bool = False,
    ) -> None:
        super().__init__(parent)
        self.settings = settings if isinstance(settings, AppSettings) else AppSettings(settings)
        self._confirm_close = confirm_close
        self._recovery_root = recovery_root
        self._model_name = model or self.settings.model
        self._device = device or self.settings.device
        self._shut_down = False

        self._project: Project | None = None
        self._clip_info: ClipInfo | None = None
        self._clip_generation = 0  # bumped whenever another clip is shown (drops stale background results)
        self._original_audio: np.ndarray | None = None
        self._thumbnails: ThumbnailCache | None = None
        self._timeline_has_clip = False
        self._shown_audio: np.ndarray | None = None
        self._autosaver: Autosaver | None = None
        self._active: Target = BASE
        self._audition: tuple[Target, str] | None = None  # (target, take id) being auditioned
        self._hearing_candidate = True
        self._requests: dict[int, _Pending] = {}
        self._resume_after_scrub = False
        self._shuttle_rate = 0.0
        self._export_dialog: ExportDialog | None = None
        self._model_dialog: ModelManagerDialog | None = None
        self._recoverable: list[RecoveryInfo] = []

        self.history = ProjectHistory(self)
        self.history.changed.connect(self._sync)
        self._media_jobs = SerialExecutor("media", self)
        self._autosave_jobs = SerialExecutor("autosave", self)

        self._owns_engine = engine is None
        self.engine = engine if engine is not None else EngineHost(self)
        self.player = Player(self, sample_rate=44100, use_device=use_audio_device)
        self.frames = FrameLoader(self)

        self._build_widgets()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._connect()
        self.setAcceptDrops(True)
        self.setStyleSheet(STYLE_SHEET)
        self.resize(1440, 900)
        self._restore_layout()

        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(AUTOSAVE_INTERVAL_MS)
        self._autosave_timer.timeout.connect(self.autosave)
        self._autosave_timer.start()

        self.parameters.set_generation_settings(self.settings.generation)
        self.parameters.set_devices(_available_devices(), self._device)
        self._populate_models()
        self.takes.set_loop(self.settings.loop_audition)
        self.timeline.set_snap(self.settings.snap)
        self._show_audio_status()
        self.statusBar().showMessage("Ready")
        self._sync()

        if self.engine.model is not None:
            self._on_model_ready(self.engine.model.name, self.engine.model.device)
        if load_model and (self.engine.model is None or self.engine.model.name != self._model_name):
            self.load_model(self._model_name, self._device)
        elif self.engine.model is None:
            self._set_model_status("No model loaded", "idle")
        if check_recovery:
            QTimer.singleShot(0, self.offer_recovery)
        if first_run and not self.settings.first_run_done:
            QTimer.singleShot(0, self._show_first_run)

    # ======================================================================================================
    # construction

    def _build_widgets(self) -> None:
        self.preview = VideoPreview(self)
        self.parameters = ParametersPanel(self)
        self.parameters.setMinimumWidth(280)
        self.takes = TakesPanel(self)
        self.takes.setMinimumWidth(380)
        self.timeline = TimelineWidget(self)
        self.message_bar = MessageBar(self)
        self.task_progress = TaskProgress(self)

        self.top_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.top_splitter.setObjectName("topSplitter")
        self.top_splitter.addWidget(self.parameters)
        self.top_splitter.addWidget(self.preview)
        self.top_splitter.addWidget(self.takes)
        self.top_splitter.setStretchFactor(0, 0)
        self.top_splitter.setStretchFactor(1, 1)
        self.top_splitter.setStretchFactor(2, 0)
        self.top_splitter.setSizes([300, 760, 420])
        self.main_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.top_splitter)
        self.main_splitter.addWidget(self.timeline)
        self.main_splitter.setStretchFactor(0, 1)
        self.main_splitter.setStretchFactor(1, 1)
        self.main_splitter.setSizes([470, 400])

        central = QWidget(self)
        central.setObjectName("central")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.setSpacing(4)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.main_splitter, 1)
        self.setCentralWidget(central)

        self.model_label = QLabel("", self)
        self.model_label.setObjectName("modelStatus")
        self.model_label.setToolTip("The generation model and where it runs")
        self.audio_label = QLabel("", self)
        self.audio_label.setObjectName("audioStatus")
        bar = self.statusBar()
        bar.addPermanentWidget(self.task_progress)
        bar.addPermanentWidget(self.audio_label)
        bar.addPermanentWidget(self.model_label)

    def _action(
        self,
        text: str,
        slot: object,
        shortcut: str | QKeySequence.StandardKey | list[str] | None = None,
        tip: str = "",
        icon: QStyle.StandardPixmap | None = None,
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self)
        if isinstance(shortcut, list):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        elif shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({keys})" if keys else tip)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        action.setCheckable(checkable)
        if checkable:
            action.toggled.connect(slot)  # type: ignore[arg-type]
        else:
            action.triggered.connect(slot)  # type: ignore[arg-type]
        self.addAction(action)  # shortcuts work wherever the focus is in the window
        return action

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        # File
        self.open_action = self._action(
            "&Open Clip…", self._on_open_triggered, "Ctrl+O", "Open a video clip", sp.SP_DialogOpenButton
        )
        self.open_project_action = self._action(
            "Open &Project…", self._on_open_project_triggered, "Ctrl+Shift+O", "Open a saved project"
        )
        self.save_action = self._action(
            "&Save Project", self.save_project, "Ctrl+S", "Save the project", sp.SP_DialogSaveButton
        )
        self.save_as_action = self._action(
            "Save Project &As…", self.save_project_as, "Ctrl+Shift+S", "Save the project under a new name"
        )
        self.export_action = self._action(
            "&Export…", self.open_export_dialog, "Ctrl+E", "Export a WAV file or the video with the new sound"
        )
        self.models_action = self._action(
            "&Manage Models…",
            self.open_model_manager,
            None,
            "Download, import or remove models, and choose where they are stored",
        )
        self.quit_action = self._action("&Quit", self.close, "Ctrl+Q", "Quit VAURA Studio")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.clear_recent_action = QAction("&Clear Recent Files", self)
        self.clear_recent_action.triggered.connect(self._on_clear_recent_triggered)
        self.clear_recent_projects_action = QAction("&Clear Recent Projects", self)
        self.clear_recent_projects_action.triggered.connect(self._on_clear_recent_projects)
        # Edit
        self.undo_action = self.history.undo_action(self)
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.redo_action = self.history.redo_action(self)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for action in (self.undo_action, self.redo_action):
            self.addAction(action)
        self.undo_action.setIcon(self.style().standardIcon(sp.SP_ArrowBack))
        self.redo_action.setIcon(self.style().standardIcon(sp.SP_ArrowForward))
        self.delete_region_action = self._action(
            "Delete &Region",
            self.delete_active_region,
            "Shift+Del",
            "Delete the selected region and its takes",
        )
        self.delete_take_action = QAction("Delete &Take", self)
        self.delete_take_action.setShortcut(QKeySequence("Del"))
        self.delete_take_action.triggered.connect(self._delete_current_take)
        self.takes.add_shortcut_action(self.delete_take_action)
        self.commit_action = self._action(
            "&Commit Take", self._commit_current_take, None, "Use the selected take in the track (Enter)"
        )
        self.clear_selection_action = QAction("Clear &Selection", self)
        self.clear_selection_action.triggered.connect(self.timeline.clear_selection)
        # Generate
        self.generate_action = self._action(
            "&Generate Whole Clip", self.generate_clip, "Ctrl+G", "Generate sound for the whole clip"
        )
        self.regenerate_action = self._action(
            "&Regenerate Selection",
            self.regenerate_selection,
            "Ctrl+R",
            "Make new takes for the selected range",
        )
        self.cancel_action = self._action(
            "&Cancel", self.cancel_generation, "Esc", "Stop the generation in progress", sp.SP_BrowserStop
        )
        # Esc while nothing generates: stop the audition, else clear the selection. Only one of the two
        # Esc actions is enabled at a time, so the shortcut is never ambiguous.
        self.escape_action = self._action("Stop Audition", self._on_escape, "Esc")
        # View
        self.zoom_in_action = self._action("Zoom &In", self.timeline.zoom_in, ["+", "=", "Ctrl++"], "Zoom in")
        self.zoom_out_action = self._action("Zoom &Out", self.timeline.zoom_out, ["-", "Ctrl+-"], "Zoom out")
        self.fit_action = self._action("&Fit to Window", self.timeline.fit, "Ctrl+0", "Show the whole clip")
        self.snap_group = QActionGroup(self)
        self.snap_actions: dict[str, QAction] = {}
        for mode, text in (
            ("frame", "Snap to &Frames"),
            ("grid", "Snap to 0.64 s &Grid"),
            ("off", "&No Snap"),
        ):
            action = QAction(text, self)
            action.setCheckable(True)
            action.setData(mode)
            action.triggered.connect(lambda _checked=False, m=mode: self.set_snap(m))
            self.snap_group.addAction(action)
            self.snap_actions[mode] = action
        self.follow_action = self._action(
            "Follow &Playhead",
            self.timeline.set_follow,
            None,
            "Scroll to keep the playhead visible",
            None,
            True,
        )
        self.follow_action.setChecked(self.timeline.follow())
        # Transport
        self.play_action = self._action(
            "&Play / Pause", self.toggle_playback, "Space", "Play or pause", sp.SP_MediaPlay
        )
        self.play_selection_action = self._action(
            "Play &Selection", self.play_selection, "Shift+Space", "Play the selected range"
        )
        self.shuttle_back_action = self._action(
            "Shuttle &Back", lambda: self.shuttle(-1), "J", "Play backwards"
        )
        self.stop_action = self._action("&Stop", lambda: self.shuttle(0), "K", "Stop", sp.SP_MediaStop)
        self.shuttle_forward_action = self._action(
            "Shuttle &Forward", lambda: self.shuttle(1), "L", "Play forwards (again: faster)"
        )
        self.prev_frame_action = self._action(
            "Previous Frame", lambda: self.step_frames(-1), "Left", "One frame back"
        )
        self.next_frame_action = self._action(
            "Next Frame", lambda: self.step_frames(1), "Right", "One frame on"
        )
        self.home_action = self._action("Go to &Start", self.go_to_start, "Home", "Go to the first frame")
        self.end_action = self._action("Go to &End", self.go_to_end, "End", "Go to the end")
        self.ab_action = self._action(
            "A/B Compare", self.toggle_ab, "B", "Switch between the committed take and the candidate"
        )

    def _build_menus(self) -> None:
        menu_bar = self.menuBar()
        file_menu = menu_bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.triggered.connect(self._on_recent_triggered)
        # Rebuilt on show too, so entries whose file has gone away since are greyed out.
        self.recent_menu.aboutToShow.connect(self._rebuild_recent_menu)
        self._rebuild_recent_menu()
        file_menu.addSeparator()
        file_menu.addAction(self.open_project_action)
        self.recent_projects_menu = file_menu.addMenu("Recent Pro&jects")
        self.recent_projects_menu.triggered.connect(self._on_recent_project_triggered)
        self.recent_projects_menu.aboutToShow.connect(self._rebuild_recent_projects_menu)
        self._rebuild_recent_projects_menu()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        edit_menu = menu_bar.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.commit_action)
        edit_menu.addAction(self.delete_take_action)
        edit_menu.addAction(self.delete_region_action)
        edit_menu.addAction(self.clear_selection_action)

        generate_menu = menu_bar.addMenu("&Generate")
        generate_menu.addAction(self.generate_action)
        generate_menu.addAction(self.regenerate_action)
        generate_menu.addSeparator()
        generate_menu.addAction(self.cancel_action)

        models_menu = menu_bar.addMenu("&Models")
        models_menu.addAction(self.models_action)

        view_menu = menu_bar.addMenu("&View")
        view_menu.addAction(self.zoom_in_action)
        view_menu.addAction(self.zoom_out_action)
        view_menu.addAction(self.fit_action)
        view_menu.addSeparator()
        for action in self.snap_actions.values():
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.follow_action)
        view_menu.aboutToShow.connect(self._refresh_view_menu)

        transport_menu = menu_bar.addMenu("&Transport")
        for action in (
            self.play_action,
            self.play_selection_action,
            self.shuttle_back_action,
            self.stop_action,
            self.shuttle_forward_action,
        ):
            transport_menu.addAction(action)
        transport_menu.addSeparator()
        for action in (self.prev_frame_action, self.next_frame_action, self.home_action, self.end_action):
            transport_menu.addAction(action)
        transport_menu.addSeparator()
        transport_menu.addAction(self.ab_action)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.open_action, self.save_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.undo_action)
        toolbar.addAction(self.redo_action)
        toolbar.addSeparator()
        toolbar.addAction(self.play_action)
        toolbar.addAction(self.stop_action)
        toolbar.addSeparator()
        toolbar.addAction(self.generate_action)
        toolbar.addAction(self.regenerate_action)
        toolbar.addAction(self.cancel_action)
        toolbar.addSeparator()
        toolbar.addAction(self.export_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self.toolbar = toolbar
        self.parameters.add_action_button(self.generate_action)
        self.parameters.add_action_button(self.regenerate_action)

    def _connect(self) -> None:
        engine = self.engine
        engine.model_loading.connect(self._on_model_loading)
        engine.model_ready.connect(self._on_model_ready)
        engine.model_failed.connect(self._on_model_failed)
        engine.progress.connect(self._on_progress)
        engine.takes_ready.connect(self._on_takes_ready)
        engine.failed.connect(self._on_generation_failed)
        engine.cancelled.connect(self._on_generation_cancelled)
        self.task_progress.cancel_clicked.connect(self.cancel_generation)

        self.player.position_changed.connect(self._on_position)
        self.player.state_changed.connect(self._on_player_state)
        self.player.availability_changed.connect(self._on_audio_availability)
        self.frames.frame_ready.connect(self._on_frame)
        self.frames.failed.connect(self._on_frame_failed)

        tl = self.timeline
        tl.scrub_started.connect(self._on_scrub_started)
        tl.playhead_dragged.connect(self._on_scrub)
        tl.scrub_finished.connect(self._on_scrub_finished)
        tl.selection_changed.connect(self._on_selection_changed)
        tl.region_clicked.connect(self._on_region_clicked)
        tl.region_double_clicked.connect(self._on_region_double_clicked)
        tl.lane_gain_changed.connect(self._on_lane_gain)
        tl.lane_mute_changed.connect(self._on_lane_mute)
        tl.lane_solo_changed.connect(self._on_lane_solo)
        tl.follow_changed.connect(self.follow_action.setChecked)

        self.takes.audition_requested.connect(self.audition_take)
        self.takes.commit_requested.connect(self.commit_take)
        self.takes.delete_requested.connect(self.delete_take)
        self.takes.ab_requested.connect(self.toggle_ab)
        self.takes.loop_changed.connect(self._on_loop_changed)

        self.parameters.settings_changed.connect(self._on_parameters_changed)
        self.parameters.model_changed.connect(self._on_model_chosen)
        self.parameters.device_changed.connect(self._on_device_chosen)

    def _restore_layout(self) -> None:
        geometry = self.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
        for splitter in (self.top_splitter, self.main_splitter):
            saved = self.settings.splitter_state(splitter.objectName())
            if saved is not None:
                splitter.restoreState(saved)

    # ======================================================================================================
    # public state

    @property
    def clip(self) -> ClipInfo | None:
        """The clip on screen, or None before the first successful open."""
        return self._clip_info

    @property
    def project(self) -> Project | None:
        return self._project

    @property
    def active_target(self) -> Target:
        """Whose takes the takes panel lists: BASE (the whole clip) or a region id."""
        return self._active

    @property
    def auditioning(self) -> tuple[Target, str] | None:
        """(target, take id) of the candidate being auditioned, or None."""
        return self._audition

    @property
    def hearing_candidate(self) -> bool:
        """A/B state while auditioning: True for the candidate (B), False for the committed take (A)."""
        return self._audition is not None and self._hearing_candidate

    @property
    def busy(self) -> bool:
        """A generation request of this window is queued or running."""
        return bool(self._requests)

    @property
    def autosaver(self) -> Autosaver | None:
        return self._autosaver

    def status_message(self) -> str:
        return self.statusBar().currentMessage()

    def recent_files(self) -> list[Path]:
        """Recently opened clips, most recent first."""
        return self.settings.recent("clips")

    def recent_projects(self) -> list[Path]:
        return self.settings.recent("projects")

    def timecode(self, seconds: float) -> str:
        info = self._clip_info
        if info is not None:
            return format_timecode(seconds, info.frame_rate, info.start_time)
        if self._project is not None:
            return format_timecode(seconds, self._project.clip.frame_rate, self._project.clip.start_time)
        return f"{seconds:.2f} s"

    # ======================================================================================================
    # opening clips and projects

    def open_clip(self, path: str | os.PathLike[str]) -> bool:
        """Open a clip as a new project (a project folder opens that project).

        On failure the reason is shown in the status bar and the current work stays as it is.
        """
        clip_path = Path(path).expanduser().absolute()
        if _is_project_path(clip_path):
            return self.open_project(clip_path)
        try:
            info = probe(clip_path)
            if info.container in _TEXT_ART_FORMATS:
                raise VauraError(f"{clip_path.name}: it is a text file, not a video")
            first = frame_at(info, 0.0, max_size=PREVIEW_MAX_SIDE)
            clip_ref = ClipRef.from_info(info)
        except VauraError as exc:
            self._say(f"Cannot open {exc}")
            return False
        except OSError as exc:
            self._say(f"Cannot open {clip_path.name}: {exc.strerror or exc}")
            return False
        if not self._may_discard_project():
            return False
        project = Project.new(clip_ref, settings=self.parameters.generation_settings())
        self._set_project(project, info, rgb_to_qimage(first))
        self.settings.remember_recent("clips", info.path)
        self._rebuild_recent_menu()
        duration = f"{info.duration:.2f} s, {info.frame_rate:.3f}".rstrip("0").rstrip(".")
        self._say(f"Opened {info.path.name} — {info.display_width}×{info.display_height}, {duration} fps")
        self.clip_opened.emit(info.path)
        return True

    def open_project(self, path: str | os.PathLike[str] | None = None) -> bool:
        """Open a saved project folder (a file dialog asks when `path` is None)."""
        if path is None:
            start = str(self.settings.last_folder("projects") or Path.home())
            chosen = QFileDialog.getExistingDirectory(self, "Open project", start)
            if not chosen:
                return False
            path = chosen
        if not self._may_discard_project():
            return False
        try:
            project, report = load(path)
        except ProjectError as exc:
            self._show_problem(str(exc), "error")
            return False
        info, image = self._probe_for_project(project) if report.clip_status == "ok" else (None, None)
        self._set_project(project, info, image)
        self.parameters.set_generation_settings(project.settings)
        self.settings.remember_recent("projects", report.folder)
        self._rebuild_recent_projects_menu()
        self._say(f"Opened project {project.name}")
        self._report_load_problems(report.messages(), clip_missing=info is None)
        return True

    def _probe_for_project(self, project: Project) -> tuple[ClipInfo | None, QImage | None]:
        try:
            info = probe(project.clip.path)
            return info, rgb_to_qimage(frame_at(info, 0.0, max_size=PREVIEW_MAX_SIDE))
        except VauraError as exc:
            self._say(str(exc))
            return None, None

    def _report_load_problems(self, messages: list[str], clip_missing: bool) -> None:
        if clip_missing:
            text = " ".join(messages) or "The project's video clip cannot be opened."
            self.message_bar.show_message(
                text + " The takes are safe; relink the clip to see and hear them against the picture.",
                "warning",
                [("Relink Clip…", self.relink_clip)],
            )
        elif messages:
            self.message_bar.show_message("\n".join(messages), "warning")

    def _set_project(
        self, project: Project, info: ClipInfo | None, image: QImage | None, *, modified: bool = False
    ) -> None:
        """Make `project` the open project, shown against `info` (None: its clip cannot be opened)."""
        self._forget_requests()
        self.player.pause()
        self.player.clear_audition()
        self._audition = None
        if self._autosaver is not None:
            self._autosave_jobs.wait()
            self._autosaver.close()
        self._project = project
        self._autosaver = Autosaver(project, root=self._recovery_root)
        self._active = BASE
        self.history.set_project(project, modified=modified)
        self._show_clip(info, image)
        self.project_changed.emit()
        self._sync()

    def _show_clip(self, info: ClipInfo | None, image: QImage | None) -> None:
        self._clip_generation += 1
        self._clip_info = info
        self._original_audio = None
        self._shown_audio = None
        self._timeline_has_clip = False
        if self._thumbnails is not None:
            self._thumbnails.close()
            self._thumbnails = None
        self.frames.set_clip(info)
        if info is None:
            self.preview.clear_frame()
            self.preview.setText("The project's video clip is missing: relink it to see the picture")
            self.timeline.clear()
            self._publish_lanes()
            return
        if image is not None:
            self.preview.set_frame(image)
            self.preview.set_overlay(self.timecode(0.0))
        self._thumbnails = ThumbnailCache(info, height=THUMBNAIL_HEIGHT)
        self._apply_clip_to_timeline(None)
        self.timeline.setFocus()  # transport keys (Space, J/K/L, arrows) reach the window from here
        if info.has_audio:
            self.timeline.lane_view(ORIGINAL_LANE).set_hint("Reading the clip's audio…")
            generation = self._clip_generation
            rate = self._project.sample_rate if self._project is not None else 44100
            self._media_jobs.submit(
                lambda: read_audio_mono(info, rate)[0],
                on_done=lambda samples: self._on_original_audio(generation, samples),
                on_error=lambda exc: self._on_original_audio_failed(generation, exc),
            )
        else:
            self.clip_ready.emit()

    def _apply_clip_to_timeline(self, original: np.ndarray | None) -> None:
        info = self._clip_info
        if info is None:
            return
        keep = self._timeline_has_clip
        selection, playhead, view = self.timeline.selection(), self.timeline.playhead(), None
        if keep:
            view = self.timeline.visible_range()
        rate = self._project.sample_rate if self._project is not None else 44100
        self.timeline.set_clip(info, self._thumbnails, original, rate)
        self._timeline_has_clip = True
        self._shown_audio = None
        self._sync()
        self._publish_lanes()  # the clip's duration bounds playback even before there is any sound
        if keep:
            if selection is not None:
                self.timeline.set_selection(*selection)
            self.timeline.set_playhead(playhead)
            if view is not None:
                self.timeline.set_visible_range(*view)

    def _on_original_audio(self, generation: int, samples: np.ndarray) -> None:
        if generation != self._clip_generation or self._shut_down:
            return
        self._original_audio = samples if samples.size else None
        self._apply_clip_to_timeline(self._original_audio)
        self.clip_ready.emit()

    def _on_original_audio_failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._clip_generation or self._shut_down:
            return
        self.timeline.lane_view(ORIGINAL_LANE).set_hint("The clip's audio could not be read")
        self._say(str(exc) if isinstance(exc, VauraError) else f"The clip's audio could not be read ({exc})")
        self.clip_ready.emit()

    @Slot()
    def relink_clip(self, path: str | os.PathLike[str] | None = None, *, force: bool = False) -> bool:
        """Point the project at its moved clip (a file dialog asks when `path` is None)."""
        project = self._project
        if project is None:
            return False
        if path is None:
            start = str(project.clip.path.parent if project.clip.path.parent.is_dir() else Path.home())
            chosen, _ = QFileDialog.getOpenFileName(
                self, f"Find {project.clip.path.name}", start, VIDEO_FILE_FILTER
            )
            if not chosen:
                return False
            path = chosen
        try:
            inverse = relink(project, path, force=force)
        except ProjectError as exc:
            self.message_bar.show_message(
                str(exc), "warning", [("Relink Anyway", lambda: self.relink_clip(path, force=True))]
            )
            return False
        self.history.record(SetClip(project.clip), inverse)
        info, image = self._probe_for_project(project)
        self._show_clip(info, image)
        self._sync()
        if info is not None:
            self._say(f"Relinked the clip: {info.path}")
        return info is not None

    # ======================================================================================================
    # saving

    def _store_settings_in_project(self) -> None:
        project = self._project
        if project is None:
            return
        settings = self.parameters.generation_settings()
        if settings != project.settings:
            self.history.execute_outside(SetSettings(settings))

    @Slot()
    def save_project(self) -> bool:
        project = self._project
        if project is None:
            return False
        if project.folder is None:
            return self.save_project_as()
        self._store_settings_in_project()
        try:
            folder = save(project)
        except ProjectError as exc:
            self._show_problem(str(exc), "error")
            return False
        self._saved(folder)
        return True

    @Slot()
    def save_project_as(self, folder: str | os.PathLike[str] | None = None) -> bool:
        project = self._project
        if project is None:
            return False
        if folder is None:
            start = self.settings.last_folder("projects") or project.clip.path.parent
            suggestion = start / f"{project.clip.path.stem}{PROJECT_SUFFIX}"
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save project as", str(suggestion), f"VAURA project (*{PROJECT_SUFFIX})"
            )
            if not chosen:
                return False
            folder = chosen
        target = Path(folder)
        if target.suffix != PROJECT_SUFFIX:
            target = target.with_name(target.name + PROJECT_SUFFIX)
        self._store_settings_in_project()
        try:
            saved = save_as(project, target)
        except ProjectError as exc:
            self._show_problem(str(exc), "error")
            return False
        self._saved(saved)
        return True

    def _saved(self, folder: Path) -> None:
        self.history.mark_saved()
        self.settings.remember_recent("projects", folder)
        self._rebuild_recent_projects_menu()
        self._say(f"Saved {folder}")

    def _may_discard_project(self) -> bool:
        """True when the open project may be replaced (saved, or the user agreed to lose its changes)."""
        if not self._confirm_close or self._project is None or not self.history.modified:
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"Save the changes to {self._project.name}?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project()
        return answer == QMessageBox.StandardButton.Discard

    # --- autosave and recovery ----------------------------------------------------------------------

    @Slot()
    def autosave(self) -> None:
        """Write the recovery copy if the project changed (on a worker thread); else a heartbeat."""
        saver = self._autosaver
        if saver is None or self._shut_down:
            return
        job = saver.prepare()
        work = saver.heartbeat if job is None else job.run
        self._autosave_jobs.submit(work, on_error=self._on_autosave_failed)

    def _on_autosave_failed(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, VauraError) else f"Autosave failed ({exc})"
        log.warning("autosave failed: %s", message)
        self._say(f"Autosave failed: {message}")

    def wait_for_autosave(self, timeout_s: float = 10.0) -> bool:
        """Block until queued autosaves are written (tests and the self-test)."""
        return self._autosave_jobs.wait(timeout_s)

    @Slot()
    def offer_recovery(self) -> list[RecoveryInfo]:
        """Look for work left by a session that ended without closing; offer it in the message bar."""
        self._recoverable = find_recoverable(self._recovery_root)
        if not self._recoverable:
            return []
        info = self._recoverable[0]
        when = datetime.datetime.fromtimestamp(info.autosaved_at).strftime("%d %b %H:%M")
        more = len(self._recoverable) - 1
        text = (
            f"VAURA Studio did not close properly. Unsaved work can be recovered: “{info.name}”, "
            f"{info.takes} take{'s' if info.takes != 1 else ''}, autosaved {when}."
            + (f" ({more} more after this one.)" if more else "")
        )
        self.message_bar.show_message(
            text,
            "warning",
            [("Recover", lambda: self.recover(info)), ("Discard", lambda: self.discard_recovery(info))],
        )
        return list(self._recoverable)

    def recover(self, info: RecoveryInfo) -> bool:
        if not self._may_discard_project():
            return False
        try:
            project, report = recover(info)
        except ProjectError as exc:
            self._show_problem(str(exc), "error")
            return False
        clip_info, image = self._probe_for_project(project) if report.clip_status == "ok" else (None, None)
        self._set_project(project, clip_info, image, modified=True)
        self.parameters.set_generation_settings(project.settings)
        self._say(f"Recovered {project.name}: {len(project.takes)} takes. Save it to keep it.")
        # The old copy goes once this session's own copy is on disk.
        saver = self._autosaver
        if saver is not None:
            job = saver.prepare(force=True)
            if job is not None:
                self._autosave_jobs.submit(
                    job.run,
                    on_done=lambda _: self._discard_quietly(info),
                    on_error=self._on_autosave_failed,
                )
        self._report_load_problems(report.messages(), clip_missing=clip_info is None)
        return True

    def discard_recovery(self, info: RecoveryInfo) -> None:
        self._discard_quietly(info)
        self._say(f"Discarded the recovered copy of {info.name}")
        remaining = [i for i in self._recoverable if i.folder != info.folder]
        if remaining:
            self.offer_recovery()

    @staticmethod
    def _discard_quietly(info: RecoveryInfo) -> None:
        try:
            discard_recovery(info)
        except ProjectError as exc:
            log.warning("%s", exc)

    # ======================================================================================================
    # the model

    def _populate_models(self) -> None:
        try:
            infos = ModelRegistry(self.settings.models_root).list()
        except (VauraError, OSError) as exc:
            log.warning("listing models failed: %s", exc)
            infos = []
        installed = [info.name for info in infos if info.installed]
        missing = [] if self._model_name in installed else [self._model_name]
        self.parameters.set_models(installed, self._model_name, missing)

    def load_model(self, name: str, device: str | None = None) -> None:
        self._model_name = name
        if device is not None:
            self._device = device
        self.engine.load_model(name, self._device, self.settings.precision, self.settings.models_root)
        self._set_model_status(f"Loading {name}…", "loading")
        self._update_actions()

    def _set_model_status(self, text: str, state: str) -> None:
        self.model_label.setText(text)
        self.model_label.setProperty("state", state)
        self.model_label.style().unpolish(self.model_label)
        self.model_label.style().polish(self.model_label)

    @Slot(str)
    def _on_model_loading(self, name: str) -> None:
        self._set_model_status(f"Loading {name}…", "loading")

    @Slot(str, str)
    def _on_model_ready(self, name: str, device: str) -> None:
        if self._shut_down:
            return
        self._set_model_status(f"Model: {name} · {device}", "ready")
        self._say(f"Model {name} is ready on {device}")
        if self.message_bar.isVisible() and self.message_bar.property("about") == "model":
            self.message_bar.setVisible(False)
        self._update_actions()

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        if self._shut_down:
            return
        self._set_model_status("No model", "failed")
        self.message_bar.show_message(
            f"The model could not be loaded: {message}. Everything else works; choose another model in the "
            "Generation panel to generate.",
            "warning",
        )
        self.message_bar.setProperty("about", "model")
        self._say(f"No model: {message}")
        self._update_actions()

    @Slot()
    def open_model_manager(self, welcome: bool = False) -> ModelManagerDialog:
        """Show the (non-modal) model manager, or raise it when it is open already; returns it."""
        dialog = self._model_dialog
        if dialog is not None and dialog.isVisible():
            dialog.raise_()
            dialog.activateWindow()
            return dialog
        if dialog is not None:
            dialog.deleteLater()
        dialog = ModelManagerDialog(self.settings, self, current_model=self._model_name, welcome=welcome)
        dialog.model_chosen.connect(self._use_model_from_manager)
        dialog.models_changed.connect(self._populate_models)
        dialog.finished.connect(lambda _result: self._populate_models())
        self._model_dialog = dialog
        dialog.show()
        return dialog

    @Slot(str)
    def _use_model_from_manager(self, name: str) -> None:
        self._on_model_chosen(name)
        self._populate_models()  # the combo box shows the new choice

    @Slot()
    def _show_first_run(self) -> None:
        """Once per user: say what is installed and offer the full model (nothing downloads unasked)."""
        if self._shut_down or self.settings.first_run_done:
            return
        self.settings.first_run_done = True
        self.open_model_manager(welcome=True)

    @Slot(str)
    def _on_model_chosen(self, name: str) -> None:
        self.settings.model = name
        self.load_model(name)

    @Slot(str)
    def _on_device_chosen(self, device: str) -> None:
        self.settings.device = device
        self.load_model(self._model_name, device)

    @Slot(object)
    def _on_parameters_changed(self, settings: GenerationSettings) -> None:
        self.settings.generation = settings

    # ======================================================================================================
    # generating

    def _model_ready(self) -> bool:
        return self.engine.model is not None and not self.engine.loading

    @Slot()
    def generate_clip(self) -> int | None:
        """Generate takes for the whole clip (one per variation); returns the request id."""
        project, info = self._project, self._clip_info
        if project is None or info is None or not self._model_ready() or self.busy:
            return None
        seeds = self.parameters.draw_seeds()
        request = GenerateRequest(
            info.path,
            self.parameters.sampling_params(),
            seeds,
            stride_segments=self.parameters.stride_segments(),
            chains=self.parameters.chain_count(),
            candidates=self.parameters.candidate_count(),
        )
        request_id = self.engine.generate(request)
        self._requests[request_id] = _Pending("generate", project.id, 0.0, project.clip.duration, None)
        self._store_settings_in_project()
        self.task_progress.start(f"Generating {len(seeds)} take{'s' if len(seeds) > 1 else ''}")
        self._update_actions()
        return request_id

    @Slot()
    def regenerate_selection(self) -> int | None:
        """Make new takes for the selected range, continuing the track before it; returns the request id."""
        project, info = self._project, self._clip_info
        selection = self.timeline.selection()
        if project is None or info is None or selection is None or not self._model_ready() or self.busy:
            return None
        track = project.render_track()
        if track is None:
            self._say("Generate the whole clip first (Ctrl+G): regeneration continues the existing track.")
            return None
        start, end = selection
        region = self._region_at(start, end)
        seeds = self.parameters.draw_seeds()
        # The rendered arrays are read-only and the engine turns the codes into a tensor it writes:
        # hand it its own (small) copy of the codes; the audio is only read.
        prompt = Track(codes=track.codes.copy(), audio=track.audio, sample_rate=track.sample_rate)
        request = RegenerateRequest(
            info.path,
            prompt,
            start,
            end,
            self.parameters.sampling_params(),
            seeds,
            stride_segments=self.parameters.stride_segments(),
            candidates=self.parameters.candidate_count(),
        )
        request_id = self.engine.regenerate(request)
        self._requests[request_id] = _Pending(
            "regenerate", project.id, start, end, region.id if region is not None else None
        )
        self._store_settings_in_project()
        self.task_progress.start(
            f"Regenerating {self.timecode(start)}–{self.timecode(end)}: {len(seeds)} take"
            + ("s" if len(seeds) > 1 else "")
        )
        self._update_actions()
        return request_id

    @Slot()
    def cancel_generation(self) -> None:
        if not self._requests:
            return
        for request_id in list(self._requests):
            self.engine.cancel(request_id)
        self.task_progress.cancelling()

    def _forget_requests(self) -> None:
        for request_id in list(self._requests):
            self.engine.cancel(request_id)
        self._requests.clear()
        self.task_progress.finish()

    @Slot(int, float, object, str)
    def _on_progress(self, request_id: int, fraction: float, eta: object, stage: str) -> None:
        if request_id in self._requests:
            self.task_progress.report(fraction, eta if isinstance(eta, int | float) else None, stage)

    @Slot(int, object)
    def _on_takes_ready(self, request_id: int, takes: object) -> None:
        pending = self._requests.pop(request_id, None)
        self._request_finished()
        project = self._project
        if (
            pending is None
            or project is None
            or project.id != pending.project_id
            or not isinstance(takes, list)
        ):
            return
        try:
            added = tuple(ProjectTake.from_engine(take) for take in takes)
            target, command = self._command_for_takes(project, pending, added)
            self.history.push(command)
        except CommandError as exc:
            self._show_problem(f"The new takes could not be added: {exc}", "error")
            return
        self._active = target
        self._sync()
        self.takes.select_take(added[0].id)
        if target == BASE:
            self._say(f"Generated {len(added)} take{'s' if len(added) > 1 else ''} for the whole clip")
        else:
            region = project.region(target)
            self.timeline.set_selection(region.start, region.end)
            self._say(
                f"{len(added)} new take{'s' if len(added) > 1 else ''}: click one to audition it, "
                "Enter to commit"
            )
        self.autosave()
        self.takes_added.emit(target, [take.id for take in added])

    def _command_for_takes(
        self, project: Project, pending: _Pending, takes: tuple[ProjectTake, ...]
    ) -> tuple[Target, Command]:
        if pending.kind == "generate":
            return BASE, AddTakes(BASE, takes, commit=takes[0].id)
        region = None
        if pending.region_id is not None and any(r.id == pending.region_id for r in project.regions):
            region = project.region(pending.region_id)
        if region is None:
            region = self._region_at(pending.start, pending.end)
        if region is not None:
            return region.id, AddTakes(region.id, takes)
        new = Region.new(
            pending.start, pending.end, colour=project.next_colour(), take_ids=tuple(t.id for t in takes)
        )
        return new.id, NewRegion(new, takes)

    @Slot(int, str)
    def _on_generation_failed(self, request_id: int, message: str) -> None:
        if self._requests.pop(request_id, None) is None:
            return
        self._request_finished()
        self._show_problem(f"Generation failed: {message}", "error")
        self.generation_failed.emit(message)

    @Slot(int)
    def _on_generation_cancelled(self, request_id: int) -> None:
        if self._requests.pop(request_id, None) is None:
            return
        self._request_finished()
        self._say("Generation cancelled")

    def _request_finished(self) -> None:
        if not self._requests:
            self.task_progress.finish()
        self._update_actions()

    def _region_at(self, start: float, end: float) -> Region | None:
        if self._project is None:
            return None
        for region in self._project.regions:
            if abs(region.start - start) <= TIME_MATCH and abs(region.end - end) <= TIME_MATCH:
                return region
        return None

    # ======================================================================================================
    # takes: audition, A/B, commit, delete

    def _target_takes(self) -> tuple[str, ...]:
        project = self._project
        if project is None:
            return ()
        return project.takes_of(self._active) if self._active_exists() else ()

    def _active_exists(self) -> bool:
        project = self._project
        return project is not None and (
            self._active == BASE or any(r.id == self._active for r in project.regions)
        )

    @Slot(str)
    def audition_take(self, take_id: str) -> bool:
        """Hear `take_id` in place: its region plays with it (looping when Loop is on)."""
        project = self._project
        if project is None or take_id not in self._target_takes():
            return False
        take = project.take(take_id)
        if take.audio is None:
            self._say(f"Take unavailable: {take.unavailable}")
            return False
        loop = self.takes.loop()
        if self._active == BASE:
            start = self.player.position()
            if start >= project.clip.duration - 0.05:
                start = 0.0
            self.player.audition(take.audio, 0, (start, project.clip.duration), loop=loop)
            self.timeline.set_audition(None)
        else:
            region = project.region(self._active)
            self.player.audition(
                take.audio,
                take.sample_start,
                (region.start, region.end),
                fade_in=take.fade_in,
                fade_out=take.fade_out,
                loop=loop,
            )
            self.timeline.set_audition(region.id)
        self._audition = (self._active, take_id)
        self._hearing_candidate = True
        self._refresh_takes_panel()
        return True

    @Slot()
    def toggle_ab(self) -> None:
        """A/B: switch between the committed take and the candidate being auditioned."""
        if self._audition is None:
            current = self.takes.current_take()
            if current is not None:
                self.audition_take(current)
            return
        self._hearing_candidate = not self._hearing_candidate
        self.player.set_audition_active(self._hearing_candidate)
        if not self.player.is_playing:
            self._play_active_range()
        self._refresh_takes_panel()

    def stop_audition(self) -> None:
        if self._audition is None:
            return
        self.player.pause()
        self.player.clear_audition()
        self._audition = None
        self.timeline.set_audition(None)
        self._refresh_takes_panel()

    @Slot(str)
    def commit_take(self, take_id: str) -> bool:
        """Use `take_id` for its region (or as the whole-clip take) in the track."""
        project = self._project
        if project is None or take_id not in self._target_takes():
            return False
        if project.committed_of(self._active) == take_id:
            self._say("That take is already committed")
            return False
        if not project.take(take_id).available:
            self._say("An unavailable take cannot be committed")
            return False
        if not self._push(CommitTake(self._active, take_id)):
            return False
        if self._audition is not None:
            self.player.clear_audition()  # the committed track now holds what was auditioned
            self._audition = None
            self.timeline.set_audition(None)
            self._refresh_takes_panel()
        number = self._target_takes().index(take_id) + 1
        self._say(f"Committed take {number}")
        self.autosave()
        return True

    @Slot(str)
    def delete_take(self, take_id: str) -> bool:
        if self._project is None or take_id not in self._target_takes():
            return False
        if self._audition is not None and self._audition[1] == take_id:
            self.stop_audition()
        return self._push(DeleteTakes(self._active, (take_id,)))

    @Slot()
    def delete_active_region(self) -> bool:
        if self._project is None or self._active == BASE or not self._active_exists():
            return False
        if self._audition is not None and self._audition[0] == self._active:
            self.stop_audition()
        if not self._push(DeleteRegion(self._active)):
            return False
        self._active = BASE
        self.timeline.clear_selection()
        self._sync()
        return True

    @Slot()
    def _commit_current_take(self) -> None:
        take = self.takes.current_take()
        if take is not None:
            self.commit_take(take)

    @Slot()
    def _delete_current_take(self) -> None:
        take = self.takes.current_take()
        if take is not None:
            self.delete_take(take)

    @Slot(bool)
    def _on_loop_changed(self, on: bool) -> None:
        self.settings.loop_audition = on
        if self._audition is not None and self.player.is_playing:
            self._play_active_range()

    def _play_active_range(self) -> None:
        project = self._project
        if project is None:
            return
        if self._active == BASE or not self._active_exists():
            self.player.play()
        else:
            region = project.region(self._active)
            self.player.play_range(region.start, region.end, loop=self.takes.loop())

    def _push(self, command: Command) -> bool:
        try:
            self.history.push(command)
        except CommandError as exc:
            self._say(str(exc))
            return False
        return True

    # ======================================================================================================
    # keeping the widgets in step with the project

    @Slot()
    def _sync(self) -> None:
        """Show the project as it is now (after any edit, undo or redo)."""
        if self._shut_down:
            return
        self._update_title()
        project = self._project
        if project is not None:
            if not self._active_exists():
                self._active = BASE
            if self._audition is not None and not self._audition_still_valid():
                self.player.clear_audition()
                self._audition = None
                self.timeline.set_audition(None)
            track = project.render_track()
            audio = None if track is None else track.audio
            if audio is not self._shown_audio:
                self._shown_audio = audio
                if self._timeline_has_clip:
                    self.timeline.set_generated(audio, project.sample_rate)
                self._publish_lanes()
            else:
                self._publish_lane_states()
            if self._timeline_has_clip:
                for lane in (ORIGINAL_LANE, GENERATED_LANE):
                    state = project.lanes[lane]
                    self.timeline.set_lane_state(lane, state.linear_gain, state.muted, state.solo)
                self.timeline.set_regions(self._region_views())
        self._refresh_takes_panel()
        self._update_actions()

    def _audition_still_valid(self) -> bool:
        project = self._project
        if project is None or self._audition is None:
            return False
        target, take_id = self._audition
        if target != BASE and not any(r.id == target for r in project.regions):
            return False
        return take_id in project.takes_of(target) and project.committed_of(target) != take_id

    def _region_views(self) -> list[RegionView]:
        project = self._project
        if project is None:
            return []
        views = []
        for region in project.regions:
            ids = region.take_ids
            if region.committed is not None:
                index = ids.index(region.committed)
                take = project.takes[region.committed]
                colour, label = index, f"Take {index + 1} · seed {take.seed}"
            elif ids:
                colour, label = (
                    region.colour,
                    f"{len(ids)} take{'s' if len(ids) > 1 else ''} · none committed",
                )
            else:
                colour, label = region.colour, "no takes"
            if region.muted:
                label += " · muted"
            views.append(
                RegionView(region.id, region.start, region.end, colour, label, region.id == self._active)
            )
        return views

    def _refresh_takes_panel(self) -> None:
        project = self._project
        if project is None:
            self.takes.set_takes("Open a clip to start", [], None)
            self.takes.set_ab_state("")
            return
        selection = self.timeline.selection()
        if self._active == BASE and selection is not None and self._region_at(*selection) is None:
            heading = f"Selection {self.timecode(selection[0])} – {self.timecode(selection[1])}: no takes yet"
            self.takes.set_takes(heading + " (Regenerate, Ctrl+R)", [], None)
            self.takes.set_ab_state("")
            return
        ids = self._target_takes()
        rows = []
        for number, take_id in enumerate(ids, start=1):
            take = project.takes[take_id]
            rows.append(
                TakeRow(
                    id=take_id,
                    number=number,
                    colour=number - 1,
                    seed=take.seed,
                    params=take.params,
                    created=take.created,
                    label=take.label,
                    available=take.available,
                    problem=take.unavailable or "",
                )
            )
        if self._active == BASE:
            heading = "Whole clip" + (f" · {len(ids)} take{'s' if len(ids) != 1 else ''}" if ids else "")
            if not ids:
                heading += " · Generate (Ctrl+G) to make the first take"
        else:
            region = project.region(self._active)
            index = project.region_index(region.id) + 1
            heading = f"Region {index} · {self.timecode(region.start)} – {self.timecode(region.end)}"
        auditioned = (
            self._audition[1] if self._audition is not None and self._audition[0] == self._active else None
        )
        self.takes.set_takes(heading, rows, project.committed_of(self._active), auditioned)
        if auditioned is None:
            self.takes.set_ab_state("")
        else:
            number = ids.index(auditioned) + 1
            self.takes.set_ab_state(f"B · take {number}" if self._hearing_candidate else "A · committed")

    def _publish_lanes(self) -> None:
        project = self._project
        if project is None:
            self.player.set_lanes({}, duration=0.0)
            return
        lanes: dict[str, LaneAudio] = {}
        if self._original_audio is not None:
            state = project.lanes[ORIGINAL_LANE]
            lanes[ORIGINAL_LANE] = LaneAudio(self._original_audio, state.linear_gain, state.muted, state.solo)
        if self._shown_audio is not None:
            state = project.lanes[GENERATED_LANE]
            lanes[GENERATED_LANE] = LaneAudio(self._shown_audio, state.linear_gain, state.muted, state.solo)
        duration = self._clip_info.duration if self._clip_info is not None else project.clip.duration
        self.player.set_lanes(lanes, duration=duration)

    def _publish_lane_states(self) -> None:
        project = self._project
        if project is None:
            return
        for lane in (ORIGINAL_LANE, GENERATED_LANE):
            state = project.lanes[lane]
            self.player.update_lane(lane, gain=state.linear_gain, mute=state.muted, solo=state.solo)

    def _update_title(self) -> None:
        project = self._project
        if project is None:
            self.setWindowTitle(APP_TITLE)
            return
        star = "*" if self.history.modified else ""
        self.setWindowTitle(f"{project.name}{star} — {project.clip.path.name} — {APP_TITLE}")

    def _update_actions(self) -> None:
        project, info = self._project, self._clip_info
        has_clip = info is not None
        ready = self._model_ready()
        busy = self.busy
        has_track = project is not None and project.render_track() is not None
        has_selection = self.timeline.selection() is not None
        self.generate_action.setEnabled(has_clip and ready and not busy)
        self.regenerate_action.setEnabled(has_clip and ready and not busy and has_selection and has_track)
        if not ready:
            why = "no model is loaded"
        elif not has_clip:
            why = "open a clip first"
        elif busy:
            why = "a generation is running"
        else:
            why = ""
        self.generate_action.setToolTip(
            "Generate sound for the whole clip (Ctrl+G)" + (f" — {why}" if why else "")
        )
        regen_why = (
            why
            or ("generate the whole clip first" if not has_track else "")
            or ("select a range on the timeline" if not has_selection else "")
        )
        self.regenerate_action.setToolTip(
            "Make new takes for the selected range (Ctrl+R)" + (f" — {regen_why}" if regen_why else "")
        )
        self.cancel_action.setEnabled(busy)
        self.escape_action.setEnabled(not busy)
        self.export_action.setEnabled(has_track and info is not None)
        self.save_action.setEnabled(project is not None)
        self.save_as_action.setEnabled(project is not None)
        self.delete_region_action.setEnabled(project is not None and self._active != BASE)
        for action in (
            self.play_action,
            self.play_selection_action,
            self.shuttle_back_action,
            self.stop_action,
            self.shuttle_forward_action,
            self.prev_frame_action,
            self.next_frame_action,
            self.home_action,
            self.end_action,
        ):
            action.setEnabled(has_clip)

    # ======================================================================================================
    # playback and the picture

    @Slot()
    def toggle_playback(self) -> None:
        if self._clip_info is None:
            return
        self._shuttle_rate = 0.0
        self.player.toggle()

    @Slot()
    def play_selection(self) -> None:
        selection = self.timeline.selection()
        if selection is not None:
            self.player.play_range(*selection)
        else:
            self.player.play()

    def shuttle(self, direction: int) -> None:
        """J/K/L: -1 plays backwards (again: faster), 0 stops, 1 plays forwards (again: faster)."""
        if self._clip_info is None:
            return
        if direction == 0:
            self._shuttle_rate = 0.0
            self.player.set_rate(0.0)
            return
        playing_same_way = self.player.is_playing and self.player.rate * direction > 0
        rate = min(abs(self.player.rate) * 2, 4.0) if playing_same_way else 1.0
        self._shuttle_rate = rate * direction
        self.player.set_rate(self._shuttle_rate)

    def step_frames(self, frames: int) -> None:
        info = self._clip_info
        if info is None or info.frame_rate <= 0:
            return
        self.player.pause()
        fps = info.frame_rate
        frame = math.floor(self.player.position() * fps + 1e-6) + frames
        last = max(0, math.ceil(info.duration * fps - 1e-6) - 1)
        self.player.seek(min(max(frame, 0), last) / fps)

    @Slot()
    def go_to_start(self) -> None:
        if self._clip_info is not None:
            self.player.seek(0.0)

    @Slot()
    def go_to_end(self) -> None:
        info = self._clip_info
        if info is not None:
            self.player.pause()
            self.player.seek(info.duration)

    @Slot(float)
    def _on_position(self, t: float) -> None:
        if self._clip_info is None:
            return
        self.timeline.set_playhead(t)
        self.frames.request(t)

    @Slot(float, float, QImage)
    def _on_frame(self, _requested: float, frame_time: float, image: QImage) -> None:
        self.preview.set_frame(image)
        self.preview.set_overlay(self.timecode(frame_time))

    @Slot(str)
    def _on_frame_failed(self, message: str) -> None:
        self._say(message)

    @Slot(str)
    def _on_player_state(self, state: str) -> None:
        playing = state == "playing"
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_action.setIcon(self.style().standardIcon(icon))
        self.play_action.setText("&Pause" if playing else "&Play")

    @Slot()
    def _on_scrub_started(self) -> None:
        self._resume_after_scrub = self.player.is_playing
        self.player.pause()

    @Slot(float)
    def _on_scrub(self, t: float) -> None:
        self.player.seek(t)
        self.player.scrub_grain(t)

    @Slot()
    def _on_scrub_finished(self) -> None:
        if self._resume_after_scrub:
            self._resume_after_scrub = False
            self.player.play()

    def _show_audio_status(self) -> None:
        if self.player.available:
            self.audio_label.setText("♪ " + self.player.status_message.removeprefix("Audio output: "))
            self.audio_label.setToolTip(self.player.status_message)
        else:
            self.audio_label.setText("No sound")
            self.audio_label.setToolTip(
                f"{self.player.status_message}. Everything else works; playback moves the picture silently."
            )

    @Slot(bool, str)
    def _on_audio_availability(self, _available: bool, message: str) -> None:
        self._show_audio_status()
        self._say(message)

    # ======================================================================================================
    # timeline interaction

    @Slot(object)
    def _on_selection_changed(self, selection: object) -> None:
        project = self._project
        if project is not None and isinstance(selection, tuple):
            region = self._region_at(*selection)
            self._active = region.id if region is not None else BASE
        elif selection is None and self._active != BASE:
            pass  # clicking elsewhere keeps the region's takes on show
        if self._audition is not None and self._audition[0] != self._active:
            self.stop_audition()
        if self._timeline_has_clip and project is not None:
            self.timeline.set_regions(self._region_views())
        self._refresh_takes_panel()
        self._update_actions()

    @Slot(str)
    def _on_region_clicked(self, region_id: str) -> None:
        project = self._project
        if project is None or not any(r.id == region_id for r in project.regions):
            return
        region = project.region(region_id)
        self._active = region_id
        self.timeline.set_selection(region.start, region.end)  # selection_changed refreshes the rest

    @Slot(str)
    def _on_region_double_clicked(self, region_id: str) -> None:
        self._on_region_clicked(region_id)
        if self._project is not None and self._active == region_id:
            region = self._project.region(region_id)
            self.player.play_range(region.start, region.end, loop=self.takes.loop())

    @Slot(str, float)
    def _on_lane_gain(self, lane: str, gain: float) -> None:
        self._push(SetGain(lane, _db_from_gain(gain)))  # type: ignore[arg-type]

    @Slot(str, bool)
    def _on_lane_mute(self, lane: str, muted: bool) -> None:
        self._push(SetLaneMuted(lane, muted))  # type: ignore[arg-type]

    @Slot(str, bool)
    def _on_lane_solo(self, lane: str, solo: bool) -> None:
        self._push(SetLaneSolo(lane, solo))  # type: ignore[arg-type]

    def set_snap(self, mode: str) -> None:
        self.timeline.set_snap(mode)
        self.settings.snap = mode
        self._refresh_view_menu()

    @Slot()
    def _refresh_view_menu(self) -> None:
        action = self.snap_actions.get(self.timeline.snap())
        if action is not None:
            action.setChecked(True)

    @Slot()
    def _on_escape(self) -> None:
        if self._audition is not None:
            self.stop_audition()
        else:
            self.timeline.clear_selection()

    # ======================================================================================================
    # export

    def export_source(self) -> ExportSource | None:
        """The generated track with the generated lane's gain, and the clip, as export needs them."""
        project, info = self._project, self._clip_info
        track = project.render_track() if project is not None else None
        if project is None or info is None or track is None:
            return None
        gain = project.lanes[GENERATED_LANE].linear_gain
        audio = track.audio if gain == 1.0 else (track.audio * np.float32(gain)).astype(np.float32)
        return ExportSource(
            audio=audio,
            sample_rate=project.sample_rate,
            clip_path=info.path,
            duration=info.duration,
            selection=self.timeline.selection(),
            describe_range=lambda a, b: f"{self.timecode(a)} – {self.timecode(b)}",
        )

    @Slot()
    def open_export_dialog(self) -> ExportDialog | None:
        """Show the (non-modal) export dialog for the current track; returns it."""
        source = self.export_source()
        if source is None:
            self._say("Nothing to export yet: generate the clip first (Ctrl+G)")
            return None
        if self._export_dialog is not None:
            self._export_dialog.close()
            self._export_dialog.deleteLater()
        dialog = ExportDialog(
            source, self.settings.export_defaults, self.settings.last_folder("export"), parent=self
        )
        dialog.export_finished.connect(self._on_export_finished)
        dialog.export_failed.connect(lambda message: self._say(f"Export failed: {message}"))
        self._export_dialog = dialog
        dialog.show()
        return dialog

    @Slot(object)
    def _on_export_finished(self, result: ExportResult) -> None:
        dialog = self._export_dialog
        if dialog is not None:
            options = dialog.options()
            self.settings.remember_export(
                format=options.format,
                sample_rate=options.sample_rate,
                subtype=options.subtype,
                loudness=options.loudness,
                keep_original_audio=options.keep_original_audio,
            )
        self.settings.set_last_folder("export", result.path.parent)
        self._say(result.summary)
        self.export_done.emit(result)

    # ======================================================================================================
    # menus

    def _fill_recent(self, menu: object, entries: list[Path], clear: QAction) -> None:
        menu.clear()  # type: ignore[attr-defined]
        for number, path in enumerate(entries, start=1):
            action = menu.addAction(f"&{number} {path.name}")  # type: ignore[attr-defined]
            action.setData(str(path))
            action.setStatusTip(str(path))
            action.setEnabled(path.exists())
        if entries:
            menu.addSeparator()  # type: ignore[attr-defined]
        menu.addAction(clear)  # type: ignore[attr-defined]
        clear.setEnabled(bool(entries))
        menu.setEnabled(bool(entries))  # type: ignore[attr-defined]

    @Slot()
    def _rebuild_recent_menu(self) -> None:
        self._fill_recent(self.recent_menu, self.recent_files(), self.clear_recent_action)

    @Slot()
    def _rebuild_recent_projects_menu(self) -> None:
        self._fill_recent(
            self.recent_projects_menu, self.recent_projects(), self.clear_recent_projects_action
        )

    @Slot()
    def _on_open_triggered(self) -> None:
        if self._clip_info is not None:
            start = str(self._clip_info.path.parent)
        else:
            start = str(self.settings.last_folder("clips") or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open video", start, VIDEO_FILE_FILTER)
        if path:
            self.open_clip(path)

    @Slot()
    def _on_open_project_triggered(self) -> None:
        self.open_project()

    @Slot(QAction)
    def _on_recent_triggered(self, action: QAction) -> None:
        path = action.data()
        if path:  # the "Clear" entry carries no path and has its own slot
            self.open_clip(path)

    @Slot(QAction)
    def _on_recent_project_triggered(self, action: QAction) -> None:
        path = action.data()
        if path:
            self.open_project(path)

    @Slot()
    def _on_clear_recent_triggered(self) -> None:
        self.settings.clear_recent("clips")
        self._rebuild_recent_menu()

    @Slot()
    def _on_clear_recent_projects(self) -> None:
        self.settings.clear_recent("projects")
        self._rebuild_recent_projects_menu()

    # ======================================================================================================
    # messages

    def _say(self, text: str) -> None:
        self.statusBar().showMessage(text)

    def _show_problem(self, text: str, kind: str = "warning") -> None:
        self.message_bar.show_message(text, kind)
        self.message_bar.setProperty("about", "problem")
        self._say(text.splitlines()[0])

    # ======================================================================================================
    # events

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _first_local_file(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if _first_local_file(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _first_local_file(event.mimeData())
        if path is None:
            event.ignore()
            return
        # Any local file is accepted; open_clip explains in the status bar if it is not a usable video.
        event.acceptProposedAction()
        self.open_clip(path)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._shut_down and not self._may_discard_project():
            event.ignore()
            return
        self.settings.save_layout(
            self.saveGeometry(),
            self.saveState(),
            {s.objectName(): s.saveState() for s in (self.top_splitter, self.main_splitter)},
        )
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop everything this window started: playback, decoding, autosaves, the engine thread."""
        if self._shut_down:
            return
        self._shut_down = True
        self._autosave_timer.stop()
        self._forget_requests()
        if self._export_dialog is not None:
            self._export_dialog.close()
        if self._model_dialog is not None:
            self._model_dialog.shutdown()  # cancels a download (its partial file is kept) and waits
        self.player.close()
        self.frames.shutdown()
        self.timeline.stop_background_work()
        self._media_jobs.shutdown(wait=True)
        self._autosave_jobs.shutdown(wait=True)
        if self._autosaver is not None:
            self._autosaver.close()  # a clean exit: the recovery copy is not needed
        if self._thumbnails is not None:
            self._thumbnails.close()
        if self._owns_engine:
            self.engine.shutdown()
        self.settings.sync()

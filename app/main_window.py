"""The main window: a minimal shell (video preview, File menu, drag and drop) that grows into the timeline.

No model code lives here: the window only opens clips and shows them. Decoding the preview frame with PyAV
happens in this module for now and moves to a media module once one exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PySide6.QtCore import QMimeData, QSettings, Qt, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QSizePolicy, QWidget

from vaura_core.errors import VauraError

APP_TITLE = "VAURA Studio"
SETTINGS_ORGANIZATION = "VAURA"
SETTINGS_APPLICATION = "VAURA Studio"
RECENT_FILES_KEY = "recentFiles"
LAST_DIRECTORY_KEY = "lastOpenDirectory"
GEOMETRY_KEY = "mainWindow/geometry"
MAX_RECENT_FILES = 10

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
EMPTY_PREVIEW_HINT = "Open a video (Ctrl+O) or drop one here"


@dataclass(frozen=True)
class ClipPreview:
    """What the shell knows about an opened clip: where it is, its first frame and its basic shape."""

    path: Path
    image: QImage
    width: int
    height: int
    duration_s: float | None

    def describe(self) -> str:
        size = f"{self.width}×{self.height}"
        if self.duration_s is None:
            return f"{self.path.name} — {size}"
        return f"{self.path.name} — {size}, {self.duration_s:.2f} s"


# FFmpeg also "plays" text files (rendered as ANSI art) through these demuxers; they are not clips.
_TEXT_ART_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})


def _not_a_clip_reason(format_name: str) -> str | None:
    """Why a file FFmpeg can open is still not a video clip, or None when it is one."""
    # Image demuxers open PNG/JPEG files as one-frame "videos".
    if format_name == "image2" or format_name.endswith("_pipe"):
        return "it is a still image, not a video"
    if format_name in _TEXT_ART_FORMATS:
        return "it is a text file, not a video"
    return None


def _rgb_to_qimage(rgb: np.ndarray) -> QImage:
    height, width, _ = rgb.shape
    rgb = np.ascontiguousarray(rgb)
    # copy() detaches the image from the numpy buffer, which is freed when this function returns.
    return QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888).copy()


def load_clip_preview(path: Path) -> ClipPreview:
    """Decode the first frame of `path`. Raises VauraError naming the file when it is not a usable video."""
    if not path.exists():
        raise VauraError(f"Cannot open {path}: the file does not exist.")
    if not path.is_file():
        raise VauraError(f"Cannot open {path}: it is not a file.")
    try:
        with av.open(str(path)) as container:
            reason = _not_a_clip_reason(container.format.name)
            if reason is not None:
                raise VauraError(f"Cannot open {path.name}: {reason}.")
            if not container.streams.video:
                raise VauraError(f"Cannot open {path.name}: the file has no video stream.")
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                raise VauraError(f"Cannot open {path.name}: the video has no frames that can be decoded.")
            rgb = frame.to_ndarray(format="rgb24")
            duration_s = _duration_seconds(container, stream)
    except av.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        raise VauraError(f"Cannot open {path.name}: not a readable video ({reason}).") from exc
    except OSError as exc:
        raise VauraError(f"Cannot open {path.name}: {exc.strerror or exc}.") from exc
    image = _rgb_to_qimage(rgb)
    return ClipPreview(
        path=path, image=image, width=image.width(), height=image.height(), duration_s=duration_s
    )


def _duration_seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _first_local_file(mime: QMimeData) -> Path | None:
    for url in mime.urls():
        if url.isLocalFile():
            return Path(url.toLocalFile())
    return None


class VideoPreview(QLabel):
    """One frame scaled to fit while keeping its aspect ratio; a hint while no clip is open."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(EMPTY_PREVIEW_HINT, parent)
        self._source = QPixmap()
        self.setObjectName("videoPreview")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Ignored: the frame's own size must never force the window to grow.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(320, 180)
        self.setStyleSheet("#videoPreview { background: #151515; color: #9a9a9a; }")

    def set_frame(self, image: QImage) -> None:
        self._source = QPixmap.fromImage(image)
        self._rescale()

    def source_pixmap(self) -> QPixmap:
        """The frame at full resolution (null while no clip is open)."""
        return self._source

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._source.isNull():
            return
        scaled = self._source.scaled(
            self.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.setPixmap(scaled)


class MainWindow(QMainWindow):
    """The application shell. `settings` defaults to QSettings("VAURA", "VAURA Studio")."""

    clip_opened = Signal(object)  # the opened clip's Path

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = (
            settings if settings is not None else QSettings(SETTINGS_ORGANIZATION, SETTINGS_APPLICATION)
        )
        self._clip: ClipPreview | None = None

        self.preview = VideoPreview(self)
        self.setCentralWidget(self.preview)
        self.setAcceptDrops(True)
        self._build_menus()
        self.statusBar().showMessage("Ready")
        self.resize(1100, 700)
        geometry = self._settings.value(GEOMETRY_KEY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._update_title()

    # --- public API -------------------------------------------------------------------------------------

    @property
    def clip(self) -> ClipPreview | None:
        """The clip on screen, or None before the first successful open."""
        return self._clip

    def status_message(self) -> str:
        return self.statusBar().currentMessage()

    def recent_files(self) -> list[Path]:
        """Recently opened clips, most recent first."""
        stored = self._settings.value(RECENT_FILES_KEY, [])
        if isinstance(stored, str):  # an INI file with a single entry reads back as a plain string
            stored = [stored]
        return [Path(item) for item in stored or [] if item]

    def open_clip(self, path: str | os.PathLike[str]) -> bool:
        """Show `path`'s first frame and remember it; on failure say why and keep the current clip as is."""
        clip_path = Path(path).expanduser().absolute()
        try:
            clip = load_clip_preview(clip_path)
        except VauraError as exc:
            self.statusBar().showMessage(str(exc))
            return False
        self._clip = clip
        self.preview.set_frame(clip.image)
        self._update_title()
        self._remember_recent(clip.path)
        self.statusBar().showMessage(f"Opened {clip.describe()}")
        self.clip_opened.emit(clip.path)
        return True

    # --- construction -----------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")

        self.open_action = QAction("&Open…", self)
        self.open_action.setShortcut(QKeySequence("Ctrl+O"))
        self.open_action.setStatusTip("Open a video clip")
        self.open_action.triggered.connect(self._on_open_triggered)
        file_menu.addAction(self.open_action)

        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.triggered.connect(self._on_recent_triggered)
        # Rebuilt on show too, so entries whose file has gone away since are greyed out.
        self.recent_menu.aboutToShow.connect(self._rebuild_recent_menu)
        self.clear_recent_action = QAction("&Clear Recent Files", self)
        self.clear_recent_action.triggered.connect(self._on_clear_recent_triggered)
        self._rebuild_recent_menu()

        file_menu.addSeparator()
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.quit_action)

    def _update_title(self) -> None:
        self.setWindowTitle(APP_TITLE if self._clip is None else f"{APP_TITLE} — {self._clip.path.name}")

    def _remember_recent(self, path: Path) -> None:
        entries = [path, *(p for p in self.recent_files() if p != path)][:MAX_RECENT_FILES]
        self._settings.setValue(RECENT_FILES_KEY, [str(p) for p in entries])
        self._settings.setValue(LAST_DIRECTORY_KEY, str(path.parent))
        self._rebuild_recent_menu()

    # --- slots ------------------------------------------------------------------------------------------

    @Slot()
    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.recent_files()
        for number, path in enumerate(entries, start=1):
            action = self.recent_menu.addAction(f"&{number} {path.name}")
            action.setData(str(path))
            action.setStatusTip(str(path))
            action.setEnabled(path.exists())
        if entries:
            self.recent_menu.addSeparator()
        self.recent_menu.addAction(self.clear_recent_action)
        self.clear_recent_action.setEnabled(bool(entries))
        self.recent_menu.setEnabled(bool(entries))

    @Slot()
    def _on_open_triggered(self) -> None:
        if self._clip is not None:
            start = str(self._clip.path.parent)
        else:
            start = str(self._settings.value(LAST_DIRECTORY_KEY, "") or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open video", start, VIDEO_FILE_FILTER)
        if path:
            self.open_clip(path)

    @Slot(QAction)
    def _on_recent_triggered(self, action: QAction) -> None:
        path = action.data()
        if path:  # the "Clear" entry carries no path and has its own slot
            self.open_clip(path)

    @Slot()
    def _on_clear_recent_triggered(self) -> None:
        self._settings.remove(RECENT_FILES_KEY)
        self._rebuild_recent_menu()

    # --- events -----------------------------------------------------------------------------------------

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
        self._settings.setValue(GEOMETRY_KEY, self.saveGeometry())
        super().closeEvent(event)

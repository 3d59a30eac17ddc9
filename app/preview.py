"""The video preview: the frame under the playhead, decoded off the GUI thread.

`FrameLoader` keeps one `FrameReader` for the open clip on a worker thread. Requests are "latest
wins": while a frame is being decoded, newer requests replace each other and only the newest is
decoded next, so a 60 Hz playhead or a fast scrub never queues work and the GUI never waits for a
decoder. Sequential requests (playback) decode forward from the previous frame, which is cheap.

`VideoPreview` shows the picture scaled to fit, keeping its aspect ratio, with the timecode of the
frame on screen in a corner (as on a video monitor), and a hint while no clip is open.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from PySide6.QtCore import QObject, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from app.background import SerialExecutor
from vaura_core.media import ClipInfo, FrameReader, MediaError

log = logging.getLogger(__name__)

EMPTY_PREVIEW_HINT = "Open a video (Ctrl+O) or drop one here"
PREVIEW_MAX_SIDE = 960  # decoding at display size is wasted work for a preview this size


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 (H, W, 3) array as a QImage that owns its pixels."""
    height, width, _ = rgb.shape
    rgb = np.ascontiguousarray(rgb)
    # copy() detaches the image from the numpy buffer, which may be freed as soon as this returns.
    return QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888).copy()


class VideoPreview(QLabel):
    """One frame scaled to fit while keeping its aspect ratio; a hint while no clip is open."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(EMPTY_PREVIEW_HINT, parent)
        self._source = QPixmap()
        self._overlay = ""
        self.setObjectName("videoPreview")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Ignored: the frame's own size must never force the window to grow.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(240, 135)
        self.setStyleSheet("#videoPreview { background: #0b0c0e; color: #8b909a; font-size: 14px; }")
        self.setToolTip("The picture at the playhead")

    def set_frame(self, image: QImage) -> None:
        self._source = QPixmap.fromImage(image)
        self._rescale()

    def clear_frame(self) -> None:
        """Back to the empty state with its hint."""
        self._source = QPixmap()
        self._overlay = ""
        self.clear()
        self.setText(EMPTY_PREVIEW_HINT)

    def source_pixmap(self) -> QPixmap:
        """The frame at full resolution (null while no clip is open)."""
        return self._source

    def set_overlay(self, text: str) -> None:
        """Text drawn in the picture's top-left corner (the timecode of the frame on screen)."""
        if text != self._overlay:
            self._overlay = text
            self.update()

    def overlay(self) -> str:
        return self._overlay

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self._overlay or self._source.isNull():
            return
        painter = QPainter(self)
        font = QFont("DejaVu Sans Mono")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPixelSize(13)
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        shown = self.pixmap().size()  # the scaled picture, centred: the timecode sits in its corner
        left = max(0, (self.width() - shown.width()) // 2) + 8
        top = max(0, (self.height() - shown.height()) // 2) + 8
        box = QRect(left, top, metrics.horizontalAdvance(self._overlay) + 12, metrics.height() + 6)
        painter.fillRect(box, QColor(0, 0, 0, 170))
        painter.setPen(QColor("#7ee0a8"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self._overlay)
        painter.end()

    def _rescale(self) -> None:
        if self._source.isNull():
            return
        scaled = self._source.scaled(
            self.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.setPixmap(scaled)


class FrameLoader(QObject):
    """Decodes the frame shown at a time, off the GUI thread, newest request first.

    Signals: frame_ready(requested_time, frame_time, QImage) in the GUI thread; failed(message) when
    the clip cannot be decoded any more (it was deleted or is damaged).
    """

    frame_ready = Signal(float, float, QImage)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, max_side: int = PREVIEW_MAX_SIDE) -> None:
        super().__init__(parent)
        self._max_side = max_side
        self._jobs = SerialExecutor("preview-frames", self)
        self._reader: FrameReader | None = None
        self._generation = 0
        self._wanted: float | None = None
        self._decoding = False
        self._shown: float | None = None  # requested time of the picture last delivered
        self._frame_time: float | None = None

    @property
    def frame_time(self) -> float | None:
        """Timestamp (clip seconds) of the frame delivered last, None before the first one."""
        return self._frame_time

    @property
    def idle(self) -> bool:
        """Nothing is being decoded and every request has been answered."""
        return not self._decoding and (self._wanted is None or self._wanted == self._shown)

    def set_clip(self, info: ClipInfo | None) -> None:
        """Decode from `info` from now on (None: stop). Pending results for the old clip are dropped."""
        self._generation += 1
        old, self._reader = self._reader, None
        if old is not None:
            self._jobs.submit(old.close)  # on the worker: it may be decoding right now
        if info is not None:
            self._reader = FrameReader(info, max_size=self._max_side)
        self._wanted = self._shown = self._frame_time = None

    def request(self, t: float) -> None:
        """Show the frame at `t` seconds as soon as possible (replaces any request not started yet)."""
        if self._reader is None or not math.isfinite(t):
            return
        self._wanted = float(t)
        if not self._decoding:
            self._start(self._wanted)

    def _start(self, t: float) -> None:
        reader, generation = self._reader, self._generation
        if reader is None:
            return
        self._decoding = True

        def decode() -> tuple[float, float, QImage]:
            picture = reader.read(t)
            return t, reader.frame_time(t), rgb_to_qimage(picture)

        submitted = self._jobs.submit(
            decode,
            on_done=lambda result: self._on_decoded(generation, result),
            on_error=lambda error: self._on_error(generation, error),
        )
        if submitted is None:
            self._decoding = False

    def _on_decoded(self, generation: int, result: tuple[float, float, QImage]) -> None:
        self._decoding = False
        if generation != self._generation:
            self._restart_if_wanted()
            return
        requested, frame_time, image = result
        self._shown, self._frame_time = requested, frame_time
        self.frame_ready.emit(requested, frame_time, image)
        self._restart_if_wanted()

    def _on_error(self, generation: int, error: BaseException) -> None:
        self._decoding = False
        if generation != self._generation:
            self._restart_if_wanted()
            return
        if isinstance(error, MediaError):
            message = str(error)
        else:
            log.warning("preview decoding failed", exc_info=error)
            message = f"the preview could not decode this frame ({error})"
        self._wanted = self._shown  # do not retry the same failing frame in a loop
        self.failed.emit(message)

    def _restart_if_wanted(self) -> None:
        if self._wanted is not None and self._wanted != self._shown and self._reader is not None:
            self._start(self._wanted)

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait for the worker (tests); the result is delivered by the event loop afterwards."""
        return self._jobs.wait(timeout_s)

    def shutdown(self) -> None:
        """Stop decoding and close the clip (the window's closeEvent)."""
        self._generation += 1
        reader, self._reader = self._reader, None
        self._jobs.shutdown(wait=True)  # the frame being decoded finishes; nothing runs after this
        if reader is not None:
            reader.close()

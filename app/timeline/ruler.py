"""The ruler: timecode ticks on top, seconds below, a playhead head and the selection's range.

Tick spacing adapts to the zoom: the finest step whose labels do not collide is chosen, from steps that
read naturally in each unit (whole frames that divide a timecode second, then seconds, minutes and
hours; 1-2-5 decimals of a second, then 15 s, 30 s, minutes). Timecode ticks fall on round timecode
values (honouring the clip's start time), so they also fall on the clip's frame boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QFont,
    QFontMetrics,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.timeline import theme
from app.timeline.timecode import (
    clip_time_of_frame,
    drop_frame_default,
    drop_frame_label_count,
    dropped_per_minute,
    format_frame_count,
    frame_number,
    nominal_rate,
)

RULER_HEIGHT = 44
TIMECODE_LABEL_PX = 104  # a tick label needs this much room (HH:MM:SS:FF plus a gap)
SECONDS_LABEL_PX = 64
MINOR_TICK_PX = 9  # minor ticks closer than this are left out
_FRAME_DIVISORS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30)
_SECOND_MULTIPLES = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 18000, 36000)
_DECIMAL_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class Tick:
    t: float  # clip time (seconds after the first frame)
    label: str | None  # None for a minor tick


def timecode_steps(fps: float) -> list[int]:
    """Candidate tick steps in timecode frames: divisors of a timecode second, then whole seconds."""
    nominal = nominal_rate(fps)
    return [d for d in _FRAME_DIVISORS if d < nominal and nominal % d == 0] + [
        nominal * s for s in _SECOND_MULTIPLES
    ]


def seconds_steps() -> list[float]:
    return [*_DECIMAL_STEPS, *(float(s) for s in _SECOND_MULTIPLES)]


def _choose(steps: list[float], px_per_unit: float, min_px: float) -> float:
    for step in steps:
        if step * px_per_unit >= min_px:
            return step
    return steps[-1]


def _minor(steps: list[float], major: float, px_per_unit: float) -> float | None:
    for step in steps:
        if step >= major:
            return None
        ratio = major / step
        if step * px_per_unit >= MINOR_TICK_PX and abs(ratio - round(ratio)) < 1e-9:
            return step
    return None


def timecode_ticks(
    t0: float,
    t1: float,
    width_px: float,
    fps: float,
    start_time: float = 0.0,
    drop_frame: bool | None = None,
    min_label_px: float = TIMECODE_LABEL_PX,
) -> list[Tick]:
    """Labelled and minor timecode ticks for clip times [t0, t1] drawn `width_px` wide."""
    if t1 <= t0 or width_px <= 0:
        return []
    drop = drop_frame_default(fps) if drop_frame is None else drop_frame
    px_per_frame = width_px / ((t1 - t0) * fps)
    steps = timecode_steps(fps)
    major = int(_choose(steps, px_per_frame, min_label_px))
    minor = _minor(steps, major, px_per_frame)
    fine = int(minor) if minor is not None else major
    # Ticks are chosen on label counts (what the timecode reads), then placed at their real frames.
    first = frame_number(t0, fps, start_time)
    last = frame_number(t1, fps, start_time) + 1
    lo, hi = (_label(f, fps, drop) if f >= 0 else f for f in (first, last))
    ticks: list[Tick] = []
    for count in range(math.ceil(lo / fine) * fine, hi + 1, fine):
        frame = _frame_of_label(count, fps, drop) if count >= 0 else count
        t = clip_time_of_frame(frame, fps, start_time)
        if t0 - 1e-9 <= t <= t1 + 1e-9:
            label = format_frame_count(frame, fps, drop) if count % major == 0 else None
            ticks.append(Tick(t, label))
    return ticks


def _label(frame: int, fps: float, drop: bool) -> int:
    return drop_frame_label_count(frame, fps) if drop else frame


def _frame_of_label(count: int, fps: float, drop: bool) -> int:
    """The frame whose label is `count`, or the first frame after it when drop-frame skips that label."""
    if not drop:
        return count
    nominal = nominal_rate(fps)
    skip = dropped_per_minute(fps)
    minutes, within = divmod(count, nominal * 60)
    if minutes % 10 and within < skip:
        count += skip - within
    return count - skip * (minutes - minutes // 10)


def seconds_ticks(
    t0: float, t1: float, width_px: float, min_label_px: float = SECONDS_LABEL_PX
) -> list[Tick]:
    """Labelled and minor ticks in clip seconds for [t0, t1] drawn `width_px` wide."""
    if t1 <= t0 or width_px <= 0:
        return []
    px_per_second = width_px / (t1 - t0)
    steps = seconds_steps()
    major = _choose(steps, px_per_second, min_label_px)
    minor = _minor(steps, major, px_per_second)
    fine = minor if minor is not None else major
    per_major = round(major / fine)
    decimals = max(0, -math.floor(math.log10(major) + 1e-9))
    ticks: list[Tick] = []
    for k in range(math.ceil(t0 / fine - 1e-9), math.floor(t1 / fine + 1e-9) + 1):
        t = k * fine
        ticks.append(Tick(t, format_seconds(t, decimals) if k % per_major == 0 else None))
    return ticks


def format_seconds(t: float, decimals: int) -> str:
    """Seconds as a ruler label: "12.5s" under a minute, "1:05.5" (m:ss) from there on."""
    if t < 60:
        return f"{t:.{decimals}f}s"
    minutes, secs = divmod(t, 60)
    width = 3 + decimals if decimals else 2
    return f"{int(minutes)}:{secs:0{width}.{decimals}f}"


class RulerWidget(QWidget):
    """Paints the ruler for the current view; mouse presses and drags are reported as scrub times."""

    scrub_pressed = Signal(float)
    scrub_moved = Signal(float)
    scrub_released = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ruler")
        self.setFixedHeight(RULER_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(False)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Timecode (top) and seconds (bottom). Click or drag to move the playhead and scrub.")
        self._t0, self._t1 = 0.0, 10.0
        self._fps: float | None = None
        self._start_time = 0.0
        self._drop_frame: bool | None = None
        self._playhead: float | None = None
        self._selection: tuple[float, float] | None = None
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(7.0, self._font.pointSizeF() * 0.85))
        self._small_font = QFont(self._font)
        self._small_font.setPointSizeF(max(6.5, self._font.pointSizeF() * 0.9))
        self._layer: QPixmap | None = None  # ticks, labels and selection, without the playhead
        self._tc_label_px = TIMECODE_LABEL_PX
        self._sec_label_px = SECONDS_LABEL_PX
        self._measure_labels()

    def _measure_labels(self) -> None:
        tc_width = QFontMetrics(self._font).horizontalAdvance("00:00:00:00")
        sec_width = QFontMetrics(self._small_font).horizontalAdvance("00:00.00")
        self._tc_label_px = max(TIMECODE_LABEL_PX, tc_width + 24)
        self._sec_label_px = max(SECONDS_LABEL_PX, sec_width + 18)

    # --- state --------------------------------------------------------------------------------------------

    def set_timing(self, fps: float | None, start_time: float, drop_frame: bool | None) -> None:
        self._fps, self._start_time, self._drop_frame = fps, start_time, drop_frame
        self.update()

    def set_view(self, t0: float, t1: float) -> None:
        self._t0, self._t1 = t0, t1
        self.update()

    def set_playhead(self, t: float | None) -> None:
        if t == self._playhead:
            return
        old = self._playhead
        self._playhead = t
        for value in (old, t):  # repaint only the strips around the old and the new head
            if value is not None:
                x = self.time_to_x(value)
                self.update(int(x) - 8, 0, 17, self.height())

    def set_selection(self, selection: tuple[float, float] | None) -> None:
        self._selection = selection
        self.update()

    # --- coordinates --------------------------------------------------------------------------------------

    def time_to_x(self, t: float) -> float:
        span = self._t1 - self._t0
        return (t - self._t0) / span * self.width() if span > 0 else 0.0

    def x_to_time(self, x: float) -> float:
        return self._t0 + x / max(1, self.width()) * (self._t1 - self._t0)

    def ticks(self) -> tuple[list[Tick], list[Tick]]:
        """(timecode ticks, seconds ticks) for the current view; empty without a clip's frame rate."""
        if not self._fps:
            return [], []
        width = self.width()
        return (
            timecode_ticks(
                self._t0, self._t1, width, self._fps, self._start_time, self._drop_frame, self._tc_label_px
            ),
            seconds_ticks(self._t0, self._t1, width, self._sec_label_px),
        )

    # --- painting -----------------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        # Ticks and labels change with the view, not with the playhead: they are drawn once into a pixmap
        # and the playhead (moved at 60 Hz during playback) is drawn over it.
        ratio = self.devicePixelRatioF()
        if self._layer is None or self._layer.size() != self.size() * ratio:
            self._layer = QPixmap(self.size() * ratio)
            self._layer.setDevicePixelRatio(ratio)
            layer_painter = QPainter(self._layer)
            self._paint_layer(layer_painter)
            layer_painter.end()
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._layer)
        if self._playhead is not None and self._t0 <= self._playhead <= self._t1:
            self._paint_playhead(painter, self.time_to_x(self._playhead), self.height())
        painter.end()

    def update(self, *args: object) -> None:  # type: ignore[override]
        if not args:  # a full update means the ticks or the selection changed
            self._layer = None
        super().update(*args)  # type: ignore[arg-type]

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._layer = None
        super().resizeEvent(event)

    def _paint_layer(self, painter: QPainter) -> None:
        w, h = self.width(), self.height()
        mid = h // 2
        painter.fillRect(QRectF(0, 0, w, h), theme.RULER_BACKGROUND)
        if self._selection is not None:
            x0, x1 = (self.time_to_x(t) for t in self._selection)
            painter.fillRect(QRectF(x0, mid, max(1.0, x1 - x0), h - mid), theme.SELECTION_RULER)
        timecode, seconds = self.ticks()
        painter.setFont(self._font)
        self._paint_tier(painter, timecode, 0, mid, theme.TEXT, major_full=True)
        painter.setFont(self._small_font)
        self._paint_tier(painter, seconds, mid, h, theme.TEXT_DIM, major_full=False)
        painter.setPen(QPen(theme.DIVIDER, 1))
        painter.drawLine(0, mid, w, mid)
        painter.setPen(QPen(theme.BORDER, 1))
        painter.drawLine(0, h - 1, w, h - 1)

    def _paint_tier(
        self, painter: QPainter, ticks: list[Tick], top: int, bottom: int, colour: object, major_full: bool
    ) -> None:
        metrics = painter.fontMetrics()
        baseline = top + metrics.ascent() + 2
        for tick in ticks:
            x = round(self.time_to_x(tick.t)) + 0.5
            if tick.label is None:
                painter.setPen(QPen(theme.TICK_MINOR, 1))
                painter.drawLine(QPointF(x, bottom - 5), QPointF(x, bottom - 1))
                continue
            painter.setPen(QPen(theme.TICK, 1))
            painter.drawLine(QPointF(x, top if major_full else bottom - 9), QPointF(x, bottom - 1))
            painter.setPen(colour)  # type: ignore[arg-type]
            painter.drawText(QPointF(x + 4, baseline), tick.label)

    @staticmethod
    def _paint_playhead(painter: QPainter, x: float, h: int) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(theme.PLAYHEAD, 1))
        painter.drawLine(QPointF(x, 0), QPointF(x, h))
        head = QPolygonF(
            [QPointF(x - 6, 0), QPointF(x + 6, 0), QPointF(x + 6, 6), QPointF(x, 12), QPointF(x - 6, 6)]
        )
        painter.setBrush(theme.PLAYHEAD)
        painter.drawPolygon(head)

    # --- mouse --------------------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.scrub_pressed.emit(self.x_to_time(event.position().x()))
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.scrub_moved.emit(self.x_to_time(event.position().x()))
            event.accept()
        else:
            super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.scrub_released.emit(self.x_to_time(event.position().x()))
            event.accept()
        else:
            super().mouseReleaseEvent(event)

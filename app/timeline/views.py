"""The base of the picture strip and the lanes: a pyqtgraph view whose x axis is clip time.

pyqtgraph draws the items (waveforms, pictures, regions, lines); the mouse is handled here instead of by
pyqtgraph's own pan/zoom, and reported as clip times, so every row of the timeline behaves the same way.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QWidget

from app.timeline import theme
from app.timeline._pg import pg


class TimeGraphicsView(pg.GraphicsView):
    """A GraphicsView holding one ViewBox that shows clip times [t0, t1] across its full width.

    Signals carry the clip time under the mouse and the x position in the viewport.
    """

    pressed = Signal(float, float, object, object)  # t, x, Qt.MouseButton, Qt.KeyboardModifier
    moved = Signal(float, float, object)  # t, x, Qt.MouseButtons held
    released = Signal(float, float, object)  # t, x, Qt.MouseButton
    double_clicked = Signal(float, float)  # t, x

    def __init__(self, y_range: tuple[float, float], parent: QWidget | None = None, invert_y: bool = False):
        super().__init__(parent, background=theme.LANE_BACKGROUND)
        self.vb = pg.ViewBox(enableMouse=False, enableMenu=False, defaultPadding=0.0)
        self.vb.setMouseEnabled(x=False, y=False)
        self.vb.enableAutoRange(x=False, y=False)
        self.vb.invertY(invert_y)
        self.vb.setYRange(*y_range, padding=0.0)
        self.vb.setXRange(0.0, 10.0, padding=0.0)
        self.setCentralItem(self.vb)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the timeline widget takes the keyboard
        self.setMouseTracking(False)
        self._t0, self._t1 = 0.0, 10.0

    def set_view(self, t0: float, t1: float) -> None:
        self._t0, self._t1 = t0, t1
        self.vb.setXRange(t0, t1, padding=0.0, update=True)

    def view_range(self) -> tuple[float, float]:
        return self._t0, self._t1

    def pixel_width(self) -> int:
        return max(1, self.viewport().width())

    def time_to_x(self, t: float) -> float:
        span = self._t1 - self._t0
        return (t - self._t0) / span * self.pixel_width() if span > 0 else 0.0

    def x_to_time(self, x: float) -> float:
        return self._t0 + x / self.pixel_width() * (self._t1 - self._t0)

    def seconds_per_pixel(self) -> float:
        return (self._t1 - self._t0) / self.pixel_width()

    # pyqtgraph's scene gets no mouse events: items here are drawn, not dragged.
    def mousePressEvent(self, event: QMouseEvent) -> None:
        x = event.position().x()
        self.pressed.emit(self.x_to_time(x), x, event.button(), event.modifiers())
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        x = event.position().x()
        self.moved.emit(self.x_to_time(x), x, event.buttons())
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        x = event.position().x()
        self.released.emit(self.x_to_time(x), x, event.button())
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        x = event.position().x()
        if event.button() == Qt.MouseButton.LeftButton:
            self.double_clicked.emit(self.x_to_time(x), x)
        event.accept()

    def local_point(self, t: float, y_fraction: float = 0.5) -> QPointF:
        """Viewport coordinates of clip time `t` at `y_fraction` of the height (for tests and tooltips)."""
        return QPointF(self.time_to_x(t), self.viewport().height() * y_fraction)

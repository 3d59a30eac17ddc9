"""The visible time range shared by every row of the timeline: zoom, pan and fit, clamped to the clip."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

DEFAULT_EXTENT = 10.0  # seconds shown while no clip is open
MIN_VISIBLE_FRAMES = 4  # the closest zoom shows this many frames across the timeline
ZOOM_STEP = 2.0  # zoom_in / zoom_out factor


def clamp_range(t0: float, t1: float, extent: float, min_span: float) -> tuple[float, float]:
    """[t0, t1] moved and resized as little as possible to lie in [0, extent] and span >= min_span."""
    min_span = min(min_span, extent)
    span = min(max(t1 - t0, min_span), extent)
    centre = (t0 + t1) / 2
    start = centre - span / 2
    start = min(max(start, 0.0), extent - span)
    return start, start + span


class ViewRange(QObject):
    """[start, end] seconds on screen; `changed(start, end)` after every change."""

    changed = Signal(float, float)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._extent = DEFAULT_EXTENT
        self._min_span = DEFAULT_EXTENT
        self._start, self._end = 0.0, DEFAULT_EXTENT

    @property
    def start(self) -> float:
        return self._start

    @property
    def end(self) -> float:
        return self._end

    @property
    def span(self) -> float:
        return self._end - self._start

    @property
    def extent(self) -> float:
        return self._extent

    @property
    def min_span(self) -> float:
        return self._min_span

    def set_extent(self, extent: float, fps: float | None) -> None:
        """A new clip: `extent` seconds long, zoom limited to MIN_VISIBLE_FRAMES frames; shows it all."""
        self._extent = extent if extent > 0 else DEFAULT_EXTENT
        frame = 1.0 / fps if fps else self._extent
        self._min_span = min(self._extent, MIN_VISIBLE_FRAMES * frame)
        self.set_range(0.0, self._extent)

    def set_range(self, start: float, end: float) -> None:
        start, end = clamp_range(start, end, self._extent, self._min_span)
        if (start, end) == (self._start, self._end):
            return
        self._start, self._end = start, end
        self.changed.emit(start, end)

    def zoom(self, factor: float, anchor: float | None = None) -> None:
        """Narrow the range by `factor` (> 1 zooms in), keeping time `anchor` at the same screen spot."""
        if factor <= 0:
            raise ValueError("zoom factor must be positive")
        if anchor is None:
            anchor = (self._start + self._end) / 2
        span = min(max(self.span / factor, self._min_span), self._extent)
        fraction = (anchor - self._start) / self.span if self.span > 0 else 0.5
        start = anchor - fraction * span
        # Clamp first with the new span so that an anchor near an edge does not re-centre the view.
        start = min(max(start, 0.0), self._extent - span)
        self.set_range(start, start + span)

    def pan(self, seconds: float) -> None:
        self.set_range(self._start + seconds, self._end + seconds)

    def fit(self) -> None:
        self.set_range(0.0, self._extent)

    def contains(self, t: float) -> bool:
        return self._start <= t <= self._end

    def page_to(self, t: float, lead: float = 0.05) -> None:
        """Scroll (keeping the zoom) so that `t` sits `lead` of the span from the left edge."""
        span = self.span
        start = t - lead * span
        self.set_range(start, start + span)

"""The picture strip: thumbnails of the visible time range, decoded lazily off the GUI thread.

Tiles sit side by side at the thumbnail's natural width, give or take: the time per tile is a power-of-two
multiple (or fraction) of one frame, so panning and zooming within a factor of two ask for the same
pictures again (the cache's keys stay the same) and each picture is centre-cropped a little to fit. A
tile whose picture is not decoded yet shows the nearest earlier picture already loaded, then the right one
when the worker delivers it. Zoomed out past `ThumbnailCache.keyframe_spacing` the cache decodes
keyframes only.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, QTimer, Slot
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QWidget

from app.timeline import theme
from app.timeline._pg import pg
from app.timeline.jobs import SerialJobQueue
from app.timeline.views import TimeGraphicsView
from vaura_core.media import ThumbnailCache

STRIP_HEIGHT = 54
APPLY_INTERVAL_MS = 20  # decoded pictures are put on screen at most this often
MAX_PICTURES = 768  # pictures kept on the GUI side (a 1500 px strip shows about 40)
_US = 1_000_000


@dataclass(frozen=True)
class TileLayout:
    """Tiles k in [first, last) cover clip times [k step, (k + 1) step); each shows `crop` of a picture."""

    step: float
    first: int
    last: int
    crop: float  # fraction of the picture's width shown (0.5 < crop <= 1)

    @property
    def count(self) -> int:
        return max(0, self.last - self.first)


def tile_layout(
    t0: float, t1: float, width_px: int, height_px: int, aspect: float, fps: float, duration: float
) -> TileLayout | None:
    """Which tiles cover [t0, t1] when the strip is `width_px` x `height_px` pixels."""
    if t1 <= t0 or width_px < 1 or height_px < 1 or fps <= 0 or duration <= 0:
        return None
    natural = height_px * aspect * (t1 - t0) / width_px  # seconds under one uncropped thumbnail
    frame = 1.0 / fps
    if natural >= frame:
        step = frame * 2.0 ** math.floor(math.log2(natural / frame) + 1e-9)
    else:
        step = frame / math.ceil(frame / natural - 1e-9)
    first = max(0, math.floor(t0 / step + 1e-9))
    last = math.ceil(min(t1, duration) / step - 1e-9)
    return TileLayout(step, first, max(first, last), min(1.0, step / natural))


class ThumbnailStrip(TimeGraphicsView):
    """Shows `ThumbnailCache` pictures for the view; call `set_view` after zooming or panning."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__((0.0, 1.0), parent, invert_y=True)
        self.setObjectName("thumbnailStrip")
        self.setFixedHeight(STRIP_HEIGHT)
        self.setBackground(theme.BACKGROUND)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setToolTip("Picture. Click or drag to move the playhead and scrub.")
        self._cache: ThumbnailCache | None = None
        self._duration = 0.0
        self._fps = 25.0
        self._aspect = 16 / 9
        self._generation = 0  # bumped per clip: results for an older clip are dropped
        self._layout: TileLayout | None = None
        self._items: dict[int, pg.ImageItem] = {}  # tile index -> item on screen
        self._spare: list[pg.ImageItem] = []
        self._shown: dict[int, tuple[object, float]] = {}  # tile index -> (which picture, crop) shown
        self._exact: dict[int, bool] = {}  # tile index -> showing its own picture (not a stand-in)
        self._pictures: OrderedDict[tuple[int, bool], np.ndarray] = OrderedDict()
        self._times: list[int] = []  # sorted µs of loaded pictures, for stand-ins
        self._by_time: dict[int, np.ndarray] = {}
        self._failed: set[tuple[int, bool]] = set()
        self._jobs = SerialJobQueue("thumbnails")
        self._apply_timer = QTimer(self)
        self._apply_timer.setSingleShot(True)
        self._apply_timer.setInterval(APPLY_INTERVAL_MS)
        self._apply_timer.timeout.connect(self._apply_pictures)
        self._jobs.done.connect(self._on_picture)
        self._jobs.failed.connect(self._on_failure)

    # --- public -------------------------------------------------------------------------------------------

    def set_source(self, cache: ThumbnailCache | None, duration: float, fps: float, aspect: float) -> None:
        """Show pictures from `cache` (None: an empty strip) for a clip `duration` seconds long."""
        self._jobs.cancel_pending()
        self._generation += 1
        self._cache = cache
        self._duration, self._fps, self._aspect = duration, fps, aspect
        self._pictures.clear()
        self._times.clear()
        self._by_time.clear()
        self._failed.clear()
        for index in list(self._items):
            self._release(index)
        self._layout = None
        self._jobs.restart()
        self._refresh()

    def set_view(self, t0: float, t1: float) -> None:
        super().set_view(t0, t1)
        self._refresh()

    def source(self) -> ThumbnailCache | None:
        return self._cache

    def layout_now(self) -> TileLayout | None:
        return self._layout

    def shown_count(self) -> int:
        """Tiles on screen that show their own picture (not a stand-in)."""
        return sum(self._exact.values())

    def tile_count(self) -> int:
        return self._layout.count if self._layout else 0

    def pending(self) -> int:
        return self._jobs.pending()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Drop pending decodes and wait for the one in progress; later view changes decode again."""
        idle = self._jobs.shutdown(timeout_s)
        self._jobs.restart()
        return idle

    # --- layout -------------------------------------------------------------------------------------------

    def resizeEvent(self, event: object) -> None:
        super().resizeEvent(event)  # type: ignore[arg-type]
        if hasattr(self, "_jobs"):  # pyqtgraph resizes once inside the base constructor
            self._refresh()

    def _refresh(self) -> None:
        if self._cache is None:
            return
        t0, t1 = self.view_range()
        height = max(1, self.viewport().height())
        layout = tile_layout(t0, t1, self.pixel_width(), height, self._aspect, self._fps, self._duration)
        self._layout = layout
        wanted = set(range(layout.first, layout.last)) if layout else set()
        for index in [i for i in self._items if i not in wanted]:
            self._release(index)
        if layout is None:
            self._jobs.cancel_pending()
            return
        missing: list[tuple[int, tuple[int, bool]]] = []
        seen: set[tuple[int, bool]] = set()
        for index in range(layout.first, layout.last):
            key = self._key(index * layout.step, layout.step)
            self._show(index, layout, key)
            if key not in self._pictures and key not in self._failed and key not in seen:
                seen.add(key)
                missing.append((index, key))
        # Requests for tiles that scrolled away are dropped; the middle of the view is decoded first.
        centre = (layout.first + layout.last) / 2
        missing.sort(key=lambda item: abs(item[0] - centre))
        cache, generation, step = self._cache, self._generation, layout.step
        self._jobs.replace(
            ((generation, key), _decode_job(cache, index * step, step)) for index, key in missing
        )

    def _key(self, t: float, step: float) -> tuple[int, bool]:
        """The picture a tile shows: (quantised µs, keyframes only), as `ThumbnailCache` quantises."""
        assert self._cache is not None
        keyframes = step >= self._cache.keyframe_spacing
        quantum = step if keyframes else max(step, 1.0 / self._fps)
        quantised = math.floor(t / quantum + 1e-6) * quantum
        return round(quantised * _US), keyframes

    def _show(self, index: int, layout: TileLayout, key: tuple[int, bool]) -> None:
        picture = self._pictures.get(key)
        exact = picture is not None
        identity: object = key
        if picture is None:
            found = self._stand_in(key[0], layout.step)
            if found is None:
                self._release(index)
                return
            identity, picture = found
        item = self._items.get(index)
        if item is None:
            item = self._spare.pop() if self._spare else self._new_item()
            self._items[index] = item
            item.setVisible(True)
        start = index * layout.step
        width = min(layout.step, self._duration - start)
        crop = layout.crop * max(0.0, width) / layout.step
        shown = (identity, round(crop, 4))
        if self._shown.get(index) != shown:
            item.setImage(_centre_crop(picture, crop), autoLevels=False, levels=(0, 255))
            self._shown[index] = shown
        item.setRect(QRectF(start, 0.0, width, 1.0))
        self._exact[index] = exact

    def _stand_in(self, micros: int, step: float) -> tuple[object, np.ndarray] | None:
        """The loaded picture nearest before `micros` (within two tiles), as (identity, picture)."""
        position = bisect.bisect_right(self._times, micros) - 1
        if position < 0:
            return None
        nearest = self._times[position]
        if micros - nearest > 2 * step * _US:
            return None
        return ("stand-in", nearest), self._by_time[nearest]

    def _new_item(self) -> pg.ImageItem:
        item = pg.ImageItem(axisOrder="row-major")
        item.setZValue(-10)
        self.vb.addItem(item, ignoreBounds=True)
        return item

    def _release(self, index: int) -> None:
        item = self._items.pop(index, None)
        self._shown.pop(index, None)
        self._exact.pop(index, None)
        if item is not None:
            item.setVisible(False)
            self._spare.append(item)

    # --- results ------------------------------------------------------------------------------------------

    @Slot(object, object)
    def _on_picture(self, job_key: object, picture: object) -> None:
        generation, key = job_key  # type: ignore[misc]
        if generation != self._generation or not isinstance(picture, np.ndarray):
            return
        self._remember(key, picture)
        if not self._apply_timer.isActive():  # pictures arriving together are shown in one go
            self._apply_timer.start()

    @Slot()
    def _apply_pictures(self) -> None:
        layout = self._layout
        if layout is None:
            return
        for index in range(layout.first, layout.last):
            if not self._exact.get(index, False):
                self._show(index, layout, self._key(index * layout.step, layout.step))

    @Slot(object, str)
    def _on_failure(self, job_key: object, message: str) -> None:
        generation, key = job_key  # type: ignore[misc]
        if generation == self._generation:
            self._failed.add(key)  # never asked again for this clip: a damaged stretch stays blank

    def _remember(self, key: tuple[int, bool], picture: np.ndarray) -> None:
        self._pictures[key] = picture
        self._pictures.move_to_end(key)
        micros = key[0]
        if micros not in self._by_time:
            bisect.insort(self._times, micros)
        self._by_time[micros] = picture
        while len(self._pictures) > MAX_PICTURES:
            (old_micros, _), _ = self._pictures.popitem(last=False)
            if old_micros in self._by_time and not any(k[0] == old_micros for k in self._pictures):
                del self._by_time[old_micros]
                self._times.pop(bisect.bisect_left(self._times, old_micros))


def _decode_job(cache: ThumbnailCache, t: float, step: float) -> Callable[[], np.ndarray]:
    return lambda: cache.get(t, step)


def _centre_crop(picture: np.ndarray, crop: float) -> np.ndarray:
    width = picture.shape[1]
    keep = max(1, min(width, round(width * crop)))
    left = (width - keep) // 2
    return np.ascontiguousarray(picture[:, left : left + keep])

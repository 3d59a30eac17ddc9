"""Timeline thumbnails at any zoom level, decoded on demand and kept in an LRU cache."""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from types import TracebackType

import numpy as np

from vaura_core.media.probe import ClipInfo, as_clip
from vaura_core.media.reader import FrameReader

Key = tuple[str, int, int]  # (mode, quantised time in microseconds, height)


class ThumbnailCache:
    """RGB uint8 thumbnails `height` rows high (width from the display aspect ratio).

    `spacing` is the time between neighbouring thumbnails on screen. Zoomed out
    (`spacing >= keyframe_spacing`) a thumbnail is the nearest keyframe at or before the instant,
    found with keyframe-only decoding (`skip_frame = "NONKEY"`), which costs one picture per
    thumbnail however long the GOP. Zoomed in, it is the exact frame shown at that instant.
    Times are quantised to `spacing` (at least one frame), so scrolling reuses cached pictures.

    Meant for one worker thread; a lock makes `peek` from another thread (the GUI, drawing what
    is ready) safe as well.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | ClipInfo,
        height: int = 64,
        *,
        max_entries: int = 512,
        keyframe_spacing: float = 1.0,
    ) -> None:
        if height < 1 or max_entries < 1:
            raise ValueError("height and max_entries must be positive")
        self.clip = as_clip(path)
        self.height = height
        self.keyframe_spacing = keyframe_spacing
        self._max_entries = max_entries
        self._cache: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self._exact: FrameReader | None = None
        self._keyframes: FrameReader | None = None
        self.decoded = 0  # pictures decoded so far (cache misses), for diagnostics and tests

    def get(self, t: float, spacing: float = 0.0, height: int | None = None) -> np.ndarray:
        """The thumbnail for time `t` (seconds after the first frame) at the given zoom."""
        key, quantised = self._key(t, spacing, height)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            reader = self._reader(keyframes=key[0] == "key")
            picture = reader.read(quantised, height=key[2])
            picture.setflags(write=False)  # shared by every caller that hits the cache
            self.decoded += 1
            self._cache[key] = picture
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
            return picture

    def peek(self, t: float, spacing: float = 0.0, height: int | None = None) -> np.ndarray | None:
        """The cached thumbnail, or None without decoding anything."""
        key, _ = self._key(t, spacing, height)
        with self._lock:
            return self._cache.get(key)

    def strip(self, start: float, end: float, count: int, height: int | None = None) -> list[np.ndarray]:
        """`count` thumbnails evenly covering [start, end), each for the left edge of its slot."""
        if count < 1 or end <= start:
            return []
        spacing = (end - start) / count
        return [self.get(start + i * spacing, spacing, height) for i in range(count)]

    def thumbnail_width(self, height: int | None = None) -> int:
        h = self.height if height is None else height
        return max(1, round(self.clip.display_width * h / self.clip.display_height))

    def _key(self, t: float, spacing: float, height: int | None) -> tuple[Key, float]:
        h = self.height if height is None else height
        t = min(max(t, 0.0), self.clip.duration)
        keyframes = spacing >= self.keyframe_spacing
        quantum = spacing if keyframes else max(spacing, 1.0 / self.clip.frame_rate)
        # The tiny nudge keeps an instant that is exactly on the grid from rounding down a step.
        quantised = math.floor(t / quantum + 1e-6) * quantum
        return ("key" if keyframes else "exact", round(quantised * 1e6), h), quantised

    def _reader(self, *, keyframes: bool) -> FrameReader:
        if keyframes:
            if self._keyframes is None:
                self._keyframes = FrameReader(self.clip, keyframes_only=True, height=self.height)
            return self._keyframes
        if self._exact is None:
            self._exact = FrameReader(self.clip, height=self.height)
        return self._exact

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        with self._lock:
            for reader in (self._exact, self._keyframes):
                if reader is not None:
                    reader.close()
            self._exact = self._keyframes = None
            self._cache.clear()

    def __enter__(self) -> ThumbnailCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

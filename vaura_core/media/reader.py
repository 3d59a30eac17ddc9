"""Pictures at arbitrary times for the preview and for scrubbing."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from types import TracebackType

import numpy as np
from av.video.frame import VideoFrame

from vaura_core.media.decoder import TIME_EPS, ClipDecoder
from vaura_core.media.errors import MediaError
from vaura_core.media.geometry import fit_height, fit_within
from vaura_core.media.probe import ClipInfo, as_clip

# Moving forward by up to this much decodes on from the current position; further jumps (and any
# jump backwards) seek to the keyframe before the target instead.
FORWARD_DECODE_LIMIT = 2.0


class FrameReader:
    """Keeps a decoder open so that nearby and sequential requests are cheap.

    `read(t)` returns the picture a player shows `t` seconds after the first frame, as RGB uint8
    (H, W, 3) in display orientation. The size is the display size, or scaled down to fit
    `max_size` on its longest side, or to exactly `height` rows; `read` can override the height.
    Times before 0 show the first frame, times past the end the last one. Calls are serialised
    by a lock, so one reader may be shared between threads (they wait for each other).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | ClipInfo,
        *,
        max_size: int | None = None,
        height: int | None = None,
        keyframes_only: bool = False,
        interpolation: str = "AREA",
    ) -> None:
        self.clip = as_clip(path)
        self._max_size = max_size
        self._height = height
        self._keyframes_only = keyframes_only
        self._interpolation = interpolation
        self._lock = threading.Lock()
        self._decoder: ClipDecoder | None = None
        self._frames: Iterator[tuple[float, VideoFrame]] | None = None
        self._shown: tuple[float, VideoFrame] | None = None  # the frame at the last requested time
        self._ahead: tuple[float, VideoFrame] | None = None  # decoded already, shown later
        self._exhausted = False
        self._picture: tuple[VideoFrame, tuple[int, int], np.ndarray] | None = None

    def output_size(self, height: int | None = None) -> tuple[int, int]:
        """(width, height) of the pictures `read` returns."""
        width, disp_height = self.clip.display_width, self.clip.display_height
        height = self._height if height is None else height
        if height is not None:
            return fit_height(width, disp_height, height)
        if self._max_size is not None:
            return fit_within(width, disp_height, self._max_size)
        return width, disp_height

    def read(self, t: float, *, height: int | None = None) -> np.ndarray:
        size = self.output_size(height)
        with self._lock:
            frame = self._frame_at(min(max(t, 0.0), self._last_instant()))
            if self._picture is None or self._picture[0] is not frame or self._picture[1] != size:
                picture = self._ensure_decoder().picture(frame, size[0], size[1], self._interpolation)
                self._picture = (frame, size, np.ascontiguousarray(picture))
            return self._picture[2].copy()

    def frame_time(self, t: float) -> float:
        """Timestamp (clip clock) of the frame `read(t)` shows."""
        with self._lock:
            self._frame_at(min(max(t, 0.0), self._last_instant()))
            assert self._shown is not None
            return self._shown[0]

    def _last_instant(self) -> float:
        return max(0.0, self.clip.duration - TIME_EPS * 10)

    def _frame_at(self, t: float) -> VideoFrame:
        shown = self._shown
        if shown is not None and shown[0] <= t + TIME_EPS:
            if self._exhausted or (self._ahead is not None and t + TIME_EPS < self._ahead[0]):
                return shown[1]
            if t - shown[0] <= FORWARD_DECODE_LIMIT:
                return self._advance(t)
        self._restart(t)
        return self._advance(t)

    def _restart(self, t: float) -> None:
        if self._frames is not None:
            self._frames.close()
        self._frames = self._ensure_decoder().frames_from(t)
        self._shown = self._ahead = None
        self._exhausted = False

    def _advance(self, t: float) -> VideoFrame:
        """Decode forward until the next frame would be after `t`."""
        if self._ahead is not None:
            if self._ahead[0] > t + TIME_EPS:
                if self._shown is not None:
                    return self._shown[1]
            else:
                self._shown, self._ahead = self._ahead, None
        assert self._frames is not None
        for timed in self._frames:
            if timed[0] > t + TIME_EPS and self._shown is not None:
                self._ahead = timed
                break
            self._shown = timed
        else:
            self._exhausted = True
        if self._shown is None:
            raise MediaError(self.clip.path, "the file is truncated or corrupt (could not decode any frame)")
        return self._shown[1]

    def _ensure_decoder(self) -> ClipDecoder:
        if self._decoder is None:
            # Slice threads only: frame threads delay the first picture after every seek.
            self._decoder = ClipDecoder(self.clip, threads="SLICE", keyframes_only=self._keyframes_only)
        return self._decoder

    def close(self) -> None:
        with self._lock:
            if self._frames is not None:
                self._frames.close()
                self._frames = None
            if self._decoder is not None:
                self._decoder.close()
                self._decoder = None
            self._shown = self._ahead = self._picture = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def frame_at(
    path: str | os.PathLike[str] | ClipInfo,
    t: float,
    *,
    max_size: int | None = None,
    height: int | None = None,
) -> np.ndarray:
    """One picture at `t` seconds (see `FrameReader`); use a `FrameReader` for many."""
    with FrameReader(path, max_size=max_size, height=height) as reader:
        return reader.read(t)

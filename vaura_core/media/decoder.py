"""An open clip that hands out decoded frames on the clip's own clock (0 = first video frame)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import Literal, cast

import av.error
import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from vaura_core.media.errors import MediaError
from vaura_core.media.probe import ClipInfo
from vaura_core.media.source import decode_frames, find_video_stream, open_container

# Frame times are compared with this slack so float rounding of exact timestamps (a 60 fps frame
# at exactly 0.2 s, say) never picks the neighbouring frame.
TIME_EPS = 1e-6

ThreadMode = Literal["AUTO", "SLICE", "FRAME"] | None


class ClipDecoder:
    """Decoding state for one clip: container, video decoder and a reusable scaler.

    Not thread-safe (neither is an FFmpeg decoder); owners serialise access.
    """

    def __init__(self, clip: ClipInfo, *, threads: ThreadMode = "AUTO", keyframes_only: bool = False) -> None:
        self.clip = clip
        self._stack = ExitStack()
        self._container = self._stack.enter_context(open_container(clip.path))
        try:
            self._stream = find_video_stream(self._container, clip.path)
            codec = self._stream.codec_context
            if threads is not None:
                # "AUTO" (frame + slice threads) decodes sequences several times faster;
                # "SLICE" adds no delay before the first picture, which suits seeking.
                codec.thread_type = threads
            if keyframes_only:
                codec.skip_frame = "NONKEY"
        except BaseException:
            self._stack.close()
            raise
        self._tick = float(clip.time_base)
        self._frame_step = 1.0 / clip.frame_rate
        self._scaler = VideoReformatter()
        self._fresh = True  # positioned at the start of the file, nothing decoded yet

    # --- frames ---------------------------------------------------------------------------
    def frames_from(self, t: float) -> Iterator[tuple[float, VideoFrame]]:
        """(time, frame) pairs in presentation order, starting at or before the frame shown at `t`.

        Seeks to the keyframe before `t` (seeking only ever lands on keyframes); if the container
        seeks past `t`, decoding restarts from the beginning so the answer is still exact.
        """
        if not (self._fresh and t <= 0):
            self._seek(t)
        frames = self._timed_frames()
        first = next(frames, None)
        if first is not None and first[0] > t + TIME_EPS and t > 0:
            frames.close()
            self._seek(-1.0)
            frames = self._timed_frames()
            first = next(frames, None)
        if first is None:
            return
        yield first
        yield from frames

    def _timed_frames(self) -> Iterator[tuple[float, VideoFrame]]:
        self._fresh = False
        start_pts, tick = self.clip.start_pts, self._tick
        last = -self._frame_step
        for decoded in decode_frames(self._container, self._stream, self.clip.path):
            frame = cast(VideoFrame, decoded)
            # Frames without a timestamp (rare, broken muxers) follow their predecessor.
            t = (frame.pts - start_pts) * tick if frame.pts is not None else last + self._frame_step
            last = t
            yield t, frame

    def _seek(self, t: float) -> None:
        target = self.clip.start_pts + (int(t / self._tick) if t > 0 else 0)
        try:
            self._container.seek(target, stream=self._stream, backward=True)
        except av.error.FFmpegError as exc:
            raise MediaError(self.clip.path, f"cannot seek in the file ({exc.strerror or exc})") from None

    # --- pictures -------------------------------------------------------------------------
    def picture(self, frame: VideoFrame, width: int, height: int, interpolation: str) -> np.ndarray:
        """RGB uint8 (height, width, 3) in display orientation, scaled by swscale in one pass.

        `width` x `height` is the displayed size; the scaler works in stored orientation and the
        small result is turned afterwards, which costs nothing next to decoding.
        """
        coded_w, coded_h = self.clip.orientation.coded_size(width, height)
        try:
            rgb = self._scaler.reformat(
                frame, width=coded_w, height=coded_h, format="rgb24", interpolation=interpolation
            ).to_ndarray()
        except (av.error.FFmpegError, ValueError) as exc:
            # Exotic pixel formats swscale cannot convert; the message beats a traceback.
            raise MediaError(self.clip.path, f"a video frame cannot be converted to RGB ({exc})") from None
        return self.clip.orientation.apply(rgb)

    # --- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> ClipDecoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

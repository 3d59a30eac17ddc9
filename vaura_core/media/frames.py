"""Model input: the clip resampled to the model's frame rate, scaled, centre-cropped and normalised.

Spec (shared/reference/vaura.md sections 1.1 and 11): 25 fps RGB, short side resized to 256 with
antialiased bilinear filtering, centre crop 224, then (x / 255 - 0.5) / 0.5; 16-frame segments
without overlap. Smaller models use a smaller crop `VisualConfig.img_size`; the short side keeps
the release's ratio, round(img_size * 256 / 224).

Frames are chosen by presentation time, as a player shows them: output frame k, at time
start + k / fps after the clip's first video frame, is the last source frame whose timestamp is
at or before that instant. That works for any source rate, variable rates included. Decoding
streams: only the frame on screen and one output chunk are held at a time. swscale does the
resize (its bilinear filter widens when shrinking, so it is antialiased like torchvision's
`Resize(antialias=True)`); the crop is a slice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from vaura_core.media.decoder import TIME_EPS, ClipDecoder
from vaura_core.media.errors import MediaError
from vaura_core.media.geometry import centre_crop, short_side_size
from vaura_core.media.probe import ClipInfo, as_clip, truncation_slack

if TYPE_CHECKING:
    import torch

    from vaura_core.model.config import VAuraConfig

PathOrClip = str | os.PathLike[str] | ClipInfo
_REFERENCE_CROP, _REFERENCE_SHORT_SIDE = 224, 256


def default_short_side(size: int) -> int:
    """Short side to scale to before cropping `size`: 256 for the release's 224."""
    return round(size * _REFERENCE_SHORT_SIDE / _REFERENCE_CROP)


def model_frame_count(duration: float, fps: float) -> int:
    """Frames at `fps` in a time range `duration` seconds long: ceil(duration x fps)."""
    return max(0, math.ceil(duration * fps - 1e-9))


def iter_model_frames(
    path: PathOrClip,
    fps: float = 25,
    size: int = 224,
    short_side: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    chunk: int = 16,
) -> Iterator[np.ndarray]:
    """Frames for [start, end) seconds after the first video frame, as uint8 (n, size, size, 3) RGB.

    Yields `chunk` frames at a time (fewer in the last chunk); ceil((end - start) x fps) frames in
    all. `end` defaults to the clip's duration; instants after the last frame show the last frame.
    The clip is probed (and a bad file rejected with `MediaError`) before this returns; decoding
    happens while iterating, and a file that turns out to be cut short raises `MediaError` there.
    """
    clip = as_clip(path)
    end = clip.duration if end is None else end
    _check_range(start, end, clip)
    short = default_short_side(size) if short_side is None else short_side
    if short < size:
        raise ValueError(f"short side {short} is smaller than the crop size {size}")
    if chunk < 1 or fps <= 0:
        raise ValueError("chunk and fps must be positive")
    count = model_frame_count(end - start, fps)
    return _select_frames(clip, start, count, fps, size, short, chunk)


def segment_count(path: PathOrClip, fps: float, frames_per_segment: int, pad: bool = True) -> int:
    """Segments of `frames_per_segment` frames in the clip at `fps` (a padded partial one counts)."""
    total = model_frame_count(as_clip(path).duration, fps)
    return -(-total // frames_per_segment) if pad else total // frames_per_segment


def model_segments(
    path: PathOrClip,
    cfg: VAuraConfig,
    start_segment: int = 0,
    n_segments: int | None = None,
    pad: bool = True,
    batch: int | None = None,
) -> Iterator[torch.Tensor]:
    """Visual-encoder input: float32 tensors (n, 3, F, S, S) in [-1, 1], n <= `batch` segments each.

    Convention: segment i holds frames [i F, (i + 1) F) of the `cfg.fps` frame sequence
    (F = `cfg.visual.frames`, 16), i.e. the 0.64 s starting at i x F / fps after the first
    video frame, and never overlaps its neighbours. When the clip's frame count is not a
    multiple of F the last segment is padded by repeating its last frame (`pad=True`, what the
    engine does for clips that are not a multiple of 0.64 s) or left out (`pad=False`).
    `batch` defaults to `cfg.window_segments` (4 segments = one 2.56 s generation window).
    """
    clip = as_clip(path)
    fps, frames, size = cfg.fps, cfg.visual.frames, cfg.visual.img_size
    batch = cfg.window_segments if batch is None else batch
    available = segment_count(clip, fps, frames, pad)
    remaining = available - start_segment
    if start_segment < 0 or remaining < 0:
        raise ValueError(f"start segment {start_segment} is outside the clip's {available} segments")
    wanted = remaining if n_segments is None else n_segments
    if wanted < 0 or wanted > remaining:
        raise ValueError(f"{wanted} segments from segment {start_segment} exceed the clip's {available}")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    total = model_frame_count(clip.duration, fps)
    first = start_segment * frames
    last = min((start_segment + wanted) * frames, total)
    short = default_short_side(size)
    chunks = _select_frames(clip, first / fps, last - first, fps, size, short, batch * frames)
    return (to_model_tensor(_pad_to_segments(c, frames), frames) for c in chunks)


def to_model_tensor(frames: np.ndarray, frames_per_segment: int) -> torch.Tensor:
    """uint8 (n x F, S, S, 3) frames -> float32 (n, 3, F, S, S) with (x / 255 - 0.5) / 0.5."""
    import torch

    n_frames, height, width, _ = frames.shape
    if n_frames % frames_per_segment:
        raise ValueError(f"{n_frames} frames do not split into segments of {frames_per_segment}")
    return (
        torch.from_numpy(np.ascontiguousarray(frames))
        .reshape(-1, frames_per_segment, height, width, 3)
        .permute(0, 4, 1, 2, 3)
        .float()
        .div_(255.0)
        .sub_(0.5)
        .div_(0.5)
        .contiguous()
    )


def _pad_to_segments(frames: np.ndarray, frames_per_segment: int) -> np.ndarray:
    short = -len(frames) % frames_per_segment
    if not short:
        return frames
    return np.concatenate([frames, np.repeat(frames[-1:], short, axis=0)])


def _check_range(start: float, end: float, clip: ClipInfo) -> None:
    if start >= clip.duration:
        raise ValueError(f"start {start:.3f} s is at or after the end of the clip ({clip.duration:.3f} s)")
    if start < 0 or end < start:
        raise ValueError(f"invalid time range [{start}, {end})")


def _select_frames(
    clip: ClipInfo, start: float, count: int, fps: float, size: int, short: int, chunk: int
) -> Iterator[np.ndarray]:
    """The streaming core: pick frames by time, scale, crop and pack them into chunks."""
    width, height = short_side_size(clip.display_width, clip.display_height, short)
    step = 1.0 / fps
    with ClipDecoder(clip) as decoder:
        out: np.ndarray | None = None
        filled = 0
        k = 0  # next output frame
        shown = None  # (time, frame) of the source frame on screen at the current instant
        converted: tuple[object, np.ndarray] | None = None  # the last frame turned into a crop

        def crop_of(frame: object) -> np.ndarray:
            nonlocal converted
            if converted is None or converted[0] is not frame:
                picture = decoder.picture(frame, width, height, "BILINEAR")  # type: ignore[arg-type]
                converted = (frame, centre_crop(picture, size))
            return converted[1]

        def put(frame: object) -> np.ndarray | None:
            nonlocal out, filled, k
            if out is None:
                out = np.empty((min(chunk, count - k), size, size, 3), np.uint8)
            out[filled] = crop_of(frame)
            filled += 1
            k += 1
            if filled == len(out):
                full, out, filled = out, None, 0
                return full
            return None

        for t, frame in decoder.frames_from(start):
            # Every output instant before this frame's time shows the previous frame.
            while k < count and t > start + k * step + TIME_EPS:
                full = put(shown[1] if shown is not None else frame)
                if full is not None:
                    yield full
            if k >= count:
                return
            shown = (t, frame)

        if shown is None:
            raise MediaError(clip.path, "the file is truncated or corrupt (could not decode any frame)")
        decoded_end = shown[0] + 1.0 / clip.frame_rate
        # probe checked the end of the file; this catches damage it could not see from there.
        cut_short = clip.duration - decoded_end > truncation_slack(clip.frame_rate)
        if cut_short and start + (count - 1) * step >= decoded_end:
            raise MediaError(
                clip.path,
                f"the file is truncated or corrupt (the video stops at {decoded_end:.2f} s "
                f"of {clip.duration:.2f} s)",
            )
        while k < count:  # after the last frame's timestamp: it stays on screen
            full = put(shown[1])
            if full is not None:
                yield full

"""SMPTE timecode for the timeline: frame numbers from clip times, and HH:MM:SS:FF labels.

Conventions (what Foley and mix stages expect):

* A clip time `t` is seconds after the clip's first video frame (the convention of `vaura_core.media`).
  The first frame carries the timecode of the container's start time, `start_time` seconds, rounded to
  the nearest whole frame (container timestamps of NTSC clips are rarely exact multiples of 1001/30000 s).
* Frame rates are counted at their nominal integer rate: 23.976 fps counts 24 frames per timecode second
  and 29.97 fps counts 30, so their timecode runs 0.1 % slower than the wall clock. That is the standard
  for 23.976 ("24p in NTSC") picture, which has no drop-frame form.
* Drop-frame timecode exists for 29.97 and 59.94 fps only: frame numbers ;00 and ;01 (;00 to ;03 at 59.94)
  are skipped at the start of every minute except every tenth, which keeps the label within a few frames
  of the wall clock. Drop-frame labels use ";" before the frames, as SMPTE 12M and every NLE write them.
* Hours wrap at 24, as on a timecode clock; times before the zero point are shown with a leading "-".
"""

from __future__ import annotations

import math

# A product time x rate this close below a whole frame counts as that frame: clip times are often
# computed as k / fps and land a hair under the frame boundary.
_FRAME_EPS = 1e-6
_NTSC_RATIO = 1000 / 1001


def nominal_rate(fps: float) -> int:
    """Frames per timecode second: the frame rate rounded (23.976 -> 24, 29.97 -> 30, 59.94 -> 60)."""
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"frame rate must be a positive number, got {fps!r}")
    return max(1, round(fps))


def is_ntsc_rate(fps: float) -> bool:
    """True for the 1000/1001 rates (23.976, 29.97, 47.952, 59.94, ...), within timestamp rounding."""
    nominal = nominal_rate(fps)
    return abs(fps - nominal * _NTSC_RATIO) < 0.005 and abs(fps - nominal) > 0.005


def drop_frame_default(fps: float) -> bool:
    """Whether timecode for `fps` is drop-frame by default: 29.97 and 59.94 yes, everything else no."""
    return is_ntsc_rate(fps) and nominal_rate(fps) in (30, 60)


def dropped_per_minute(fps: float) -> int:
    """Frame numbers skipped at each non-tenth minute in drop-frame timecode (2 at 29.97, 4 at 59.94)."""
    nominal = nominal_rate(fps)
    if nominal % 30:
        raise ValueError(f"drop-frame timecode exists for 29.97 and 59.94 fps only, not {fps:g}")
    return nominal // 15


def frame_number(seconds: float, fps: float, start_time: float = 0.0) -> int:
    """Timecode frame count of clip time `seconds`: the first frame's count plus whole frames since it."""
    if not math.isfinite(seconds) or not math.isfinite(start_time):
        raise ValueError(f"times must be finite, got {seconds!r} and {start_time!r}")
    nominal_rate(fps)  # validates fps
    first = round(start_time * fps)
    return first + math.floor(seconds * fps + _FRAME_EPS)


def clip_time_of_frame(frame: int, fps: float, start_time: float = 0.0) -> float:
    """The clip time at which timecode frame count `frame` begins (inverse of `frame_number`)."""
    return (frame - round(start_time * fps)) / fps


def drop_frame_label_count(frame: int, fps: float) -> int:
    """The drop-frame label of actual frame `frame`, as a count of nominal-rate frames (skips included)."""
    nominal = nominal_rate(fps)
    drop = dropped_per_minute(fps)
    per_minute = nominal * 60 - drop
    per_ten_minutes = nominal * 600 - 9 * drop
    tens, rest = divmod(frame, per_ten_minutes)
    skipped = 9 * drop * tens
    if rest > drop:
        skipped += drop * ((rest - drop) // per_minute)
    return frame + skipped


def format_frame_count(frame: int, fps: float, drop_frame: bool | None = None) -> str:
    """HH:MM:SS:FF for timecode frame count `frame` (see the module notes for the conventions)."""
    nominal = nominal_rate(fps)
    drop = drop_frame_default(fps) if drop_frame is None else drop_frame
    sign = "-" if frame < 0 else ""
    count = abs(frame)
    if drop:
        count = drop_frame_label_count(count, fps)
    frames = count % nominal
    total_seconds = count // nominal
    hours = (total_seconds // 3600) % 24
    minutes = (total_seconds // 60) % 60
    secs = total_seconds % 60
    separator = ";" if drop else ":"
    width = len(str(nominal - 1))
    return f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}{separator}{frames:0{max(2, width)}d}"


def format_timecode(
    seconds: float, fps: float, start_time: float = 0.0, drop_frame: bool | None = None
) -> str:
    """Timecode "HH:MM:SS:FF" of the frame on screen at clip time `seconds`.

    `fps` is the clip's frame rate (`ClipInfo.frame_rate`); `start_time` the container time of its first
    frame (`ClipInfo.start_time`), so the first frame of a clip that starts at 3600 s reads 01:00:00:00.
    `drop_frame` None picks drop-frame for 29.97 and 59.94 fps (written HH:MM:SS;FF) and non-drop for every
    other rate; True forces drop-frame (only valid at 29.97/59.94 and their nominal rates) and False
    non-drop. 23.976 fps counts 24 frames per timecode second.
    """
    return format_frame_count(frame_number(seconds, fps, start_time), fps, drop_frame)

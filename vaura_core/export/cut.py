"""Which video packets a stream copy keeps, and where the result starts and ends.

Stream copy cannot start a picture anywhere but at a keyframe, so a range export begins at the
last keyframe at or before the requested start (the output then starts a little early, and the
audio is cut to begin at that keyframe too, keeping sync). It ends after the last frame shown
before the requested end, plus any frame the decoder needs as a reference for those frames,
which with B-frames can be shown a frame or two later.

All times here are integers in the video stream's time base unless a name says seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from statistics import median


@dataclass(frozen=True)
class PacketInfo:
    """What the cut needs to know of one video packet, in decode order."""

    pts: int
    duration: int  # 0 when the container did not say
    keyframe: bool
    discard: bool  # hidden by an edit list: decoded for reference, never shown


@dataclass(frozen=True)
class CutPlan:
    first_index: int  # first copied packet, in decode order
    last_index: int  # last copied packet (inclusive)
    drop_before_pts: int | None  # leading pictures of an open GOP at the cut, which cannot be decoded
    shift: int  # subtracted from every copied timestamp, so the cut lands on `origin`
    origin: int  # presentation time of the source's first shown frame
    start: Fraction  # seconds after `origin` (in the source) where the output begins
    end: Fraction  # seconds after `origin` (in the source) where the output's last frame ends
    whole: bool  # the whole clip, timestamps untouched

    def keeps(self, index: int, pts: int | None) -> bool:
        if not self.first_index <= index <= self.last_index:
            return False
        return self.drop_before_pts is None or pts is None or pts >= self.drop_before_pts


def _frame_ticks(packets: list[PacketInfo]) -> int:
    """A typical frame duration, for packets whose container gave none."""
    times = sorted({p.pts for p in packets})
    steps = [b - a for a, b in itertools.pairwise(times)]
    return max(1, round(median(steps))) if steps else 1


def shown_end(packets: list[PacketInfo], indices: Iterable[int]) -> int:
    """When the last shown frame among `indices` stops being shown."""
    fallback = _frame_ticks(packets)
    return max(packets[i].pts + (packets[i].duration or fallback) for i in indices if not packets[i].discard)


def plan_cut(
    packets: list[PacketInfo], time_base: Fraction, start: float | None, end: float | None
) -> CutPlan:
    """Plan the copy of `packets` for the range `start`..`end` seconds after the first shown frame.

    None for both means the whole clip, copied with its timestamps untouched. An `end` past the
    video means the video's end. Raises ValueError (with a user-facing message) for a range that
    is empty, negative or starts after the video.
    """
    shown = [p for p in packets if not p.discard]
    if not shown:
        raise ValueError("the video stream has no frames to show")
    origin = min(p.pts for p in shown)
    whole_end = Fraction(shown_end(packets, range(len(packets))) - origin) * time_base
    if start is None and end is None:
        return CutPlan(0, len(packets) - 1, None, 0, origin, Fraction(0), whole_end, whole=True)

    # Floats like 0.3 are meant as decimals; microsecond precision keeps 0.3 s a keyframe at 0.3 s.
    start_s = Fraction(start or 0).limit_denominator(1_000_000)
    end_s = whole_end if end is None else Fraction(end).limit_denominator(1_000_000)
    if start_s < 0 or end_s <= start_s or start_s >= whole_end:
        raise ValueError(
            f"invalid export range {float(start_s):.3f}–{float(end_s):.3f} s "
            f"(the video is {float(whole_end):.3f} s long)"
        )
    start_at = origin * time_base + start_s  # in the source's timeline, exact
    end_at = origin * time_base + end_s

    # The last keyframe shown at or before the start; the first GOP counts as starting at origin.
    cut = 0
    for index, packet in enumerate(packets):
        if packet.keyframe and not packet.discard and packet.pts * time_base <= start_at:
            cut = index
    cut_pts = packets[cut].pts
    if cut_pts <= origin:
        first, shift, drop = 0, 0, None
    else:
        first, shift, drop = cut, cut_pts - origin, cut_pts

    # Shown frames before the end; frames between them in decode order come along as references.
    wanted = [
        index
        for index in range(first, len(packets))
        if not packets[index].discard
        and packets[index].pts * time_base < end_at
        and (drop is None or packets[index].pts >= drop)
    ]
    if not wanted:
        raise ValueError(f"the export range {float(start_s):.3f}–{float(end_s):.3f} s holds no video frame")
    last = wanted[-1]
    kept = [i for i in range(first, last + 1) if drop is None or packets[i].pts >= drop]
    return CutPlan(
        first_index=first,
        last_index=last,
        drop_before_pts=drop,
        shift=shift,
        origin=origin,
        start=Fraction(shift) * time_base,
        end=Fraction(shown_end(packets, kept) - origin) * time_base,
        whole=False,
    )

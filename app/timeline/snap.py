"""Where selection edges and the playhead land: video frames, the model's 0.64 s grid, or anywhere."""

from __future__ import annotations

import math
from typing import Literal, get_args

from vaura_core.model.config import VAuraConfig

SnapMode = Literal["frame", "grid", "off"]
SNAP_MODES: tuple[SnapMode, ...] = get_args(SnapMode)
# One 16-frame visual segment at the model's 25 fps: generation windows start on this grid.
GRID_SECONDS = VAuraConfig().segment_seconds


def check_snap_mode(mode: str) -> SnapMode:
    if mode not in SNAP_MODES:
        raise ValueError(f"snap mode must be one of {', '.join(SNAP_MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


def snap_to_frame(t: float, fps: float, duration: float) -> float:
    """The frame boundary nearest `t` (frame k starts at k / fps), or the clip's end if that is nearer."""
    return _nearest(t, round(t * fps) / fps, duration)


def snap_to_grid(t: float, duration: float, grid: float = GRID_SECONDS) -> float:
    """The grid line nearest `t`, or the clip's end if that is nearer (the last segment may be short)."""
    return _nearest(t, round(t / grid) * grid, duration)


def snap_time(t: float, mode: SnapMode, fps: float, duration: float, grid: float = GRID_SECONDS) -> float:
    """`t` clamped to [0, duration] and snapped as `mode` says."""
    t = min(max(t, 0.0), duration)
    if mode == "frame" and fps > 0:
        return snap_to_frame(t, fps, duration)
    if mode == "grid":
        return snap_to_grid(t, duration, grid)
    return t


def grid_lines(t0: float, t1: float, step: float) -> list[float]:
    """Multiples of `step` within [t0, t1]."""
    first = math.ceil(t0 / step - 1e-9)
    last = math.floor(t1 / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def _nearest(t: float, candidate: float, duration: float) -> float:
    candidate = min(max(candidate, 0.0), duration)
    return duration if abs(duration - t) < abs(candidate - t) else candidate

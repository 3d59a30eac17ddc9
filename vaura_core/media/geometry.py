"""Picture geometry: display orientation from the display matrix, and the sizes we scale to.

Decoded pictures come in their stored ("coded") orientation. Phones store portrait video as
landscape and add a display matrix (FFmpeg side data) that tells players how to turn it. We
apply that matrix as a player does, so every picture this package returns is upright.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import NamedTuple

import numpy as np

_UNIT = 1 << 16  # the 2x2 part of the display matrix is 16.16 fixed point


class Orientation(NamedTuple):
    """How to turn a stored picture into the displayed one: transpose first, then flip.

    Exactly the eight rotations/mirrors by multiples of 90 degrees can be expressed, which is
    what players support.
    """

    transpose: bool = False
    flip_rows: bool = False  # upside down after the optional transpose
    flip_cols: bool = False  # left-right after the optional transpose

    @property
    def swaps_axes(self) -> bool:
        return self.transpose

    def apply(self, picture: np.ndarray) -> np.ndarray:
        """The picture (H, W, ...) as displayed; a view when nothing needs to move."""
        if self.transpose:
            picture = picture.swapaxes(0, 1)
        if self.flip_rows:
            picture = picture[::-1]
        if self.flip_cols:
            picture = picture[:, ::-1]
        return picture

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.transpose else (width, height)

    def coded_size(self, width: int, height: int) -> tuple[int, int]:
        """The stored-orientation size whose display size is (width, height)."""
        return (height, width) if self.transpose else (width, height)


IDENTITY = Orientation()


def parse_display_matrix(raw: bytes) -> tuple[Orientation, int, bool]:
    """Orientation, rotation and mirroring from FFmpeg's 3x3 display matrix (9 native int32).

    FFmpeg maps a source point (p, q) to (p', q') = (a p + c q, b p + d q) with the matrix
    stored as [a b u; c d v; x y w]. `rotation` is the counter-clockwise angle in degrees as
    `av_display_rotation_get` and ffprobe report it (-90 for a portrait phone clip, which
    players turn clockwise).
    """
    if len(raw) < 36:
        return IDENTITY, 0, False
    a, b, _, c, d, *_ = struct.unpack("=9i", raw[:36])
    scale0, scale1 = math.hypot(a, c), math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return IDENTITY, 0, False
    angle = -math.degrees(math.atan2(b / scale1, a / scale0))
    rotation = round(angle)
    if rotation == -180:
        rotation = 180
    mirrored = a * d - b * c < 0
    signs = [_axis_sign(v) for v in (a, b, c, d)]
    if any(s is None for s in signs):
        # Not a multiple of 90 degrees: players snap to the nearest quarter turn, and so do we.
        return _quarter_turn(round(angle / 90) * 90), rotation, mirrored
    sa, sb, sc, sd = signs
    if sa == 0 and sd == 0 and sb and sc:
        return Orientation(True, sb < 0, sc < 0), rotation, mirrored
    if sb == 0 and sc == 0 and sa and sd:
        return Orientation(False, sd < 0, sa < 0), rotation, mirrored
    return _quarter_turn(round(angle / 90) * 90), rotation, mirrored


def _axis_sign(value: int) -> int | None:
    """-1, 0 or 1 for entries that are (nearly) exactly that in 16.16; None for anything else."""
    for sign in (-1, 0, 1):
        if abs(value - sign * _UNIT) <= _UNIT // 64:
            return sign
    return None


def _quarter_turn(ccw_degrees: int) -> Orientation:
    """The orientation of a pure counter-clockwise rotation by a multiple of 90 degrees."""
    turns = (ccw_degrees // 90) % 4
    return (
        IDENTITY,
        Orientation(True, True, False),  # 90 ccw
        Orientation(False, True, True),  # 180
        Orientation(True, False, True),  # 90 cw
    )[turns]


def display_size(width: int, height: int, sar: Fraction, orientation: Orientation) -> tuple[int, int]:
    """Size a player shows: non-square pixels stretched horizontally, then rotated."""
    if sar > 0 and sar != 1:
        width = max(1, round(width * sar))
    return orientation.display_size(width, height)


def short_side_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale so the short side is `short_side`; the long side is truncated as torchvision's Resize does."""
    if width <= height:
        return short_side, max(short_side, int(short_side * height / width))
    return max(short_side, int(short_side * width / height)), short_side


def fit_height(width: int, height: int, target_height: int) -> tuple[int, int]:
    return max(1, round(width * target_height / height)), target_height


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Shrink (never enlarge) so neither side exceeds `max_side`, keeping the aspect ratio."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def centre_crop(picture: np.ndarray, size: int) -> np.ndarray:
    """A centred size x size view, offsets rounded as torchvision's CenterCrop does."""
    height, width = picture.shape[:2]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from a {width}x{height} picture")
    top = round((height - size) / 2)
    left = round((width - size) / 2)
    return picture[top : top + size, left : left + size]

"""Contact between two of Foley World's shapes, exact for what the renderer draws.

Why: the objects are drawn as squares, circles, hexagons and diamonds filling the box [-r, r]^2
(`render._sdf`). Colliding them as circles of radius r left a visible gap at the moment of contact
whenever a corner did not face the other object (up to 0.3 r per diamond), so a collision's sound
started on a frame where the picture showed the two apart. The separating-axis test below uses the
drawn outlines: the shapes touch in the picture on the frame the physics makes them touch.
"""

from __future__ import annotations

import math

import numpy as np

_S2 = math.sqrt(0.5)
_H = 1.0 / math.sqrt(1.25)
# Outward face normals (one per parallel pair) of each polygon; a circle has none of its own.
FACE_AXES: dict[str, tuple[tuple[float, float], ...]] = {
    "square": ((1.0, 0.0), (0.0, 1.0)),
    "diamond": ((_S2, _S2), (_S2, -_S2)),
    "hexagon": ((0.0, 1.0), (_H, 0.5 * _H), (_H, -0.5 * _H)),  # vertices (±r, 0), (±r/2, ±r)
    "circle": (),
}


def support(shape: str, r: float, axis: np.ndarray) -> float:
    """How far a shape filling [-r, r]^2 reaches along the unit `axis` from its centre."""
    ax, ay = abs(float(axis[0])), abs(float(axis[1]))
    if shape == "circle":
        return r
    if shape == "square":
        return r * (ax + ay)
    if shape == "diamond":
        return r * max(ax, ay)
    if shape == "hexagon":
        return r * max(ax, 0.5 * ax + ay)
    raise ValueError(f"unknown shape {shape!r}")


def separation(shape_i: str, r_i: float, shape_j: str, r_j: float, d: np.ndarray) -> tuple[float, np.ndarray]:
    """Signed gap between shape i and shape j for centres `d` = centre_i - centre_j apart, and the
    unit normal along which it is measured, pointing from j's side to i's (d . normal >= 0).

    Positive: apart by at least that much (exactly that along the normal). Negative: they overlap,
    and moving them -gap apart along the normal makes them touch. Both shapes are convex and
    centrally symmetric, so their face normals (and the centre line, for a circle) are the axes to
    test; the axis of the largest gap is the one of least overlap.
    """
    dist = float(np.hypot(*d))
    centre = d / dist if dist > 1e-12 else np.array([1.0, 0.0])
    axes = [np.asarray(a) for a in FACE_AXES[shape_i] + FACE_AXES[shape_j]]
    if "circle" in (shape_i, shape_j):
        axes.append(centre)
    best_gap, best_axis = -math.inf, centre
    for axis in axes:
        along = float(np.dot(d, axis))
        gap = abs(along) - support(shape_i, r_i, axis) - support(shape_j, r_j, axis)
        if gap > best_gap:
            best_gap, best_axis = gap, axis if along >= 0 else -axis
    return best_gap, best_axis

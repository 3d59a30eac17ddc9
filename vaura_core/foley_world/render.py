"""Foley World pictures: a side view of the box with textured background, objects and camera noise.

The view shows world x in [-0.15, 1.15] and y in [-0.18, 1.12], so the walls (x = 0, x = 1) and the
floor (y = 0) lie well inside a centre crop. Shapes are drawn from signed distance functions with a
one-pixel anti-aliased edge; every shape fills the box [-r, r]^2, so a frame in which the physics has an
object touching the floor or a wall shows it touching.
"""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING, Any

import numpy as np

from vaura_core.foley_world.scene import STREAM_CAMERA, STREAM_LOOK, stream_rng

if TYPE_CHECKING:
    from vaura_core.foley_world.scene import Scene, SceneObject

VIEW_X0 = -0.15  # world x at the left edge of the picture
VIEW_TOP = 1.12  # world y at the top edge
VIEW_SPAN = 1.3  # world units across the (square) picture


def view_dict(size: int) -> dict[str, Any]:
    """How world coordinates map to pixels: px = (x - x0) * scale, py = (top - y) * scale."""
    return {"x0": VIEW_X0, "top": VIEW_TOP, "scale": size / VIEW_SPAN}


def world_to_pixels(point: np.ndarray, size: int) -> tuple[float, float]:
    scale = size / VIEW_SPAN
    return (float(point[0]) - VIEW_X0) * scale, (VIEW_TOP - float(point[1])) * scale


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def render_background(scene: Scene) -> tuple[np.ndarray, float]:
    """The scene's static backdrop and its camera noise level (grey levels, standard deviation).

    Colours are muted (low saturation, mid-dark) so the saturated or bright objects always stand out.
    """
    size = scene.spec.size
    rng = stream_rng(scene.spec.seed, STREAM_LOOK)
    hue = float(rng.random())
    back = _hsv(hue, rng.uniform(0.08, 0.35), rng.uniform(0.28, 0.55))
    floor = _hsv(hue + rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.3), rng.uniform(0.15, 0.35))
    side = back * 0.62
    pattern = int(rng.integers(4))
    depth = float(rng.uniform(0.04, 0.1))
    period = float(rng.uniform(0.06, 0.2)) * size
    phase = float(rng.uniform(0, 2 * np.pi))

    centres = np.arange(size, dtype=np.float32) + 0.5
    cols, rows = np.meshgrid(centres, centres)
    if pattern == 0:  # vertical gradient
        texture = (rows / size - 0.5) * 2
    elif pattern == 1:  # diagonal stripes
        texture = np.sin((cols + rows * rng.uniform(-1, 1)) * 2 * np.pi / period + phase)
    elif pattern == 2:  # soft checker
        texture = np.sin(cols * np.pi / period + phase) * np.sin(rows * np.pi / period)
    else:  # smooth blobs
        texture = (
            sum(
                np.sin(cols * rng.uniform(1, 5) / size * 2 * np.pi + rng.uniform(0, 6))
                * np.sin(rows * rng.uniform(1, 5) / size * 2 * np.pi + rng.uniform(0, 6))
                for _ in range(3)
            )
            / 1.5
        )
    image = np.broadcast_to(back, (size, size, 3)) * (1 + depth * texture[..., None])

    scale = size / VIEW_SPAN
    floor_row = VIEW_TOP * scale  # pixel row of world y = 0
    left_col, right_col = -VIEW_X0 * scale, (1 - VIEW_X0) * scale
    # Anti-aliased coverage of each region, so the contact lines sit at exact sub-pixel positions.
    side_cover = np.clip(left_col - cols + 0.5, 0, 1) + np.clip(cols - right_col + 0.5, 0, 1)
    image = image * (1 - side_cover[..., None]) + side * side_cover[..., None]
    floor_shade = floor * (1 + 0.25 * (rows - floor_row)[..., None] / size)
    floor_cover = np.clip(rows - floor_row + 0.5, 0, 1)[..., None]
    image = image * (1 - floor_cover) + floor_shade * floor_cover
    edge = np.clip(1 - np.abs(rows - floor_row - 0.5), 0, 1)[..., None] * 0.35  # dark floor edge line
    image *= 1 - edge
    return image.astype(np.float32), float(rng.uniform(1.0, 4.0))


def _sdf(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (world units, negative inside) of a shape filling [-r, r]^2."""
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        return np.hypot(u, v) - r
    if shape == "square":
        qu, qv = au - r, av - r
        return np.hypot(np.maximum(qu, 0), np.maximum(qv, 0)) + np.minimum(np.maximum(qu, qv), 0)
    if shape == "diamond":
        return (au + av - r) / np.sqrt(2)
    if shape == "hexagon":  # vertices (±r, 0) and (±r/2, ±r): flat top and bottom
        return np.maximum(av - r, (au + 0.5 * av - r) / np.sqrt(1.25))
    raise ValueError(f"unknown shape {shape!r}")


def _body(obj: SceneObject, u: np.ndarray, v: np.ndarray, angle: float) -> np.ndarray:
    """Body colour with the material's fixed markings (float32 RGB per pixel)."""
    m, r = obj.material, obj.radius
    colour = np.broadcast_to(np.array(m.colour, dtype=np.float32), (*u.shape, 3))
    colour = colour * (1 + 0.15 * v / r)[..., None]  # lit from above
    if m.name == "wood":
        grain = np.sin(v / r * np.pi * 3.5 + 0.6 * np.sin(u / r * 3)) > 0.55
        colour = colour * np.where(grain, 0.8, 1.0)[..., None]
    elif m.name == "metal":
        glint = 70 * np.exp(-((u + 0.35 * r) ** 2 + (v - 0.35 * r) ** 2) / (0.06 * r * r))
        colour = colour + glint[..., None]
        # A dark dot turning with the rolling angle, so rolling is visible.
        mu, mv = 0.55 * r * np.cos(angle), 0.55 * r * np.sin(angle)
        dot = np.clip((0.2 * r - np.hypot(u - mu, v - mv)) / (0.08 * r), 0, 1)[..., None]
        colour = colour * (1 - dot) + np.array(m.outline, dtype=np.float32) * dot
    elif m.name == "drum":
        head = np.clip((v - 0.6 * r) / (0.1 * r), 0, 1)[..., None]
        colour = colour * (1 - head) + np.array((235, 220, 190), dtype=np.float32) * head
    elif m.name == "glass":
        glint = np.clip(1 - np.abs((u - v) / np.sqrt(2) + 0.2 * r) / (0.07 * r), 0, 1)
        colour = colour + 90 * glint[..., None]
    return colour


def _draw(image: np.ndarray, obj: SceneObject, centre: np.ndarray, angle: float) -> None:
    size = image.shape[0]
    scale = size / VIEW_SPAN
    cx, cy = world_to_pixels(centre, size)
    reach = obj.radius * scale + 2
    r0, r1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, size)
    c0, c1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, size)
    if r0 >= r1 or c0 >= c1:
        return
    u = (np.arange(c0, c1, dtype=np.float32) + 0.5 - cx)[None, :] / scale
    v = (cy - np.arange(r0, r1, dtype=np.float32) - 0.5)[:, None] / scale
    u, v = np.broadcast_arrays(u, v)
    dist = _sdf(obj.material.shape, u, v, obj.radius) * scale  # in pixels
    cover = np.clip(0.5 - dist, 0, 1)
    inner = np.clip(-0.5 - dist, 0, 1)[..., None]  # one pixel in from the edge
    colour = _body(obj, u, v, angle) * inner + np.array(obj.material.outline, dtype=np.float32) * (1 - inner)
    alpha = (cover * obj.material.opacity)[..., None]
    patch = image[r0:r1, c0:c1]
    image[r0:r1, c0:c1] = patch * (1 - alpha) + colour * alpha


def render_frame(scene: Scene, index: int) -> np.ndarray:
    """Frame `index` of the scene as uint8 RGB; camera noise comes from the frame's own random stream."""
    background, noise_level = scene.look
    image = background.copy()
    for obj in scene.objects:
        _draw(image, obj, scene.positions[index, obj.id], float(scene.angles[index, obj.id]))
    rng = stream_rng(scene.spec.seed, STREAM_CAMERA, index)
    gain = np.float32(1 + 0.015 * rng.standard_normal())  # slight exposure flicker
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_level)
    return np.clip(image * gain + noise + 0.5, 0, 255).astype(np.uint8)

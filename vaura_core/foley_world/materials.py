"""The four Foley World materials: how each looks, moves and sounds.

Every material has one fixed shape and colour so the picture alone determines the sound, and a sound
whose spectrum sits in its own band (drum < wood < metal < glass by spectral centroid).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Material:
    name: str
    shape: str  # "square", "circle", "hexagon" or "diamond"; all fill the box [-r, r]^2
    colour: tuple[int, int, int]  # body RGB
    outline: tuple[int, int, int]  # 1 px rim RGB, so objects stand out from any background
    opacity: float
    restitution: float  # bounce factor off the floor and walls
    density: float  # mass per area; sets who gives way in object collisions
    friction: float  # floor deceleration in units of g while sliding or rolling
    sustained_kind: str  # "slide" or "roll": the sustained sound made while moving on the floor


MATERIALS: dict[str, Material] = {
    "wood": Material(
        name="wood",
        shape="square",
        colour=(160, 100, 50),
        outline=(70, 40, 15),
        opacity=1.0,
        restitution=0.45,
        density=0.7,
        friction=0.35,
        sustained_kind="slide",
    ),
    "metal": Material(
        name="metal",
        shape="circle",
        colour=(195, 200, 210),
        outline=(60, 64, 72),
        opacity=1.0,
        restitution=0.6,
        density=3.0,
        friction=0.06,
        sustained_kind="roll",
    ),
    "drum": Material(
        name="drum",
        shape="hexagon",
        colour=(210, 40, 40),
        outline=(90, 10, 10),
        opacity=1.0,
        restitution=0.7,
        density=0.5,
        friction=0.45,
        sustained_kind="slide",
    ),
    "glass": Material(
        name="glass",
        shape="diamond",
        colour=(120, 225, 240),
        outline=(20, 90, 110),
        opacity=0.8,
        restitution=0.5,
        density=1.2,
        friction=0.25,
        sustained_kind="slide",
    ),
}

MATERIAL_NAMES: tuple[str, ...] = tuple(MATERIALS)

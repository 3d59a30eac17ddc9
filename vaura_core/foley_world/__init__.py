"""Foley World: the project's procedural audio-visual training data.

Objects of four materials (wood, metal, drum, glass), each with its own fixed shape, colour and sound,
fall, bounce, collide and slide in a box. Every impact sounds on the exact frame of contact and is
listed in a JSON event list (time, frame, object, material, strength, kind). Same seed, same clip.

    scene = generate_scene(seed=7, duration=4.0)
    for image in scene.frames(): ...      # uint8 (size, size, 3), rendered lazily
    scene.audio, scene.events             # float32 mono at 44.1 kHz, list of dicts
    write_clip(scene, "clip.mp4", "clip.json")
    render_dataset("data/", count=100, seed=0)
"""

from vaura_core.foley_world.materials import MATERIAL_NAMES, MATERIALS, Material
from vaura_core.foley_world.scene import (
    FOLEY_WORLD_VERSION,
    Scene,
    SceneObject,
    SceneSpec,
    build_scene,
    generate_scene,
    onset_times,
)
from vaura_core.foley_world.writer import clip_seed, render_dataset, scene_json, write_clip

__all__ = [
    "FOLEY_WORLD_VERSION",
    "MATERIALS",
    "MATERIAL_NAMES",
    "Material",
    "Scene",
    "SceneObject",
    "SceneSpec",
    "build_scene",
    "clip_seed",
    "generate_scene",
    "onset_times",
    "render_dataset",
    "scene_json",
    "write_clip",
]

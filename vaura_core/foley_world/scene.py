"""Foley World physics: objects falling, bouncing, colliding and sliding in a 2-D box.

The world is the box x in [0, 1], floor at y = 0 (y up), with walls at x = 0 and x = 1. Physics runs in
substeps, but every contact is snapped to a frame instant: an object that touches the floor, a wall or
another object stays at the contact position until the end of that frame, so the rendered frame shows
the contact and the sound starts on exactly that frame (event time = frame / fps). The post-contact
velocity takes over from the next frame; the lost fraction of a frame is invisible at 25 fps.

Impacts softer than `V_MIN` make no sound. Audible impacts closer than `MIN_GAP` to a louder one are
silenced (and listed under `silent_contacts`) so every onset in the audio is separable. Rest thresholds,
no bouncing on weak object hits and a limit on how many objects fly at once keep this rare: about one
audible contact in eight is silenced, mostly the second touch of a compound contact (an object glancing
off another and landing 40-80 ms later).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from vaura_core.errors import VauraError
from vaura_core.foley_world.materials import MATERIAL_NAMES, MATERIALS, Material

FOLEY_WORLD_VERSION = "1.0"

GRAVITY = 3.0  # world units / s^2: slow enough that motion stays smooth at 25 fps
TOP = 0.95  # no object may rise above this (its top edge), so everything stays in view
V_MIN = 0.3  # normal speed below which a contact is silent
REST_SPEED = 0.4  # a floor bounce weaker than this ends in rest: later bounces would crowd the onsets
V_REF = 2.4  # normal speed of strength 1 (about a fall from the top of the box)
SLIDE_MIN = 0.04  # floor speed below which an object stops
LIFT_MIN = 0.3  # upward speed that takes a floor object off the floor after a collision
OBJECT_RESTITUTION = 0.8
BOUNCE_TANGENT_KEEP = 0.9  # horizontal speed kept through a floor bounce
MIN_GAP = 0.12  # seconds between separate impact instants
SUBSTEPS = 4
RADIUS = (0.065, 0.09)  # object half-size range: 11-15 px across at 128 px
KICK_WAIT = (0.6, 3.0)  # seconds a resting object waits before it hops again

# Independent random streams of one scene (np.random.default_rng([seed, stream, *index])), so the
# physics, the look, the camera noise of frame k and the sound of event i never depend on each other.
STREAM_PHYSICS = 1
STREAM_LOOK = 2
STREAM_CAMERA = 3
STREAM_VOICE = 4
STREAM_EVENT = 5


def stream_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *index])


@dataclass(frozen=True)
class SceneSpec:
    """What to generate. `sustained=None` lets the seed decide whether objects slide and roll audibly."""

    seed: int
    duration: float = 10.0
    fps: int = 25
    size: int = 128
    sample_rate: int = 44100
    sustained: bool | None = None

    def validate(self) -> None:
        def is_int(v: object) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        if not is_int(self.seed) or self.seed < 0:
            raise VauraError(f"foley world: seed must be a whole number >= 0, got {self.seed!r}")
        if not is_int(self.fps) or not 1 <= self.fps <= 240:
            raise VauraError(f"foley world: fps must be a whole number in 1..240, got {self.fps!r}")
        if not isinstance(self.duration, int | float) or not math.isfinite(self.duration):
            raise VauraError(f"foley world: duration must be a number of seconds, got {self.duration!r}")
        if not 0 < self.duration <= 3600 or round(self.duration * self.fps) < 1:
            raise VauraError(
                f"foley world: duration must be at least one frame and at most 3600 s, got {self.duration}"
            )
        if not is_int(self.size) or not 32 <= self.size <= 2048 or self.size % 2:
            raise VauraError(
                f"foley world: size must be an even number of pixels in 32..2048, got {self.size!r}"
            )
        if not is_int(self.sample_rate) or not 8000 <= self.sample_rate <= 192000:
            raise VauraError(f"foley world: sample rate must be in 8000..192000 Hz, got {self.sample_rate!r}")
        if self.sustained is not None and not isinstance(self.sustained, bool):
            raise VauraError(f"foley world: sustained must be true, false or unset, got {self.sustained!r}")

    @property
    def n_frames(self) -> int:
        return round(self.duration * self.fps)

    @property
    def n_samples(self) -> int:
        return round(self.duration * self.sample_rate)

    def frame_sample(self, frame: int) -> int:
        """The audio sample at the instant of `frame` (exact when sample_rate / fps is whole: 25 fps)."""
        return round(frame * self.sample_rate / self.fps)


@dataclass(frozen=True)
class SceneObject:
    id: int
    material: Material
    radius: float
    release_frame: int  # hangs still at its start position until this frame (-1: never released)

    @property
    def mass(self) -> float:
        return self.material.density * self.radius**2


@dataclass(frozen=True)
class _Contact:
    frame: int
    obj: int
    speed: float
    surface: str  # "floor", "left_wall", "right_wall" or "object"
    other: int | None


class Scene:
    """A simulated clip: per-frame object states, the sound events, and lazily the pictures and audio."""

    def __init__(
        self,
        spec: SceneSpec,
        sustained: bool,
        objects: tuple[SceneObject, ...],
        positions: np.ndarray,
        velocities: np.ndarray,
        on_floor: np.ndarray,
        angles: np.ndarray,
        events: list[dict[str, Any]],
        silent_contacts: list[dict[str, Any]],
    ) -> None:
        self.spec = spec
        self.sustained = sustained
        self.objects = objects
        self.positions = positions  # (n_frames, n_objects, 2) world units, object centres
        self.velocities = velocities  # (n_frames, n_objects, 2)
        self.on_floor = on_floor  # (n_frames, n_objects) resting or sliding on the floor
        self.angles = angles  # (n_frames, n_objects) rolling angle in radians
        self.events = events
        self.silent_contacts = silent_contacts

    @property
    def n_frames(self) -> int:
        return self.spec.n_frames

    def frame(self, index: int) -> np.ndarray:
        """The picture of frame `index`: uint8 (size, size, 3) RGB."""
        from vaura_core.foley_world.render import render_frame

        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} is outside 0..{self.n_frames - 1}")
        return render_frame(self, index)

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order, rendered one at a time so a long clip never sits in memory."""
        for k in range(self.n_frames):
            yield self.frame(k)

    @cached_property
    def look(self) -> tuple[np.ndarray, float]:
        """The static background picture (float32 RGB) and the camera noise level of this scene."""
        from vaura_core.foley_world.render import render_background

        return render_background(self)

    @cached_property
    def audio(self) -> np.ndarray:
        """The ground-truth sound track: float32 mono, exactly `spec.n_samples` samples."""
        from vaura_core.foley_world.sound import synthesize

        return synthesize(self)

    def to_dict(self) -> dict[str, Any]:
        """The JSON description of the clip (everything needed to evaluate timing and material)."""
        from vaura_core.foley_world.render import view_dict

        s = self.spec
        return {
            "generator": "vaura foley-world",
            "version": FOLEY_WORLD_VERSION,
            "seed": int(s.seed),
            "duration": float(s.duration),
            "fps": int(s.fps),
            "size": int(s.size),
            "sample_rate": int(s.sample_rate),
            "n_frames": s.n_frames,
            "n_samples": s.n_samples,
            "sustained": self.sustained,
            "min_gap": MIN_GAP,
            "view": view_dict(s.size),
            "objects": [
                {
                    "id": o.id,
                    "material": o.material.name,
                    "shape": o.material.shape,
                    "colour": list(o.material.colour),
                    "radius": round(o.radius, 6),
                    "release_frame": o.release_frame,
                }
                for o in self.objects
            ],
            "events": self.events,
            "silent_contacts": self.silent_contacts,
        }


def onset_times(events: list[dict[str, Any]]) -> list[float]:
    """Sorted distinct onset times of a clip's events (a two-object collision is one onset)."""
    return sorted({e["time"] for e in events})


def generate_scene(
    seed: int,
    duration: float = 10.0,
    fps: int = 25,
    size: int = 128,
    sample_rate: int = 44100,
    sustained: bool | None = None,
) -> Scene:
    """Simulate one scene. Same arguments give the same scene, bit for bit."""
    return build_scene(SceneSpec(seed, duration, fps, size, sample_rate, sustained))


def build_scene(spec: SceneSpec) -> Scene:
    spec.validate()
    rng = stream_rng(spec.seed, STREAM_PHYSICS)
    sustained = bool(rng.random() < 0.5) if spec.sustained is None else spec.sustained
    return _Simulation(spec, rng, sustained).run()


def _apex_capped(vy: float, y: float, radius: float) -> float:
    """Limit an upward speed so the object's top stays below TOP."""
    if vy <= 0:
        return vy
    return min(vy, math.sqrt(2 * GRAVITY * max(TOP - radius - y, 0.0)))


class _Simulation:
    def __init__(self, spec: SceneSpec, rng: np.random.Generator, sustained: bool) -> None:
        self.spec = spec
        self.rng = rng
        self.sustained = sustained
        self.objects, start, self.release_velocity = self._place_objects()
        n = len(self.objects)
        self.radius = np.array([o.radius for o in self.objects])
        self.pos = start
        self.vel = np.zeros((n, 2))
        self.floor = np.zeros(n, dtype=bool)
        self.held = np.ones(n, dtype=bool)
        self.angle = np.zeros(n)
        self.kick_at = np.full(n, -1)
        self.released_at = np.full(n, -1)
        # At most this many objects fly at once (releases and hops wait), which keeps impacts sparse:
        # with two flyers about a quarter of audible contacts would crowd each other, with one about a tenth.
        self.max_flying = 2 if rng.random() < 0.25 else 1
        self.contacts: dict[tuple[int, int], _Contact] = {}

    def _place_objects(self) -> tuple[tuple[SceneObject, ...], np.ndarray, np.ndarray]:
        rng, spec = self.rng, self.spec
        count = int(rng.integers(2, 5))
        late = max(0.8, 0.5 * spec.duration)
        objects: list[SceneObject] = []
        centres: list[tuple[float, float]] = []
        velocities: list[tuple[float, float]] = []
        for _ in range(count):
            material = MATERIALS[MATERIAL_NAMES[int(rng.integers(len(MATERIAL_NAMES)))]]
            radius = float(rng.uniform(*RADIUS))
            for _attempt in range(50):
                x = float(rng.uniform(radius + 0.02, 1 - radius - 0.02))
                y = float(rng.uniform(0.35, 0.85))
                if all(math.hypot(x - cx, y - cy) > radius + RADIUS[1] + 0.03 for cx, cy in centres):
                    break
            else:
                continue  # no room left: fewer objects in this scene
            release = 0 if rng.random() < 0.25 else round(float(rng.uniform(0.1, late)) * spec.fps)
            vx = float(rng.uniform(-0.8, 0.8))
            vy = _apex_capped(float(rng.uniform(-0.3, 0.7)), y, radius)
            objects.append(SceneObject(len(objects), material, radius, min(release, spec.n_frames - 1)))
            centres.append((x, y))
            velocities.append((vx, vy))
        return tuple(objects), np.array(centres), np.array(velocities)

    # -- stepping ------------------------------------------------------------------------------------

    def run(self) -> Scene:
        spec = self.spec
        n_frames, n = spec.n_frames, len(self.objects)
        positions = np.zeros((n_frames, n, 2))
        velocities = np.zeros((n_frames, n, 2))
        on_floor = np.zeros((n_frames, n), dtype=bool)
        angles = np.zeros((n_frames, n))
        for k in range(n_frames):
            if k:
                self._step(k)
            positions[k], velocities[k], on_floor[k], angles[k] = self.pos, self.vel, self.floor, self.angle
            self._start_motion(k)
        events, silent = self._events(positions, velocities, on_floor)
        objects = tuple(
            dataclasses.replace(o, release_frame=int(self.released_at[o.id])) for o in self.objects
        )
        return Scene(spec, self.sustained, objects, positions, velocities, on_floor, angles, events, silent)

    def _start_motion(self, k: int) -> None:
        """Releases and hops that begin at frame k (silent: nothing touches anything).

        Either waits a frame while `max_flying` objects are already in the air."""
        for i, obj in enumerate(self.objects):
            flying = int(np.sum(~self.held & ~self.floor))
            if self.held[i] and obj.release_frame <= k:
                if flying >= self.max_flying:
                    continue
                self.held[i] = False
                self.released_at[i] = k
                self.vel[i] = self.release_velocity[i]
            elif self.kick_at[i] == k and self._at_rest(i):
                if flying >= self.max_flying:
                    self.kick_at[i] = k + 1
                    continue
                self.kick_at[i] = -1
                self.floor[i] = False
                vy = _apex_capped(float(self.rng.uniform(1.3, 2.1)), self.pos[i, 1], obj.radius)
                self.vel[i] = (float(self.rng.uniform(-0.9, 0.9)), vy)

    def _at_rest(self, i: int) -> bool:
        return bool(self.floor[i] and self.vel[i, 0] == 0.0)

    def _static(self, i: int) -> bool:
        """Objects that do not give way in a collision: hanging ones, and resting ones in silent scenes
        (where floor objects never slide, so a push would have to slide them without sound)."""
        return bool(self.held[i] or (not self.sustained and self.floor[i]))

    def _step(self, frame: int) -> None:
        """Advance from frame-1 to frame. Objects that touch something freeze at the contact."""
        h = 1.0 / (self.spec.fps * SUBSTEPS)
        frozen = np.zeros(len(self.objects), dtype=bool)
        for _ in range(SUBSTEPS):
            for i in range(len(self.objects)):
                if not (self.held[i] or frozen[i]):
                    frozen[i] = self._move(i, h, frame)
            self._collide_pairs(frozen, frame)
        for i in range(len(self.objects)):
            if self.held[i]:
                continue
            if not self._at_rest(i):
                self.kick_at[i] = -1
            elif self.kick_at[i] < 0:
                self.kick_at[i] = frame + round(float(self.rng.uniform(*KICK_WAIT)) * self.spec.fps)

    def _contact(self, frame: int, i: int, speed: float, surface: str, other: int | None = None) -> None:
        speed = float(speed)
        if speed < V_MIN:
            return
        old = self.contacts.get((frame, i))
        if old is None or speed > old.speed:
            self.contacts[(frame, i)] = _Contact(frame, i, speed, surface, other)

    def _move(self, i: int, h: float, frame: int) -> bool:
        """Move object i by h seconds; True when it touched the floor or a wall."""
        r = self.radius[i]
        x, y = self.pos[i]
        vx, vy = self.vel[i]
        floor_speed = None
        if self.floor[i]:
            if vx != 0.0:
                decel = self.objects[i].material.friction * GRAVITY
                speed = abs(vx)
                new = max(speed - decel * h, 0.0)
                dist = (speed + new) / 2 * h if new > 0 else speed * speed / (2 * decel)
                x += math.copysign(dist, vx)
                self.angle[i] -= math.copysign(dist, vx) / r
                vx = math.copysign(new, vx) if new >= SLIDE_MIN else 0.0
            y, vy = r, 0.0
        else:
            x += vx * h
            y_new = y + vy * h - 0.5 * GRAVITY * h * h
            if y_new < r:
                floor_speed = math.sqrt(vy * vy + 2 * GRAVITY * max(y - r, 0.0))  # speed at the floor
                y, vy = r, -floor_speed
            else:
                y, vy = y_new, vy - GRAVITY * h
        self.pos[i] = (x, y)
        self.vel[i] = (vx, vy)
        touched = floor_speed is not None
        if touched:
            self._bounce_floor(i, frame)
        return self._bounce_walls(i, frame) or touched

    def _bounce_floor(self, i: int, frame: int) -> None:
        """Object i sits on the floor moving down: sound, then bounce or come to rest."""
        r, material = self.radius[i], self.objects[i].material
        vx, vy = self.vel[i]
        speed = -vy
        self._contact(frame, i, speed, "floor")
        self.pos[i, 1] = r
        rebound = material.restitution * speed
        if rebound < REST_SPEED:
            self.floor[i] = True
            vy = 0.0
            if not self.sustained or abs(vx) < SLIDE_MIN:
                vx = 0.0
        else:
            vy = _apex_capped(rebound, r, r)
            vx *= BOUNCE_TANGENT_KEEP
        self.vel[i] = (vx, vy)

    def _bounce_walls(self, i: int, frame: int) -> bool:
        """Stop object i at a wall it reached and bounce it back; True when it touched one."""
        r, material = self.radius[i], self.objects[i].material
        touched = False
        for wall, inward in (("left_wall", 1.0), ("right_wall", -1.0)):
            limit = r if inward > 0 else 1.0 - r
            x, vx = self.pos[i, 0], self.vel[i, 0]
            if (x - limit) * inward < 0 or (x == limit and vx * inward < 0):
                speed = max(-vx * inward, 0.0)
                self._contact(frame, i, speed, wall)
                touched = True
                rebound = material.restitution * speed
                self.pos[i, 0] = limit
                self.vel[i, 0] = inward * rebound if rebound >= SLIDE_MIN else 0.0
        return touched

    def _collide_pairs(self, frozen: np.ndarray, frame: int) -> None:
        n = len(self.objects)
        for i in range(n):
            for j in range(i + 1, n):
                if self._static(i) and self._static(j):
                    continue
                d = self.pos[i] - self.pos[j]
                dist = float(np.hypot(*d))
                reach = self.radius[i] + self.radius[j]
                if dist >= reach:
                    continue
                normal = d / dist if dist > 1e-12 else np.array([1.0, 0.0])
                # An object on the floor hit from above is held by the floor: it cannot give way, so the
                # hit bounces off it cleanly instead of chattering on top of it.
                from_above = abs(normal[1]) > 0.5
                w = [
                    0.0 if self._static(k) or (self.floor[k] and from_above) else 1.0 / self.objects[k].mass
                    for k in (i, j)
                ]
                # Frozen objects already sit on a contact: keep them there, move only the other one.
                pw = [0.0 if frozen[k] else w[idx] for idx, k in enumerate((i, j))]
                if pw[0] + pw[1] > 0:
                    overlap = reach - dist
                    self.pos[i] += normal * overlap * pw[0] / (pw[0] + pw[1])
                    self.pos[j] -= normal * overlap * pw[1] / (pw[0] + pw[1])
                    self._clamp_to_box(i)
                    self._clamp_to_box(j)
                approach = float(np.dot(self.vel[i] - self.vel[j], normal))
                if approach >= 0 or w[0] + w[1] == 0:
                    continue
                # Weak hits do not bounce (like REST_SPEED on the floor), so objects never jitter.
                bounce = OBJECT_RESTITUTION if -approach * OBJECT_RESTITUTION >= REST_SPEED else 0.0
                impulse = -(1 + bounce) * approach / (w[0] + w[1])
                self.vel[i] += impulse * w[0] * normal
                self.vel[j] -= impulse * w[1] * normal
                self._contact(frame, i, -approach, "object", j)
                self._contact(frame, j, -approach, "object", i)
                frozen[i] = frozen[j] = True
                for k in (i, j):
                    self._after_push(k, frame)

    def _clamp_to_box(self, i: int) -> None:
        r = self.radius[i]
        self.pos[i, 0] = min(max(self.pos[i, 0], r), 1.0 - r)
        self.pos[i, 1] = max(self.pos[i, 1], r)

    def _after_push(self, i: int, frame: int) -> None:
        """Keep a pushed object's state consistent: it leaves the floor only if pushed up hard enough, and
        one pushed against the floor or a wall bounces off it in this same frame."""
        vx, vy = self.vel[i]
        if self.floor[i]:
            if vy > LIFT_MIN:
                self.floor[i] = False
            else:
                vy = 0.0
                if not self.sustained or abs(vx) < SLIDE_MIN:
                    vx = 0.0
        if not self.floor[i]:
            vy = _apex_capped(vy, self.pos[i, 1], self.radius[i])
        self.vel[i] = (vx, vy)
        if not self.floor[i] and self.pos[i, 1] <= self.radius[i] and vy < 0:
            self._bounce_floor(i, frame)
        self._bounce_walls(i, frame)

    # -- events --------------------------------------------------------------------------------------

    def _events(
        self, positions: np.ndarray, velocities: np.ndarray, on_floor: np.ndarray
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from vaura_core.foley_world.render import world_to_pixels

        spec = self.spec
        gap = math.ceil(MIN_GAP * spec.fps - 1e-9)
        loudest: dict[int, float] = {}
        for c in self.contacts.values():
            loudest[c.frame] = max(loudest.get(c.frame, 0.0), c.speed)
        kept: list[int] = []
        for frame in sorted(loudest, key=lambda f: (-loudest[f], f)):
            if all(abs(frame - other) >= gap for other in kept):
                kept.append(frame)
        kept_set = set(kept)

        def describe(c: _Contact) -> dict[str, Any]:
            px, py = world_to_pixels(positions[c.frame, c.obj], spec.size)
            return {
                "time": c.frame / spec.fps,
                "frame": c.frame,
                "object": c.obj,
                "material": self.objects[c.obj].material.name,
                "strength": round(min(c.speed / V_REF, 1.0), 4),
                "kind": "impact",
                "surface": c.surface,
                "with": c.other,
                "position": [round(float(px), 2), round(float(py), 2)],
            }

        ordered = sorted(self.contacts.values(), key=lambda c: (c.frame, c.obj))
        events = [describe(c) for c in ordered if c.frame in kept_set]
        silent = [describe(c) | {"reason": "min_gap"} for c in ordered if c.frame not in kept_set]
        if self.sustained:
            events.extend(self._sustained_events(velocities, on_floor))
        events.sort(key=lambda e: (e["frame"], e["kind"] != "impact", e["object"]))
        return events, silent

    def _sustained_events(self, velocities: np.ndarray, on_floor: np.ndarray) -> list[dict[str, Any]]:
        """One event per run of frames in which an object moves along the floor."""
        fps = self.spec.fps
        moving = on_floor & (np.abs(velocities[:, :, 0]) > 0)
        out = []
        for i, obj in enumerate(self.objects):
            run = np.flatnonzero(np.diff(np.concatenate([[0], moving[:, i].astype(np.int8), [0]])))
            for start, end in zip(run[::2], run[1::2], strict=True):
                peak = float(np.abs(velocities[start:end, i, 0]).max())
                out.append(
                    {
                        "time": int(start) / fps,
                        "frame": int(start),
                        "end": int(end) / fps,
                        "end_frame": int(end),
                        "object": i,
                        "material": obj.material.name,
                        "strength": round(min(peak / V_REF, 1.0), 4),
                        "kind": obj.material.sustained_kind,
                    }
                )
        return out

"""Where Foley World's objects are and how they move, patch by patch: dense targets for the visual tower.

Why: the event loss tells the tower only which visual token holds an impact, one label per token, and
most tokens hold none. Foley World knows every object's position and velocity on every frame, so the
tower can also be asked, for each of its patch tokens before the spatial pooling, whether an object is
there, how it moves, how hard something pushes it, how close the next object is and whether it
collides with one. Told that, a tower pretrained 700 steps found impacts better on 40 held-out scenes
(impact tokens right 0.507 -> 0.569, false alarms 0.098 -> 0.084, collisions of two objects 0.13 ->
0.21; docs/training-notes.md, eighteenth session). The head is a training aid like the event head's
loss; nothing of it ships.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from vaura_core.foley_world.render import world_to_pixels
from vaura_core.foley_world.scene import GRAVITY
from vaura_core.media.frames import default_short_side
from vaura_core.model.config import VisualConfig
from vaura_core.training.schedule import set_lr

if TYPE_CHECKING:
    from vaura_core.foley_world.scene import Scene
    from vaura_core.model.visual import MotionFormer

MOTION_CHANNELS = ("occupied", "vx", "vy", "push", "near", "collision")
# Per-channel mean and spread of the targets over every patch token (360 scenes, seeds 30000-30359):
# fixed, so the loss does not depend on which clips a run happens to draw first.
TARGET_MEAN = (0.1864, 0.0001, -0.0072, 0.2421, 0.0316, 0.0037)
TARGET_STD = (0.3883, 0.0966, 0.1576, 0.6394, 0.1568, 0.0610)
NEAR_SCALE = 0.03  # world units: "near" is exp(-gap / NEAR_SCALE) to the closest other object


def motion_targets(scene: Scene, n_frames: int, visual: VisualConfig) -> np.ndarray:
    """float32 (n_frames // tubelet, patches, 6) targets, channels as `MOTION_CHANNELS`.

    Each object counts in the patch of the model's frame (`data.model_frames`: the scene's square
    pictures scaled to the short side and centre-cropped) that holds its centre, on each frame of the
    token: "occupied" 1; "vx", "vy" its velocity (world units / s) averaged over the token's frames;
    "push" log(1 + 10 |dv - g dt|) summed over them (what pushed it besides gravity: contacts, and a
    steady push while it rests); "near" exp(-gap / NEAR_SCALE) for the closest other object's outline;
    "collision" 1 when it collides with another object in the token. Objects sharing a patch add their
    velocities and pushes; "near" and "collision" take the largest.
    """
    tub, grid = visual.tubelet, visual.img_size // visual.patch_size
    render = scene.spec.size
    short = default_short_side(visual.img_size)
    offset = round((short - visual.img_size) / 2)
    scale = short / render
    pos, vel = scene.positions[:n_frames], scene.velocities[:n_frames]
    n_tokens = n_frames // tub
    out = np.zeros((n_tokens, grid * grid, len(MOTION_CHANNELS)), np.float32)
    if n_tokens == 0 or pos.shape[1] == 0:
        return out
    push = np.zeros(vel.shape[:2])
    push[1:] = np.linalg.norm(vel[1:] - vel[:-1] - np.array([0.0, -GRAVITY / scene.spec.fps]), axis=-1)
    radii = np.array([o.radius for o in scene.objects])
    collides = {
        (int(e["frame"]), int(e["object"]))
        for e in scene.events
        if e["kind"] == "impact" and e.get("with") is not None
    }
    for k in range(n_tokens * tub):
        token = k // tub
        gaps = np.linalg.norm(pos[k][:, None] - pos[k][None], axis=-1) - radii[:, None] - radii[None]
        np.fill_diagonal(gaps, np.inf)
        for i in range(pos.shape[1]):
            x, y = world_to_pixels(pos[k, i], render)
            col = int(np.clip((x * scale - offset) // visual.patch_size, 0, grid - 1))
            row = int(np.clip((y * scale - offset) // visual.patch_size, 0, grid - 1))
            cell = out[token, row * grid + col]
            cell[0] = 1.0
            cell[1:3] += vel[k, i] / tub
            cell[3] += np.log1p(10.0 * push[k, i])
            # Alone in the scene its gap is infinite: nothing near.
            cell[4] = max(cell[4], float(np.exp(-max(gaps[i].min(), 0.0) / NEAR_SCALE)))
            if (k, i) in collides:
                cell[5] = 1.0
    return out


class MotionAux:
    """The motion head, its own optimizer, and the hook that hands it the tower's patch tokens.

    Kept apart from the model's optimizer groups so a checkpoint with or without it resumes alike.
    """

    def __init__(self, tower: MotionFormer, weight: float, lr: float, seed: int) -> None:
        self.tower, self.weight = tower, float(weight)
        dim = tower.cfg.dim
        self.head = nn.Linear(dim, len(MOTION_CHANNELS)).to(tower.cls_token.device)
        g = torch.Generator().manual_seed(seed * 7_919 + 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g) * 0.02)
            self.head.bias.zero_()
        self.opt = torch.optim.AdamW(self.head.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
        self._tokens: Tensor | None = None
        self._logged_sum, self._logged_n = 0.0, 0  # `batch_loss` values since `logged_mean`

    @contextlib.contextmanager
    def capture(self) -> Iterator[MotionAux]:
        """While open, every tower forward keeps its normalised patch tokens for `loss`."""

        def keep(_module: nn.Module, args: tuple[Any, ...]) -> None:
            self._tokens = args[0]

        handle = self.tower.spatial_attn_agg.register_forward_pre_hook(keep)
        try:
            yield self
        finally:
            handle.remove()
            self._tokens = None

    def loss(self, targets: Tensor) -> Tensor:
        """Mean squared error of the last forward's patch tokens against targets (B, Tv, patches, C),
        standardised; the channels other than "occupied" count only where an object is."""
        if self._tokens is None:
            raise RuntimeError("no patch tokens captured: run the tower inside `capture()`")
        targets = targets.to(self._tokens.device, torch.float32)
        pred = self.head(self._tokens).reshape(targets.shape).float()
        mean = torch.tensor(TARGET_MEAN, device=targets.device)
        std = torch.tensor(TARGET_STD, device=targets.device)
        where = torch.ones_like(targets)
        where[..., 1:] = (targets[..., :1] > 0).float()
        return (((pred - (targets - mean) / std) ** 2) * where).sum() / where.sum()

    def batch_loss(self, data: Any, step: int, batch_size: int, seed: int) -> Tensor:
        """`loss` against the targets of a batch source's step (its `step_motion`), the head's
        gradients cleared for the backward pass to come; kept for `logged_mean`."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(data.step_motion(step, batch_size, seed))
        self._logged_sum += float(loss.detach())
        self._logged_n += 1
        return loss

    def logged_mean(self) -> float:
        """Mean `batch_loss` since the last call (a training log row's `motion` column)."""
        mean = self._logged_sum / self._logged_n if self._logged_n else float("nan")
        self._logged_sum, self._logged_n = 0.0, 0
        return mean

    def step(self, lr: float, clip: float) -> None:
        set_lr(self.opt, lr)
        nn.utils.clip_grad_norm_(self.head.parameters(), clip)
        self.opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.opt.load_state_dict(state["optimizer"])


def motion_aux(tower: MotionFormer, data: object, weight: float, lr: float, seed: int) -> MotionAux | None:
    """The tower's motion loss for a training loop when `weight` > 0; `data` (a batch source) must
    give motion targets with its batches (`has_motion`)."""
    if not weight >= 0:
        raise ValueError(f"motion_weight must be >= 0, got {weight}")
    if weight == 0:
        return None
    if not getattr(data, "has_motion", False):
        raise ValueError("the motion loss needs freshly rendered clips with motion targets (or weight 0)")
    return MotionAux(tower, weight, lr, seed)


def capturing(motion: MotionAux | None) -> contextlib.AbstractContextManager[Any]:
    """`motion.capture()`, or nothing to do without a motion loss."""
    return motion.capture() if motion is not None else contextlib.nullcontext()


def plus_motion_loss(
    total: Tensor, motion: MotionAux | None, data: Any, step: int, batch_size: int, seed: int
) -> Tensor:
    """A training step's loss `total` plus the weighted motion loss of its batch (`batch_loss`), or
    `total` itself without a motion loss."""
    if motion is None:
        return total
    return total + motion.weight * motion.batch_loss(data, step, batch_size, seed)

"""How well a trained visual tower finds Foley World's impacts, token by token (`vaura tower-events`).

Why: the generated audio can follow the picture only as well as the tower's features tell where the
impacts are (docs/training-notes.md, seventh session). The event head trained beside the tower
(`lm_train.EventHead`) reads the same features the transformer's projection reads, so its calls on
scenes never trained on measure what the transformer can use. Works on a work folder's `tower.pt`
(after pretraining) and `lm.pt` (after the transformer stage, which keeps training both), and on a
model folder whose model has impact cues (its event head ships with it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaura_core.errors import CheckpointFormatError, VauraError
from vaura_core.media.frames import to_model_tensor
from vaura_core.model.config import VAuraConfig
from vaura_core.model.visual import MotionFormer
from vaura_core.training.data import clip_of_scene, material_of, render_scene, token_labels
from vaura_core.training.lm_train import EventHead
from vaura_core.training.resume import mismatch_detail
from vaura_core.weights.importers import VISUAL, infer_visual_config

CUE_HEAD = "sampler.cue_head."  # state-dict prefix of the event head a model with impact cues ships


@dataclass
class EventDetection:
    """Token counts (pooled over scenes) and, per kind of impact event, (found, total)."""

    impact_tokens: int = 0
    right: int = 0  # the impact's material called
    missed: int = 0  # "no impact" called
    wrong_material: int = 0
    empty_tokens: int = 0
    false_alarms: int = 0  # an impact called on a token without one
    found_by_kind: dict[str, list[int]] = field(default_factory=dict)

    def add(self, other: EventDetection) -> None:
        for name in ("impact_tokens", "right", "missed", "wrong_material", "empty_tokens", "false_alarms"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, (found, total) in other.found_by_kind.items():
            mine = self.found_by_kind.setdefault(kind, [0, 0])
            mine[0] += found
            mine[1] += total

    def rates(self) -> dict[str, float]:
        n, empty = max(self.impact_tokens, 1), max(self.empty_tokens, 1)
        out = {
            "right": self.right / n,
            "missed": self.missed / n,
            "wrong_material": self.wrong_material / n,
            "false_alarms": self.false_alarms / empty,
        }
        out.update({f"found_{k}": f / t for k, (f, t) in sorted(self.found_by_kind.items()) if t})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rates": self.rates()}


def event_kind(event: dict[str, Any]) -> str:
    """ "object" (two objects collide), "floor" or "wall"."""
    if event.get("with") is not None:
        return "object"
    return "floor" if event.get("surface") == "floor" else "wall"


def score_tokens(
    predicted: np.ndarray, labels: np.ndarray, impacts: Sequence[dict[str, Any]], tubelet: int
) -> EventDetection:
    """Score per-token calls (0: none, k: material k) against labels of the same tokens.

    `impacts` are the scene's impact events; each counts as found when its token got any impact call
    (both objects of a collision are events of their own, as in the scene's list).
    """
    n = min(len(predicted), len(labels))
    pred, lab = np.asarray(predicted[:n]), np.asarray(labels[:n])
    hit = lab > 0
    out = EventDetection(
        impact_tokens=int(hit.sum()),
        right=int((pred[hit] == lab[hit]).sum()),
        missed=int((pred[hit] == 0).sum()),
        empty_tokens=int((~hit).sum()),
        false_alarms=int((pred[~hit] > 0).sum()),
    )
    out.wrong_material = out.impact_tokens - out.right - out.missed
    for e in impacts:
        token = int(e["frame"]) // tubelet
        if token < n:
            counts = out.found_by_kind.setdefault(event_kind(e), [0, 0])
            counts[0] += int(pred[token] > 0)
            counts[1] += 1
    return out


def load_probe(path: Path, cfg: VAuraConfig) -> tuple[MotionFormer, EventHead]:
    """The tower and event head of a `tower.pt` or `lm.pt` from `vaura train-tiny`'s work folder.

    The tower takes the checkpoint's sizes (input size from `train-tiny --img-size`, depth, ...),
    read off its shapes with `cfg` for what shapes cannot tell; the returned tower's `cfg` says which.
    """
    if path.is_dir():
        return _model_folder_probe(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise VauraError(f"{path}: no such file") from None
    except Exception:  # a torn or foreign file: name it, no traceback (torch's messages say little)
        raise VauraError(f"{path}: not a readable training checkpoint (tower.pt or lm.pt)") from None
    if not isinstance(state, dict):
        raise VauraError(f"{path}: not a training checkpoint")
    if "tower" in state and "head" in state:
        tower_state, head_state = state["tower"], state["head"]
    elif "model" in state and state.get("aux_head") is not None:
        tower_state = _sub_state(state["model"], VISUAL)
        head_state = state["aux_head"]
    else:
        raise VauraError(
            f"{path}: neither a pretrained tower (tower.pt) nor a transformer-stage checkpoint "
            "with its event head (lm.pt)"
        )
    try:
        visual = infer_visual_config(tower_state, cfg)
    except CheckpointFormatError:
        visual = cfg.visual  # loading below names the first tensor that does not fit
    tower = MotionFormer(visual)
    try:
        head = EventHead(visual.dim, EventHead.classes_in(head_state))  # plain or phased labels
    except (KeyError, AttributeError, IndexError, TypeError):
        raise VauraError(f"{path}: its event head is not a linear head of this project") from None
    try:
        tower.load_state_dict(tower_state)
        head.load_state_dict(head_state)
    except RuntimeError as exc:
        raise VauraError(
            f"{path}: does not fit the {cfg.name} visual tower: {mismatch_detail(exc, 160)}"
        ) from None
    return tower.eval(), head.eval()


def _model_folder_probe(folder: Path) -> tuple[MotionFormer, EventHead]:
    """A model folder's tower and its own event head, which models with impact cues ship."""
    from vaura_core.weights.store import load_state

    try:
        cfg, state = load_state(folder)
    except VauraError as exc:
        why = str(exc).removeprefix(f"{folder}: ")
        raise VauraError(
            f"{folder}: is a folder but not a model ({why}); give a work folder's tower.pt or lm.pt, or "
            "a model folder with impact cues"
        ) from None
    if not cfg.lm.impact_cues:
        raise VauraError(
            f"{folder}: this model ships no event head (trained without impact cues); give the tower.pt "
            "or lm.pt of the work folder that trained it"
        )
    tower = MotionFormer(cfg.visual)
    tower.load_state_dict(_sub_state(state, VISUAL))
    head = EventHead(cfg.visual.dim, cfg.lm.impact_cues)
    head.proj.load_state_dict(_sub_state(state, CUE_HEAD))
    return tower.eval(), head.eval()


def _sub_state(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors of one module of a model's state dict, named as inside it."""
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


@torch.no_grad()
def token_calls(tower: MotionFormer, head: EventHead, frames: np.ndarray) -> np.ndarray:
    """uint8 (n, S, S, 3) frames at the tower's size -> one call per visual token of the whole segments
    (0 none, k material k: a phased head's frame is dropped)."""
    f = tower.cfg.frames
    whole = len(frames) // f * f
    if whole == 0:
        return np.zeros(0, dtype=np.int64)
    feats: Tensor = tower.encode_segments(to_model_tensor(frames[:whole], f), chunk=8)
    return material_of(head(feats.reshape(-1, feats.shape[-1])).argmax(-1).numpy())


def probe_tower(
    path: Path,
    cfg: VAuraConfig,
    seeds: Sequence[int],
    duration: float,
    progress: Callable[[int, int], None] | None = None,
) -> EventDetection:
    """Render Foley World scenes `seeds` and score the checkpoint's event calls on their tokens."""
    tower, head = load_probe(Path(path), cfg)
    cfg = replace(cfg, visual=tower.cfg)  # the frames at the size the checkpoint's tower takes
    total = EventDetection()
    for i, seed in enumerate(seeds):
        scene = render_scene(seed, cfg, duration)  # the events' kinds are needed, not only the labels
        clip = clip_of_scene(scene, seed, cfg)
        assert clip.events is not None
        labels = token_labels(clip.events, cfg.visual.tubelet)
        impacts = [e for e in scene.events if e["kind"] == "impact"]
        total.add(score_tokens(token_calls(tower, head, clip.frames), labels, impacts, cfg.visual.tubelet))
        if progress:
            progress(i + 1, len(seeds))
    return total

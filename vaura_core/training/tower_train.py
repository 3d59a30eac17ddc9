"""Pretraining of the visual tower on Foley World's impact events, before the transformer sees it.

Why: trained jointly from scratch, the transformer settles on predicting audio from audio long before
the tower's features say anything about impacts (the first runs: the loss on held-out clips was the
same with the clip's own video and with another clip's). Segment AVCLIP, the release's tower, comes
pretrained too (audio-visual contrastive training in Synchformer); ours is pretrained on what
Foley World can label exactly: for every visual token, which material's impact starts in its frames,
or none. The linear `EventHead` reads the same raw features the transformer's projection reads, so
what it can tell apart is what the transformer can use from its first step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from vaura_core.model.vaura import VAura
from vaura_core.training.lm_train import (
    BatchSource,
    EventHead,
    LMTrainSettings,
    aux_class_weights,
    aux_event_loss,
    make_optimizer,
    optimizer_step,
    visual_features,
)
from vaura_core.training.motion import capturing, motion_aux, plus_motion_loss
from vaura_core.training.schedule import StepBudget, cosine_lr, set_lr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TowerTrainSettings:
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 40
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    motion_weight: float = 0.0  # the dense motion loss (`motion.MotionAux`); 0: events only


@dataclass
class TowerTrainResult:
    steps: int
    seconds: float
    head: EventHead
    history: list[dict[str, float]] = field(default_factory=list)
    motion: dict[str, Any] | None = None  # the motion head's state, for the transformer stage


def pretrain_tower(
    model: VAura,
    data: BatchSource,
    budget: StepBudget,
    *,
    seed: int,
    settings: TowerTrainSettings | None = None,
    log_every: int = 25,
) -> TowerTrainResult:
    """Train `model`'s visual tower and a fresh event head on the labels of `data` (codes unused)."""
    s = settings or TowerTrainSettings()
    if not data.has_labels:
        raise ValueError("pretraining the visual tower needs clips with event labels")
    device = model.device
    tower = model.visual_feature_extractor
    tower.train().requires_grad_(True)
    tower.patch_embed.requires_grad_(False)  # unused at run time
    counts = data.label_counts()  # its length: plain or phased labels (data.event_class_count)
    head = EventHead(model.cfg.visual.dim, len(counts))
    head.reset_parameters(torch.Generator().manual_seed(seed * 104_729 + 17))
    head.to(device).train()
    opt_settings = LMTrainSettings(lr=s.lr, weight_decay=s.weight_decay, betas=s.betas)
    opt = make_optimizer(model, opt_settings, parts=[tower, head])
    class_weight = aux_class_weights(counts).to(device)
    params = [p for group in opt.param_groups for p in group["params"]]
    motion = motion_aux(tower, data, s.motion_weight, s.lr, seed)
    history: list[dict[str, float]] = []
    acc_loss, acc_n, acc_correct, acc_impacts = 0.0, 0, 0, 0
    t0 = time.perf_counter()
    budget.start()
    step = 0
    with capturing(motion):
        while not budget.finished(step):
            lr = cosine_lr(step, budget.total, s.lr, s.warmup)
            set_lr(opt, lr)
            frames, _codes, labels = data.step_batch(step, s.batch_size, seed)
            assert labels is not None
            feats = visual_features(model, frames.to(device))
            loss, correct, impacts = aux_event_loss(head, feats, labels.to(device), class_weight)
            total = plus_motion_loss(loss, motion, data, step, s.batch_size, seed)
            optimizer_step(opt, total, params, s.grad_clip, lr, motion)
            step += 1
            budget.update(step)
            acc_loss += float(loss.detach())
            acc_n += 1
            acc_correct += correct
            acc_impacts += impacts
            if step % log_every == 0 or budget.finished(step):
                row = {
                    "step": float(step),
                    "lr": lr,
                    "aux": acc_loss / acc_n,
                    "aux_acc": acc_correct / acc_impacts if acc_impacts else float("nan"),
                }
                if motion is not None:
                    row["motion"] = motion.logged_mean()
                history.append(row)
                acc_loss, acc_n, acc_correct, acc_impacts = 0.0, 0, 0, 0
                log.info(
                    "tower step %d/%d  event loss %.4f  impact accuracy %.3f  lr %.2e",
                    step,
                    budget.total,
                    row["aux"],
                    row["aux_acc"],
                    lr,
                )
    motion_state = motion.state_dict() if motion is not None else None
    return TowerTrainResult(step, time.perf_counter() - t0, head, history, motion_state)

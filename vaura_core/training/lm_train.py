"""Teacher-forced training of the fusion transformer and the visual tower, jointly, from scratch.

Spec: shared/reference/vaura.md section 5 and 3.3. A 2.56 s window gives 221 codec steps; the delayed
pattern is built for 221 steps from the first 220 (the last step's slots hold the special token), so
the sequence has L = 230 positions. The logit at position t + q predicts code (q, t); cross-entropy is
taken per codebook over its 221 valid steps and averaged over the codebooks. With probability
`cfg_dropout` per sample the raw visual features are replaced by the fixed `uncond_embedding`, which
teaches the null condition that classifier-free guidance subtracts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaura_core.model.pattern import build_delayed
from vaura_core.model.vaura import VAura
from vaura_core.training.data import EpochSampler, WindowSet
from vaura_core.training.schedule import StepBudget, cosine_lr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LMTrainSettings:
    batch_size: int = 8
    lr: float = 2e-3
    warmup: int = 40
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    cfg_dropout: float = 0.1  # per-sample probability of the null condition (as the release)


@dataclass
class LMTrainResult:
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def trainable_parts(model: VAura) -> list[nn.Module]:
    """What the LM stage trains: the visual tower and the transformer (the codec stays frozen)."""
    return [model.visual_feature_extractor, model.sampler]


def teacher_forcing_inputs(codes: Tensor, special: int) -> Tensor:
    """(B, Q, T) window codes -> (B, Q, T + Q) delayed input with step T - 1 hidden (special)."""
    shown = codes.clone()
    shown[..., -1] = special
    return build_delayed(shown, special)


def codebook_losses(logits: Tensor, codes: Tensor) -> Tensor:
    """Per-codebook cross-entropy (Q,) of (B, Q, L, V) logits against (B, Q, T) codes.

    The logit at position t + q predicts code (q, t), for t in [0, T).
    """
    n_q, n_t = codes.shape[1], codes.shape[2]
    out = []
    for q in range(n_q):
        pred = logits[:, q, q : q + n_t]  # (B, T, V)
        out.append(F.cross_entropy(pred.reshape(-1, pred.shape[-1]).float(), codes[:, q].reshape(-1)))
    return torch.stack(out)


def lm_loss(
    model: VAura, frames: Tensor, codes: Tensor, null_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Mean and per-codebook losses for frames (B, S, 3, F, H, W) and codes (B, Q, window_tokens).

    `null_mask` (B,) bool selects the samples conditioned on the null video.
    """
    cfg = model.cfg
    b = frames.shape[0]
    feats = model.visual_feature_extractor(frames).reshape(b, cfg.lm.video_tokens, -1)
    if null_mask is not None and bool(null_mask.any()):
        null = model.sampler.null_features(b).to(feats.dtype)
        feats = torch.where(null_mask[:, None, None], null, feats)
    video = model.sampler.project_video(feats)
    seq = teacher_forcing_inputs(codes, cfg.special_token)
    logits = model.sampler(seq, video)
    per_q = codebook_losses(logits, codes)
    return per_q.mean(), per_q.detach()


def make_optimizer(model: VAura, s: LMTrainSettings) -> torch.optim.Optimizer:
    """AdamW; norms, biases, embeddings and the learned positional tables get no weight decay."""
    decay, plain = [], []
    for part in trainable_parts(model):
        for name, p in part.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.dim() < 2 or "emb" in name or name.endswith(("cls_token", "pos_embed", "temp_embed"))
            (plain if no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=s.lr, betas=s.betas)


def train_lm(
    model: VAura,
    data: WindowSet,
    budget: StepBudget,
    *,
    seed: int,
    settings: LMTrainSettings | None = None,
    log_every: int = 25,
    checkpoint: Path | None = None,
    checkpoint_seconds: float = 300.0,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> LMTrainResult:
    """Train `model`'s visual tower and transformer on `data`; resumes from `checkpoint` if it exists.

    The batch of step k and its null-condition draws depend only on (seed, k), so a resumed run takes
    the same batches as an uninterrupted one.
    """
    s = settings or LMTrainSettings()
    device = model.device
    for part in trainable_parts(model):
        part.train().requires_grad_(True)
    model.visual_feature_extractor.patch_embed.requires_grad_(False)  # unused at run time
    opt = make_optimizer(model, s)
    sampler = EpochSampler(len(data), s.batch_size, seed)
    history: list[dict[str, float]] = []
    step = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        history = [dict(zip(state["history_keys"], row, strict=True)) for row in state["history"].tolist()]
        log.info("resumed the LM from %s at step %d", checkpoint, step)

    t0 = time.perf_counter()
    last_save = t0
    budget.start(step)
    budget.update(step)
    acc_loss, acc_q, acc_n = 0.0, None, 0
    while not budget.finished(step):
        lr = cosine_lr(step, budget.total, s.lr, s.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        frames, codes = data.batch(sampler.indices(step))
        g = torch.Generator().manual_seed(seed * 7919 + step)
        null_mask = torch.rand(len(codes), generator=g) < s.cfg_dropout
        loss, per_q = lm_loss(model, frames.to(device), codes.to(device), null_mask.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for part in trainable_parts(model) for p in part.parameters() if p.requires_grad]
        nn.utils.clip_grad_norm_(params, s.grad_clip)
        opt.step()
        step += 1
        budget.update(step)
        acc_loss += float(loss)
        acc_q = per_q.cpu() if acc_q is None else acc_q + per_q.cpu()
        acc_n += 1
        if step % log_every == 0 or budget.finished(step):
            row = {"step": float(step), "lr": lr, "loss": acc_loss / acc_n}
            row.update({f"q{q}": float(v) / acc_n for q, v in enumerate(acc_q)})
            history.append(row)
            acc_loss, acc_q, acc_n = 0.0, None, 0
            log.info(
                "lm step %d/%d  loss %.4f  q0 %.4f  lr %.2e", step, budget.total, row["loss"], row["q0"], lr
            )
            if on_log is not None:
                on_log(row)
        if checkpoint is not None and time.perf_counter() - last_save > checkpoint_seconds:
            save_checkpoint(checkpoint, model, opt, step, history)
            last_save = time.perf_counter()
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, opt, step, history)
    model.requires_grad_(False).eval()
    return LMTrainResult(step, time.perf_counter() - t0, history)


def save_checkpoint(
    path: Path, model: VAura, opt: torch.optim.Optimizer, step: int, history: list[dict[str, float]]
) -> None:
    """Write the training state atomically (temp file in the same folder, then rename)."""
    keys = list(history[0]) if history else []
    table = torch.tensor([[row[k] for k in keys] for row in history], dtype=torch.float64)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "history": table,
        "history_keys": keys,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)

"""Teacher-forced training of the fusion transformer and the visual tower, jointly, from scratch.

Spec: shared/reference/vaura.md section 5 and 3.3. A 2.56 s window gives 221 codec steps; the delayed
pattern is built for 221 steps from the first 220 (the last step's slots hold the special token), so
the sequence has L = 230 positions. The logit at position t + q predicts code (q, t); cross-entropy is
taken per codebook over its 221 valid steps and averaged over the codebooks. With probability
`cfg_dropout` per sample the raw visual features are replaced by the fixed `uncond_embedding`, which
teaches the null condition that classifier-free guidance subtracts.

Auxiliary event supervision: the audio-token loss alone gives the visual tower too weak a gradient
to learn when things happen (the model ended up ignoring the video). Foley World knows every impact,
so an `EventHead` owned by this training code (not part of `VAura`: the shipped tensor names stay
those of the release) reads each raw visual token and predicts the material of the impact it covers,
or none; `aux_weight` times its class-weighted cross-entropy is added to the LM loss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaura_core.model.pattern import build_delayed
from vaura_core.model.vaura import VAura
from vaura_core.training.data import N_EVENT_CLASSES
from vaura_core.training.motion import MotionAux, capturing, motion_aux, plus_motion_loss
from vaura_core.training.resume import load_part
from vaura_core.training.schedule import StepBudget, cosine_lr, set_lr

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    """Where training batches come from: a fixed `WindowSet` or a `stream.ClipStream` of fresh clips."""

    @property
    def has_labels(self) -> bool: ...

    def label_counts(self) -> Tensor: ...

    def step_batch(self, step: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Frames (B, S, 3, F, H, W), codes (B, Q, T) and token labels (B, Tv) or None, of step `step`."""
        ...

    @property
    def has_motion(self) -> bool: ...

    def step_motion(self, step: int, batch_size: int, seed: int) -> Tensor:
        """Motion targets (B, Tv, patches, channels) of `step_batch`'s windows (`motion`)."""
        ...


@dataclass(frozen=True)
class LMTrainSettings:
    batch_size: int = 8
    lr: float = 2e-3
    warmup: int = 40
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    cfg_dropout: float = 0.1  # per-sample probability of the null condition (as the release)
    aux_weight: float = 1.0  # weight of the visual event loss; 0 trains exactly as without it
    # Extra loss weight of the audio tokens under a visual token that holds an impact (for samples
    # that see their video): onsets are a small share of the tokens but all of what sync is about.
    # 0 is the plain mean.
    onset_weight: float = 0.0
    # The onset weight holds until this fraction of the steps, then falls linearly to 0 at
    # `onset_fade_end`: it teaches the transformer to heed the picture early on, but a model still
    # trained with it at the end sounds hits where the picture is ambiguous (training notes, run 19).
    # 1.0 and 1.0: constant to the end, as every run before 19.
    onset_fade_start: float = 1.0
    onset_fade_end: float = 1.0
    # Weight of the tower's dense motion loss (`motion.MotionAux`); 0 trains exactly as without it.
    motion_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.onset_fade_start <= self.onset_fade_end <= 1.0:
            raise ValueError(
                "the onset weight's fade must satisfy 0 <= start <= end <= 1, got "
                f"{self.onset_fade_start} and {self.onset_fade_end}"
            )

    def onset_weight_at(self, step: int, total: int) -> float:
        """The extra weight of impact tokens at `step` of `total`."""
        x = step / max(total, 1)
        if x < self.onset_fade_start:
            return self.onset_weight
        if x >= self.onset_fade_end:
            return 0.0
        return self.onset_weight * (self.onset_fade_end - x) / (self.onset_fade_end - self.onset_fade_start)


@dataclass
class LMTrainResult:
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    aux_head: EventHead | None = None  # the trained event head (None when aux_weight is 0)


class EventHead(nn.Module):
    """Visual token feature (visual dim) -> logits over "no impact" and the M impact materials.

    A single linear layer on purpose: the fusion transformer sees the features through a linear
    projection too, so what this probe can read is what the transformer can use; a deeper head
    could learn the events itself and leave the tower's features as they were.
    """

    def __init__(self, dim: int, n_classes: int = N_EVENT_CLASSES, proj: nn.Linear | None = None) -> None:
        super().__init__()
        self.proj = proj if proj is not None else nn.Linear(dim, n_classes)

    @property
    def n_classes(self) -> int:
        return self.proj.out_features

    @staticmethod
    def classes_in(state: dict[str, Tensor]) -> int:
        """The classes of a saved head's state dict (plain or phased labels)."""
        return int(state["proj.weight"].shape[0])

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise from `generator` alone, so the model's own initialisation and RNG are untouched."""
        nn.init.trunc_normal_(self.proj.weight, std=0.02, generator=generator)
        nn.init.zeros_(self.proj.bias)

    @classmethod
    def on(cls, proj: nn.Linear) -> EventHead:
        """A head whose layer is `proj` itself (shared parameters), e.g. a model's cue head."""
        return cls(proj.in_features, proj.out_features, proj)

    def forward(self, feats: Tensor) -> Tensor:
        return self.proj(feats)


def aux_class_weights(counts: Tensor) -> Tensor:
    """Cross-entropy class weights from token label counts: tempered inverse frequency.

    Impact tokens are a minority (about one in six in Foley World, a few percent per material), so
    plain cross-entropy is cheaply lowered by saying "none". Full inverse frequency overcorrects (the
    head then calls impacts everywhere); its square root gives the impact tokens together about the
    weight of the empty ones. Classes absent from the data get the largest weight seen (it never
    applies: no target has them). Normalised so that "none" (the commonest class) weighs 1.
    """
    counts = counts.double()
    seen = counts > 0
    if not bool(seen.any()):
        return torch.ones(len(counts))
    w = torch.zeros_like(counts)
    w[seen] = (counts.sum() / (len(counts) * counts[seen])).sqrt()
    w[~seen] = w[seen].max()
    return (w / w[seen].min()).float()


def trainable_parts(model: VAura) -> list[nn.Module]:
    """What the LM stage trains: the visual tower and the transformer (the codec stays frozen)."""
    return [model.visual_feature_extractor, model.sampler]


def teacher_forcing_inputs(codes: Tensor, special: int) -> Tensor:
    """(B, Q, T) window codes -> (B, Q, T + Q) delayed input with step T - 1 hidden (special)."""
    shown = codes.clone()
    shown[..., -1] = special
    return build_delayed(shown, special)


def codebook_losses(logits: Tensor, codes: Tensor, weight: Tensor | None = None) -> Tensor:
    """Per-codebook cross-entropy (Q,) of (B, Q, L, V) logits against (B, Q, T) codes.

    The logit at position t + q predicts code (q, t), for t in [0, T). `weight` (B, T) makes each a
    weighted mean over timesteps.
    """
    n_q, n_t = codes.shape[1], codes.shape[2]
    out = []
    for q in range(n_q):
        pred = logits[:, q, q : q + n_t].reshape(-1, logits.shape[-1]).float()  # (B * T, V)
        if weight is None:
            out.append(F.cross_entropy(pred, codes[:, q].reshape(-1)))
        else:
            each = F.cross_entropy(pred, codes[:, q].reshape(-1), reduction="none")
            out.append((each * weight.reshape(-1)).sum() / weight.sum())
    return torch.stack(out)


def onset_token_weights(labels: Tensor, n_tokens: int, extra: float, seen: Tensor | None = None) -> Tensor:
    """(B, T) loss weights: 1 + `extra` for audio timesteps inside a visual token labelled with an
    impact (labels (B, Tv), 0 = none), by time (token j covers timesteps [j T / Tv, (j + 1) T / Tv)).
    Rows where `seen` (B,) is False (the null video) keep weight 1."""
    t = torch.arange(n_tokens, device=labels.device)
    token = (t * labels.shape[1]) // n_tokens
    impact = (labels[:, token] > 0).float()
    if seen is not None:
        impact = impact * seen[:, None].float()
    return 1.0 + extra * impact


def visual_features(model: VAura, frames: Tensor) -> Tensor:
    """Raw visual token features (B, video_tokens, visual dim) of frames (B, S, 3, F, H, W)."""
    return model.visual_feature_extractor(frames).reshape(frames.shape[0], model.cfg.lm.video_tokens, -1)


def lm_loss(
    model: VAura, frames: Tensor, codes: Tensor, null_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Mean and per-codebook losses for frames (B, S, 3, F, H, W) and codes (B, Q, window_tokens).

    `null_mask` (B,) bool selects the samples conditioned on the null video.
    """
    return lm_loss_from_features(model, visual_features(model, frames), codes, null_mask)


def lm_loss_from_features(
    model: VAura,
    feats: Tensor,
    codes: Tensor,
    null_mask: Tensor | None = None,
    token_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """`lm_loss` from already computed raw visual features (B, video_tokens, visual dim);
    `token_weight` (B, T) as `codebook_losses`."""
    cfg = model.cfg
    video = model.sampler.project_video(feats, null_mask)
    seq = teacher_forcing_inputs(codes, cfg.special_token)
    logits = model.sampler(seq, video)
    per_q = codebook_losses(logits, codes, token_weight)
    return per_q.mean(), per_q.detach()


def aux_event_loss(
    head: EventHead, feats: Tensor, labels: Tensor, class_weight: Tensor
) -> tuple[Tensor, int, int]:
    """Weighted cross-entropy of the event head on raw features (B, Tv, D) against labels (B, Tv).

    Also returns the number of impact tokens and how many of them got their material right (the
    accuracy that matters: "none" is right most of the time whatever the tower learns).
    """
    logits = head(feats).float()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), weight=class_weight)
    impact = labels > 0
    correct = int((logits.argmax(-1)[impact] == labels[impact]).sum())
    return loss, correct, int(impact.sum())


@torch.no_grad()
def video_reliance(model: VAura, frames: Tensor, codes: Tensor) -> tuple[float, float]:
    """Loss of held-out windows with their own video, and with the next window's video (rolled).

    A model that follows the picture does clearly better with its own video; one that ignores it
    scores the same with both (what the first vaura-tiny runs did).
    """
    feats = visual_features(model, frames)
    own, _ = lm_loss_from_features(model, feats, codes)
    other, _ = lm_loss_from_features(model, feats.roll(1, dims=0), codes)
    return float(own), float(other)


def make_optimizer(
    model: VAura, s: LMTrainSettings, parts: list[nn.Module] | None = None
) -> torch.optim.Optimizer:
    """AdamW over `parts` (default `trainable_parts`); norms, biases, embeddings and the learned
    positional tables get no weight decay."""
    decay, plain = [], []
    for part in parts if parts is not None else trainable_parts(model):
        for name, p in part.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.dim() < 2 or "emb" in name or name.endswith(("cls_token", "pos_embed", "temp_embed"))
            (plain if no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=s.lr, betas=s.betas)


def _aux_groups(head: EventHead, s: LMTrainSettings) -> list[dict[str, Any]]:
    """The event head's optimizer groups (weights decayed, bias not), added after the model's."""
    return [
        {"params": [head.proj.weight], "weight_decay": s.weight_decay},
        {"params": [head.proj.bias], "weight_decay": 0.0},
    ]


def _first_groups(state: dict[str, Any], n: int) -> dict[str, Any]:
    """An optimizer state dict cut to its first `n` parameter groups (and their moments)."""
    groups = state["param_groups"][:n]
    kept = {i for g in groups for i in g["params"]}
    return {"state": {i: v for i, v in state["state"].items() if i in kept}, "param_groups": groups}


def train_lm(
    model: VAura,
    data: BatchSource,
    budget: StepBudget,
    *,
    seed: int,
    settings: LMTrainSettings | None = None,
    log_every: int = 25,
    checkpoint: Path | None = None,
    checkpoint_seconds: float = 300.0,
    on_log: Callable[[dict[str, float]], None] | None = None,
    probe: tuple[Tensor, Tensor] | None = None,
    probe_every: int = 250,
    aux_head: EventHead | None = None,
    motion_head: dict[str, Any] | None = None,
) -> LMTrainResult:
    """Train `model`'s visual tower and transformer on `data`; resumes from `checkpoint` if it exists.

    The batch of step k and its null-condition draws depend only on (seed, k), so a resumed run takes
    the same batches as an uninterrupted one. `probe` (held-out frames and codes) adds the
    `video_reliance` losses to the log row every `probe_every` steps and at the end. `aux_head` is an
    event head trained before (`tower_train.pretrain_tower`) to go on with instead of a fresh one;
    `motion_head` likewise the state of its `MotionAux`, used when `settings.motion_weight` > 0.
    """
    s = settings or LMTrainSettings()
    if not s.aux_weight >= 0:
        raise ValueError(f"aux_weight must be >= 0, got {s.aux_weight}")
    if not s.onset_weight >= 0:
        raise ValueError(f"onset_weight must be >= 0, got {s.onset_weight}")
    if s.onset_weight > 0 and not data.has_labels:
        raise ValueError("onset weighting needs clips with event labels (or onset_weight=0)")
    use_aux = s.aux_weight > 0
    motion = motion_aux(model.visual_feature_extractor, data, s.motion_weight, s.lr, seed)
    if motion is not None and motion_head is not None:
        motion.load_state_dict(motion_head)
    if use_aux and not data.has_labels:
        raise ValueError("the auxiliary event loss needs clips with event labels (or aux_weight=0)")
    device = model.device
    for part in trainable_parts(model):
        part.train().requires_grad_(True)
    model.visual_feature_extractor.patch_embed.requires_grad_(False)  # unused at run time
    opt = make_optimizer(model, s)
    n_model_groups = len(opt.param_groups)
    head: EventHead | None = None
    # A model with impact cues owns its event head (`FusionLM.cue_head`): the event loss trains that
    # one, through the model's optimizer groups, and a pretrained head is its starting point.
    cues = model.cfg.lm.impact_cues
    class_weight = torch.ones(N_EVENT_CLASSES)
    if use_aux:
        counts = data.label_counts()
        if cues and cues != len(counts):
            raise ValueError(f"the model's cue head has {cues} classes, the labels {len(counts)}")
        head = aux_head
        if head is not None and head.n_classes != len(counts):
            raise ValueError(f"the event head has {head.n_classes} classes, the labels {len(counts)}")
        if cues:
            if aux_head is not None:
                model.sampler.cue_head.load_state_dict(aux_head.proj.state_dict())
            head = EventHead.on(model.sampler.cue_head)
        elif head is None:
            head = EventHead(model.cfg.visual.dim, len(counts))
            head.reset_parameters(torch.Generator().manual_seed(seed * 104_729 + 17))
        head.to(device).train().requires_grad_(True)
        class_weight = aux_class_weights(counts)
        log.info("event head class weights %s", [round(float(w), 3) for w in class_weight])
    class_weight = class_weight.to(device)
    history: list[dict[str, float]] = []
    step = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        load_part(model, state["model"], checkpoint, "train the transformer afresh")
        if head is not None and cues and "aux_head" in state:
            opt.load_state_dict(_first_groups(state["optimizer"], n_model_groups))  # the head is in them
        elif head is not None and "aux_head" in state:
            head.load_state_dict(state["aux_head"])
            for group in _aux_groups(head, s):
                opt.add_param_group(group)
            opt.load_state_dict(state["optimizer"])
        else:
            # A checkpoint without the head (or a run without it): resume the model's groups; a
            # head that is wanted starts fresh, with fresh moments.
            opt.load_state_dict(_first_groups(state["optimizer"], n_model_groups))
        if motion is not None and "motion" in state:
            motion.load_state_dict(state["motion"])
        step = int(state["step"])
        history = [dict(zip(state["history_keys"], row, strict=True)) for row in state["history"].tolist()]
        log.info("resumed the LM from %s at step %d", checkpoint, step)
    own_head = head is not None and not cues  # its parameters are not among the model's
    if own_head and len(opt.param_groups) == n_model_groups:
        for group in _aux_groups(head, s):
            opt.add_param_group(group)

    t0 = time.perf_counter()
    last_save = t0
    budget.start(step)
    budget.update(step)
    acc_loss, acc_q, acc_n = 0.0, None, 0
    acc_aux, acc_correct, acc_impacts = 0.0, 0, 0
    params = [p for part in trainable_parts(model) for p in part.parameters() if p.requires_grad]
    if own_head:
        params += list(head.parameters())
    with capturing(motion):
        while not budget.finished(step):
            lr = cosine_lr(step, budget.total, s.lr, s.warmup)
            set_lr(opt, lr)
            frames, codes, labels = data.step_batch(step, s.batch_size, seed)
            g = torch.Generator().manual_seed(seed * 7919 + step)
            null_mask = torch.rand(len(codes), generator=g) < s.cfg_dropout
            feats = visual_features(model, frames.to(device))
            weight = None
            extra = s.onset_weight_at(step, budget.total)
            if extra > 0:
                if labels is None:
                    raise ValueError("the batch source gave no event labels")
                weight = onset_token_weights(labels.to(device), codes.shape[-1], extra, ~null_mask.to(device))
            loss, per_q = lm_loss_from_features(model, feats, codes.to(device), null_mask.to(device), weight)
            total = loss
            if head is not None:
                # On the tower's own features of every sample, those the LM saw as the null video
                # included: the null embedding says nothing about events, the real features should.
                if labels is None:
                    raise ValueError("the batch source gave no event labels")
                aux, correct, impacts = aux_event_loss(head, feats, labels.to(device), class_weight)
                total = loss + s.aux_weight * aux
                acc_aux += float(aux.detach())
                acc_correct += correct
                acc_impacts += impacts
            total = plus_motion_loss(total, motion, data, step, s.batch_size, seed)
            optimizer_step(opt, total, params, s.grad_clip, lr, motion)
            step += 1
            budget.update(step)
            acc_loss += float(loss.detach())
            acc_q = per_q.cpu() if acc_q is None else acc_q + per_q.cpu()
            acc_n += 1
            if step % log_every == 0 or budget.finished(step):
                row = {"step": float(step), "lr": lr, "loss": acc_loss / acc_n}
                row.update({f"q{q}": float(v) / acc_n for q, v in enumerate(acc_q)})
                if head is not None:
                    row["aux"] = acc_aux / acc_n
                    row["aux_acc"] = acc_correct / acc_impacts if acc_impacts else float("nan")
                if motion is not None:
                    row["motion"] = motion.logged_mean()
                if probe is not None and (step % probe_every == 0 or budget.finished(step)):
                    own, other = video_reliance(model, probe[0].to(device), probe[1].to(device))
                    row["probe_own"], row["probe_other"] = own, other
                    log.info("held-out loss: own video %.4f, another clip's video %.4f", own, other)
                history.append(row)
                acc_loss, acc_q, acc_n = 0.0, None, 0
                acc_aux, acc_correct, acc_impacts = 0.0, 0, 0
                aux_text = f"  aux {row['aux']:.4f}  aux acc {row['aux_acc']:.3f}" if head is not None else ""
                log.info(
                    "lm step %d/%d  loss %.4f  q0 %.4f%s  lr %.2e",
                    step,
                    budget.total,
                    row["loss"],
                    row["q0"],
                    aux_text,
                    lr,
                )
                if on_log is not None:
                    on_log(row)
            if checkpoint is not None and time.perf_counter() - last_save > checkpoint_seconds:
                save_checkpoint(checkpoint, model, opt, step, history, head, motion)
                last_save = time.perf_counter()
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, opt, step, history, head, motion)
    model.requires_grad_(False).eval()
    if head is not None:
        head.requires_grad_(False).eval()
    return LMTrainResult(step, time.perf_counter() - t0, history, head)


def optimizer_step(
    opt: torch.optim.Optimizer,
    total: Tensor,
    params: list[nn.Parameter],
    grad_clip: float,
    lr: float,
    motion: MotionAux | None = None,
) -> None:
    """One training step on the loss `total`: gradients of `params` clipped to `grad_clip`; the motion
    head, which has an optimizer of its own, steps too."""
    opt.zero_grad(set_to_none=True)
    total.backward()
    nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    if motion is not None:
        motion.step(lr, grad_clip)


def save_checkpoint(
    path: Path,
    model: VAura,
    opt: torch.optim.Optimizer,
    step: int,
    history: list[dict[str, float]],
    aux_head: EventHead | None = None,
    motion: MotionAux | None = None,
) -> None:
    """Write the training state atomically (temp file in the same folder, then rename).

    History rows may differ in columns (a run resumed with the event head switched on or off): the
    table has every column seen, NaN where a row lacks it.
    """
    keys = list(dict.fromkeys(k for row in history for k in row))
    table = torch.tensor([[row.get(k, float("nan")) for k in keys] for row in history], dtype=torch.float64)
    state: dict[str, Any] = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "history": table,
        "history_keys": keys,
    }
    if aux_head is not None:
        state["aux_head"] = aux_head.state_dict()
    if motion is not None:
        state["motion"] = motion.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)

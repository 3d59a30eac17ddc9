"""Train a small Descript Audio Codec from scratch with descript-audio-codec's own model and losses.

The network is `dac.DAC` (weight-normed convs, residual VQ with factorised, L2-normalised codes); the
objective is DAC's recipe without the adversarial terms (which would double the cost on a CPU): the
multi-scale mel loss (weight 15), waveform L1 (weight 1), and the VQ commitment (0.25) and codebook
(1.0) losses. DAC's linear multi-scale STFT loss is left out too: on a 2-core CPU it costs as much as
the mel loss while adding little beyond it. Quantizer dropout 0.5 makes the first codebooks carry
the coarse sound on their own, which the language model then predicts first. Half of each batch's
excerpts start on an impact, materials drawn evenly (`ImpactIndex`): trained on random offsets alone,
run 4's codec lost the glass ticks and moved the drums into the wood band.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from vaura_core.model.config import CodecConfig
from vaura_core.model.weight_norm import fold_weight_norm
from vaura_core.training.schedule import StepBudget, cosine_lr, set_lr

log = logging.getLogger(__name__)

MEL_WEIGHT = 15.0
WAVE_WEIGHT = 1.0
COMMIT_WEIGHT = 0.25
CODEBOOK_WEIGHT = 1.0


@dataclass(frozen=True)
class CodecTrainSettings:
    batch_size: int = 8
    crop_tokens: int = 24  # excerpt length in codec tokens (24 x 512 samples = 0.28 s)
    lr: float = 1e-3
    warmup: int = 50
    min_rms: float = 0.01  # redraw crops quieter than this (see `random_crops`)
    target_rms: float = 0.1  # crops are scaled to this RMS (about -20 dBFS)
    restart_every: int = 25  # steps between restarts of unused codebook entries (0: never)
    betas: tuple[float, float] = (0.8, 0.99)
    grad_clip: float = 10.0
    quantizer_dropout: float = 0.5
    # Share of each batch's crops that start just before an impact, its material drawn evenly (see
    # `impact_crops`); the rest are `random_crops`. 0 gives every row a random crop.
    impact_share: float = 0.5


@dataclass
class CodecTrainResult:
    state_dict: dict[str, Tensor]  # `dac.DAC` keys, weight norm folded (what `Codec` loads)
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # averaged every `log_every` steps


def make_dac(cfg: CodecConfig, quantizer_dropout: float = 0.0) -> nn.Module:
    """A fresh trainable `dac.DAC` for `cfg` (weight norm kept, as DAC trains)."""
    from vaura_core.model.codec import _import_dac

    dac_mod = _import_dac()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        kwargs = cfg.dac_kwargs()
        return dac_mod.DAC(**kwargs, quantizer_dropout=quantizer_dropout)


@torch.no_grad()
def unit_gain_init(model: nn.Module) -> None:
    """Give every weight-normed conv of the encoder and the VQ input projections unit gain (g = 1).

    DAC's own initialiser writes to `weight`, which weight norm recomputes from `weight_g`/`weight_v`,
    so the convs keep PyTorch's default gain of about 0.58 each; through the encoder's chain of convs
    the audio then reaches the quantizer at a few thousandths of its level, the learned biases swamp
    it within a few steps and every frame picks the same code. With unit gain the signal arrives at
    its own level and the codebooks stay in use.
    """
    parts = [model.encoder, *(q.in_proj for q in model.quantizer.quantizers)]
    for part in parts:
        for module in part.modules():
            g = getattr(module, "weight_g", None)
            if isinstance(g, nn.Parameter):
                g.fill_(1.0)


class CodecLoss(nn.Module):
    """DAC's reconstruction losses (multi-scale mel, waveform L1) on `AudioSignal`s."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        from dac.nn import loss as dac_loss

        self.sample_rate = sample_rate
        # DAC's 44 kHz settings: seven mel resolutions from 32- to 2048-sample windows.
        self.mel = dac_loss.MelSpectrogramLoss(
            n_mels=[5, 10, 20, 40, 80, 160, 320],
            window_lengths=[32, 64, 128, 256, 512, 1024, 2048],
            mel_fmin=[0.0] * 7,
            mel_fmax=[None] * 7,
            pow=1.0,
            clamp_eps=1e-5,
            mag_weight=0.0,
        )
        self.wave = dac_loss.L1Loss()

    def forward(self, recon: Tensor, target: Tensor) -> dict[str, Tensor]:
        from audiotools import AudioSignal

        x = AudioSignal(recon, self.sample_rate)
        y = AudioSignal(target, self.sample_rate)
        return {"mel": self.mel(x, y), "wave": self.wave(x, y)}


def _normalise(piece: np.ndarray, target_rms: float) -> np.ndarray:
    """Loudness normalisation, as DAC's data pipeline does: quiet tails teach as much as hits."""
    rms = float(np.sqrt(np.mean(piece**2)))
    if target_rms > 0 and rms > 1e-6:
        piece *= min(target_rms / rms, 1.0 / max(float(np.abs(piece).max()), 1e-6))
    return piece


def _excerpt(clip: np.ndarray, start: int, length: int) -> np.ndarray:
    """`length` samples of `clip` from `start`, zero-padded past its end (a fresh, writable array)."""
    piece = np.zeros(length, dtype=np.float32)
    part = clip[start : start + length]
    piece[: len(part)] = part
    return piece


def _batch(rows: list[np.ndarray], length: int) -> Tensor:
    """(n, 1, length) from n excerpts; (0, 1, length) for none (a batch made only of the other kind)."""
    if not rows:
        return torch.zeros(0, 1, length)
    return torch.stack([torch.from_numpy(r) for r in rows])[:, None]


def random_crops(
    audio: Sequence[np.ndarray],
    n: int,
    length: int,
    generator: torch.Generator,
    *,
    min_rms: float = 0.0,
    tries: int = 8,
    target_rms: float = 0.0,
) -> Tensor:
    """(n, 1, length) excerpts: a clip and an offset drawn per row from `generator`.

    Foley World is mostly silence between short impacts; a crop quieter than `min_rms` is redrawn (up
    to `tries` times) so the codec sees sounds, not only the silence it would otherwise settle on.
    """
    rows = []
    for _ in range(n):
        for _ in range(max(1, tries)):
            clip = audio[int(torch.randint(len(audio), (1,), generator=generator))]
            start = int(torch.randint(max(1, len(clip) - length + 1), (1,), generator=generator))
            piece = _excerpt(clip, start, length)
            rms = float(np.sqrt(np.mean(piece**2)))
            if rms >= min_rms:
                break
        rows.append(_normalise(piece, target_rms))
    return _batch(rows, length)


class ImpactIndex:
    """Where the impacts of the training clips start, grouped by material class.

    Why: at random offsets most crops hold silence or the long sliding and rolling noises, and the
    shortest impacts (glass: a 4-5 kHz tick decaying in 28 ms) fill a tiny share of the frames the
    loss sees. A codec trained that way dropped them: run 4's codec's round trip kept 5 of 23 glass
    onsets of `eval-sync`'s seed-7 clips, and turned drums into the wood band
    (docs/training-notes.md, tenth session). Crops on impacts, the material drawn evenly, give every
    sound an equal share.
    """

    def __init__(self, impacts: Sequence[np.ndarray]) -> None:
        """impacts[c]: int (n, 2) rows (start sample, material class) of clip c's impacts."""
        by_class: dict[int, list[tuple[int, int]]] = {}
        for clip, rows in enumerate(impacts):
            for start, cls in np.asarray(rows, dtype=np.int64).reshape(-1, 2):
                by_class.setdefault(int(cls), []).append((clip, int(start)))
        self.classes = sorted(by_class)
        self.by_class = by_class

    def __bool__(self) -> bool:
        return bool(self.classes)

    def draw(self, generator: torch.Generator) -> tuple[int, int]:
        """(clip, start sample) of one impact: a material, then one of its impacts, uniformly."""
        cls = self.classes[int(torch.randint(len(self.classes), (1,), generator=generator))]
        rows = self.by_class[cls]
        return rows[int(torch.randint(len(rows), (1,), generator=generator))]


def impact_crops(
    audio: Sequence[np.ndarray],
    index: ImpactIndex,
    n: int,
    length: int,
    generator: torch.Generator,
    *,
    target_rms: float = 0.0,
) -> Tensor:
    """(n, 1, length) excerpts each starting 5-50 % of `length` before a drawn impact (`ImpactIndex`),
    so the attack and most of the decay are inside."""
    rows = []
    for _ in range(n):
        clip, start = index.draw(generator)
        lead = int(length * (0.05 + 0.45 * float(torch.rand((), generator=generator))))
        rows.append(_normalise(_excerpt(audio[clip], max(0, start - lead), length), target_rms))
    return _batch(rows, length)


class DeadCodeRestarter:
    """Re-seeds codebook entries that no excerpt used for `every` steps with recent encoder outputs.

    A small codec trained briefly tends to collapse onto a handful of codes (the encoder then carries
    nothing and the decoder outputs the average sound); restarting unused entries keeps every codebook
    in use, as SoundStream and Jukebox do.
    """

    def __init__(self, model: nn.Module, every: int, generator: torch.Generator) -> None:
        self.quantizers = list(model.quantizer.quantizers)
        self.every = every
        self.generator = generator
        self.usage = [torch.zeros(q.codebook_size, dtype=torch.long) for q in self.quantizers]
        self.steps = 0
        self.restarted = 0  # entries re-seeded in the last restart (for the log)

    @torch.no_grad()
    def update(self, codes: Tensor, latents: Tensor) -> None:
        """codes (B, N, T) and projected latents (B, N * D, T) of the last forward pass."""
        for i, q in enumerate(self.quantizers):
            self.usage[i] += torch.bincount(codes[:, i].flatten().cpu(), minlength=q.codebook_size)
        self.steps += 1
        if self.every <= 0 or self.steps % self.every:
            return
        self.restarted = 0
        for i, q in enumerate(self.quantizers):
            dead = self.usage[i] == 0
            n_dead = int(dead.sum())
            if n_dead:
                d = q.codebook_dim
                z = latents[:, i * d : (i + 1) * d].permute(0, 2, 1).reshape(-1, d)
                pick = torch.randint(len(z), (n_dead,), generator=self.generator)
                q.codebook.weight[dead.to(q.codebook.weight.device)] = z[pick.to(z.device)].to(
                    q.codebook.weight
                )
                self.restarted += n_dead
            self.usage[i].zero_()


def codec_step(
    model: nn.Module, loss_fn: CodecLoss, batch: Tensor, restarter: DeadCodeRestarter | None = None
) -> tuple[Tensor, dict[str, float]]:
    """One forward pass: the weighted total loss and its parts (as floats, for logging)."""
    out = model(batch)
    if restarter is not None:
        restarter.update(out["codes"], out["latents"].detach())
    parts = loss_fn(out["audio"], batch)
    total = (
        MEL_WEIGHT * parts["mel"]
        + WAVE_WEIGHT * parts["wave"]
        + COMMIT_WEIGHT * out["vq/commitment_loss"]
        + CODEBOOK_WEIGHT * out["vq/codebook_loss"]
    )
    logged = {k: v.item() for k, v in parts.items()}
    logged["commit"] = out["vq/commitment_loss"].item()
    logged["total"] = total.item()
    logged["codes_q0"] = float(len(torch.unique(out["codes"][:, 0])))  # distinct first-codebook codes
    return total, logged


def train_codec(
    audio: Sequence[np.ndarray],
    cfg: CodecConfig,
    budget: StepBudget,
    *,
    seed: int,
    settings: CodecTrainSettings | None = None,
    device: torch.device | str = "cpu",
    log_every: int = 25,
    on_log: Callable[[dict[str, float]], None] | None = None,
    impacts: Sequence[np.ndarray] | None = None,
) -> CodecTrainResult:
    """Train a codec for `cfg` on excerpts of `audio` (44.1 kHz float32 clips) from scratch.

    `impacts[c]` (int (n, 2): start sample, material class) places `settings.impact_share` of each
    batch's crops on clip c's impacts (`impact_crops`); without it every crop is random.
    """
    s = settings or CodecTrainSettings()
    if not 0.0 <= s.impact_share <= 1.0:
        raise ValueError(f"impact_share must be within [0, 1], got {s.impact_share}")
    index = ImpactIndex(impacts or [])
    n_impact = round(s.batch_size * s.impact_share) if index else 0
    device = torch.device(device)
    torch.manual_seed(seed)
    model = make_dac(cfg, s.quantizer_dropout)
    unit_gain_init(model)
    model = model.to(device).train()
    loss_fn = CodecLoss(cfg.sample_rate).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, betas=s.betas)
    gen = torch.Generator().manual_seed(seed + 1)
    restarter = DeadCodeRestarter(model, s.restart_every, torch.Generator().manual_seed(seed + 2))
    length = s.crop_tokens * cfg.hop_length

    history: list[dict[str, float]] = []
    acc: dict[str, float] = {}
    t0 = time.perf_counter()
    budget.start()
    step = 0
    while not budget.finished(step):
        lr = cosine_lr(step, budget.total, s.lr, s.warmup)
        set_lr(opt, lr)
        batch = random_crops(
            audio, s.batch_size - n_impact, length, gen, min_rms=s.min_rms, target_rms=s.target_rms
        )
        if n_impact:
            on_impacts = impact_crops(audio, index, n_impact, length, gen, target_rms=s.target_rms)
            batch = torch.cat([batch, on_impacts])
        batch = batch.to(device)
        loss, parts = codec_step(model, loss_fn, batch, restarter)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        opt.step()
        step += 1
        budget.update(step)
        for k, v in parts.items():
            acc[k] = acc.get(k, 0.0) + v
        if step % log_every == 0 or budget.finished(step):
            n = step % log_every or log_every
            row = {"step": float(step), "lr": lr, **{k: v / n for k, v in acc.items()}}
            history.append(row)
            acc = {}
            log.info("codec step %d/%d  %s", step, budget.total, _fmt(row))
            if on_log is not None:
                on_log(row)
    state = fold_weight_norm({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    return CodecTrainResult(state, step, time.perf_counter() - t0, history)


def _fmt(row: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "step")

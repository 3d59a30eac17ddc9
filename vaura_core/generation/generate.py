"""Autoregressive generation of one window of DAC codes, cached and uncached.

`generate_window` runs the V-AURA decoding loop: build the delayed pattern (prompt codes first),
prefill the model once with everything known, then decode one column per step with a static KV cache.
Classifier-free guidance runs the conditioned and null rows as one batch of 2B. `generate_window(...,
use_cache=False)` is the oracle: like the original it re-feeds the whole prefix at every step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from vaura_core.engine.device import torch_threads
from vaura_core.errors import Cancelled
from vaura_core.generation.sampling import SamplingParams, apply_cfg, make_generators, sample
from vaura_core.model.decode import FastDecoder, call_bound
from vaura_core.model.lm import FusionLM
from vaura_core.model.pattern import build_delayed, revert_delayed

UNKNOWN = -1

ProgressFn = Callable[[int, int], None]
"""Called after every decode step with (steps done, steps total)."""

FinalFn = Callable[[Tensor, int], None]
"""Called as timesteps become final with ((B, Q, n) codes, n): timesteps [0, n) will not change."""

FINAL_EVERY = 16  # decode steps between `FinalFn` calls: a few tens of microseconds each


class CancelToken:
    """A thread-safe flag checked once per decode step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def is_cancelled(self) -> bool:
        return self._event.is_set()

    is_set = is_cancelled  # the threading.Event spelling, which the exporters accept too


@dataclass
class WindowResult:
    codes: Tensor  # (B, Q, T) including the prompt
    step_logits: list[Tensor] | None  # guided (B, Q, V) logits of every step, when requested
    seconds: float
    steps: int


def _expand(x: Tensor, batch: int, what: str) -> Tensor:
    if x.shape[0] == batch:
        return x
    if x.shape[0] == 1:
        return x.expand(batch, *x.shape[1:])
    raise ValueError(f"{what} has batch {x.shape[0]}, expected 1 or {batch}")


@torch.inference_mode()
def generate_window(
    lm: FusionLM,
    features: Tensor,
    n_steps: int,
    *,
    params: SamplingParams,
    seeds: Sequence[int],
    cue_features: Tensor | None = None,
    cue_gate: Tensor | None = None,
    prompt: Tensor | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    use_cache: bool = True,
    keep_logits: bool = False,
    on_final: FinalFn | None = None,
) -> WindowResult:
    """Generate (B, Q, n_steps) codes for one window, B = len(seeds).

    features: (1 or B, Tv, feat_dim) raw visual features of the window (Tv = 32 for the release).
    cue_features: the same shape, what a model with impact cues reads them from (None: `features`).
    cue_gate: (1 or B, Tv, tubelet) bool, the frames that may get impact cues (None: all of them).
    prompt: optional (1 or B, Q, Tp) codes to continue from, Tp < n_steps; kept in the output. Rows
    may end their prompt early with -1 (UNKNOWN) entries: those timesteps are generated for them.
    Each row b samples with its own generator seeded with seeds[b], so a row's codes do not depend on
    the other rows in the batch. `on_final` hears the timesteps every codebook has sampled while the
    window is still running (the delayed pattern completes timestep t at column t + Q), so their audio
    can be decoded beside the later steps.
    """
    cfg = lm.cfg
    n_q, special = cfg.n_codebooks, cfg.special_token
    batch = len(seeds)
    if batch == 0:
        raise ValueError("at least one seed is needed")
    device = lm.norm.weight.device
    features = _expand(features.to(device), batch, "features")
    if features.shape[1] != cfg.lm.video_tokens and params.uses_cfg:
        raise ValueError(f"CFG needs exactly {cfg.lm.video_tokens} visual tokens, got {features.shape[1]}")
    n_prompt = 0 if prompt is None else prompt.shape[-1]
    if n_prompt >= n_steps:
        raise ValueError(f"prompt of {n_prompt} steps leaves nothing to generate in {n_steps}")
    if n_steps + n_q > cfg.lm.block_size:
        raise ValueError(f"{n_steps} steps do not fit the model's {cfg.lm.block_size} positions")

    # Rows [0, B) are conditioned, rows [B, 2B) the null video when guidance is on.
    feats = features.to(lm.norm.weight.dtype)
    cues = None
    if cue_features is not None:
        if cue_features.shape[1:] != features.shape[1:]:
            shapes = f"{tuple(cue_features.shape)} against {tuple(features.shape)}"
            raise ValueError(f"cue features and features differ in shape: {shapes}")
        cues = _expand(cue_features.to(device), batch, "cue features").to(feats.dtype)
    gate = None if cue_gate is None else _expand(cue_gate.to(device), batch, "cue gate")
    null_rows = None
    if params.uses_cfg:
        feats = torch.cat([feats, feats], dim=0)
        cues = None if cues is None else torch.cat([cues, cues], dim=0)
        gate = None if gate is None else torch.cat([gate, gate], dim=0)
        null_rows = torch.arange(len(feats), device=device) >= batch
    video = lm.project_video(feats, null_rows, cues, gate)
    rows = video.shape[0]

    codes = torch.full((batch, n_q, n_steps), UNKNOWN, dtype=torch.long, device=device)
    if prompt is not None:
        codes[..., :n_prompt] = _expand(prompt.to(device=device, dtype=torch.long), batch, "prompt")
    # Unknown timesteps (-1) land on their pattern slots; every other slot is the special token.
    seq = build_delayed(codes, special)
    total = seq.shape[-1]
    # First column holding an unknown timestep: after the timesteps every row knows.
    known = (codes != UNKNOWN).all(dim=1).all(dim=0).long().cumprod(0).sum()
    first = int(known) + 1
    generators = make_generators(list(seeds), device)
    cache = lm.new_cache(rows, total) if use_cache else None
    fast: FastDecoder | None = None

    def logits_before(col: int) -> Tensor:
        """Guided logits (B, Q, V) for column `col`, from the columns before it."""
        nonlocal fast
        if fast is not None:
            column = seq[..., col - 1]
            column = column if rows == batch else torch.cat([column] * (rows // batch))
            # The decoder mixes the guided rows itself, before its output heads.
            return fast.step(column, col - 1, guidance=params.cfg_scale if params.uses_cfg else None)
        # The oracle re-feeds everything; the cached path prefills everything known once.
        window = seq[..., :col].repeat(rows // batch, 1, 1)
        out = lm(window, video, start=0, cache=cache, last_only=True)[:, :, -1]
        if cache is not None:
            fast = FastDecoder(lm, cache, video)
        if params.uses_cfg:
            out = apply_cfg(out[:batch], out[batch:], params.cfg_scale)
        return out

    kept: list[Tensor] | None = [] if keep_logits else None
    t0 = time.perf_counter()
    n_total = total - first

    def step(done: int, col: int) -> None:
        if cancel is not None and cancel.is_cancelled():
            raise Cancelled("generation cancelled")
        logits = logits_before(col)
        if kept is not None:
            kept.append(logits.clone())
        nxt = sample(logits, params, generators)  # (B, Q)
        # Prompt tokens and off-pattern specials already sit in the column: fill only the unknowns.
        seq[..., col] = torch.where(seq[..., col] == UNKNOWN, nxt, seq[..., col])
        if progress is not None:
            progress(done, n_total)
        if on_final is not None and done % FINAL_EVERY == 0 and col - n_q + 1 > 0:
            on_final(revert_delayed(seq[..., : col + 1]), col - n_q + 1)

    step(1, first)  # the prefill: one batched pass over every known column, on every thread
    # A small model's one-token steps run fastest on one thread (`call_bound`), leaving the other
    # cores free (the codec decodes finished windows beside them, `engine.overlap`).
    with torch_threads(1 if use_cache and call_bound(lm) else torch.get_num_threads()):
        for done, col in enumerate(range(first + 1, total), start=2):
            step(done, col)

    if (seq == UNKNOWN).any():
        raise RuntimeError("generation left unknown tokens: pattern bookkeeping is broken")
    out = revert_delayed(seq)
    return WindowResult(out, kept, time.perf_counter() - t0, n_total)

"""Whole-clip generation and region regeneration on top of the one-window decoder.

A clip's visual features are computed once (segments are independent) and every window slices them.
Windows of 2.56 s advance by a stride of whole 0.64 s segments; each continues from the previous
audio tokens as its prompt. Region regeneration continues from the existing tokens before t0 and
splices the new audio back with equal-power crossfades, leaving the rest of the track untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vaura_core.engine.candidates import (
    best_rows,
    candidate_seed,
    effective_candidates,
    frame_hit_probability,
    predicted_hits,
)
from vaura_core.engine.chains import (
    CHAIN_SEED_STRIDE,
    DEFAULT_CHAINS,
    Chain,
    heard_from,
    join_audio,
    join_codes,
    kept_ranges,
    plan_chains,
)
from vaura_core.engine.overlap import BackgroundDecode, decode_pool
from vaura_core.engine.splice import splice
from vaura_core.engine.timeline import Timeline, WindowPlan, plan_windows
from vaura_core.generation.generate import CancelToken, generate_window
from vaura_core.generation.sampling import SamplingParams
from vaura_core.model.vaura import VAura

DEFAULT_CROSSFADE = 0.05  # seconds
DECODE_MARGIN_TOKENS = 16  # codec decoder context on each side of a decoded stretch


@dataclass(frozen=True)
class Progress:
    fraction: float
    eta_seconds: float | None
    stage: str


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class ClipFeatures:
    """Visual features of a whole clip: (segments, tokens_per_segment, feat_dim), padded to >= 1 window.

    `cue_features`, same shape, are what the impact cues read when the model takes them from several
    segmentations (`lm.impact_cue_views`); None: the cues read `features`. `moving`, (segments,
    tokens_per_segment, tubelet) bool, the frames where the picture moves, the only ones that get
    impact cues (`engine.stillness`); None: every frame."""

    features: Tensor
    duration: float
    cue_features: Tensor | None = None
    moving: Tensor | None = None


@dataclass
class Track:
    """The generated audio of a clip and the codec tokens it came from (prompts for regeneration)."""

    codes: np.ndarray  # (Q, T) int64
    audio: np.ndarray  # (N,) float32, N = round(duration * sample_rate)
    sample_rate: int


@dataclass
class Take:
    """One generated result, with everything needed to reproduce it."""

    model: str
    seed: int
    params: dict
    stride_segments: int
    start: float  # requested region, seconds
    end: float
    token_start: int
    codes: np.ndarray  # (Q, n) tokens for [token_start, token_start + n)
    sample_start: int
    audio: np.ndarray  # samples for [sample_start, sample_start + len)
    fade_in: int = 0
    fade_out: int = 0
    chains: int = 1  # stretches generated side by side (`engine.chains`); 1 = sequential
    candidates: int = 1  # samples per stretch, the best kept (`engine.candidates`)

    def record(self) -> dict:
        return {
            "model": self.model,
            "seed": self.seed,
            "params": dict(self.params),
            "stride_segments": self.stride_segments,
            "start": self.start,
            "end": self.end,
            "crossfade_samples": [self.fade_in, self.fade_out],
            "chains": self.chains,
            "candidates": self.candidates,
        }


def window_seed(seed: int, index: int) -> int:
    """Distinct, reproducible seed for window `index` of a take."""
    return (int(seed) * 0x9E3779B1 + index * 0x85EBCA77) % (2**63)


class Engine:
    def __init__(self, model: VAura, name: str) -> None:
        self.model = model
        self.name = name
        self.tl = Timeline(model.cfg)

    @property
    def cfg(self):
        return self.model.cfg

    # --- decoding ------------------------------------------------------------------
    def decode(self, codes: np.ndarray | Tensor) -> np.ndarray:
        """(Q, T) tokens -> (T * hop,) float32 samples."""
        c = torch.as_tensor(np.asarray(codes), dtype=torch.long)[None]
        wav = self.model.audio_encoder.decode(c.to(self.model.device))
        return wav[0].float().cpu().numpy()

    # --- generation ----------------------------------------------------------------
    def _run_windows(
        self,
        clip: ClipFeatures,
        codes: Tensor,
        plans: list[WindowPlan],
        params: SamplingParams,
        seeds: list[int],
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> None:
        """Fill codes[:, :, prompt_from:token_end] of every plan in order, all variations batched."""
        self._run_chained(clip, [codes], [plans], params, seeds, progress, cancel)

    def _run_chained(
        self,
        clip: ClipFeatures,
        codes: list[Tensor],
        plans: list[list[WindowPlan]],
        params: SamplingParams,
        seeds: list[int],
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
        on_final: Callable[[int, int], None] | None = None,
    ) -> None:
        """`_run_windows` for several chains (codes and plans per chain) advancing together.

        Round j runs window j of every chain as one batch (fresh windows apart from continuing ones),
        generating as many tokens as the longest (the extra ones are dropped: a row's tokens never
        depend on how many follow). Prompts one token shorter than the others (segment starts round
        to whole tokens) end in UNKNOWN, which `generate_window` generates. Window j of chain k
        samples with `window_seed(seed, j + k * CHAIN_SEED_STRIDE)`, so one chain is the sequential
        generation. `on_final(k, t)` hears that chain k's tokens before t will not change again.
        """
        n_q = self.cfg.n_codebooks
        schedule: list[tuple[int, list[int]]] = []
        for j in range(max(len(p) for p in plans)):
            groups: dict[int, list[int]] = {}
            for k, chain_plans in enumerate(plans):
                if j < len(chain_plans):
                    groups.setdefault(chain_plans[j].prompt_len > 0, []).append(k)
            schedule += [(j, ks) for ks in groups.values()]
        lengths = [max(plans[k][j].n_tokens for k in ks) for j, ks in schedule]
        steps = [
            n + n_q - min(plans[k][j].prompt_len for k in ks) - 1
            for n, (j, ks) in zip(lengths, schedule, strict=True)
        ]
        total, done = sum(steps), 0
        rounds = max(len(p) for p in plans)
        t0 = time.perf_counter()
        segs = self.cfg.window_segments
        for (j, ks), n_steps, n_tokens in zip(schedule, steps, lengths, strict=True):
            first = plans[ks[0]][j]

            def window_rows(per_segment: Tensor, j: int = j, ks: list[int] = ks) -> Tensor:
                return torch.cat(
                    [
                        per_segment[plans[k][j].segment : plans[k][j].segment + segs]
                        .reshape(1, -1, per_segment.shape[-1])
                        .expand(len(seeds), -1, -1)
                        for k in ks
                    ]
                )

            feats = window_rows(clip.features)
            cue_feats = None if clip.cue_features is None else window_rows(clip.cue_features)
            gate = None if clip.moving is None else window_rows(clip.moving)
            prompt = None
            if first.prompt_len:
                width = max(plans[k][j].prompt_len for k in ks)
                prompt = torch.full((len(ks) * len(seeds), n_q, width), -1, dtype=torch.long)
                for i, k in enumerate(ks):
                    w = plans[k][j]
                    prompt[i * len(seeds) : (i + 1) * len(seeds), :, : w.prompt_len] = codes[k][
                        :, :, w.token_start : w.prompt_from
                    ]

            def on_step(i: int, _n: int, base: int = done, j: int = j) -> None:
                if progress is None:
                    return
                now = base + i
                elapsed = time.perf_counter() - t0
                eta = elapsed / now * (total - now) if now else None
                progress(Progress(now / total, eta, f"window {j + 1}/{rounds}"))

            def store(window: Tensor, n: int, j: int = j, ks: list[int] = ks) -> None:
                """Window j's timesteps [0, n) into each chain's codes, and on to `on_final`."""
                batch = len(seeds)
                for i, k in enumerate(ks):
                    plan = plans[k][j]
                    end = min(n, plan.n_tokens)
                    if end <= plan.prompt_len:
                        continue
                    rows = window[i * batch : (i + 1) * batch, :, plan.prompt_len : end]
                    codes[k][:, :, plan.prompt_from : plan.token_start + end] = rows.to(codes[k].device)
                    if on_final is not None:
                        on_final(k, plan.token_start + end)

            out = generate_window(
                self.model.sampler,
                feats,
                n_tokens,
                cue_features=cue_feats,
                cue_gate=gate,
                params=params,
                seeds=[window_seed(s, j + k * CHAIN_SEED_STRIDE) for k in ks for s in seeds],
                prompt=prompt,
                progress=on_step,
                cancel=cancel,
                # Finished timesteps go to the codec while the window still runs.
                on_final=store if on_final is not None else None,
            )
            store(out.codes, n_tokens)
            done += n_steps

    def generate(
        self,
        clip: ClipFeatures,
        params: SamplingParams,
        seeds: list[int],
        *,
        start: float = 0.0,
        end: float | None = None,
        stride_segments: int = 1,
        chains: int = DEFAULT_CHAINS,
        candidates: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[Take]:
        """Fresh audio for [start, end) of the clip (default: all of it), one take per seed, one batch.

        Generation starts at the 0.64 s segment boundary at or before `start`, as a fresh window.
        `chains` > 1 cuts a long range into up to that many stretches generated side by side
        (`engine.chains`, default `DEFAULT_CHAINS`: fewer, wider decode steps; K - 1 seams).
        `candidates`: each stretch of each take is sampled this many times and the one whose hits
        agree best with the impacts the model sees is kept (`engine.candidates`; None: the model's
        default). `timings`, when given, gets "codec_busy" (codec decoding, mostly during generation),
        "codec_wait" (the part generation did not hide) and "choose" (picking candidates) added, in
        seconds.
        """
        tl = self.tl
        end = clip.duration if end is None else end
        if not 0.0 <= start < end <= clip.duration + 1e-9:
            raise ValueError(
                f"range [{start:.3f}, {end:.3f}] s is not inside the clip (0..{clip.duration:.3f} s)"
            )
        last_segment = clip.features.shape[0] - self.cfg.window_segments
        first_segment = min(int(start / tl.segment_seconds + 1e-9), last_segment)
        token0 = tl.segment_token(first_segment)
        n_tokens = tl.tokens_for(end)
        n_segments = clip.features.shape[0]
        parts = plan_chains(tl, first_segment, n_tokens, n_segments, chains)
        plans = [
            plan_windows(tl, c.token_start, c.token_end, n_segments, stride_segments, fresh_segment=c.segment)
            for c in parts
        ]
        n_cand = effective_candidates(self.cfg, candidates)
        rows = [candidate_seed(s, j) for s in seeds for j in range(n_cand)]  # take-major
        codes = [torch.full((len(rows), self.cfg.n_codebooks, n_tokens), -1, dtype=torch.long) for _ in parts]
        # Each chain's audio is decoded while later windows are generated (`engine.overlap`), from
        # where the joined track can hear it on.
        with decode_pool() as pool, ExitStack() as stack:
            decoders = [
                stack.enter_context(
                    BackgroundDecode(
                        self.model.audio_encoder, c[:, :, p.token_start : p.token_end], pool=pool, start=lead
                    )
                )
                for c, p, lead in zip(codes, parts, heard_from(tl, parts), strict=True)
            ]
            self._run_chained(
                clip,
                codes,
                plans,
                params,
                rows,
                progress,
                cancel,
                on_final=lambda k, t: decoders[k].advance(t - parts[k].token_start),
            )
            # Last first: the worker takes queued pieces in order, the caller decodes those it has
            # not started (`BackgroundDecode.result`), so the two meet in the middle.
            wavs = [d.result() for d in reversed(decoders)][::-1]
            if timings is not None:
                for key, what in (("codec_busy", "busy_s"), ("codec_wait", "wait_s")):
                    timings[key] = timings.get(key, 0.0) + sum(getattr(d, what) for d in decoders)
        s0, s1 = tl.samples_for(start), tl.samples_for(end)
        if n_cand > 1:
            t_choose = time.perf_counter()
            picks = self._choose_chains(clip, parts, wavs, n_cand, start, end)
            codes, wavs = (
                [c[p] for c, p in zip(codes, picks, strict=True)],
                [w[p] for w, p in zip(wavs, picks, strict=True)],
            )
            if timings is not None:
                timings["choose"] = timings.get("choose", 0.0) + time.perf_counter() - t_choose
        span = _Span(start, end, stride_segments, token0, n_tokens, token0, s0, s1)
        if len(parts) == 1:  # parts[0] starts at token0, as the span's decoding
            joined_codes, audio = codes[0], wavs[0]
        else:  # joined from the clip's start: the span's decoding starts at token0
            joined, cuts = join_audio(tl, parts, wavs, n_tokens * tl.hop)
            joined_codes = torch.from_numpy(join_codes(tl, parts, [c.numpy() for c in codes], cuts))
            audio = joined[:, token0 * tl.hop :]
        return [
            self._take(
                span, params, seed, joined_codes[b], wav=audio[b], chains=len(parts), candidates=n_cand
            )
            for b, seed in enumerate(seeds)
        ]

    def _hits(self, clip: ClipFeatures) -> np.ndarray:
        """Times (s) of the impacts the model sees in the clip (`candidates.predicted_hits`)."""
        feats = clip.features if clip.cue_features is None else clip.cue_features
        return predicted_hits(frame_hit_probability(self.model, feats, clip.moving), self.cfg.fps)

    def _choose_chains(
        self,
        clip: ClipFeatures,
        parts: list[Chain],
        wavs: list[np.ndarray],
        n_cand: int,
        start: float,
        end: float,
    ) -> list[np.ndarray]:
        """For each chain, the row of each take's best candidate (`candidates.best_candidate`), judged
        on the part of the range the joined take will hear from that chain (`kept_ranges`)."""
        tl = self.tl
        hits = self._hits(clip)
        leads = heard_from(tl, parts)
        ranges = kept_ranges(tl, parts, start, end)
        return [
            best_rows(
                wav[:, lead * tl.hop :],
                n_cand,
                tl.sample_rate,
                (part.token_start + lead) * tl.hop / tl.sample_rate,
                hits,
                lo,
                hi,
            )
            for part, wav, lead, (lo, hi) in zip(parts, wavs, leads, ranges, strict=True)
        ]

    def regenerate(
        self,
        clip: ClipFeatures,
        track: Track,
        start: float,
        end: float,
        params: SamplingParams,
        seeds: list[int],
        *,
        stride_segments: int = 1,
        crossfade: float = DEFAULT_CROSSFADE,
        candidates: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Take]:
        """New takes for [start, end) that continue the track's audio before `start`.

        Each take covers [start - crossfade, end + crossfade] (clamped to the clip): it fades in from
        the existing audio before `start` and back out into it after `end`. `candidates` as `generate`,
        judged on [start, end).
        """
        tl = self.tl
        n_total = track.codes.shape[1]
        n_samples = len(track.audio)
        if not 0.0 <= start < end <= clip.duration + 1e-9:
            raise ValueError(
                f"region [{start:.3f}, {end:.3f}] s is not inside the clip (0..{clip.duration:.3f} s)"
            )
        xf = tl.samples_for(crossfade)
        s0, s1 = tl.samples_for(start), min(tl.samples_for(end), n_samples)
        a, b = max(0, s0 - xf), min(n_samples, s1 + xf)
        p0 = tl.token_at(start)
        p1 = min(n_total, tl.tokens_for(b / tl.sample_rate) + DECODE_MARGIN_TOKENS)
        plans = plan_windows(tl, p0, p1, clip.features.shape[0], stride_segments)
        n_cand = effective_candidates(self.cfg, candidates)
        rows = [candidate_seed(s, j) for s in seeds for j in range(n_cand)]  # take-major
        codes = torch.tensor(np.array(track.codes), dtype=torch.long)[None].repeat(len(rows), 1, 1)
        codes[:, :, p0:p1] = -1
        self._run_windows(clip, codes, plans, params, rows, progress, cancel)

        d0 = max(0, a // tl.hop - DECODE_MARGIN_TOKENS)
        d1 = min(n_total, -(-b // tl.hop) + DECODE_MARGIN_TOKENS)
        span = _Span(start, end, stride_segments, p0, p1, d0, a, b, fade_in=s0 - a, fade_out=b - s1)
        if n_cand == 1:
            return [self._take(span, params, seed, codes[i, :, :d1]) for i, seed in enumerate(seeds)]
        with torch.inference_mode():  # every candidate's region in one batch
            wavs = (
                self.model.audio_encoder.decode(codes[:, :, d0:d1].to(self.model.device))
                .float()
                .cpu()
                .numpy()
            )
        picks = best_rows(
            wavs, n_cand, tl.sample_rate, d0 * tl.hop / tl.sample_rate, self._hits(clip), start, end
        )
        return [
            self._take(span, params, seed, codes[row, :, :d1], wav=wavs[row], candidates=n_cand)
            for row, seed in zip(picks, seeds, strict=True)
        ]

    def _take(
        self,
        span: _Span,
        params: SamplingParams,
        seed: int,
        codes: Tensor,
        wav: np.ndarray | None = None,
        chains: int = 1,
        candidates: int = 1,
    ) -> Take:
        """Decode tokens [span.decode_from, len) (unless `wav` holds them) and cut the take's samples
        out of the result."""
        hop = self.tl.hop
        if wav is None:
            wav = self.decode(codes[:, span.decode_from :])
        return Take(
            model=self.name,
            seed=seed,
            params=params.to_dict(),
            stride_segments=span.stride_segments,
            start=span.start,
            end=span.end,
            token_start=span.token_start,
            codes=codes[:, span.token_start : span.token_end].numpy(),
            sample_start=span.sample_start,
            audio=wav[span.sample_start - span.decode_from * hop : span.sample_end - span.decode_from * hop],
            fade_in=span.fade_in,
            fade_out=span.fade_out,
            chains=chains,
            candidates=candidates,
        )


@dataclass(frozen=True)
class _Span:
    """Where a take sits: requested seconds, its tokens, the first decoded token, its samples."""

    start: float
    end: float
    stride_segments: int
    token_start: int
    token_end: int
    decode_from: int
    sample_start: int
    sample_end: int
    fade_in: int = 0
    fade_out: int = 0


def apply_take(track: Track, take: Take) -> Track:
    """The track with the take committed: its tokens replace the old ones, its audio is spliced in."""
    codes = track.codes.copy()
    codes[:, take.token_start : take.token_start + take.codes.shape[1]] = take.codes
    if take.sample_start == 0 and len(take.audio) == len(track.audio) and not (take.fade_in or take.fade_out):
        audio = take.audio.astype(np.float32, copy=True)
    else:
        audio = splice(track.audio, take.audio, take.sample_start, take.fade_in, take.fade_out)
    return Track(codes=codes, audio=audio, sample_rate=track.sample_rate)


def track_from_take(take: Take, sample_rate: int) -> Track:
    """A whole-clip take as the clip's track."""
    return Track(
        codes=take.codes.copy(), audio=take.audio.astype(np.float32, copy=True), sample_rate=sample_rate
    )

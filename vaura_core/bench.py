"""Speed and memory benchmark of the engine (`vaura bench`).

Measures, in one run: visual encoding of one window, prefill, cached decode speed, seconds per window
with CFG, real-time factor, codec decode, peak memory, and the speed-up of the cached decoder over the
uncached oracle (the original's full recompute) on the same request.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from vaura_core.engine.chains import DEFAULT_CHAINS
from vaura_core.engine.cue_views import cue_views_for
from vaura_core.generation.generate import WindowResult, generate_window
from vaura_core.generation.sampling import SamplingParams
from vaura_core.model.vaura import VAura


@dataclass
class BenchResult:
    model: str
    device: str
    dtype: str
    threads: int
    tokens: int
    window_seconds: float
    visual_encode_s: float = 0.0
    prefill_s: float = 0.0
    prefill_positions: int = 0
    decode_tokens_per_s: float = 0.0
    window_cached_s: float = 0.0
    window_uncached_s: float | None = None
    speedup_vs_uncached: float | None = None
    codec_decode_s: float = 0.0
    realtime_factor: float = 0.0
    peak_memory_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        rows = [
            ("model", self.model),
            ("device / dtype / threads", f"{self.device} / {self.dtype} / {self.threads}"),
            ("tokens per window", str(self.tokens)),
            ("visual encoding (1 window)", f"{self.visual_encode_s:.3f} s"),
            (f"prefill ({self.prefill_positions} positions, CFG)", f"{self.prefill_s:.3f} s"),
            ("cached decode", f"{self.decode_tokens_per_s:.1f} tokens/s (CFG)"),
            ("window with CFG, cached", f"{self.window_cached_s:.2f} s"),
        ]
        if self.window_uncached_s is not None:
            rows.append(("window with CFG, uncached oracle", f"{self.window_uncached_s:.2f} s"))
            rows.append(("speed-up cached vs uncached", f"{self.speedup_vs_uncached:.1f}x"))
        rows += [
            ("codec decode (1 window)", f"{self.codec_decode_s:.3f} s"),
            ("real-time factor (audio s / wall s)", f"{self.realtime_factor:.2f}x"),
            ("peak memory", f"{self.peak_memory_mb:.0f} MB"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn: Callable[[], object]) -> tuple[float, object]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


@torch.inference_mode()
def run_bench(
    model: VAura,
    *,
    name: str,
    tokens: int | None = None,
    uncached: bool = True,
    params: SamplingParams | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> BenchResult:
    cfg = model.cfg
    device = model.device
    dtype = model.sampler.norm.weight.dtype
    params = params or SamplingParams(temperature=0.95, top_k=128, cfg_scale=6.0)
    n_tokens = tokens or cfg.window_tokens
    audio_seconds = n_tokens / cfg.codec.frame_rate
    res = BenchResult(
        model=name,
        device=str(device),
        dtype=str(dtype).replace("torch.", ""),
        threads=torch.get_num_threads(),
        tokens=n_tokens,
        window_seconds=audio_seconds,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    g = torch.Generator().manual_seed(seed)
    vis = cfg.visual
    frames = torch.rand(cfg.window_segments, 3, vis.frames, vis.img_size, vis.img_size, generator=g) * 2 - 1

    def encode() -> tuple[Tensor, Tensor | None]:
        """The window's features and, with cue views, what its cues read (the tower runs once per view)."""
        feats = model.encode_segments(frames)
        views = cue_views_for(cfg, model.encode_segments)
        if views is None:
            return feats, None
        views.add(frames)
        return feats, views.combine(feats)

    log("visual encoding…")
    model.encode_segments(frames[:1])  # warm-up
    res.visual_encode_s, (feats, cue_feats) = _timed(device, encode)
    feats = feats.reshape(1, -1, vis.dim)
    cue_feats = None if cue_feats is None else cue_feats.reshape(1, -1, vis.dim).to(device)

    lm = model.sampler
    rows = 2 if params.uses_cfg else 1
    prompt_len = max(1, n_tokens - round(cfg.codec.frame_rate * cfg.segment_seconds))
    log("prefill…")
    video = lm.project_video(torch.cat([feats, feats]).to(dtype)[:rows], torch.arange(rows) > 0)
    seq = torch.randint(0, cfg.vocab_size, (rows, cfg.n_codebooks, prompt_len + 1), generator=g).to(device)
    cache = lm.new_cache(rows, prompt_len + 1)
    res.prefill_positions = prompt_len + 1
    res.prefill_s, _ = _timed(device, lambda: lm(seq, video, cache=cache, last_only=True))

    log("window with the KV cache…")

    def window(n: int, use_cache: bool = True) -> WindowResult:
        return generate_window(
            lm, feats, n, params=params, seeds=[seed], cue_features=cue_feats, use_cache=use_cache
        )

    window(min(n_tokens, 16))  # warm-up
    res.window_cached_s, out = _timed(device, lambda: window(n_tokens))
    res.decode_tokens_per_s = out.steps / res.window_cached_s

    if uncached:
        log("same window with the uncached oracle (slow)…")
        res.window_uncached_s, _ = _timed(device, lambda: window(n_tokens, use_cache=False))
        res.speedup_vs_uncached = res.window_uncached_s / res.window_cached_s

    log("codec decode…")
    res.codec_decode_s, _ = _timed(device, lambda: model.audio_encoder.decode(out.codes))
    res.realtime_factor = audio_seconds / (res.visual_encode_s + res.window_cached_s + res.codec_decode_s)
    res.peak_memory_mb = _peak_memory_mb(device)
    res.notes.append(f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    return res


@dataclass
class ClipBenchResult:
    model: str
    device: str
    clip: str
    clip_seconds: float
    stages: dict[str, float]  # seconds per stage
    total_s: float
    realtime_factor: float
    peak_memory_mb: float
    chains: int = 1
    candidates: int = 1
    codec_overlapped_s: float = 0.0  # codec decoding done during generation (inside its stage)

    @property
    def audio_ready_s(self) -> float:
        """Clip in, audio out: every stage but the export (decode, features, generation, codec)."""
        return sum(v for k, v in self.stages.items() if k != "export")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["audio_ready_s"] = self.audio_ready_s
        out["audio_ready_realtime_factor"] = self.clip_seconds / self.audio_ready_s
        return out

    def table(self) -> str:
        lines = [
            f"clip {self.clip} ({self.clip_seconds:.1f} s), model {self.model} on {self.device}, "
            f"{self.chains} chain{'s' if self.chains > 1 else ''}, "
            f"{self.candidates} candidate{'s' if self.candidates > 1 else ''} per stretch",
        ]
        for stage, secs in self.stages.items():
            lines.append(f"  {stage:<12} {secs:8.2f} s  {100 * secs / self.total_s:5.1f} %")
        ready = self.audio_ready_s
        lines.append(
            f"  {'audio ready':<12} {ready:8.2f} s  ({self.clip_seconds / ready:.2f}x real time, "
            "before export)"
        )
        lines.append(f"  {'total':<12} {self.total_s:8.2f} s  ({self.realtime_factor:.2f}x real time)")
        lines.append(f"  peak memory  {self.peak_memory_mb:.0f} MB")
        lines.append(
            f"  codec decoding during generation: {self.codec_overlapped_s:.2f} s of "
            f"{self.codec_overlapped_s + self.stages.get('codec', 0.0):.2f} s"
        )
        return "\n".join(lines)


def run_clip_bench(
    model: VAura,
    *,
    name: str,
    clip: str,
    out_dir: str,
    params: SamplingParams | None = None,
    seed: int = 0,
    chains: int = DEFAULT_CHAINS,
    candidates: int | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> ClipBenchResult:
    """End to end on a real clip: decode, visual features, generation, codec decode, WAV + MP4 export.

    `chains` and `candidates` as `Engine.generate` (chains 1: every window continues the one before;
    candidates None: the model's default)."""
    from pathlib import Path

    from vaura_core.engine.engine import Engine
    from vaura_core.engine.features import compute_clip_features
    from vaura_core.export import export_wav, mux_video
    from vaura_core.media.probe import probe

    device = model.device
    params = params or SamplingParams(temperature=0.95, top_k=128, cfg_scale=6.0)
    engine = Engine(model, name)
    stages: dict[str, float] = {}
    t_start = time.perf_counter()
    info = probe(clip)
    stages["decode"] = time.perf_counter() - t_start
    log("decoding video and computing features…")
    feats = compute_clip_features(model, info, timings=stages)
    log("generating…")
    t0 = time.perf_counter()
    codec: dict[str, float] = {}
    take = engine.generate(feats, params, [seed], chains=chains, candidates=candidates, timings=codec)[0]
    _sync(device)
    # The codec decodes finished windows while later ones generate; only its wait at the end adds.
    choose = codec.get("choose", 0.0)
    stages["generation"] = time.perf_counter() - t0 - codec["codec_wait"] - choose
    stages["codec"] = codec["codec_wait"]
    if choose:
        stages["choose"] = choose
    log("exporting…")
    t0 = time.perf_counter()
    out = Path(out_dir)
    export_wav(take.audio, model.cfg.codec.sample_rate, out / "bench.wav", out_rate=48000)
    mux_video(info.path, out / "bench.mp4", take.audio, model.cfg.codec.sample_rate)
    stages["export"] = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    return ClipBenchResult(
        model=name,
        device=str(device),
        clip=str(info.path.name),
        clip_seconds=info.duration,
        chains=take.chains,
        candidates=take.candidates,
        stages=stages,
        total_s=total,
        realtime_factor=info.duration / total,
        peak_memory_mb=_peak_memory_mb(device),
        codec_overlapped_s=max(0.0, codec["codec_busy"] - codec["codec_wait"]),
    )

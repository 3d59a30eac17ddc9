"""`vaura generate CLIP -o OUT.(wav|mp4|mov)`: write Foley for a clip with the embedded or another model.

Exit codes: 0 ok, 2 bad input, 3 model unavailable, 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path

from vaura_core.cli.candidates_arg import add_candidates_arg, candidates_problem
from vaura_core.cli.model_arg import HELP as MODEL_HELP
from vaura_core.engine.chains import DEFAULT_CHAINS

OUTPUT_SUFFIXES = (".wav", ".mp4", ".mov")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate sound for a video clip", description=__doc__)
    p.add_argument("clip", help="video file")
    p.add_argument("-o", "--output", required=True, help="output .wav, .mp4 or .mov")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random); takes use seed+i")
    p.add_argument("--temperature", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=128, help="0 disables top-k")
    p.add_argument("--top-p", type=float, default=0.0, help="nucleus sampling; 0 disables it")
    p.add_argument("--cfg", type=float, default=6.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--stride", type=float, default=0.64, help="window stride in seconds (0.64, 1.28 or 1.92)")
    p.add_argument("--start", type=float, default=None, help="start of the range to generate (s)")
    p.add_argument("--end", type=float, default=None, help="end of the range to generate (s)")
    p.add_argument("--variations", type=int, default=1, help="number of takes, generated as one batch")
    p.add_argument(
        "--chains",
        type=int,
        default=DEFAULT_CHAINS,
        help="generate a long range as up to this many stretches side by side, each switching to the "
        f"next at a quiet moment (default {DEFAULT_CHAINS}; 1: every window continues the one before)",
    )
    add_candidates_arg(p)
    p.add_argument("--rate", type=int, default=44100, choices=[44100, 48000], help="WAV sample rate")
    p.add_argument("--bits", default="24", choices=["16", "24", "32f"], help="WAV sample format")
    p.add_argument("--loudness", type=float, default=None, help="normalise to this LUFS (e.g. -23)")
    p.add_argument("--keep-original-audio", action="store_true", help="MP4/MOV: keep the clip's audio too")
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    p.set_defaults(func=run)


def _fail(code: int, message: str) -> int:
    print(f"vaura generate: {message}", file=sys.stderr)
    return code


def output_paths(output: Path, n: int) -> list[Path]:
    if n == 1:
        return [output]
    return [output.with_name(f"{output.stem}-take{i + 1}{output.suffix}") for i in range(n)]


def run(args: argparse.Namespace) -> int:
    from vaura_core.cli import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_MODEL_UNAVAILABLE
    from vaura_core.errors import Cancelled, ModelUnavailableError, VauraError
    from vaura_core.generation.sampling import SamplingParams
    from vaura_core.media.errors import MediaError
    from vaura_core.media.probe import probe

    out = Path(args.output)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        return _fail(EXIT_BAD_INPUT, f"{out.name}: output must end in .wav, .mp4 or .mov")
    if not out.parent.resolve().is_dir():
        return _fail(EXIT_BAD_INPUT, f"{out.parent}: output folder does not exist")
    if not 1 <= args.variations <= 16:
        return _fail(EXIT_BAD_INPUT, "--variations must be between 1 and 16")
    from vaura_core.engine.chains import MAX_CHAINS

    if not 1 <= args.chains <= MAX_CHAINS:
        return _fail(EXIT_BAD_INPUT, f"--chains must be between 1 and {MAX_CHAINS}")
    if problem := candidates_problem(args.candidates):
        return _fail(EXIT_BAD_INPUT, problem)
    stride = round(args.stride / 0.64)
    if stride < 1 or abs(stride * 0.64 - args.stride) > 1e-6:
        return _fail(EXIT_BAD_INPUT, "--stride must be a multiple of 0.64 s (0.64, 1.28 or 1.92)")
    try:
        params = SamplingParams(
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, cfg_scale=args.cfg
        )
    except ValueError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    try:
        info = probe(args.clip)
    except MediaError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    start = 0.0 if args.start is None else args.start
    end = info.duration if args.end is None else min(args.end, info.duration)
    if not 0.0 <= start < end:
        return _fail(
            EXIT_BAD_INPUT, f"empty range: --start {start} --end {end} (clip is {info.duration:.3f} s)"
        )

    from vaura_core.cli.model_arg import load_model_arg
    from vaura_core.engine.device import resolve_device, resolve_dtype
    from vaura_core.engine.engine import Engine
    from vaura_core.engine.features import compute_clip_features
    from vaura_core.generation.generate import CancelToken

    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.precision, device)
    except ValueError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    try:
        model, name, _ = load_model_arg(args.model, device, dtype)
    except ModelUnavailableError as exc:
        return _fail(EXIT_MODEL_UNAVAILABLE, str(exc))
    except VauraError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    if stride >= model.cfg.window_segments:
        return _fail(
            EXIT_BAD_INPUT, f"--stride must be shorter than the {model.cfg.window_seconds:.2f} s window"
        )

    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    seeds = [seed + i for i in range(args.variations)]
    engine = Engine(model, name)
    cancel = CancelToken()
    bar = _ProgressBar(quiet=False)
    t0 = time.perf_counter()
    try:
        clip = compute_clip_features(model, info, progress=bar.update, cancel=cancel)
        t_features = time.perf_counter() - t0
        takes = engine.generate(
            clip,
            params,
            seeds,
            start=start,
            end=end,
            stride_segments=stride,
            chains=args.chains,
            candidates=args.candidates,
            progress=bar.update,
            cancel=cancel,
        )
        t_generate = time.perf_counter() - t0 - t_features
        bar.close()
        paths = output_paths(out, len(takes))
        for take, path in zip(takes, paths, strict=True):
            _write(args, info, take, path, model.cfg.codec.sample_rate, cancel)
    except KeyboardInterrupt:
        cancel.cancel()
        bar.close()
        return _fail(EXIT_CANCELLED, "cancelled; nothing was written")
    except Cancelled:
        bar.close()
        return _fail(EXIT_CANCELLED, "cancelled; nothing was written")
    except MediaError as exc:
        bar.close()
        return _fail(EXIT_BAD_INPUT, str(exc))
    except VauraError as exc:
        bar.close()
        return _fail(EXIT_BAD_INPUT, str(exc))
    elapsed = time.perf_counter() - t0
    report = {
        "clip": str(info.path),
        "outputs": [str(p) for p in paths],
        "model": name,
        "device": str(device),
        "duration": end - start,
        "seconds": {"features": t_features, "generation": t_generate, "total": elapsed},
        "takes": [t.record() for t in takes],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for take, path in zip(takes, paths, strict=True):
            print(f"wrote {path} (seed {take.seed})", file=sys.stderr)
        print(f"{end - start:.2f} s of audio in {elapsed:.1f} s", file=sys.stderr)
    return 0


def _write(args, info, take, path: Path, sample_rate: int, cancel) -> None:
    import numpy as np

    from vaura_core.export import LoudnessTarget, export_wav, mux_video

    loudness = LoudnessTarget(lufs=args.loudness) if args.loudness is not None else None
    if path.suffix.lower() == ".wav":
        subtype = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}[args.bits]
        export_wav(
            take.audio,
            sample_rate,
            path,
            out_rate=args.rate,
            subtype=subtype,
            loudness=loudness,
            cancel=cancel,
        )
        return
    # The video keeps its own timing: place the take on a full-length track starting at frame 0.
    n = round(info.duration * sample_rate)
    track = np.zeros(n, dtype=np.float32)
    piece = take.audio[: max(0, n - take.sample_start)]
    track[take.sample_start : take.sample_start + len(piece)] = piece
    if loudness is not None:
        from vaura_core.export import normalize_loudness

        track, _ = normalize_loudness(track, sample_rate, loudness)
    ranged = take.start > 0 or take.end < info.duration - 1e-6
    mux_video(
        info.path,
        path,
        track,
        sample_rate,
        keep_original_audio=args.keep_original_audio,
        start=take.start if ranged else None,
        end=take.end if ranged else None,
        cancel=cancel,
    )


class _ProgressBar:
    """A tqdm bar on stderr fed with engine Progress reports."""

    def __init__(self, quiet: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=1000, disable=quiet, file=sys.stderr, unit="‰", bar_format="{desc} {bar} {postfix}"
        )
        self._stage = ""
        self._shown = 0.0

    def update(self, p) -> None:
        # At most 5 redraws a second (engine progress arrives every decode step), plus stage changes.
        now = time.monotonic()
        if p.stage == self._stage and now - self._shown < 0.2 and p.fraction < 1.0:
            return
        self._shown = now
        if p.stage != self._stage:
            self._stage = p.stage
            self._bar.set_description_str(p.stage)
        self._bar.n = round(p.fraction * 1000)
        eta = "" if p.eta_seconds is None else f"ETA {p.eta_seconds:.0f} s"
        self._bar.set_postfix_str(f"{p.fraction:5.1%} {eta}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

"""`vaura bench`: speed and memory of the engine on this machine."""

from __future__ import annotations

import argparse
import json
import sys

from vaura_core.cli.candidates_arg import add_candidates_arg, candidates_problem
from vaura_core.cli.model_arg import HELP as MODEL_HELP
from vaura_core.engine.chains import DEFAULT_CHAINS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure engine speed and memory", description=__doc__)
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument(
        "--preset",
        default=None,
        help="benchmark a preset with random weights instead of an installed model (e.g. vaura)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="default: fp32 on CPU")
    p.add_argument("--tokens", type=int, default=None, help="audio steps per window (default: a full window)")
    p.add_argument("--no-uncached", action="store_true", help="skip the slow uncached oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--clip",
        default=None,
        help="end-to-end benchmark on this video (decode, features, generation, codec, export)",
    )
    p.add_argument(
        "--chains",
        type=int,
        default=DEFAULT_CHAINS,
        help="with --clip: generate the clip as up to this many stretches side by side (default "
        f"{DEFAULT_CHAINS}; 1: continuous)",
    )
    add_candidates_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from vaura_core.bench import run_bench
    from vaura_core.cli import EXIT_BAD_INPUT, EXIT_MODEL_UNAVAILABLE
    from vaura_core.errors import VauraError
    from vaura_core.model.config import preset
    from vaura_core.model.vaura import build_model

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    from vaura_core.engine.chains import MAX_CHAINS

    if not 1 <= args.chains <= MAX_CHAINS:
        print(f"vaura bench: --chains must be between 1 and {MAX_CHAINS}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if problem := candidates_problem(args.candidates):
        print(f"vaura bench: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        print(f"vaura bench: bad --device {args.device!r}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    dtype = dtypes[args.dtype] if args.dtype else (torch.float32 if device.type == "cpu" else torch.bfloat16)
    try:
        if args.preset:
            cfg = preset(args.preset)
            name = f"{cfg.name} (random weights)"
            model = build_model(cfg, device="meta")
            model = model.to_empty(device=device)
            _randomise(model)
            model.sampler.to(dtype)
            model.visual_feature_extractor.to(dtype)
        else:
            from vaura_core.cli.model_arg import load_model_arg

            model, name, _ = load_model_arg(args.model, device, dtype)
    except KeyError as exc:
        print(f"vaura bench: {exc.args[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except VauraError as exc:
        print(f"vaura bench: {exc}", file=sys.stderr)
        return EXIT_MODEL_UNAVAILABLE
    if args.tokens is not None and not 2 <= args.tokens <= model.cfg.lm.block_size - model.cfg.n_codebooks:
        print(f"vaura bench: --tokens must be within 2..{model.cfg.lm.block_size - model.cfg.n_codebooks}")
        return EXIT_BAD_INPUT

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    if args.clip:
        return _clip_bench(args, model, name)
    res = run_bench(
        model, name=name, tokens=args.tokens, uncached=not args.no_uncached, seed=args.seed, log=log
    )
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.table())
    return 0


def _randomise(model) -> None:
    """Fill an uninitialised model with small random values (timing does not depend on them)."""
    import torch

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32).mul_(0.02).to(t.dtype))


def _clip_bench(args: argparse.Namespace, model, name: str) -> int:
    import tempfile

    from vaura_core.bench import run_clip_bench
    from vaura_core.cli import EXIT_BAD_INPUT
    from vaura_core.errors import VauraError

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="vaura-bench-") as out_dir:
        try:
            res = run_clip_bench(
                model,
                name=name,
                clip=args.clip,
                out_dir=out_dir,
                seed=args.seed,
                chains=args.chains,
                candidates=args.candidates,
                log=log,
            )
        except VauraError as exc:
            print(f"vaura bench: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.table())
    return 0

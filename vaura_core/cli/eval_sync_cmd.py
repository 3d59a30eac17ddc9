"""`vaura eval-sync --model vaura-tiny --count N --seed S [--json]`: measure audio-visual alignment.

Generates audio for N fresh Foley World clips (the clips `vaura foley-world --seed S --count N`
writes), detects onsets (librosa) and matches them to the clips' events (mir_eval): precision, recall
and F1 at +/-50 and +/-100 ms, timing errors, material accuracy; the same for a control conditioned on
another clip's video, and for the ground-truth audio (detector sanity).
Exit codes: 0 ok (whether or not the targets are met), 2 bad input, 3 model unavailable, 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import sys

from vaura_core.cli.candidates_arg import add_candidates_arg, candidates_problem
from vaura_core.cli.model_arg import HELP as MODEL_HELP
from vaura_core.engine.chains import DEFAULT_CHAINS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-sync", help="measure how well generated sound follows the picture", description=__doc__
    )
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--count", type=int, required=True, help="number of Foley World clips (at least 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clips and of the sampling (default 0)")
    p.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--temperature", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=128)
    p.add_argument("--cfg", type=float, default=6.0, help="classifier-free guidance scale")
    p.add_argument(
        "--chains",
        type=int,
        default=DEFAULT_CHAINS,
        help=f"generate each clip as up to K stretches side by side (default {DEFAULT_CHAINS}; 1: "
        "sequential windows)",
    )
    add_candidates_arg(p)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument(
        "--card", action="store_true", help="also write the numbers into the model folder's MODEL_CARD.md"
    )
    p.set_defaults(func=run)


def _fail(code: int, message: str) -> int:
    print(f"vaura eval-sync: {message}", file=sys.stderr)
    return code


def _table(report: dict) -> str:
    rows = [
        ("generated", report["generated"]),
        ("control", report["control"]),
        ("ground truth", report["ground_truth"]),
        ("codec ceiling", report["codec_ceiling"]),
    ]
    head = (
        f"{'audio':<13} {'F1@50':>6} {'P@50':>6} {'R@50':>6} {'F1@100':>7} {'mean|e|ms':>9} "
        f"{'max|e|ms':>9} {'material':>8}"
    )
    lines = [head]
    for name, m in rows:
        lines.append(
            f"{name:<13} {m['f1_50']:6.3f} {m['precision_50']:6.3f} {m['recall_50']:6.3f} {m['f1_100']:7.3f} "
            f"{m['mean_abs_error_ms']:9.1f} {m['max_abs_error_ms']:9.1f} {m['material_accuracy']:8.3f}"
        )
    passed = report["passed"]
    lines.append("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in passed.items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from vaura_core.cli import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_MODEL_UNAVAILABLE
    from vaura_core.errors import Cancelled, ModelUnavailableError, VauraError

    if not 2 <= args.count <= 1000:
        return _fail(EXIT_BAD_INPUT, "--count must be between 2 and 1000")
    if args.seed < 0:
        return _fail(EXIT_BAD_INPUT, "--seed must be >= 0")
    if not 2.56 <= args.duration <= 600:
        return _fail(EXIT_BAD_INPUT, "--duration must be between 2.56 and 600 seconds")
    from vaura_core.engine.chains import MAX_CHAINS

    if not 1 <= args.chains <= MAX_CHAINS:
        return _fail(EXIT_BAD_INPUT, f"--chains must be between 1 and {MAX_CHAINS}")
    if problem := candidates_problem(args.candidates):
        return _fail(EXIT_BAD_INPUT, problem)
    try:
        from vaura_core.generation.sampling import SamplingParams

        params = SamplingParams(temperature=args.temperature, top_k=args.top_k, cfg_scale=args.cfg)
    except ValueError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))

    from vaura_core.cli.model_arg import load_model_arg
    from vaura_core.evaluation.sync import evaluate_sync

    try:
        model, name, folder = load_model_arg(args.model)
    except ModelUnavailableError as exc:
        return _fail(EXIT_MODEL_UNAVAILABLE, str(exc))
    except VauraError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr)

    try:
        report = evaluate_sync(
            model,
            name,
            args.count,
            args.seed,
            duration=args.duration,
            params=params,
            chains=args.chains,
            candidates=args.candidates,
            progress=progress,
        )
    except Cancelled as exc:
        return _fail(EXIT_CANCELLED, str(exc))
    except VauraError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    report.command = (
        f"vaura eval-sync --model {name} --count {args.count} --seed {args.seed} --duration {args.duration:g}"
        f" --chains {args.chains}"  # named always: the default changed (1 before parallel chains)
        f" --candidates {report.candidates}"  # likewise (1 before candidates)
    )
    data = report.to_dict()
    if args.card:
        from vaura_core.training.card import write_model_card

        try:
            write_model_card(folder, data)
        except VauraError as exc:
            return _fail(EXIT_BAD_INPUT, str(exc))
    print(json.dumps(data, indent=2) if args.json else _table(data))
    return 0

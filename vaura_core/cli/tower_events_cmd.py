"""`vaura tower-events --checkpoint FILE [--count N] [--seed S] [--json]`: how well a trained visual
tower finds impacts.

FILE is `tower.pt` or `lm.pt` from the work folder of `vaura train-tiny` (the tower runs with the sizes
it was trained with, `--img-size` included). Renders Foley World scenes S .. S+N-1 (pick seeds no training
run used: the default 990000 is past every run's block) and scores the event head's call on every
visual token: impact tokens called right, missed, given the wrong material; false alarms on tokens
without an impact; and the share of impact events found by kind (floor, wall, a collision of two
objects). Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tower-events",
        help="score a training checkpoint's visual tower on Foley World impacts",
        description=__doc__,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="tower.pt or lm.pt from a train-tiny work folder, or a model folder with impact cues "
        "(its event head ships with it)",
    )
    p.add_argument("--count", type=int, default=12, help="number of scenes (default 12)")
    p.add_argument("--seed", type=int, default=990_000, help="first scene seed (default 990000)")
    p.add_argument("--duration", type=float, default=10.0, help="scene length in seconds (default 10)")
    p.add_argument("--json", action="store_true", help="print the counts and rates as JSON")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    from vaura_core.cli import EXIT_BAD_INPUT

    print(f"vaura tower-events: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= 1000:
        return _fail("--count must be between 1 and 1000")
    if args.seed < 0:
        return _fail("--seed must be >= 0")
    if not 0.64 <= args.duration <= 600:
        return _fail("--duration must be between 0.64 and 600 seconds")

    from vaura_core.errors import VauraError
    from vaura_core.model.config import preset
    from vaura_core.training.tower_probe import probe_tower

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"scene {done}/{total}", file=sys.stderr)

    seeds = range(args.seed, args.seed + args.count)
    try:
        result = probe_tower(Path(args.checkpoint), preset("tiny"), seeds, args.duration, progress)
    except VauraError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    r = result.rates()
    print(
        f"impact tokens {result.impact_tokens}: right {r['right']:.3f}, missed {r['missed']:.3f}, "
        f"wrong material {r['wrong_material']:.3f}"
    )
    print(f"tokens without an impact {result.empty_tokens}: false alarms {r['false_alarms']:.3f}")
    for kind, (found, total) in sorted(result.found_by_kind.items()):
        print(f"{kind} impacts found: {found}/{total} = {found / total:.2f}")
    return 0

"""`vaura foley-world`: render procedural Foley training clips (MP4 + JSON of sound events)."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "foley-world",
        help="render procedural audio-visual training clips",
        description="Render Foley World clips: MP4 (H.264 + AAC) and one JSON of sound events per clip. "
        "The same --seed always gives the same clips.",
    )
    p.add_argument(
        "--out", required=True, help="folder to write clip_00000.mp4/.json ... and index.json into"
    )
    p.add_argument("--count", type=int, required=True, help="number of clips")
    p.add_argument(
        "--seed", type=int, required=True, help="data set seed (clip i uses a seed derived from it)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per clip (default 10)")
    p.add_argument("--size", type=int, default=128, help="picture width and height in pixels (default 128)")
    p.add_argument("--fps", type=int, default=25, help="frames per second (default 25)")
    p.add_argument(
        "--sustained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sliding and rolling sounds in every clip (--no-sustained: in none; default: seed decides)",
    )
    p.add_argument("--workers", type=int, default=1, help="processes rendering in parallel (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vaura_core.cli import EXIT_BAD_INPUT
    from vaura_core.errors import VauraError
    from vaura_core.foley_world import render_dataset

    started = time.perf_counter()
    overwrite = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        line = f"foley-world: {done}/{total} clips, {elapsed:.1f} s"
        print(
            ("\r" + line) if overwrite else line, end="" if overwrite else "\n", file=sys.stderr, flush=True
        )

    try:
        index = render_dataset(
            args.out,
            args.count,
            args.seed,
            args.duration,
            args.workers,
            size=args.size,
            fps=args.fps,
            sustained=args.sustained,
            progress=progress,
        )
    except VauraError as exc:
        if overwrite:
            print(file=sys.stderr)
        print(f"vaura foley-world: {str(exc).removeprefix('foley world: ')}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if overwrite:
        print(file=sys.stderr)
    print(index)
    return 0

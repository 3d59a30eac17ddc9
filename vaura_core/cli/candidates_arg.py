"""The `--candidates` option of the commands that generate (`engine.candidates`)."""

from __future__ import annotations

import argparse

from vaura_core.engine.candidates import DEFAULT_CANDIDATES, MAX_CANDIDATES

HELP = (
    "sample each stretch this many times and keep the one whose hits best match the impacts the model "
    f"sees (1 to {MAX_CANDIDATES}; default {DEFAULT_CANDIDATES} for a model with impact cues, such as "
    "the embedded one; a model without them generates one)"
)


def add_candidates_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidates", type=int, default=None, help=HELP)


def candidates_problem(value: int | None) -> str | None:
    """Why `--candidates value` is refused, or None."""
    if value is not None and not 1 <= value <= MAX_CANDIDATES:
        return f"--candidates must be between 1 and {MAX_CANDIDATES}"
    return None

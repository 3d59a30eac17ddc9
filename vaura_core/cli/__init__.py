"""The `vaura` command line.

Each sub-command lives in its own module `vaura_core/cli/<name>_cmd.py` exposing
`register(subparsers)`; the module adds its parser and sets `func` (called with the parsed
namespace, returns an exit code). Modules are found automatically. Keep their top-level imports
light (import torch inside `func`) so `vaura --help` stays fast.

Exit codes: 0 ok, 2 bad input, 3 model unavailable, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_MODEL_UNAVAILABLE = 3
EXIT_CANCELLED = 130


def _command_modules() -> list[str]:
    """Every `vaura_core/cli/*_cmd.py` module, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaura", description="VAURA Studio command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"vaura_core.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())

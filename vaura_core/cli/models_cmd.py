"""`vaura models list | download NAME | import PATH... | remove NAME`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaura_core.cli import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_MODEL_UNAVAILABLE, EXIT_OK
from vaura_core.errors import Cancelled, ModelUnavailableError, VauraError
from vaura_core.model.config import PRESETS

if TYPE_CHECKING:
    from vaura_core.weights.registry import ModelRegistry


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, download, import and remove models")
    actions = parser.add_subparsers(dest="models_action", required=True, metavar="ACTION")

    p = actions.add_parser("list", help="show built-in, installed and downloadable models")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_guarded(_list))

    p = actions.add_parser("download", help="download a catalog model and install it")
    p.add_argument("name")
    p.add_argument("--offline", action="store_true", help="never use the network (also: VAURA_OFFLINE=1)")
    p.add_argument("--keep", action="store_true", help="keep the downloaded files after installing")
    p.set_defaults(func=_guarded(_download))

    p = actions.add_parser("import", help="install local weights (checkpoint, release tarball or folder)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--name", help="model name (default: from the first file name)")
    p.add_argument("--force", action="store_true", help="replace a model of the same name")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="model sizes to assume when the files carry no hparams and are not the release's",
    )
    p.set_defaults(func=_guarded(_import))

    p = actions.add_parser("remove", help="delete an installed model")
    p.add_argument("name")
    p.set_defaults(func=_guarded(_remove))


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn user-facing errors into a one-line message and the documented exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except Cancelled as err:
            print(f"cancelled: {err}", file=sys.stderr)
            return EXIT_CANCELLED
        except ModelUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_MODEL_UNAVAILABLE
        except VauraError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT

    return run


def _registry() -> ModelRegistry:
    from vaura_core.weights.registry import ModelRegistry

    return ModelRegistry()


def _list(args: argparse.Namespace) -> int:
    registry = _registry()
    models = registry.list()
    if args.json:
        print(json.dumps({"root": str(registry.root), "models": [m.to_dict() for m in models]}, indent=2))
        return EXIT_OK
    rows = [("NAME", "STATUS", "SIZE", "DESCRIPTION")]
    for m in models:
        status = "installed" if m.installed else ("downloadable" if m.downloadable else "missing")
        if m.builtin:
            status += " (built in)"
        size = "" if m.size_bytes is None else _human_bytes(m.size_bytes, approx=not m.installed)
        rows.append((m.name, status, size, m.description))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    print(f"\nmodels folder: {registry.root}")
    return EXIT_OK


def _download(args: argparse.Namespace) -> int:
    registry = _registry()
    bar = _ProgressBar(f"downloading {args.name}")

    def announce(message: str) -> None:
        bar.close()
        print(f"{message} (this can take a few minutes for large models)", file=sys.stderr)

    try:
        info = registry.download(
            args.name, progress=bar, offline=args.offline, keep=args.keep, status=announce
        )
    finally:
        bar.close()
    print(f"installed {info.name} at {info.path}")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    info = _registry().import_path(args.paths, name=args.name, overwrite=args.force, config_hint=args.preset)
    print(f"imported {info.name} at {info.path}")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    _registry().remove(args.name)
    print(f"removed {args.name}")
    return EXIT_OK


class _ProgressBar:
    """A tqdm bar on stderr, created on the first report; a new file (or restart) resets it."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._total: int | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is None or total != self._total or done < self._bar.n:
            self.close()
            from tqdm import tqdm

            self._total = total
            self._bar = tqdm(
                total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=self._label,
                file=sys.stderr, dynamic_ncols=True,
            )  # fmt: skip
            return
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _human_bytes(n: int, approx: bool = False) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, unit = float(n), 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    text = f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"
    return f"~{text}" if approx else text

"""The `vaura-studio` entry point: parse the command line, start Qt and show the main window."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _milliseconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of milliseconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more milliseconds, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaura-studio",
        description="VAURA Studio: generate synchronised Foley sound for a video clip with V-AURA.",
    )
    parser.add_argument("clip", nargs="?", type=Path, help="video clip to open at start-up")
    parser.add_argument(
        "--quit-after-ms",
        type=_milliseconds,
        metavar="MS",
        help="quit MS milliseconds after start-up (for smoke tests of the installed app)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    # Qt is imported only now so that `--help` and argument errors answer without loading it.
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import SETTINGS_APPLICATION, SETTINGS_ORGANIZATION, MainWindow

    qt_app = QApplication.instance() or QApplication([sys.argv[0]])
    qt_app.setOrganizationName(SETTINGS_ORGANIZATION)
    qt_app.setApplicationName(SETTINGS_APPLICATION)

    window = MainWindow()
    window.show()
    if args.clip is not None and not window.open_clip(args.clip):
        print(window.status_message(), file=sys.stderr)
    if args.quit_after_ms is not None:
        QTimer.singleShot(args.quit_after_ms, qt_app.quit)
    return int(qt_app.exec())


if __name__ == "__main__":
    sys.exit(main())

"""The `vaura-studio` entry point: parse the command line, start Qt and show the main window."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication, QSplashScreen

ICON = Path(__file__).resolve().parent.parent / "resources" / "icons" / "vaura-studio.png"


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
    parser.add_argument(
        "clip", nargs="?", type=Path, help="video clip (or .vaura project) to open at start-up"
    )
    parser.add_argument(
        "--quit-after-ms",
        type=_milliseconds,
        metavar="MS",
        help="quit MS milliseconds after start-up (for smoke tests of the installed app)",
    )
    parser.add_argument("--model", metavar="NAME", help="the model to load (default: the last one chosen)")
    parser.add_argument("--device", metavar="DEVICE", help="where the model runs: auto, cpu, cuda, mps")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="drive the window offscreen through a whole job (open, generate, regenerate, audition, "
        "commit, export) with the default model or --model, verify the results and exit 0, or non-zero "
        "with the reason",
    )
    return parser


def _warm_up_behind_splash(qt_app: QApplication) -> QSplashScreen:
    """Import what the first model load needs while a splash screen shows, and return the splash.

    In the engine thread, with the window live, those imports hold the GIL: the window stalled four
    times over 50 ms during the first load, three of them 0.3-0.4 s, against one of 60-70 ms after a
    warm-up (a 10 ms timer, 2-core VM with a training run beside it). Here they only delay the window.
    """
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPainter, QPixmap
    from PySide6.QtWidgets import QSplashScreen

    from app.worker import warm_up_engine

    palette = qt_app.palette()
    canvas = QPixmap(300, 300)  # the icon above a line of text, in the theme's colours
    canvas.fill(palette.window().color())
    icon = QPixmap(str(ICON))
    if not icon.isNull():  # an install without the icon still starts
        painter = QPainter(canvas)
        painter.drawPixmap(40, 24, icon.scaled(220, 220, Qt.AspectRatioMode.KeepAspectRatio))
        painter.end()
    splash = QSplashScreen(canvas)
    splash.showMessage(
        "Starting the engine…",
        Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter,
        palette.windowText().color(),
    )
    splash.show()
    qt_app.processEvents()
    warm_up_engine()
    return splash


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test and args.clip is not None:
        print("--self-test uses the demo clip; do not name a clip", file=sys.stderr)
        return 2
    if args.self_test:
        # Offscreen unless told otherwise (QT_QPA_PLATFORM=xcb shows the self-test running).
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    # Qt is imported only now so that `--help` and argument errors answer without loading it.
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import SETTINGS_APPLICATION, SETTINGS_ORGANIZATION, MainWindow, apply_theme

    qt_app = QApplication.instance() or QApplication([sys.argv[0]])
    qt_app.setOrganizationName(SETTINGS_ORGANIZATION)
    qt_app.setApplicationName(SETTINGS_APPLICATION)
    apply_theme(qt_app)
    splash = _warm_up_behind_splash(qt_app)

    if args.self_test:
        from app import self_test

        splash.close()
        return self_test.run(model=args.model, device=args.device or "auto")

    # A user's start-up: the very first shows the model manager too (non-modal: --quit-after-ms still quits).
    window = MainWindow(model=args.model, device=args.device, first_run=True)
    # Start-up's objects (modules, Qt wrappers: about 435,000 after the warm-up) live as long as the
    # app. Frozen, they leave Python's rare full collections, each of which would otherwise stop every
    # thread, the window's included, for 0.3-0.5 s on the 2-core development VM. (No collection first:
    # it took 0.53 s here and found 23 unreachable objects.)
    gc.freeze()
    window.show()
    splash.finish(window)
    if args.clip is not None and not window.open_clip(args.clip):
        print(window.status_message(), file=sys.stderr)
    if args.quit_after_ms is not None:
        QTimer.singleShot(args.quit_after_ms, window.close)
    code = int(qt_app.exec())
    window.shutdown()  # quitting without closing the window (a session ending) still stops the threads
    return code


if __name__ == "__main__":
    sys.exit(main())

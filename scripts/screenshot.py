"""Take the README's screenshot of VAURA Studio at work, from the real window on a real X server.

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/screenshot.py docs/screenshot.png

Opens the demo clip, generates the whole clip with the default model (or --model), regenerates a
region in three variations, commits the second, selects the region so its takes are listed, parks the
playhead inside it, waits until pictures and waveforms are drawn, and grabs the window from the screen.
Settings and recovery copies go to a temporary folder, so the user's own are never touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DEMO_CLIP = REPO_ROOT / "resources" / "examples" / "demo.mp4"
TIMEOUT_S = 600.0


def _wait(app: object, condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshot: timed out waiting for {what}")
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.01)


def _settle(app: object, seconds: float) -> None:
    end = time.monotonic() + seconds
    _wait(app, lambda: time.monotonic() > end, "the window to settle")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="PNG file to write")
    parser.add_argument("--clip", type=Path, default=DEMO_CLIP, help="clip to show (default: the demo clip)")
    parser.add_argument("--model", help="model to generate with (default: the default model)")
    parser.add_argument("--device", default="auto", help="device for the model (default: auto)")
    parser.add_argument("--size", default="1600x1000", help="window size, WIDTHxHEIGHT (default 1600x1000)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if not args.clip.is_file():
        parser.error(f"{args.clip}: the clip does not exist")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow, apply_theme
    from app.timeline import GRID_SECONDS
    from vaura_core.weights.registry import DEFAULT_MODEL

    app = QApplication([sys.argv[0]])
    apply_theme(app)
    with tempfile.TemporaryDirectory(prefix="vaura-screenshot-") as temp:
        folder = Path(temp)
        settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(
            settings,
            model=args.model or DEFAULT_MODEL,
            device=args.device,
            confirm_close=False,
            check_recovery=False,
            recovery_root=folder / "recovery",
        )
        failed: list[str] = []  # connected before the event loop turns: the model loads at once
        window.engine.model_failed.connect(failed.append)
        window.generation_failed.connect(failed.append)
        window.resize(width, height)
        window.show()
        ready: list[bool] = []
        window.clip_ready.connect(lambda: ready.append(True))
        if not window.open_clip(args.clip):
            raise SystemExit(f"screenshot: {window.status_message()}")
        _wait(app, lambda: bool(ready), "the clip")

        def model_ready() -> bool:
            if failed:
                raise SystemExit(f"screenshot: {failed[-1]}")
            return window.engine.model is not None and not window.engine.loading

        _wait(app, model_ready, "the model")
        project = window.project
        assert project is not None and window.clip is not None

        window.generate_action.trigger()
        _wait(app, lambda: project.base_take is not None or bool(failed), "the whole-clip take")
        duration = window.clip.duration
        start = round(0.35 * duration / GRID_SECONDS) * GRID_SECONDS
        end = min(start + 3 * GRID_SECONDS, duration)
        window.timeline.set_selection(start, end)
        window.parameters.set_variations(3)
        window.regenerate_action.trigger()
        _wait(app, lambda: (bool(project.regions) and not window.busy) or bool(failed), "the new takes")
        if failed:
            raise SystemExit(f"screenshot: {failed[-1]}")
        region = project.regions[-1]
        window.commit_take(region.take_ids[1])
        window.timeline.region_clicked.emit(region.id)
        window.takes.select_take(region.take_ids[1])
        window.player.seek(start + 0.6 * (end - start))
        _wait(app, lambda: not window.timeline.is_busy() and window.frames.idle, "pictures and waveforms")
        _settle(app, 1.0)

        screen = window.screen()
        shot = screen.grabWindow(window.winId())
        if shot.isNull() or shot.width() < 100:
            raise SystemExit("screenshot: the screen could not be grabbed (run it under xvfb-run)")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        temp_png = args.output.with_name(f".{args.output.name}.partial.png")
        if not shot.save(str(temp_png), "PNG"):
            raise SystemExit(f"screenshot: cannot write {args.output}")
        os.replace(temp_png, args.output)
        sys.stdout.write(f"wrote {args.output} ({shot.width()}×{shot.height()})\n")
        window.close()
        window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

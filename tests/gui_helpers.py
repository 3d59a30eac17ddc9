"""A main window for tests: private settings, no model load, sound device, questions or recovery scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from app.settings import AppSettings


def quiet_window(
    qtbot, settings: QSettings | AppSettings, folder: Path, *, activate: bool = False, **options: Any
) -> MainWindow:
    """Show a MainWindow whose recovery copies go to `folder`; `options` override the quiet defaults.

    `activate=True` waits until it is the active window (keyboard shortcuts only reach that one).
    """
    quiet: dict[str, Any] = {
        "load_model": False,
        "use_audio_device": False,
        "confirm_close": False,
        "check_recovery": False,
        "recovery_root": folder / "recovery",
    }
    window = MainWindow(settings, **{**quiet, **options})
    qtbot.addWidget(window)
    window.show()
    if activate:
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    return window

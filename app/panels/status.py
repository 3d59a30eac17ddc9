"""Status widgets: the progress of a generation (with ETA and Cancel) and a non-modal message bar.

The message bar is how the window asks questions that must not block (recover unsaved work? relink a
moved clip?) and reports problems that need more than a status-bar line: it sits above the picture
with its buttons until answered or closed, and tests can press its buttons like a user.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QToolButton, QWidget


def format_eta(seconds: float | None) -> str:
    """ "about 1 min 05 s left", "about 12 s left", or "" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = round(seconds)
    if seconds >= 60:
        return f"about {seconds // 60} min {seconds % 60:02d} s left"
    return f"about {max(1, seconds)} s left"


class TaskProgress(QWidget):
    """Progress bar, stage, ETA and a Cancel button for the status bar; hidden while idle.

    Signal cancel_clicked() when the user presses Cancel.
    """

    cancel_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage = QLabel("", self)
        self.stage.setObjectName("taskStage")
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(180)
        self.bar.setFixedHeight(12)
        self.bar.setToolTip("Generation progress")
        self.eta = QLabel("", self)
        self.eta.setObjectName("taskEta")
        self.eta.setMinimumWidth(130)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the generation (Esc); takes already made are kept")
        self.cancel_button.clicked.connect(self.cancel_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)
        layout.setSpacing(8)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addWidget(self.eta)
        layout.addWidget(self.cancel_button)
        self.setVisible(False)

    def start(self, text: str) -> None:
        self.stage.setText(text)
        self.bar.setRange(0, 0)  # busy indicator until the first progress report
        self.eta.setText("")
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    def report(self, fraction: float, eta_seconds: float | None, stage: str) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(round(min(max(fraction, 0.0), 1.0) * 1000))
        if stage:
            self.stage.setText(stage[:1].upper() + stage[1:])
        self.eta.setText(format_eta(eta_seconds))

    def cancelling(self) -> None:
        self.stage.setText("Cancelling…")
        self.cancel_button.setEnabled(False)

    def finish(self) -> None:
        self.setVisible(False)
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)

    def fraction(self) -> float:
        return self.bar.value() / 1000 if self.bar.maximum() else 0.0


Action = tuple[str, Callable[[], None]]


class MessageBar(QFrame):
    """A dismissable banner with a message and buttons. `closed()` when dismissed by its × button."""

    closed = Signal()

    KINDS = ("info", "warning", "error")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.label = QLabel("", self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self._on_close)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(12, 6, 6, 6)
        self._layout.setSpacing(8)
        self._layout.addWidget(self.label, 1)
        self._layout.addWidget(self.close_button)
        self.buttons: dict[str, QPushButton] = {}
        self.kind = "info"
        self.setVisible(False)

    def show_message(self, text: str, kind: str = "info", actions: Sequence[Action] = ()) -> None:
        """Show `text` with one button per (label, callback); pressing one also hides the bar."""
        for button in self.buttons.values():
            self._layout.removeWidget(button)
            button.deleteLater()
        self.buttons = {}
        self.kind = kind if kind in self.KINDS else "info"
        self.setProperty("kind", self.kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        for label, callback in actions:
            button = QPushButton(label, self)
            button.clicked.connect(lambda _checked=False, cb=callback: self._run(cb))
            self._layout.insertWidget(self._layout.count() - 1, button)
            self.buttons[label] = button
        self.setVisible(True)

    def text(self) -> str:
        return self.label.text()

    def _run(self, callback: Callable[[], None]) -> None:
        self.setVisible(False)
        callback()

    @Slot()
    def _on_close(self) -> None:
        self.setVisible(False)
        self.closed.emit()

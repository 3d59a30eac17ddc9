"""The takes panel: the takes of the selected region (or of the whole clip), to audition and commit.

Click a take to audition it in place; Enter or a double-click commits it; A/B switches between the
committed take and the candidate; Delete removes the take. The panel only reports what the user
asked for; the window does it (through the undo stack) and then refreshes the list with `set_takes`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QColor, QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.timeline import take_colour

_ID_ROLE = Qt.ItemDataRole.UserRole
COLUMNS = ("Take", "Seed", "Temp", "Top-k", "Top-p", "CFG")


@dataclass(frozen=True)
class TakeRow:
    """One take as the panel lists it."""

    id: str
    number: int  # 1-based position in its region
    colour: int  # index into the take palette
    seed: int
    params: Mapping[str, object]
    created: float  # seconds since the epoch
    label: str = ""
    available: bool = True
    problem: str = ""  # why the take is unavailable


def _swatch(colour: QColor, committed: bool, auditioning: bool) -> QIcon:
    pixmap = QPixmap(16, 16)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    painter.drawRoundedRect(2, 2, 12, 12, 3, 3)
    if committed:  # a white ring: the take the track uses
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QColor("#ffffff"))
        painter.drawRoundedRect(1, 1, 14, 14, 4, 4)
    if auditioning:  # a dark "play" triangle: the take being heard
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#111111"))
        painter.drawPolygon([QPointF(6.0, 4.5), QPointF(11.5, 8.0), QPointF(6.0, 11.5)])
    painter.end()
    return QIcon(pixmap)


def _number(value: object, digits: int = 2, off_when_zero: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    if off_when_zero and value == 0:
        return "off"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


class _TakeTree(QTreeWidget):
    """The list itself: Enter commits, Delete deletes (keys only this widget handles)."""

    commit_key = Signal()
    delete_key = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.commit_key.emit()
            event.accept()
            return
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_key.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class TakesPanel(QFrame):
    """Signals: audition_requested(take_id), commit_requested(take_id), delete_requested(take_id),
    ab_requested(), loop_changed(bool)."""

    audition_requested = Signal(str)
    commit_requested = Signal(str)
    delete_requested = Signal(str)
    ab_requested = Signal()
    loop_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("takesPanel")
        self._rows: list[TakeRow] = []
        self._committed: str | None = None
        self._auditioning: str | None = None

        title = QLabel("TAKES", self)
        title.setObjectName("panelTitle")
        self.target_label = QLabel("No region selected", self)
        self.target_label.setObjectName("takesTarget")
        self.target_label.setToolTip("Whose takes are listed: a region, or the whole clip")
        self.ab_label = QLabel("", self)
        self.ab_label.setObjectName("abState")
        self.ab_label.setToolTip("What you hear in the region: A is the committed take, B the candidate")

        self.tree = _TakeTree(self)
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setAllColumnsShowFocus(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setIconSize(QSize(16, 16))
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(34)
        self.tree.setToolTip(
            "Click a take to hear it in place (the region plays with it); Enter or double-click commits it "
            "to the track; Delete removes it. The ringed swatch is the committed take."
        )
        self.tree.itemClicked.connect(self._on_clicked)
        self.tree.itemDoubleClicked.connect(self._on_double_clicked)
        self.tree.commit_key.connect(self._commit_current)
        self.tree.delete_key.connect(self._delete_current)

        self.audition_button = self._button("Audition", "Hear the selected take in place (click a take)")
        self.audition_button.clicked.connect(self._audition_current)
        self.commit_button = self._button("Commit", "Use the selected take in the track (Enter)")
        self.commit_button.clicked.connect(self._commit_current)
        self.ab_button = self._button("A/B", "Switch between the committed take (A) and the candidate (B)")
        self.ab_button.clicked.connect(self.ab_requested)
        self.delete_button = self._button("Delete", "Remove the selected take (Delete)")
        self.delete_button.clicked.connect(self._delete_current)
        self.loop_box = QCheckBox("Loop", self)
        self.loop_box.setToolTip("Loop the region while auditioning a take")
        self.loop_box.toggled.connect(self.loop_changed)

        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for button in (self.audition_button, self.commit_button, self.ab_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.loop_box)

        heading = QHBoxLayout()
        heading.addWidget(title)
        heading.addStretch(1)
        heading.addWidget(self.ab_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.setSpacing(6)
        layout.addLayout(heading)
        layout.addWidget(self.target_label)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self._refresh_buttons()

    def _button(self, text: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setObjectName("takeButton")
        return button

    # --- content ------------------------------------------------------------------------------------

    def set_takes(
        self,
        target: str,
        rows: Sequence[TakeRow],
        committed: str | None,
        auditioning: str | None = None,
        select: str | None = None,
    ) -> None:
        """List `rows` under the heading `target`; keeps the selected take when it is still listed."""
        keep = select or self.current_take()
        self._rows = list(rows)
        self._committed = committed
        self._auditioning = auditioning
        self.target_label.setText(target)
        self.tree.blockSignals(True)
        try:
            self.tree.clear()
            for row in self._rows:
                self.tree.addTopLevelItem(self._item(row))
            ids = [row.id for row in self._rows]
            if keep in ids:
                self.tree.setCurrentItem(self.tree.topLevelItem(ids.index(keep)))
        finally:
            self.tree.blockSignals(False)
        self._refresh_buttons()

    def _item(self, row: TakeRow) -> QTreeWidgetItem:
        p = row.params
        name = f"Take {row.number}" + (" ✓" if row.id == self._committed else "")
        if row.label:
            name += f" · {row.label}"
        created = datetime.datetime.fromtimestamp(row.created).strftime("%H:%M:%S") if row.created else ""
        item = QTreeWidgetItem(
            [
                name,
                str(row.seed),
                _number(p.get("temperature")),
                _number(p.get("top_k"), off_when_zero=True),
                _number(p.get("top_p"), off_when_zero=True),
                _number(p.get("cfg_scale"), 1),
            ]
        )
        item.setData(0, _ID_ROLE, row.id)
        swatch = _swatch(take_colour(row.colour), row.id == self._committed, row.id == self._auditioning)
        item.setIcon(0, swatch)
        tip = f"Seed {row.seed}; " + ", ".join(f"{k} {v}" for k, v in p.items())
        if created:
            tip += f"; made at {created}"
        if not row.available:
            tip = f"Unavailable: {row.problem}"
            for column in range(len(COLUMNS)):
                item.setForeground(column, QColor("#6b6f78"))
        item.setToolTip(0, tip)
        return item

    def set_ab_state(self, text: str) -> None:
        """What is heard now ("A · committed", "B · Take 2"), shown in the heading."""
        self.ab_label.setText(text)

    def rows(self) -> list[TakeRow]:
        return list(self._rows)

    def current_take(self) -> str | None:
        item = self.tree.currentItem()
        return None if item is None else str(item.data(0, _ID_ROLE))

    def select_take(self, take_id: str) -> bool:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, _ID_ROLE) == take_id:
                self.tree.setCurrentItem(item)
                self._refresh_buttons()
                return True
        return False

    def item_for(self, take_id: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, _ID_ROLE) == take_id:
                return item
        return None

    def loop(self) -> bool:
        return self.loop_box.isChecked()

    def set_loop(self, on: bool) -> None:
        self.loop_box.setChecked(on)

    def add_shortcut_action(self, action: QAction) -> None:
        """An action whose shortcut works while the list has focus (and shows in its context menu)."""
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.tree.addAction(action)

    # --- slots --------------------------------------------------------------------------------------

    def _refresh_buttons(self) -> None:
        has = self.current_take() is not None
        for button in (self.audition_button, self.commit_button, self.delete_button):
            button.setEnabled(has)
        self.ab_button.setEnabled(bool(self._rows))

    @Slot(QTreeWidgetItem, int)
    def _on_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self._refresh_buttons()
        self.audition_requested.emit(str(item.data(0, _ID_ROLE)))

    @Slot(QTreeWidgetItem, int)
    def _on_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self.commit_requested.emit(str(item.data(0, _ID_ROLE)))

    @Slot()
    def _audition_current(self) -> None:
        take = self.current_take()
        if take is not None:
            self.audition_requested.emit(take)

    @Slot()
    def _commit_current(self) -> None:
        take = self.current_take()
        if take is not None:
            self.commit_requested.emit(take)

    @Slot()
    def _delete_current(self) -> None:
        take = self.current_take()
        if take is not None:
            self.delete_requested.emit(take)

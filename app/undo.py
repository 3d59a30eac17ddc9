"""Undo and redo for project edits: QUndoCommand adapters over the project's data commands.

The project (`vaura_core.project`) does the work: `project.execute(cmd)` applies a data command and
returns its inverse. `ProjectCommand` keeps that pair for a QUndoStack, and merges consecutive
commands with the same `merge_key` (a gain fader drag becomes one undo step). `ProjectHistory` owns
the stack for the open project and says whether there are unsaved changes.

Commands are executed *before* they are pushed, so an edit that does not fit the project raises
`CommandError` to the caller and never reaches the stack.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction, QUndoCommand, QUndoStack

from vaura_core.project import Command, CommandError, Project

log = logging.getLogger(__name__)

MERGEABLE_ID = 0x5641  # any constant: QUndoStack only tries mergeWith between commands of equal id


class ProjectCommand(QUndoCommand):
    """One undo step: a data command already executed on `project`, and the command that undoes it."""

    def __init__(self, project: Project, command: Command, inverse: Command) -> None:
        super().__init__(command.label)
        self.project = project
        self.command = command
        self.inverse = inverse
        self._done = True  # QUndoStack.push calls redo() once more: the command has already run

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        self._run(lambda: self._set_inverse(self.project.execute(self.command)))

    def undo(self) -> None:
        # Executing the inverse yields the forward command again, with any positions it now needs.
        self._run(lambda: self._set_command(self.project.execute(self.inverse)))

    def _set_inverse(self, inverse: Command) -> None:
        self.inverse = inverse

    def _set_command(self, command: Command) -> None:
        self.command = command

    def _run(self, step: object) -> None:
        try:
            step()  # type: ignore[operator]
        except CommandError:
            # Cannot happen while every edit goes through the stack; if it does, drop this step
            # rather than leave a step that keeps failing.
            log.exception("undo step %r no longer fits the project", self.text())
            self.setObsolete(True)

    def id(self) -> int:
        return MERGEABLE_ID if self.command.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, ProjectCommand) or other.project is not self.project:
            return False
        merged = self.command.merged_with(other.command)
        if merged is None:
            return False
        self.command = merged  # this step's inverse (the state before the first drag) stays
        return True


class ProjectHistory(QObject):
    """The undo stack of the open project and its "unsaved changes" state.

    `changed()` is emitted after every push, undo and redo, and when the saved state changes.
    """

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.project: Project | None = None
        self._unsaved_outside_stack = False  # recovered work, settings stored in the project
        self.stack.indexChanged.connect(self._on_index_changed)
        self.stack.cleanChanged.connect(self._on_clean_changed)

    @Slot(int)
    def _on_index_changed(self, _index: int) -> None:
        self.changed.emit()

    @Slot(bool)
    def _on_clean_changed(self, _clean: bool) -> None:
        self.changed.emit()

    def set_project(self, project: Project | None, *, modified: bool = False) -> None:
        """Start the history of another project (or of none); `modified` for recovered, unsaved work."""
        self.project = project
        self.stack.clear()
        self._unsaved_outside_stack = modified
        self.changed.emit()

    def push(self, command: Command) -> Command:
        """Execute `command` and make it one undo step. Raises CommandError, changing nothing."""
        project = self._require()
        inverse = project.execute(command)
        self.stack.push(ProjectCommand(project, command, inverse))
        return inverse

    def record(self, command: Command, inverse: Command) -> None:
        """Make an edit that was already executed (by a helper such as `relink`) one undo step."""
        self.stack.push(ProjectCommand(self._require(), command, inverse))

    def execute_outside(self, command: Command) -> None:
        """Change the project without an undo step (settings kept with the project), as unsaved work."""
        self._require().execute(command)
        self._unsaved_outside_stack = True
        self.changed.emit()

    @property
    def modified(self) -> bool:
        """Unsaved changes: the stack moved away from the saved state, or work came from elsewhere."""
        return self.project is not None and (not self.stack.isClean() or self._unsaved_outside_stack)

    def mark_saved(self) -> None:
        self._unsaved_outside_stack = False
        self.stack.setClean()
        self.changed.emit()

    def undo_action(self, parent: QObject) -> QAction:
        return self.stack.createUndoAction(parent, "&Undo")

    def redo_action(self, parent: QObject) -> QAction:
        return self.stack.createRedoAction(parent, "&Redo")

    def _require(self) -> Project:
        if self.project is None:
            raise CommandError("no project is open")
        return self.project

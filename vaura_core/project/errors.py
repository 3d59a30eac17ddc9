"""The project package's error types."""

from __future__ import annotations

from pathlib import Path

from vaura_core.errors import VauraError


class ProjectError(VauraError):
    """A project file or folder that cannot be read, written or trusted.

    The message names the file and the problem, e.g.
    ``"/songs/Chase.vaura/project.json: regions[2].start: expected a number, found a string"``.
    `path` and `problem` keep the two parts apart for callers that lay them out differently.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CommandError(VauraError):
    """An edit that does not fit the project (unknown region, duplicate take, value out of range...)."""

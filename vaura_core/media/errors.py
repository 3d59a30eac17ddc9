"""The one error type for media that cannot be used as a video."""

from __future__ import annotations

from pathlib import Path

from vaura_core.errors import VauraError


class MediaError(VauraError):
    """A file that is not a usable video: missing, empty, truncated, corrupt, audio-only, a still image...

    The message is meant for the user and always starts with the file name, e.g.
    ``"clip.mp4: the file is empty"``. `path` and `problem` keep the two parts apart for callers
    that lay them out differently.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path.name or self.path}: {problem}")

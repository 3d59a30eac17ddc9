"""The progress and cancel protocol of long exports (plain Python, so the GUI can wrap it in a thread)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from vaura_core.errors import Cancelled

ProgressCallback = Callable[[float], None]
"""Called with the finished fraction, 0.0 to 1.0."""


class _EventLike(Protocol):
    def is_set(self) -> bool: ...


class _CancelFlag(Protocol):
    def is_cancelled(self) -> bool: ...


CancelToken = _EventLike | _CancelFlag
"""A `threading.Event`, or the generation module's `CancelToken` (anything with `is_cancelled()`)."""


def is_cancelled(cancel: CancelToken | None) -> bool:
    if cancel is None:
        return False
    probe = getattr(cancel, "is_cancelled", None)
    return bool(probe()) if probe is not None else bool(cancel.is_set())


def check_cancelled(cancel: CancelToken | None, dest: Path) -> None:
    if is_cancelled(cancel):
        raise Cancelled(f"{dest}: export cancelled")


def report_progress(progress: ProgressCallback | None, fraction: float) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)))

"""Pointing a project at its clip again after the file moved (or, knowingly, at a different file)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from vaura_core.export.atomic import describe_os_error
from vaura_core.project.clip import ClipStatus, full_hash, locate, quick_hash
from vaura_core.project.commands import Command, SetClip
from vaura_core.project.errors import ProjectError
from vaura_core.project.model import Project


def clip_status(project: Project) -> tuple[ClipStatus, Path | None]:
    """Whether the project's clip is still where it says, and unchanged."""
    return locate(project.clip, [project.clip.path])


def relink(project: Project, new_path: str | os.PathLike[str], *, force: bool = False) -> Command:
    """Make `new_path` the project's clip; returns the inverse command (for the undo stack).

    The file must be the same clip: same size and quick hash, and the same full hash when the project
    recorded one. With `force=True` a different file is accepted and its fingerprint recorded (the
    caller should re-probe its timing). Raises ProjectError naming the file otherwise.
    """
    path = Path(new_path).absolute()
    clip = project.clip
    if not path.is_file():
        raise ProjectError(path, "the file does not exist" if not path.exists() else "is not a file")
    try:
        size = path.stat().st_size
        quick = quick_hash(path)
        full = full_hash(path) if clip.full_hash is not None else None
    except OSError as error:
        raise ProjectError(path, f"cannot be read ({describe_os_error(error)})") from None
    if size != clip.size_bytes:
        mismatch = f"it has {size} bytes where the project's clip had {clip.size_bytes}"
    elif quick != clip.quick_hash or full != clip.full_hash:
        mismatch = "its content differs from the project's clip"
    else:
        mismatch = None
    if mismatch is not None and not force:
        raise ProjectError(
            path, f"is not the project's clip: {mismatch}. Relink anyway only if it is the same video."
        )
    new_clip = dataclasses.replace(clip, path=path, size_bytes=size, quick_hash=quick, full_hash=full)
    return project.execute(SetClip(new_clip))

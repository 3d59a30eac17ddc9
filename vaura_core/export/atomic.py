"""Atomic file replacement: a failed or cancelled write never leaves a half file behind.

Writers fill a temporary file next to the destination (same folder, so the final rename
cannot cross file systems), flush it to disk and then `os.replace` it onto the destination.
Until that rename the destination is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from vaura_core.export.errors import ExportError


def describe_os_error(error: OSError) -> str:
    """The operating system's wording for an error ("No space left on device"), else its text."""
    return error.strerror or str(error)


def _make_temp_file(dest: Path) -> Path:
    folder = dest.parent
    if not folder.is_dir():
        raise ExportError(f"{dest}: cannot write, the folder {folder} does not exist")
    if dest.is_dir():
        raise ExportError(f"{dest}: cannot write, a folder with that name exists")
    # Keep the suffix so tools that sniff the format from the name still work on the temp file.
    for _ in range(16):
        temp = folder / f".{dest.stem}.{secrets.token_hex(4)}.partial{dest.suffix}"
        try:
            # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide, as for any new file.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            reason = describe_os_error(error)
            raise ExportError(f"{dest}: cannot write to the folder {folder} ({reason})") from error
        os.close(fd)
        return temp
    raise ExportError(f"{dest}: cannot create a temporary file in {folder}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; Windows cannot open folders this way)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def atomic_write_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `dest`; on success it replaces `dest` in one step.

    The body writes the whole file at the yielded path (it exists, empty, and may be reopened
    or truncated). If the body raises anything, KeyboardInterrupt and `Cancelled` included, the
    temporary file is deleted, `dest` is left as it was and the exception propagates unchanged.
    Errors of its own steps become `ExportError`s (a `VauraError`) that name `dest`.
    """
    dest = Path(dest)
    temp = _make_temp_file(dest)
    try:
        yield temp
    except BaseException:
        _remove_quietly(temp)
        raise
    try:
        _fsync_file(temp)
        if dest.exists():
            # Keep the permissions of the file being replaced, as editors do.
            os.chmod(temp, stat.S_IMODE(dest.stat().st_mode))
        os.replace(temp, dest)
    except OSError as error:
        _remove_quietly(temp)
        raise ExportError(f"{dest}: could not write ({describe_os_error(error)})") from error
    _fsync_folder(dest.parent)

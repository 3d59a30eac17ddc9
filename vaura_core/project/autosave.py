"""Autosave to a recovery copy, and recovery after a crash.

Each running session writes its project to `<recovery root>/<project id>.<session>/`: the same layout as
a saved project (take files written once, as they arrive, `project.json` last) plus `owner.json`, the
lock and heartbeat: the writer's pid, host, process start time and last heartbeat. A folder per session
rather than per project means a second session on the same project, or one started after a crash, never
overwrites a copy that may still be needed.

The recovery root is `$VAURA_HOME/.recovery` when VAURA_HOME is set (beside `.downloads`, where no model
can be named so), else `recovery/` in the user data folder.

After a crash (even kill -9) the copy holds every take autosaved before it: takes are complete files
before the document that names them is replaced. `find_recoverable` lists the copies whose owner is gone
and that are newer than the project saved on disk; `recover` opens one. A clean exit calls `close`,
which removes the copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaura_core.errors import VauraError
from vaura_core.project.errors import ProjectError
from vaura_core.project.model import Project
from vaura_core.project.safejson import read_json_file
from vaura_core.project.storage import (
    PROJECT_FILE,
    LoadReport,
    WriteJob,
    load,
    prepare_write,
    read_document,
)
from vaura_core.weights.registry import user_data_dir

OWNER_FILE = "owner.json"
OWNER_FORMAT = "vaura-recovery-owner"
STALE_REMOTE_HEARTBEAT_S = 15 * 60  # an owner on another host is presumed gone after this silence
_MAX_OWNER_BYTES = 64 * 1024


def recovery_root(env: Mapping[str, str] = os.environ) -> Path:
    home = env.get("VAURA_HOME")
    return Path(home).expanduser() / ".recovery" if home else user_data_dir(env=env) / "recovery"


# --- is the owner alive? ----------------------------------------------------------------


def _linux_process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (tells a pid's reuse apart), Linux only."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def _linux_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (zombies count as gone)."""
    if pid <= 0:
        return False
    if sys.platform.startswith("win"):
        # os.kill(pid, 0) would send CTRL_C_EVENT on Windows: never use it there.
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return not _linux_zombie(pid)


def _process_identity() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_start": _linux_process_start(os.getpid()),
    }


def owner_alive(owner: Mapping[str, Any], *, now: float | None = None) -> bool:
    """Whether the session described by an owner.json record is still running."""
    pid, host = owner.get("pid"), owner.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str):
        return False
    if host != socket.gethostname():
        heartbeat = owner.get("heartbeat")
        if not isinstance(heartbeat, int | float) or isinstance(heartbeat, bool):
            return False
        return (time.time() if now is None else now) - heartbeat < STALE_REMOTE_HEARTBEAT_S
    if not pid_alive(pid):
        return False
    recorded = owner.get("process_start")
    current = _linux_process_start(pid)
    return recorded is None or current is None or recorded == current


def _read_owner(folder: Path) -> dict[str, Any] | None:
    try:
        owner = read_json_file(folder / OWNER_FILE, max_bytes=_MAX_OWNER_BYTES)
    except ProjectError:
        return None
    return owner if isinstance(owner, dict) and owner.get("format") == OWNER_FORMAT else None


# --- writing ---------------------------------------------------------------------------


@dataclass
class AutosaveJob:
    """One autosave, captured on the project's thread; `run` may go to a worker thread."""

    saver: Autosaver
    write: WriteJob
    owner: dict[str, Any]

    def run(self) -> None:
        """Write the copy; ProjectError (naming the folder) when it cannot be written."""
        try:
            self.saver.folder.mkdir(parents=True, exist_ok=True)
            self.saver._write_owner(self.owner)
        except ProjectError:
            raise
        except (OSError, VauraError) as error:
            reason = error.strerror or error if isinstance(error, OSError) else error
            raise ProjectError(self.saver.folder, f"could not write the recovery copy ({reason})") from None
        self.write.run()
        self.saver.autosaved_revision = self.write.revision


class Autosaver:
    """Keeps a recovery copy of one project. Qt-free: the app calls `autosave_now` after each
    generation and commit and from a timer, and `close` on a clean exit."""

    def __init__(self, project: Project, *, root: str | os.PathLike[str] | None = None) -> None:
        self.project = project
        self.root = Path(root) if root is not None else recovery_root()
        self.folder = self.root / f"{project.id}.{os.getpid()}-{secrets.token_hex(4)}"
        self.autosaved_revision: int | None = None
        self.started = time.time()

    def _owner_record(self) -> dict[str, Any]:
        folder = self.project.folder
        return {
            "format": OWNER_FORMAT,
            "version": 1,
            **_process_identity(),
            "started": self.started,
            "heartbeat": time.time(),
            "project_id": self.project.id,
            "project_name": self.project.name,
            "saved_folder": str(folder) if folder is not None else None,
        }

    def _write_owner(self, owner: dict[str, Any]) -> None:
        from vaura_core.export.atomic import atomic_write_path

        with atomic_write_path(self.folder / OWNER_FILE) as temp:
            temp.write_text(json.dumps(owner, indent=1), encoding="utf-8")

    @property
    def pending(self) -> bool:
        """The project changed since the last autosave."""
        return self.autosaved_revision != self.project.revision

    def prepare(self, *, force: bool = False) -> AutosaveJob | None:
        """The autosave to run, or None when nothing changed (unless `force`)."""
        if not force and not self.pending:
            return None
        return AutosaveJob(self, prepare_write(self.project, self.folder), self._owner_record())

    def autosave_now(self, *, force: bool = False) -> bool:
        """Write the recovery copy if the project changed; else only refresh the heartbeat.

        Returns whether a copy was written. Raises ProjectError (a VauraError) when the copy cannot be
        written; the previous copy stays as it was.
        """
        job = self.prepare(force=force)
        if job is None:
            self.heartbeat()
            return False
        job.run()
        return True

    def heartbeat(self) -> None:
        """Tell other sessions this copy's owner is alive (only once a copy exists)."""
        if (self.folder / OWNER_FILE).exists():
            with contextlib.suppress(OSError, VauraError):
                self._write_owner(self._owner_record())

    def close(self) -> None:
        """Clean exit: the recovery copy is not needed any more."""
        shutil.rmtree(self.folder, ignore_errors=True)


# --- recovering ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryInfo:
    """A recovery copy left by a session that ended without closing it."""

    folder: Path
    project_id: str
    name: str
    revision: int
    autosaved_at: float  # when its project.json was written, seconds since the epoch
    takes: int
    saved_folder: Path | None  # where the project was saved, when it was
    saved_revision: int | None  # the revision saved there (None: not saved, or saved over since)
    pid: int | None


def _saved_revision(folder: Path | None, project_id: str) -> int | None:
    if folder is None or not (folder / PROJECT_FILE).is_file():
        return None
    try:
        saved, _, _, _ = read_document(folder)
    except ProjectError:
        return None
    return saved.revision if saved.id == project_id else None


def find_recoverable(root: str | os.PathLike[str] | None = None) -> list[RecoveryInfo]:
    """Recovery copies whose owner process is gone and that hold work newer than the saved project.

    Newest first. Copies of live sessions, copies without a complete project.json and copies no newer
    than their saved project are left out.
    """
    base = Path(root) if root is not None else recovery_root()
    try:
        entries = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        return []
    found = []
    for folder in entries:
        owner = _read_owner(folder)
        if owner is not None and owner_alive(owner):
            continue
        try:
            project, _, _, _ = read_document(folder)
            autosaved_at = (folder / PROJECT_FILE).stat().st_mtime
        except (ProjectError, OSError):
            continue
        saved_text = owner.get("saved_folder") if owner else None
        saved_folder = Path(saved_text) if isinstance(saved_text, str) and saved_text else None
        saved_revision = _saved_revision(saved_folder, project.id)
        if project.revision <= (saved_revision if saved_revision is not None else 0):
            continue
        pid = owner.get("pid") if owner else None
        found.append(
            RecoveryInfo(
                folder=folder,
                project_id=project.id,
                name=project.name,
                revision=project.revision,
                autosaved_at=autosaved_at,
                takes=len(project.takes),
                saved_folder=saved_folder,
                saved_revision=saved_revision,
                pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            )
        )
    found.sort(key=lambda info: info.autosaved_at, reverse=True)
    return found


def recover(info: RecoveryInfo) -> tuple[Project, LoadReport]:
    """Open a recovery copy as the project it was: unsaved changes against its saved folder, if any.

    The copy itself stays until `discard_recovery` (call it once the recovered work is saved or
    autosaved by the new session).
    """
    project, report = load(info.folder)
    saved_revision = _saved_revision(info.saved_folder, project.id)
    project.folder = info.saved_folder if saved_revision is not None else None
    project.saved_revision = saved_revision
    return project, report


def discard_recovery(info: RecoveryInfo) -> None:
    """Delete a recovery copy (refused while its owner is still running)."""
    owner = _read_owner(info.folder)
    if owner is not None and owner_alive(owner):
        raise ProjectError(info.folder, "belongs to a running session and cannot be discarded")
    shutil.rmtree(info.folder, ignore_errors=True)

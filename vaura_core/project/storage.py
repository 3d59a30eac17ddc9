"""Saving and opening project folders, so that no failure can cost the work already saved.

A project is a folder (by convention `Name.vaura/`):

    project.json              the document (vaura_core.project.schema), plain JSON, versioned
    takes/<id>.wav            a take's audio: mono 32-bit float WAV at the project's sample rate
    takes/<id>.codes.npy      its codec tokens: int64 (codebooks, tokens), numpy format, no pickle

Why float WAV and not FLAC: the engine's audio is float32, and FLAC only stores integers. A 24-bit FLAC
would round every sample (about -144 dBFS of error, inaudible) but then a reopened project would no
longer render bit-identically to the one saved, checksums could not cover the audio, and nothing could
tell rounding from damage. Float WAV keeps every bit, is read by any audio editor (a user can rescue a
take by hand) and costs about twice a FLAC's size: 10 MiB per minute of take, and most takes are
seconds-long regions. The tokens are kept beside it because a take is also a prompt for regeneration.

Saving writes each take's files once (a take is immutable and its files are named by its id), each
through a temporary file, fsync and rename; `project.json` comes last. A crash, a full disk or a
read-only folder at any point leaves the previous `project.json` and every file it names intact. Files
of takes no longer referenced are removed only after the new `project.json` is in place.

Opening checks the document (`schema`), upgrades old versions (`migrations`), then reads each take on
its own: a missing, truncated or altered file marks that take unavailable in the `LoadReport` and the
rest of the project opens. The clip is looked for where it was and beside the project; its status is
"ok", "missing" or "changed" (`vaura_core.project.relink` points the project at a moved clip).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import soundfile as sf

from vaura_core.errors import VauraError
from vaura_core.export.atomic import atomic_write_path, describe_os_error
from vaura_core.project.clip import ClipStatus, locate
from vaura_core.project.errors import ProjectError
from vaura_core.project.migrations import migrate
from vaura_core.project.model import Project
from vaura_core.project.safejson import read_json_file
from vaura_core.project.schema import (
    AUDIO_SUFFIX,
    CODES_SUFFIX,
    TAKES_DIR,
    audio_file,
    codes_file,
    parse_document,
    to_document,
)
from vaura_core.project.takes import ProjectTake, audio_checksum, codes_checksum

PROJECT_FILE = "project.json"
PROJECT_SUFFIX = ".vaura"
_HEADER_SLACK = 64 * 1024  # the most a WAV or .npy header may add to the sample bytes
_OUR_TAKE_FILE = re.compile(
    r"(?:[A-Za-z0-9_-]{1,64}(?:" + re.escape(AUDIO_SUFFIX) + "|" + re.escape(CODES_SUFFIX) + r"))"
    r"|(?:\.[A-Za-z0-9_.-]+\.[0-9a-f]{8}\.partial(?:\.wav|\.npy))"
)
_STALE_DOCUMENT = re.compile(r"\.project\.[0-9a-f]{8}\.partial\.json")


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TakeProblem:
    """A take whose files could not be used; the take stays in the project, marked unavailable."""

    take_id: str
    file: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


@dataclass(frozen=True)
class LoadReport:
    folder: Path
    clip_status: ClipStatus
    clip_path: Path | None  # where the clip was found ("ok"), or the different file found ("changed")
    clip_moved: (
        bool  # found beside the project instead of at its recorded path (the project now points there)
    )
    problems: tuple[TakeProblem, ...] = ()
    migrated_from: int | None = None  # the format version the file was upgraded from

    @property
    def unavailable_takes(self) -> tuple[str, ...]:
        return tuple(p.take_id for p in self.problems)

    @property
    def ok(self) -> bool:
        return self.clip_status == "ok" and not self.problems

    def messages(self) -> list[str]:
        """One line per thing the user should know, for a dialog or the log."""
        out = []
        if self.clip_status == "missing":
            out.append("The video clip was not found; relink it to see the picture.")
        elif self.clip_status == "changed":
            out.append(
                f"{self.clip_path}: this file is not the project's clip any more (its content changed)."
            )
        out.extend(f"Take unavailable: {p}" for p in self.problems)
        if self.migrated_from is not None:
            out.append(
                f"Upgraded from project format version {self.migrated_from}; saving writes the new format."
            )
        return out


# --- writing ---------------------------------------------------------------------------


def _folder_key(folder: Path) -> Path:
    return Path(os.path.abspath(folder))


def _write_take(folder: Path, take: ProjectTake, sample_rate: int) -> None:
    assert take.audio is not None and take.codes is not None
    with atomic_write_path(folder / audio_file(take.id)) as temp:
        sf.write(temp, take.audio, sample_rate, subtype="FLOAT", format="WAV")
        if sf.info(str(temp)).frames != take.n_samples:
            raise OSError(f"the audio file of take {take.id} did not come out complete")
    with atomic_write_path(folder / codes_file(take.id)) as temp, open(temp, "wb") as f:
        np.save(f, np.ascontiguousarray(take.codes, dtype="<i8"), allow_pickle=False)


def _files_present(folder: Path, take_id: str) -> bool:
    return (folder / audio_file(take_id)).is_file() and (folder / codes_file(take_id)).is_file()


def _remove_unreferenced(takes_dir: Path, referenced: set[str]) -> None:
    """Delete take files (and leftover temporaries) the new document does not name; never other files."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(takes_dir):
            if entry.name not in referenced and _OUR_TAKE_FILE.fullmatch(entry.name) and entry.is_file():
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _remove_stale_temporaries(folder: Path) -> None:
    """project.json temporaries left by a save that crashed (ours are gone once a save returns)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if _STALE_DOCUMENT.fullmatch(entry.name) and entry.is_file():
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@dataclass
class WriteJob:
    """A project's state captured for writing: `prepare_write` on the thread that owns the project,
    `run` on any thread (it only reads immutable takes). Two jobs for one folder must not run at once."""

    folder: Path
    document: dict[str, Any]
    takes: tuple[ProjectTake, ...]
    sample_rate: int
    revision: int
    written: set[str]  # the project's record of take files known complete in `folder`

    def run(self) -> None:
        try:
            self._run()
        except ProjectError:
            raise
        except VauraError as error:  # atomic_write_path's own errors name the file already
            raise ProjectError(self.folder, f"could not be saved: {error}. {_INTACT}") from None
        except (OSError, RuntimeError) as error:  # soundfile reports write errors as RuntimeError
            reason = describe_os_error(error) if isinstance(error, OSError) else str(error)
            raise ProjectError(self.folder, f"could not be saved ({reason}). {_INTACT}") from None

    def _run(self) -> None:
        takes_dir = self.folder / TAKES_DIR
        self.folder.mkdir(exist_ok=True)
        takes_dir.mkdir(exist_ok=True)
        for take in self.takes:
            if take.id in self.written and _files_present(self.folder, take.id):
                continue
            self.written.discard(take.id)
            _write_take(self.folder, take, self.sample_rate)
            self.written.add(take.id)
        data = _dump(self.document)
        with atomic_write_path(self.folder / PROJECT_FILE) as temp:
            temp.write_bytes(data)
        referenced = set()
        for take in self.document["takes"]:
            referenced.add(Path(take["audio"]["file"]).name)
            referenced.add(Path(take["codes"]["file"]).name)
        _remove_unreferenced(takes_dir, referenced)
        _remove_stale_temporaries(self.folder)
        self.written.intersection_update(t["id"] for t in self.document["takes"])


_INTACT = "The project saved before is unchanged"


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False).encode("utf-8")


def prepare_write(project: Project, folder: str | os.PathLike[str]) -> WriteJob:
    """Capture what writing `project` into `folder` needs (cheap: no audio is copied)."""
    key = _folder_key(Path(folder))
    return WriteJob(
        folder=key,
        document=to_document(project, key),
        takes=tuple(t for t in project.takes.values() if t.available),
        sample_rate=project.sample_rate,
        revision=project.revision,
        written=project._files_on_disk.setdefault(key, set()),
    )


def save(project: Project, folder: str | os.PathLike[str] | None = None) -> Path:
    """Save into `folder` (default: where the project was last saved or opened). Returns the folder."""
    target = folder if folder is not None else project.folder
    if target is None:
        raise ProjectError(project.name, "has never been saved: choose a folder with Save As")
    job = prepare_write(project, target)
    job.run()
    project.folder = job.folder
    project.saved_revision = job.revision
    return job.folder


def save_as(project: Project, folder: str | os.PathLike[str]) -> Path:
    """Save into a new folder (or one holding a project, which is replaced) and continue there.

    The project takes the folder's name (without `.vaura`). A folder holding anything but a project is
    refused, so a mistaken choice can never mix a project into, or clean up, an unrelated folder.
    """
    target = _folder_key(Path(folder))
    if target.exists():
        if not target.is_dir():
            raise ProjectError(target, "a file with this name exists; choose a folder name")
        try:
            entries = os.listdir(target)
        except OSError as error:
            raise ProjectError(target, f"cannot be read ({describe_os_error(error)})") from None
        if entries and PROJECT_FILE not in entries:
            raise ProjectError(target, "this folder is not empty and holds no project; choose a new folder")
    elif not target.parent.is_dir():
        raise ProjectError(target, f"the folder {target.parent} does not exist")
    name = target.name.removesuffix(PROJECT_SUFFIX) or project.name
    previous = project.name
    project.name = name
    try:
        return save(project, target)
    except BaseException:
        project.name = previous
        raise


def write_copy(project: Project, folder: str | os.PathLike[str]) -> Path:
    """Write the project into `folder` without making it the project's home (recovery copies)."""
    job = prepare_write(project, folder)
    job.run()
    return job.folder


# --- reading ---------------------------------------------------------------------------


class _TakeFileError(Exception):
    def __init__(self, file: str, problem: str) -> None:
        super().__init__(problem)
        self.file = file
        self.problem = problem


def _read_bounded(folder: Path, relative: str, min_bytes: int, max_bytes: int) -> bytes:
    path = folder / relative
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _TakeFileError(relative, "the file is missing") from None
    except OSError as error:
        raise _TakeFileError(relative, f"cannot be read ({describe_os_error(error)})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _TakeFileError(relative, "is not a regular file")
    try:
        if not path.resolve().is_relative_to(folder.resolve()):
            raise _TakeFileError(relative, "points outside the project folder")
    except OSError as error:
        raise _TakeFileError(relative, f"cannot be read ({describe_os_error(error)})") from None
    if info.st_size < min_bytes:
        raise _TakeFileError(relative, f"is truncated ({info.st_size} bytes, expected at least {min_bytes})")
    if info.st_size > max_bytes:
        raise _TakeFileError(relative, f"is larger than its take ({info.st_size} bytes)")
    try:
        with open(path, "rb") as f:
            return f.read(max_bytes + 1)
    except OSError as error:
        raise _TakeFileError(relative, f"cannot be read ({describe_os_error(error)})") from None


def _read_audio(folder: Path, take: ProjectTake, sample_rate: int) -> np.ndarray:
    relative = audio_file(take.id)
    data_bytes = 4 * take.n_samples
    data = _read_bounded(folder, relative, data_bytes, data_bytes + _HEADER_SLACK)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.samplerate != sample_rate or f.channels != 1 or f.subtype != "FLOAT":
                raise _TakeFileError(
                    relative,
                    f"is {f.channels}-channel {f.subtype} at {f.samplerate} Hz, "
                    f"expected mono FLOAT at {sample_rate} Hz",
                )
            audio = f.read(dtype="float32")
    except (RuntimeError, ValueError, TypeError, EOFError, OSError) as error:
        raise _TakeFileError(relative, f"cannot be read as audio ({str(error)[:120]})") from None
    if audio.ndim != 1 or len(audio) != take.n_samples:
        raise _TakeFileError(relative, f"holds {len(audio)} samples, expected {take.n_samples} (truncated?)")
    if audio_checksum(audio) != take.audio_sha256:
        raise _TakeFileError(
            relative, "its samples do not match the checksum (the file was changed or damaged)"
        )
    audio.setflags(write=False)
    return audio


def _read_codes(folder: Path, take: ProjectTake) -> np.ndarray:
    relative = codes_file(take.id)
    shape = (take.n_codebooks, take.n_tokens)
    data_bytes = 8 * take.n_codebooks * take.n_tokens
    data = _read_bounded(folder, relative, data_bytes, data_bytes + _HEADER_SLACK)
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            file_shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            file_shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, TypeError, EOFError, SyntaxError) as error:
        raise _TakeFileError(relative, f"is not a token file ({str(error)[:120]})") from None
    if dtype != np.dtype("<i8") or fortran or tuple(file_shape) != shape:
        raise _TakeFileError(relative, f"holds {dtype} {tuple(file_shape)} tokens, expected int64 {shape}")
    offset = stream.tell()
    if len(data) - offset != data_bytes:
        raise _TakeFileError(relative, f"has {len(data) - offset} bytes of tokens, expected {data_bytes}")
    codes = np.frombuffer(data, dtype="<i8", offset=offset).reshape(shape)
    if codes_checksum(codes) != take.codes_sha256:
        raise _TakeFileError(
            relative, "its tokens do not match the checksum (the file was changed or damaged)"
        )
    return codes


def _load_take(folder: Path, take: ProjectTake, sample_rate: int) -> tuple[ProjectTake, TakeProblem | None]:
    try:
        audio = _read_audio(folder, take, sample_rate)
        codes = _read_codes(folder, take)
    except _TakeFileError as error:
        problem = TakeProblem(take.id, Path(error.file), error.problem)
        return dataclasses.replace(take, unavailable=str(problem)), problem
    return dataclasses.replace(take, audio=audio, codes=codes, unavailable=None), None


def project_file(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(folder, project.json) for a project folder or the path of its project.json."""
    p = _folder_key(Path(path))
    if p.name == PROJECT_FILE and not p.is_dir():
        return p.parent, p
    if not p.exists():
        raise ProjectError(p, "the project does not exist")
    if not p.is_dir():
        raise ProjectError(p, "is not a project folder")
    return p, p / PROJECT_FILE


def read_document(path: str | os.PathLike[str]) -> tuple[Project, Path, str | None, int | None]:
    """A folder's checked project, without audio: (project, folder, relative clip path, migrated from)."""
    folder, file = project_file(path)
    doc, migrated_from = migrate(read_json_file(file), file)
    parsed = parse_document(doc, file)
    return parsed.project, folder, parsed.relative_clip_path, migrated_from


def load(path: str | os.PathLike[str]) -> tuple[Project, LoadReport]:
    """Open the project at `path` (its folder or its project.json).

    Raises ProjectError only when the document itself is unusable; damaged take files and a missing or
    changed clip are reported in the LoadReport.
    """
    project, folder, relative_clip, migrated_from = read_document(path)
    problems = []
    takes = {}
    written = set()
    for take in project.takes.values():
        loaded, problem = _load_take(folder, take, project.sample_rate)
        takes[take.id] = loaded
        if problem is None:
            written.add(take.id)
        else:
            problems.append(problem)
    project.takes = MappingProxyType(takes)
    project.folder = folder
    project._files_on_disk[folder] = written

    candidates = [project.clip.path]
    if relative_clip:
        candidates.append(Path(os.path.normpath(folder / relative_clip)))
    status, found = locate(project.clip, candidates)
    moved = status == "ok" and found is not None and found != project.clip.path
    if moved and found is not None:
        project.clip = dataclasses.replace(project.clip, path=found)
    report = LoadReport(
        folder=folder,
        clip_status=status,
        clip_path=found,
        clip_moved=moved,
        problems=tuple(problems),
        migrated_from=migrated_from,
    )
    return project, report

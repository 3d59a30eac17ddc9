"""Model file downloads: resumable HTTPS and Hugging Face Hub, sha256-checked, with progress and cancel.

Plain URLs use only the standard library (urllib), so the app needs no extra HTTP client for the
official tarball. A download writes `<dest>.part` next to the destination and appends to it when
resumed (HTTP Range); `<dest>.part.json` remembers the server's validator (ETag or
Last-Modified) so a resumed request carries `If-Range` and a changed remote file restarts from
zero instead of producing a spliced file. The finished file is moved into place with os.replace,
so `dest` either does not exist or is complete (and verified when a sha256 was given).

Hub files go through `huggingface_hub.hf_hub_download` (see `hub_download`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vaura_core import __version__
from vaura_core.errors import Cancelled, ModelUnavailableError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int | None], None]
"""Called with (bytes done, bytes total or None when the server does not say)."""

CHUNK_SIZE = 1 << 16
# Keep some room after the download so the import that follows can still write its output.
FREE_SPACE_MARGIN = 64 << 20
USER_AGENT = f"vaura-studio/{__version__}"
_RETRY_DELAY_S = 0.5
_MAX_RESTARTS = 3
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class _EventLike(Protocol):
    def is_set(self) -> bool: ...


class _TokenLike(Protocol):
    def is_cancelled(self) -> bool: ...


CancelFlag = _EventLike | _TokenLike
"""A threading.Event, or anything with `is_cancelled()` (generation's CancelToken)."""


def cancel_requested(cancel: CancelFlag | None) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    if is_set is not None:
        return bool(is_set())
    return bool(cancel.is_cancelled())  # type: ignore[union-attr]


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str  # hex digest of the complete file, computed while downloading
    size: int
    verified: bool  # True when it matched an expected sha256


class _RunningHash:
    """sha256 of the partial file, updated as chunks arrive so the end needs no second read."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._digest = hashlib.sha256()
        self.size = 0

    def sync(self, part: Path, size: int, cancel: CancelFlag | None) -> None:
        """Cover exactly the first `size` bytes of `part` (re-reads only after a restart or a new process)."""
        if self.size == size:
            return
        self.reset()
        with open(part, "rb") as f:
            while self.size < size and (block := f.read(min(1 << 20, size - self.size))):
                if cancel_requested(cancel):
                    raise Cancelled(f"hashing {part} was cancelled")
                self.update(block)

    def update(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _Restart(Exception):
    """The partial file cannot be continued; start again from byte 0."""


class _Interrupted(Exception):
    """The connection broke; `progressed` says whether any new bytes arrived first."""

    def __init__(self, reason: str, progressed: bool) -> None:
        super().__init__(reason)
        self.progressed = progressed


def file_sha256(path: Path, cancel: CancelFlag | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            if cancel_requested(cancel):
                raise Cancelled(f"hashing {path} was cancelled")
            digest.update(block)
    return digest.hexdigest()


def http_download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag | None = None,
    timeout: float = 30,
) -> Path:
    """Download `url` to `dest` (resuming a previous partial download) and return `dest`.

    Raises ModelUnavailableError for HTTP and network errors, a sha256 mismatch (the partial
    file is deleted) or too little disk space; Cancelled when `cancel` is set (the partial file
    is kept for a later resume).
    """
    return download(url, dest, sha256=sha256, progress=progress, cancel=cancel, timeout=timeout).path


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag | None = None,
    timeout: float = 30,
    retries: int = 3,
) -> DownloadResult:
    """`http_download` that also returns the file's sha256 (to record it when none was known).

    `retries` bounds consecutive failed attempts after a broken connection; an attempt that
    received new bytes resets the count, so a flaky link still finishes a large file.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.is_file():
        return _existing(url, dest, expected, cancel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    running = _RunningHash()
    failures = restarts = 0
    while True:
        if cancel_requested(cancel):
            raise Cancelled(f"download of {url} was cancelled")
        try:
            _attempt(url, part, running, progress, cancel, timeout)
            break
        except _Restart as why:
            restarts += 1
            if restarts > _MAX_RESTARTS:
                raise ModelUnavailableError(f"download of {url} failed: {why}") from None
            log.info("restarting download of %s: %s", url, why)
            _discard(part)
            running.reset()
        except _Interrupted as why:
            failures = 0 if why.progressed else failures + 1
            if failures > retries:
                kept = f"; the partial file {part} is kept, run the download again to resume"
                raise ModelUnavailableError(
                    f"download of {url} failed: {why}{kept if part.is_file() else ''}"
                ) from None
            log.warning("download of %s interrupted (%s); resuming", url, why)
            time.sleep(_RETRY_DELAY_S * failures)
    running.sync(part, part.stat().st_size, cancel)
    actual = running.hexdigest()
    if expected is not None and actual != expected:
        _discard(part)
        raise ModelUnavailableError(
            f"download of {url} is damaged: sha256 {actual} does not match the expected {expected}; "
            "the file was deleted, try again"
        )
    size = part.stat().st_size
    os.replace(part, dest)
    _meta_path(part).unlink(missing_ok=True)
    return DownloadResult(dest, actual, size, verified=expected is not None)


def _existing(url: str, dest: Path, expected: str | None, cancel: CancelFlag | None) -> DownloadResult:
    """A finished file from an earlier run: trust it only if its hash still matches."""
    actual = file_sha256(dest, cancel)
    if expected is not None and actual != expected:
        dest.unlink()
        raise ModelUnavailableError(
            f"{dest} (from {url}) has sha256 {actual}, expected {expected}; the file was deleted, "
            "download it again"
        )
    return DownloadResult(dest, actual, dest.stat().st_size, verified=expected is not None)


def _attempt(
    url: str,
    part: Path,
    running: _RunningHash,
    progress: ProgressFn | None,
    cancel: CancelFlag | None,
    timeout: float,
) -> None:
    """One HTTP request: append to `part` until the body ends. Raises _Restart/_Interrupted."""
    have = part.stat().st_size if part.is_file() else 0
    validator = _read_validator(part) if have else None
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        with contextlib.closing(err):
            if err.code == 416 and have:
                _handle_unsatisfiable(url, part, have, err.headers.get("Content-Range"))
                return
            raise ModelUnavailableError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _Interrupted(f"cannot connect: {err.reason}", progressed=False) from None
    except (OSError, http.client.HTTPException) as err:
        raise _Interrupted(f"cannot connect: {err}", progressed=False) from None
    except ValueError as err:  # urllib's answer to a malformed URL
        raise ModelUnavailableError(f"cannot download {url!r}: {err}") from None

    with response:
        status = response.status
        if status not in (200, 206):
            raise ModelUnavailableError(f"download of {url} failed: unexpected HTTP {status}")
        resumed = status == 206
        if have and not resumed:
            # The server ignored Range (or If-Range saw a changed file): this body is the whole file.
            log.info("%s: the server sent the whole file instead of a resume; starting again", url)
        length = _int_or_none(response.headers.get("Content-Length"))
        total = _check_content_range(response.headers.get("Content-Range"), have) if resumed else length
        if length is not None:
            _check_free_space(url, part.parent, length)
        if resumed:
            running.sync(part, have, cancel)
        else:
            running.reset()
            _write_validator(part, response.headers)
        try:
            _stream(url, response, part, running, resumed, total, length, progress, cancel)
        except OSError as err:  # the local side: disk full, permissions, a vanished folder
            raise ModelUnavailableError(f"cannot write {part} while downloading {url}: {err}") from None


def _stream(
    url: str,
    response: http.client.HTTPResponse,
    part: Path,
    running: _RunningHash,
    append: bool,
    total: int | None,
    length: int | None,
    progress: ProgressFn | None,
    cancel: CancelFlag | None,
) -> None:
    done = running.size
    received = 0
    if progress is not None:
        progress(done, total)
    with open(part, "ab" if append else "wb") as f:
        while True:
            if cancel_requested(cancel):
                raise Cancelled(f"download of {url} was cancelled; run it again to resume")
            try:
                chunk = response.read(CHUNK_SIZE)
            except (OSError, http.client.HTTPException) as err:
                raise _Interrupted(f"connection lost: {err}", progressed=received > 0) from None
            if not chunk:
                break
            f.write(chunk)
            running.update(chunk)
            received += len(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    # http.client returns b"" (not an error) when the server closes early, so compare lengths.
    if length is not None and received < length:
        raise _Interrupted(f"connection closed after {received} of {length} bytes", progressed=received > 0)


def _check_content_range(header: str | None, have: int) -> int | None:
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None or int(match.group(1)) != have:
        raise _Restart(f"unexpected Content-Range {header!r} for a resume at byte {have}")
    return None if match.group(3) == "*" else int(match.group(3))


def _handle_unsatisfiable(url: str, part: Path, have: int, content_range: str | None) -> None:
    """416: the partial file is already complete (same size as the remote) or is stale."""
    match = _UNSATISFIED_RANGE.fullmatch((content_range or "").strip())
    if match is not None and int(match.group(1)) == have:
        log.info("%s was already fully downloaded", url)
        return
    raise _Restart(f"the server cannot resume at byte {have} (HTTP 416)")


def _check_free_space(url: str, folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + FREE_SPACE_MARGIN:
        raise ModelUnavailableError(
            f"not enough disk space in {folder} to download {url}: it needs {_mib(needed)} "
            f"(plus {_mib(FREE_SPACE_MARGIN)} spare) but only {_mib(free)} is free"
        )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_validator(part: Path) -> str | None:
    try:
        return json.loads(_meta_path(part).read_text(encoding="utf-8")).get("validator")
    except (OSError, ValueError, AttributeError):
        return None


def _write_validator(part: Path, headers: http.client.HTTPMessage) -> None:
    # A weak ETag (W/...) is not allowed in If-Range; Last-Modified is the fallback.
    etag = headers.get("ETag")
    validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    meta = _meta_path(part)
    if validator is None:
        meta.unlink(missing_ok=True)
        return
    tmp = meta.with_name(meta.name + ".tmp")
    tmp.write_text(json.dumps({"validator": validator}), encoding="utf-8")
    os.replace(tmp, meta)


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


# --- Hugging Face Hub -----------------------------------------------------------------------------


def hub_download(
    repo_id: str,
    filename: str,
    revision: str,
    local_dir: Path,
    *,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag | None = None,
    offline: bool = False,
    endpoint: str | None = None,
    cache_dir: Path | None = None,
) -> DownloadResult:
    """Fetch one Hub file into `local_dir` with huggingface_hub and check its sha256.

    `offline=True` maps to `local_files_only=True` (HF_HUB_OFFLINE is only read when
    huggingface_hub is imported, so it cannot serve as an in-app switch): a copy already in
    `local_dir` is used, anything else is a ModelUnavailableError without any request.
    """
    # Imported here: huggingface_hub is slow to import and most commands never need it.
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    where = f"{repo_id}/{filename} at revision {revision}"
    try:
        found = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            local_dir=local_dir,
            cache_dir=cache_dir,
            local_files_only=offline,
            endpoint=endpoint,
            tqdm_class=_progress_bar_class(progress, cancel),
        )
    except LocalEntryNotFoundError:
        if offline:
            raise ModelUnavailableError(
                f"{where} has not been downloaded and offline mode is on; go online and download it"
            ) from None
        raise ModelUnavailableError(f"cannot reach the Hugging Face Hub to download {where}") from None
    except HfHubHTTPError as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelUnavailableError(f"cannot download {where} from the Hub: {first_line}") from None
    except OSError as err:  # size mismatch, disk full, ...
        raise ModelUnavailableError(f"download of {where} failed: {err}") from None
    path = Path(found)
    actual = file_sha256(path, cancel)
    if sha256 is not None and actual != sha256.lower():
        _forget_hub_file(path, local_dir, filename)
        raise ModelUnavailableError(
            f"{where} is damaged: sha256 {actual} does not match the expected {sha256.lower()}; "
            "the file was deleted, try again"
        )
    return DownloadResult(path, actual, path.stat().st_size, verified=sha256 is not None)


def _forget_hub_file(path: Path, local_dir: Path, filename: str) -> None:
    """Delete a bad file and huggingface_hub's record of it, so the next call downloads again."""
    path.unlink(missing_ok=True)
    (Path(local_dir) / ".cache" / "huggingface" / "download" / f"{filename}.metadata").unlink(missing_ok=True)


def _progress_bar_class(progress: ProgressFn | None, cancel: CancelFlag | None) -> type:
    """A tqdm subclass that draws nothing and forwards byte counts to `progress`.

    huggingface_hub instantiates `tqdm_class` itself, so the callback and cancel flag are bound
    into a fresh subclass. Raising Cancelled from `update` stops the transfer; huggingface_hub
    then deletes its temporary file.
    """
    from tqdm.std import tqdm

    class _CallbackBar(tqdm):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            initial = kwargs.get("initial") or 0
            self._done = int(initial) if isinstance(initial, int) else 0
            self._bytes_total = kwargs.get("total")

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            if progress is not None:
                total = self._bytes_total if isinstance(self._bytes_total, int) else None
                progress(self._done, total)
            if cancel_requested(cancel):
                raise Cancelled("download from the Hugging Face Hub was cancelled")
            return None

    return _CallbackBar

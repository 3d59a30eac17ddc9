"""The project's source clip: where it is, and a fingerprint to tell the same file from another one.

The quick hash is what every open and relink computes, so it reads a bounded amount whatever the clip's
size: SHA-256 over a tag, the file size (8 bytes, little-endian), the first 4 MiB, 8 blocks of 64 KiB
evenly spaced through the middle and the last 4 MiB (files up to 8.5 MiB are hashed whole). Re-encoding,
trimming or replacing the clip changes it; a copy or a move does not. The optional full hash (SHA-256 of
every byte) is for users who want certainty and accept reading the whole file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

if TYPE_CHECKING:
    from vaura_core.media.probe import ClipInfo

QUICK_HASH_PREFIX = "qh1:"
FULL_HASH_PREFIX = "sha256:"
_QUICK_TAG = b"vaura-quick-hash-1\0"
_EDGE_BYTES = 4 * 1024 * 1024
_MIDDLE_BLOCKS = 8
_BLOCK_BYTES = 64 * 1024
_CHUNK_BYTES = 1024 * 1024

ClipStatus = Literal["ok", "missing", "changed"]


def _read_exactly(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    data = f.read(n)
    if len(data) != n:
        # The file shrank while we read it: it is being written, so it is not the clip we know.
        raise OSError(f"the file changed while it was read (short read at byte {offset})")
    return data


def quick_hash(path: str | os.PathLike[str]) -> str:
    """The bounded-cost fingerprint described in the module docstring ("qh1:<hex>")."""
    h = hashlib.sha256(_QUICK_TAG)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        if size <= 2 * _EDGE_BYTES + _MIDDLE_BLOCKS * _BLOCK_BYTES:
            h.update(_read_exactly(f, 0, size))
        else:
            h.update(_read_exactly(f, 0, _EDGE_BYTES))
            span = size - 2 * _EDGE_BYTES - _BLOCK_BYTES
            for i in range(_MIDDLE_BLOCKS):
                offset = _EDGE_BYTES + span * i // (_MIDDLE_BLOCKS - 1)
                h.update(_read_exactly(f, offset, _BLOCK_BYTES))
            h.update(_read_exactly(f, size - _EDGE_BYTES, _EDGE_BYTES))
    return QUICK_HASH_PREFIX + h.hexdigest()


def full_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the whole file ("sha256:<hex>"); reads every byte."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            h.update(chunk)
    return FULL_HASH_PREFIX + h.hexdigest()


@dataclass(frozen=True)
class ClipRef:
    """The clip a project is about, and what the timeline needs to show its timecode."""

    path: Path  # absolute
    size_bytes: int
    quick_hash: str
    duration: float  # seconds from the first frame
    frame_rate: float  # frames per second, for the HH:MM:SS:FF ruler
    start_time: float = 0.0  # container time of the first frame, the timecode's origin
    full_hash: str | None = None

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        duration: float,
        frame_rate: float,
        start_time: float = 0.0,
        with_full_hash: bool = False,
    ) -> ClipRef:
        """Fingerprint the file at `path`; timing comes from the caller (usually `probe`)."""
        p = Path(path).absolute()
        return cls(
            path=p,
            size_bytes=p.stat().st_size,
            quick_hash=quick_hash(p),
            duration=float(duration),
            frame_rate=float(frame_rate),
            start_time=float(start_time),
            full_hash=full_hash(p) if with_full_hash else None,
        )

    @classmethod
    def from_info(cls, info: ClipInfo, *, with_full_hash: bool = False) -> ClipRef:
        return cls.from_file(
            info.path,
            duration=info.duration,
            frame_rate=info.frame_rate,
            start_time=info.start_time,
            with_full_hash=with_full_hash,
        )


def matches(ref: ClipRef, path: Path, *, check_full_hash: bool = True) -> bool:
    """Whether the file at `path` is the clip `ref` describes (size, quick hash, full hash if known)."""
    if path.stat().st_size != ref.size_bytes or quick_hash(path) != ref.quick_hash:
        return False
    return not (check_full_hash and ref.full_hash is not None and full_hash(path) != ref.full_hash)


def locate(ref: ClipRef, candidates: list[Path]) -> tuple[ClipStatus, Path | None]:
    """Find the clip among candidate paths (first match wins).

    "ok" with the path found; "changed" with the first existing candidate when files exist but none
    matches; "missing" when none of them exists. The full hash is not checked here: opening a project
    must stay fast whatever the clip's size (`relink` checks it).
    """
    first_existing: Path | None = None
    for path in candidates:
        try:
            if not path.is_file():
                continue
            if first_existing is None:
                first_existing = path
            if matches(ref, path, check_full_hash=False):
                return "ok", path
        except (OSError, ValueError):  # unreadable, or a name the OS refuses (embedded NUL)
            continue
    if first_existing is not None:
        return "changed", first_existing
    return "missing", None

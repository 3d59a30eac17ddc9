"""Parsing JSON from files we do not trust: bounded size, no NaN/Infinity, no duplicate keys.

Deep nesting ends in the decoder's RecursionError, numbers with thousands of digits in Python's
int-conversion limit; both become a `ProjectError`, as does every other way a file can be malformed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vaura_core.project.errors import ProjectError

MAX_JSON_BYTES = 32 * 1024 * 1024


class _Rejected(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"contains {name}, which is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected(f"contains the number {text[:40]}, which is too large")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Rejected(f"has the key {key[:60]!r} twice in one object")
        out[key] = value
    return out


def parse_json(data: bytes, where: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in `data` (the contents of `where`), or ProjectError naming the file."""
    if len(data) > max_bytes:
        raise ProjectError(
            where, f"is too large to be a project file ({len(data)} bytes, at most {max_bytes})"
        )
    if not data.strip():
        raise ProjectError(where, "is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProjectError(where, f"is not UTF-8 text (bad byte at offset {error.start})") from None
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as error:
        raise ProjectError(
            where,
            f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            "it may be truncated or damaged",
        ) from None
    except _Rejected as error:
        raise ProjectError(where, str(error)) from None
    except RecursionError:
        raise ProjectError(where, "nests lists or objects too deeply to be a project file") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise ProjectError(where, f"contains a value that cannot be read ({str(error)[:100]})") from None


def read_json_file(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read and parse `path` (size checked before reading)."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ProjectError(path, "the file does not exist") from None
    except IsADirectoryError:
        raise ProjectError(path, "is a folder, not a file") from None
    except OSError as error:
        raise ProjectError(path, f"cannot be read ({error.strerror or error})") from None
    return parse_json(data, path, max_bytes=max_bytes)

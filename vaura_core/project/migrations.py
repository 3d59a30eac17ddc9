"""Upgrading older project documents, one version step at a time.

`@migration(n)` registers a function turning a version-n document into a version-(n+1) one. Migrations
run on untrusted data before it is checked, so they only rearrange values; the version-1 reader checks
the result. Anything that does not fit the old layout becomes a `ProjectError`, never a crash.

Version 0 is the draft layout of the first prototype:
- `clip` had `file`, `size`, `hash`, `fps` and `start` (now `path`, `size_bytes`, `quick_hash`,
  `frame_rate`, `start_time`; `relative_path` and `full_hash` are new);
- `params` held the defaults with `guidance` for `cfg_scale`, `stride` for `stride_segments` and a
  `seed` of null meaning a random seed (now `settings` with an explicit `seed_mode`);
- `gains` held linear factors and `original_muted` (now `lanes` with gains in dB, mute and solo);
- the whole-clip takes were `base_takes` and `base_take` (now `base.takes` and `base.committed`);
- regions named their committed take `active` and had no `muted` flag;
- `takes` was an object keyed by take id, with `fades: [in, out]`, `samples`, `codebooks`, `tokens`,
  `audio_sha256` and `codes_sha256`; files were already `takes/<id>.wav` and `takes/<id>.codes.npy`;
- markers were `{"t", "text"}` without ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaura_core.project.errors import ProjectError
from vaura_core.project.model import GAIN_DB_MAX, GAIN_DB_MIN
from vaura_core.project.schema import AUDIO_FORMAT, FORMAT, VERSION, audio_file, codes_file

Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register `fn` as the step from `from_version` to `from_version + 1`."""

    def register(fn: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise RuntimeError(f"two migrations from project version {from_version}")
        MIGRATIONS[from_version] = fn
        return fn

    return register


def document_version(doc: Any, file: Path) -> int:
    """The format version of a parsed document, after checking that it is a project at all."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ProjectError(file, 'is not a VAURA Studio project (its "format" is not "vaura-project")')
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ProjectError(file, "has no valid format version")
    if version > VERSION:
        raise ProjectError(
            file,
            f"was written by a newer VAURA Studio (format version {version}); "
            f"this version reads projects up to version {VERSION}",
        )
    return version


def migrate(doc: Any, file: Path) -> tuple[dict[str, Any], int | None]:
    """The document upgraded to the current version, and the version it started from (None: current)."""
    version = document_version(doc, file)
    start = version
    while version < VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ProjectError(file, f"format version {version} is not supported any more")
        try:
            doc = step(doc)
        except ProjectError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as error:
            raise ProjectError(
                file, f"cannot be upgraded from format version {version}: unexpected layout ({error!r:.120})"
            ) from None
        version += 1
        doc["version"] = version
    return doc, (start if start != VERSION else None)


def _linear_to_db(gain: Any) -> float:
    if isinstance(gain, bool) or not isinstance(gain, int | float):
        raise TypeError("gain is not a number")
    if gain <= 0:
        return GAIN_DB_MIN
    return min(GAIN_DB_MAX, max(GAIN_DB_MIN, 20.0 * math.log10(gain)))


@migration(0)
def _draft_to_v1(doc: dict[str, Any]) -> dict[str, Any]:
    clip = doc["clip"]
    params = doc["params"]
    gains = doc["gains"]
    takes = doc["takes"]
    if not isinstance(takes, dict):
        raise TypeError("takes is not an object")
    seed = params["seed"]
    new_takes = []
    for take_id, t in takes.items():
        fade_in, fade_out = t["fades"]
        new_takes.append(
            {
                "id": take_id,
                "label": t.get("label", ""),
                "created": t.get("created", 0.0),
                "model": t["model"],
                "seed": t["seed"],
                "params": t["params"],
                "stride_segments": t["stride"],
                "start": t["start"],
                "end": t["end"],
                "token_start": t["token_start"],
                "sample_start": t["sample_start"],
                "fade_in": fade_in,
                "fade_out": fade_out,
                "audio": {
                    "file": audio_file(str(take_id)),
                    "format": AUDIO_FORMAT,
                    "samples": t["samples"],
                    "sha256": t["audio_sha256"],
                },
                "codes": {
                    "file": codes_file(str(take_id)),
                    "shape": [t["codebooks"], t["tokens"]],
                    "sha256": t["codes_sha256"],
                },
            }
        )
    return {
        "format": FORMAT,
        "version": 0,
        "id": doc["id"],
        "name": doc["name"],
        "created": doc.get("created", 0.0),
        "revision": doc["revision"],
        "sample_rate": doc["sample_rate"],
        "clip": {
            "path": clip["file"],
            "relative_path": None,
            "size_bytes": clip["size"],
            "quick_hash": clip["hash"],
            "full_hash": None,
            "duration": clip["duration"],
            "frame_rate": clip["fps"],
            "start_time": clip["start"],
        },
        "settings": {
            "model": params["model"],
            "temperature": params["temperature"],
            "top_k": params["top_k"],
            "top_p": params["top_p"],
            "cfg_scale": params["guidance"],
            "seed_mode": "random" if seed is None else "locked",
            "seed": 0 if seed is None else seed,
            "variations": params["variations"],
            "stride_segments": params["stride"],
        },
        "lanes": {
            "original": {
                "gain_db": _linear_to_db(gains["original"]),
                "muted": gains["original_muted"],
                "solo": False,
            },
            "generated": {"gain_db": _linear_to_db(gains["generated"]), "muted": False, "solo": False},
        },
        "base": {"takes": doc["base_takes"], "committed": doc["base_take"]},
        "regions": [
            {
                "id": r["id"],
                "start": r["start"],
                "end": r["end"],
                "takes": r["takes"],
                "committed": r["active"],
                "colour": r["colour"],
                "muted": False,
            }
            for r in doc["regions"]
        ],
        "takes": new_takes,
        # Draft markers had no ids; number them in order (stable across repeated migrations).
        "markers": [
            {"id": f"m{i}", "time": m["t"], "label": m["text"]} for i, m in enumerate(doc["markers"])
        ],
    }

"""project.json, version 1: writing it from a project and reading it back with every field checked.

The reader trusts nothing: each value is checked for type and range, every id reference must resolve,
every take belongs to exactly one owner (the base or one region) and take files are only ever named
`takes/<take id>.wav` and `takes/<take id>.codes.npy`, so a file can never point outside its folder.
Problems become a `ProjectError` naming the file and the field, e.g. `regions[1].end: is missing`.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from vaura_core import __version__
from vaura_core.engine.candidates import MAX_CANDIDATES
from vaura_core.engine.chains import MAX_CHAINS
from vaura_core.project.clip import FULL_HASH_PREFIX, QUICK_HASH_PREFIX, ClipRef
from vaura_core.project.errors import CommandError, ProjectError
from vaura_core.project.model import (
    BASE,
    GAIN_DB_MAX,
    GAIN_DB_MIN,
    LANES,
    MAX_COLOUR,
    MODEL_NAME,
    TIME_TOLERANCE,
    GenerationSettings,
    LaneState,
    Marker,
    Project,
    Region,
)
from vaura_core.project.takes import (
    ID_PATTERN,
    MAX_LABEL,
    MAX_PARAM_KEY,
    MAX_PARAM_STRING,
    MAX_PARAMS,
    ProjectTake,
    check_params,
)

FORMAT = "vaura-project"
VERSION = 1
TAKES_DIR = "takes"
AUDIO_FORMAT = "wav-float32"
AUDIO_SUFFIX = ".wav"
CODES_SUFFIX = ".codes.npy"

MAX_TAKES = 100_000
MAX_REGIONS = 10_000
MAX_MARKERS = 100_000
MAX_PATH = 32_768
MAX_INT = 2**53  # exactly representable everywhere JSON goes
MAX_SAMPLES = 2**31 - 1
MAX_CODEBOOKS = 64
MAX_CLIP_SECONDS = 1e6
_SHA256 = re.compile(r"[0-9a-f]{64}")
_QUICK = re.compile(re.escape(QUICK_HASH_PREFIX) + r"[0-9a-f]{64}")
_FULL = re.compile(re.escape(FULL_HASH_PREFIX) + r"[0-9a-f]{64}")

T = TypeVar("T")


def audio_file(take_id: str) -> str:
    return f"{TAKES_DIR}/{take_id}{AUDIO_SUFFIX}"


def codes_file(take_id: str) -> str:
    return f"{TAKES_DIR}/{take_id}{CODES_SUFFIX}"


# --- writing -------------------------------------------------------------------------


def _relative_clip_path(clip: Path, folder: Path) -> str | None:
    """The clip's path relative to the project folder, so moving both together keeps the link."""
    try:
        return Path(os.path.relpath(clip, folder.absolute())).as_posix()
    except ValueError:  # different drives on Windows
        return None


def take_document(take: ProjectTake) -> dict[str, Any]:
    return {
        "id": take.id,
        "label": take.label,
        "created": take.created,
        "model": take.model,
        "seed": take.seed,
        "params": dict(take.params),
        "stride_segments": take.stride_segments,
        "start": take.start,
        "end": take.end,
        "token_start": take.token_start,
        "sample_start": take.sample_start,
        "fade_in": take.fade_in,
        "fade_out": take.fade_out,
        "chains": take.chains,
        "candidates": take.candidates,
        "audio": {
            "file": audio_file(take.id),
            "format": AUDIO_FORMAT,
            "samples": take.n_samples,
            "sha256": take.audio_sha256,
        },
        "codes": {
            "file": codes_file(take.id),
            "shape": [take.n_codebooks, take.n_tokens],
            "sha256": take.codes_sha256,
        },
    }


def to_document(project: Project, folder: Path) -> dict[str, Any]:
    """The version-1 JSON document of `project` as stored in `folder` (plain data only)."""
    clip = project.clip
    s = project.settings
    return {
        "format": FORMAT,
        "version": VERSION,
        "app": f"VAURA Studio {__version__}",
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "id": project.id,
        "name": project.name,
        "created": project.created,
        "revision": project.revision,
        "sample_rate": project.sample_rate,
        "clip": {
            "path": str(clip.path),
            "relative_path": _relative_clip_path(clip.path, folder),
            "size_bytes": clip.size_bytes,
            "quick_hash": clip.quick_hash,
            "full_hash": clip.full_hash,
            "duration": clip.duration,
            "frame_rate": clip.frame_rate,
            "start_time": clip.start_time,
        },
        "settings": {
            "model": s.model,
            "temperature": s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "cfg_scale": s.cfg_scale,
            "seed_mode": s.seed_mode,
            "seed": s.seed,
            "variations": s.variations,
            "stride_segments": s.stride_segments,
            "chains": s.chains,
            "candidates": s.candidates,
        },
        "lanes": {
            name: {"gain_db": lane.gain_db, "muted": lane.muted, "solo": lane.solo}
            for name, lane in project.lanes.items()
        },
        "base": {"takes": list(project.base_take_ids), "committed": project.base_take},
        "regions": [
            {
                "id": r.id,
                "start": r.start,
                "end": r.end,
                "takes": list(r.take_ids),
                "committed": r.committed,
                "colour": r.colour,
                "muted": r.muted,
            }
            for r in project.regions
        ],
        "takes": [take_document(project.takes[t]) for t in _take_order(project)],
        "markers": [{"id": m.id, "time": m.time, "label": m.label} for m in project.markers],
    }


def _take_order(project: Project) -> list[str]:
    """Takes in timeline order (base first, then region by region) so the file diffs well."""
    order = list(project.base_take_ids)
    for region in project.regions:
        order.extend(region.take_ids)
    return order


# --- reading -------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


class Fields:
    """Typed, range-checked access to one JSON object of the document."""

    def __init__(self, file: Path, value: Any, where: str) -> None:
        self.file = file
        self.where = where
        if not isinstance(value, dict):
            raise self.error(f"expected an object, found {_kind(value)}")
        self.value: dict[str, Any] = value

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.where}[{key}]"
        return f"{self.where}.{key}" if self.where else key

    def error(self, problem: str, key: str | int | None = None) -> ProjectError:
        where = self.where if key is None else self.at(key)
        return ProjectError(self.file, f"{where or 'the document'}: {problem}")

    def has(self, key: str) -> bool:
        return key in self.value

    def raw(self, key: str) -> Any:
        if key not in self.value:
            raise self.error("is missing", key)
        return self.value[key]

    def text(self, key: str, *, max_len: int = MAX_LABEL, pattern: re.Pattern[str] | None = None) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.error(f"expected text, found {_kind(value)}", key)
        if len(value) > max_len:
            raise self.error(f"is longer than {max_len} characters", key)
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(f"{value[:80]!r} is not a valid value here", key)
        return value

    def optional_text(self, key: str, **kwargs: Any) -> str | None:
        return None if self.value.get(key) is None else self.text(key, **kwargs)

    def integer(self, key: str, lo: int, hi: int) -> int:
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"expected a whole number, found {_kind(value)}", key)
        if not lo <= value <= hi:
            raise self.error(f"must be within [{lo}, {hi}]", key)
        return value

    def number(self, key: str, lo: float, hi: float, *, open_low: bool = False) -> float:
        value = self.raw(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(f"expected a number, found {_kind(value)}", key)
        value = float(value)
        if not math.isfinite(value) or not lo <= value <= hi or (open_low and value == lo):
            raise self.error(f"must be within {'(' if open_low else '['}{lo:g}, {hi:g}]", key)
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, found {_kind(value)}", key)
        return value

    def obj(self, key: str) -> Fields:
        return Fields(self.file, self.raw(key), self.at(key))

    def items(self, key: str, max_items: int) -> list[tuple[str, Any]]:
        """(where, value) for each element of a list field."""
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.error(f"expected a list, found {_kind(value)}", key)
        if len(value) > max_items:
            raise self.error(f"has more than {max_items} entries", key)
        where = self.at(key)
        return [(f"{where}[{i}]", item) for i, item in enumerate(value)]

    def ids(self, key: str, max_items: int = MAX_TAKES) -> tuple[str, ...]:
        out = []
        for where, item in self.items(key, max_items):
            if not isinstance(item, str):
                raise ProjectError(self.file, f"{where}: expected an id, found {_kind(item)}")
            if not ID_PATTERN.fullmatch(item):
                raise ProjectError(self.file, f"{where}: {item[:80]!r} is not a valid id")
            out.append(item)
        if len(set(out)) != len(out):
            raise self.error("lists the same id twice", key)
        return tuple(out)

    def optional_id(self, key: str) -> str | None:
        return None if self.value.get(key) is None else self.text(key, max_len=64, pattern=ID_PATTERN)


def _build(file: Path, where: str, make: Callable[[], T]) -> T:
    """Run a model constructor; its CommandError becomes a ProjectError located in the file."""
    try:
        return make()
    except CommandError as error:
        raise ProjectError(file, f"{where}: {error}") from None


def _clip(f: Fields) -> tuple[ClipRef, str | None]:
    full = f.optional_text("full_hash", max_len=80, pattern=_FULL)
    clip = ClipRef(
        path=Path(f.text("path", max_len=MAX_PATH)),
        size_bytes=f.integer("size_bytes", 0, MAX_INT),
        quick_hash=f.text("quick_hash", max_len=80, pattern=_QUICK),
        duration=f.number("duration", 0.0, MAX_CLIP_SECONDS, open_low=True),
        frame_rate=f.number("frame_rate", 0.0, 1000.0, open_low=True),
        start_time=f.number("start_time", -1e9, 1e9),
        full_hash=full,
    )
    if not clip.path.is_absolute() or "\0" in str(clip.path):
        raise f.error("must be an absolute path", "path")
    relative = f.optional_text("relative_path", max_len=MAX_PATH)
    if relative is not None and "\0" in relative:
        raise f.error("is not a valid path", "relative_path")
    return clip, relative


def _settings(f: Fields) -> GenerationSettings:
    mode = f.text("seed_mode", max_len=16)
    if mode not in ("random", "locked"):
        raise f.error("must be 'random' or 'locked'", "seed_mode")
    return _build(
        f.file,
        f.where,
        lambda: GenerationSettings(
            model=f.text("model", max_len=64, pattern=MODEL_NAME),
            temperature=f.number("temperature", 0.0, 10.0),
            top_k=f.integer("top_k", 0, 1 << 16),
            top_p=f.number("top_p", 0.0, 1.0),
            cfg_scale=f.number("cfg_scale", 0.0, 100.0),
            seed_mode="random" if mode == "random" else "locked",
            seed=f.integer("seed", 0, 2**63 - 1),
            variations=f.integer("variations", 1, 16),
            stride_segments=f.integer("stride_segments", 1, 15),
            # Absent from projects written before parallel chains existed: sequential, as then.
            chains=f.integer("chains", 1, MAX_CHAINS) if "chains" in f.value else 1,
            # Absent from projects written before candidates existed: one, as then.
            candidates=f.integer("candidates", 1, MAX_CANDIDATES) if "candidates" in f.value else 1,
        ),
    )


def _lanes(f: Fields) -> MappingProxyType[str, LaneState]:
    lanes = {}
    for name in LANES:
        lane = f.obj(name)
        lanes[name] = LaneState(
            gain_db=lane.number("gain_db", GAIN_DB_MIN, GAIN_DB_MAX),
            muted=lane.flag("muted"),
            solo=lane.flag("solo"),
        )
    return MappingProxyType(lanes)


def _params(f: Fields) -> dict[str, Any]:
    params = f.obj("params")
    if len(params.value) > MAX_PARAMS:
        raise params.error(f"has more than {MAX_PARAMS} entries")
    for key, value in params.value.items():
        if len(key) > MAX_PARAM_KEY or not (value is None or isinstance(value, bool | int | float | str)):
            raise params.error("must map short names to numbers, text, true/false or null", key[:60])
        if isinstance(value, str) and len(value) > MAX_PARAM_STRING:
            raise params.error(f"is longer than {MAX_PARAM_STRING} characters", key)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
            raise params.error("is too large", key)
    return params.value


def _take(f: Fields) -> ProjectTake:
    take_id = f.text("id", max_len=64, pattern=ID_PATTERN)
    audio = f.obj("audio")
    codes = f.obj("codes")
    if audio.text("file", max_len=200) != audio_file(take_id):
        raise audio.error(f"must be {audio_file(take_id)!r}", "file")
    if audio.text("format", max_len=32) != AUDIO_FORMAT:
        raise audio.error(f"unknown audio format (this version reads {AUDIO_FORMAT!r})", "format")
    if codes.text("file", max_len=200) != codes_file(take_id):
        raise codes.error(f"must be {codes_file(take_id)!r}", "file")
    shape = codes.items("shape", 2)
    if len(shape) != 2:
        raise codes.error("must be [codebooks, tokens]", "shape")
    dims = Fields(f.file, {"codebooks": shape[0][1], "tokens": shape[1][1]}, codes.at("shape"))
    params = _params(f)
    take = _build(
        f.file,
        f.where,
        lambda: ProjectTake(
            id=take_id,
            model=f.text("model", max_len=256),
            seed=f.integer("seed", 0, 2**63 - 1),
            params=check_params(params),
            stride_segments=f.integer("stride_segments", 1, 1024),
            start=f.number("start", 0.0, MAX_CLIP_SECONDS),
            end=f.number("end", 0.0, MAX_CLIP_SECONDS),
            token_start=f.integer("token_start", 0, MAX_SAMPLES),
            sample_start=f.integer("sample_start", 0, MAX_SAMPLES),
            fade_in=f.integer("fade_in", 0, MAX_SAMPLES),
            fade_out=f.integer("fade_out", 0, MAX_SAMPLES),
            n_samples=audio.integer("samples", 1, MAX_SAMPLES),
            n_codebooks=dims.integer("codebooks", 1, MAX_CODEBOOKS),
            n_tokens=dims.integer("tokens", 1, MAX_SAMPLES),
            audio_sha256=audio.text("sha256", max_len=64, pattern=_SHA256),
            codes_sha256=codes.text("sha256", max_len=64, pattern=_SHA256),
            created=f.number("created", 0.0, 1e11),
            label=f.text("label"),
            # Absent from takes saved before parallel chains existed: those were sequential.
            chains=f.integer("chains", 1, MAX_CHAINS) if "chains" in f.value else 1,
            # Absent from takes saved before candidates existed: those were one candidate.
            candidates=f.integer("candidates", 1, MAX_CANDIDATES) if "candidates" in f.value else 1,
            unavailable="not loaded",
        ),
    )
    _build(f.file, f.where, take.check)
    return take


def _region(f: Fields) -> Region:
    return _build(
        f.file,
        f.where,
        lambda: Region(
            id=f.text("id", max_len=64, pattern=ID_PATTERN),
            start=f.number("start", 0.0, MAX_CLIP_SECONDS),
            end=f.number("end", 0.0, MAX_CLIP_SECONDS),
            take_ids=f.ids("takes"),
            committed=f.optional_id("committed"),
            colour=f.integer("colour", 0, MAX_COLOUR),
            muted=f.flag("muted"),
        ),
    )


def _marker(f: Fields) -> Marker:
    return _build(
        f.file,
        f.where,
        lambda: Marker(
            id=f.text("id", max_len=64, pattern=ID_PATTERN),
            time=f.number("time", 0.0, MAX_CLIP_SECONDS),
            label=f.text("label"),
        ),
    )


@dataclass
class ParsedProject:
    """A checked document: the project without its audio (takes are marked "not loaded")."""

    project: Project
    relative_clip_path: str | None


def parse_document(doc: Any, file: Path) -> ParsedProject:
    """Check a version-1 document (already migrated) and build the project it describes."""
    top = Fields(file, doc, "")
    if top.raw("format") != FORMAT or top.raw("version") != VERSION:
        raise top.error(f"expected a {FORMAT} document of version {VERSION}")
    clip, relative = _clip(top.obj("clip"))
    base = top.obj("base")
    base_ids = base.ids("takes")
    base_committed = base.optional_id("committed")
    regions = tuple(_region(Fields(file, v, w)) for w, v in top.items("regions", MAX_REGIONS))
    takes = [_take(Fields(file, v, w)) for w, v in top.items("takes", MAX_TAKES)]
    markers = tuple(_marker(Fields(file, v, w)) for w, v in top.items("markers", MAX_MARKERS))

    store: dict[str, ProjectTake] = {}
    for take in takes:
        if take.id in store:
            raise top.error(f"take {take.id} is listed twice", "takes")
        store[take.id] = take
    owners: dict[str, str] = {}
    groups = [(BASE, base_ids, base_committed, "base")] + [
        (r.id, r.take_ids, r.committed, f"regions[{i}]") for i, r in enumerate(regions)
    ]
    for owner, ids, committed, where in groups:
        for take_id in ids:
            if take_id not in store:
                raise ProjectError(file, f"{where}: take {take_id} is not in the takes list")
            if take_id in owners:
                raise ProjectError(file, f"{where}: take {take_id} also belongs to {owners[take_id]}")
            owners[take_id] = owner
        if committed is not None and committed not in ids:
            raise ProjectError(file, f"{where}: committed take {committed} is not one of its takes")
    for take_id in store:
        if take_id not in owners:
            raise top.error(f"take {take_id} belongs to neither the base nor a region", "takes")
    for take_id in base_ids:
        if not store[take_id].is_whole_clip:
            raise top.error(f"take {take_id} covers part of the clip and cannot be a base take", "base")
    if len({r.id for r in regions}) != len(regions):
        raise top.error("two regions share an id", "regions")
    if len({m.id for m in markers}) != len(markers):
        raise top.error("two markers share an id", "markers")
    limit = clip.duration + TIME_TOLERANCE
    for i, region in enumerate(regions):
        if region.end > limit:
            raise top.error(f"region ends at {region.end:g} s, after the clip's end", f"regions[{i}]")
    for i, marker in enumerate(markers):
        if marker.time > limit:
            raise top.error(f"marker at {marker.time:g} s is after the clip's end", f"markers[{i}]")

    revision = top.integer("revision", 0, MAX_INT)
    project = Project(
        clip=clip,
        name=top.text("name"),
        id=top.text("id", max_len=64, pattern=ID_PATTERN),
        sample_rate=top.integer("sample_rate", 8000, 768000),
        settings=_settings(top.obj("settings")),
        lanes=_lanes(top.obj("lanes")),
        base_take_ids=base_ids,
        base_take=base_committed,
        regions=regions,
        takes=MappingProxyType(store),
        markers=markers,
        created=top.number("created", 0.0, 1e11),
        revision=revision,
        saved_revision=revision,
    )
    return ParsedProject(project=project, relative_clip_path=relative)

"""The app's persistent preferences: a typed layer over QSettings, every option declared once.

    settings = AppSettings()                 # QSettings("VAURA", "VAURA Studio")
    settings.device = "cuda"
    params = settings.generation             # GenerationSettings, the parameters panel's defaults
    settings.remember_recent("clips", path)

Values read back are checked: a wrong type or an out-of-range number (an edited or corrupt file, a
value written by another version) falls back to the option's default instead of reaching a widget.
INI-backed settings return strings, so every read converts explicitly rather than trusting `type=`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from PySide6.QtCore import QByteArray, QSettings

from vaura_core.project.errors import CommandError
from vaura_core.project.model import GenerationSettings
from vaura_core.weights.registry import DEFAULT_MODEL, default_models_root, save_models_root

log = logging.getLogger(__name__)

SETTINGS_ORGANIZATION = "VAURA"
SETTINGS_APPLICATION = "VAURA Studio"
SETTINGS_VERSION = 1
MAX_RECENT = 10

T = TypeVar("T")
RecentKind = Literal["clips", "projects"]
FolderKind = Literal["clips", "projects", "export"]
SnapSetting = Literal["frame", "grid", "off"]


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int):
        return bool(value)
    raise ValueError(f"not a boolean: {value!r}")


def _as_float(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not text: {value!r}")
    return value


@dataclass(frozen=True)
class Option(Generic[T]):
    """One stored value: its key, default, converter (raises ValueError/TypeError) and allowed values."""

    key: str
    default: T
    convert: Callable[[Any], T]
    choices: tuple[T, ...] | None = None
    bounds: tuple[float, float] | None = None

    def parse(self, raw: Any) -> T:
        try:
            value = self.convert(raw)
        except (TypeError, ValueError):
            return self.default
        if self.choices is not None and value not in self.choices:
            return self.default
        if self.bounds is not None and not self.bounds[0] <= float(value) <= self.bounds[1]:  # type: ignore[arg-type]
            return self.default
        return value


DEVICE = Option("engine/device", "auto", _as_str)
PRECISION = Option("engine/precision", "auto", _as_str, choices=("auto", "fp32", "fp16", "bf16"))
MODEL = Option("engine/model", DEFAULT_MODEL, _as_str)
# Empty: the default models folder (VAURA_HOME, else the per-user data folder), followed if that moves.
MODELS_ROOT = Option("models/root", "", _as_str)
FIRST_RUN_DONE = Option("app/firstRunDone", False, _as_bool)
SNAP = Option[str]("timeline/snap", "frame", _as_str, choices=("frame", "grid", "off"))
LOOP_AUDITION = Option("takes/loopAudition", False, _as_bool)
EXPORT_FORMAT = Option("export/format", "wav", _as_str, choices=("wav", "mp4", "mov"))
EXPORT_RATE = Option("export/sampleRate", 48000, _as_int, choices=(44100, 48000))
EXPORT_SUBTYPE = Option("export/subtype", "PCM_24", _as_str, choices=("PCM_16", "PCM_24", "FLOAT"))
EXPORT_LOUDNESS = Option("export/loudness", "off", _as_str, choices=("off", "-23", "-24", "-14"))
EXPORT_ORIGINAL_AUDIO = Option("export/keepOriginalAudio", False, _as_bool)

_GEN = GenerationSettings()
GENERATION_OPTIONS: dict[str, Option[Any]] = {
    "temperature": Option("generation/temperature", _GEN.temperature, _as_float, bounds=(0.01, 10)),
    "top_k": Option("generation/topK", _GEN.top_k, _as_int, bounds=(0, 1024)),
    "top_p": Option("generation/topP", _GEN.top_p, _as_float, bounds=(0, 1)),
    "cfg_scale": Option("generation/guidance", _GEN.cfg_scale, _as_float, bounds=(0, 15)),
    "seed_mode": Option("generation/seedMode", _GEN.seed_mode, _as_str, choices=("random", "locked")),
    "seed": Option("generation/seed", _GEN.seed, _as_int, bounds=(0, 2**31 - 1)),
    "variations": Option("generation/variations", _GEN.variations, _as_int, bounds=(1, 8)),
    "stride_segments": Option("generation/stride", _GEN.stride_segments, _as_int, bounds=(1, 3)),
    "chains": Option("generation/chains", _GEN.chains, _as_int, bounds=(1, 8)),
    "candidates": Option("generation/candidates", _GEN.candidates, _as_int, bounds=(1, 8)),
}

_RECENT_KEYS: dict[str, str] = {"clips": "recentFiles", "projects": "recentProjects"}
_FOLDER_KEYS: dict[str, str] = {
    "clips": "folders/clips",
    "projects": "folders/projects",
    "export": "folders/export",
}
_GEOMETRY_KEY = "window/geometry"
_STATE_KEY = "window/state"
_SPLITTER_KEY = "window/splitters/"
_VERSION_KEY = "settingsVersion"


class AppSettings:
    """Typed access to the app's QSettings. Writes go straight through (QSettings syncs lazily)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings(SETTINGS_ORGANIZATION, SETTINGS_APPLICATION)
        stored = self.store.value(_VERSION_KEY)
        if stored is None:
            self.store.setValue(_VERSION_KEY, SETTINGS_VERSION)
        # Migrations from older versions go here, keyed by the stored version.

    # --- generic access -----------------------------------------------------------------------------

    def get(self, option: Option[T]) -> T:
        raw = self.store.value(option.key)
        return option.default if raw is None else option.parse(raw)

    def set(self, option: Option[T], value: T) -> None:
        self.store.setValue(option.key, value)

    # --- engine -------------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        return self.get(DEVICE)

    @device.setter
    def device(self, value: str) -> None:
        self.set(DEVICE, value)

    @property
    def precision(self) -> str:
        return self.get(PRECISION)

    @precision.setter
    def precision(self, value: str) -> None:
        self.set(PRECISION, value)

    @property
    def model(self) -> str:
        return self.get(MODEL)

    @model.setter
    def model(self, value: str) -> None:
        self.set(MODEL, value)

    @property
    def models_root(self) -> Path:
        """Where downloaded and imported models live: the folder the user chose, else the default."""
        chosen = self.get(MODELS_ROOT).strip()
        return Path(chosen).expanduser() if chosen else default_models_root()

    @models_root.setter
    def models_root(self, value: Path | str | None) -> None:
        """None or "" goes back to the default folder. The CLI follows the choice too."""
        self.set(MODELS_ROOT, str(value) if value else "")
        try:
            save_models_root(Path(value) if value else None)
        except OSError as exc:  # the app still uses its own setting; only the CLI will not follow
            log.warning("could not record the models folder for the command line: %s", exc)

    @property
    def models_root_is_default(self) -> bool:
        return not self.get(MODELS_ROOT).strip()

    @property
    def first_run_done(self) -> bool:
        """Whether the first-run model manager has been shown (it is shown once)."""
        return self.get(FIRST_RUN_DONE)

    @first_run_done.setter
    def first_run_done(self, value: bool) -> None:
        self.set(FIRST_RUN_DONE, bool(value))

    @property
    def generation(self) -> GenerationSettings:
        """Default generation parameters (the model comes from `model`)."""
        values = {name: self.get(option) for name, option in GENERATION_OPTIONS.items()}
        try:
            return GenerationSettings(model=self.model, **values)
        except CommandError:  # a model name the project format would refuse
            return GenerationSettings(**values)

    @generation.setter
    def generation(self, value: GenerationSettings) -> None:
        for name, option in GENERATION_OPTIONS.items():
            self.set(option, getattr(value, name))
        self.model = value.model

    # --- timeline and takes -------------------------------------------------------------------------

    @property
    def snap(self) -> SnapSetting:
        return self.get(SNAP)  # type: ignore[return-value]

    @snap.setter
    def snap(self, value: str) -> None:
        self.set(SNAP, value)

    @property
    def loop_audition(self) -> bool:
        return self.get(LOOP_AUDITION)

    @loop_audition.setter
    def loop_audition(self, value: bool) -> None:
        self.set(LOOP_AUDITION, bool(value))

    # --- export -------------------------------------------------------------------------------------

    @property
    def export_defaults(self) -> dict[str, Any]:
        """The export dialog's last choices: format, sample_rate, subtype, loudness, keep_original_audio."""
        return {
            "format": self.get(EXPORT_FORMAT),
            "sample_rate": self.get(EXPORT_RATE),
            "subtype": self.get(EXPORT_SUBTYPE),
            "loudness": self.get(EXPORT_LOUDNESS),
            "keep_original_audio": self.get(EXPORT_ORIGINAL_AUDIO),
        }

    def remember_export(
        self, *, format: str, sample_rate: int, subtype: str, loudness: str, keep_original_audio: bool
    ) -> None:
        self.set(EXPORT_FORMAT, format)
        self.set(EXPORT_RATE, int(sample_rate))
        self.set(EXPORT_SUBTYPE, subtype)
        self.set(EXPORT_LOUDNESS, loudness)
        self.set(EXPORT_ORIGINAL_AUDIO, bool(keep_original_audio))

    # --- recent files and folders -------------------------------------------------------------------

    def recent(self, kind: RecentKind) -> list[Path]:
        """Recently opened clips or projects, most recent first."""
        stored = self.store.value(_RECENT_KEYS[kind], [])
        if isinstance(stored, str):  # an INI file with a single entry reads back as a plain string
            stored = [stored]
        if not isinstance(stored, list):
            return []
        return [Path(item) for item in stored if isinstance(item, str) and item][:MAX_RECENT]

    def remember_recent(self, kind: RecentKind, path: Path) -> None:
        entries = [path, *(p for p in self.recent(kind) if p != path)][:MAX_RECENT]
        self.store.setValue(_RECENT_KEYS[kind], [str(p) for p in entries])
        self.set_last_folder("clips" if kind == "clips" else "projects", path.parent)

    def clear_recent(self, kind: RecentKind) -> None:
        self.store.remove(_RECENT_KEYS[kind])

    def last_folder(self, kind: FolderKind) -> Path | None:
        raw = self.store.value(_FOLDER_KEYS[kind])
        return Path(raw) if isinstance(raw, str) and raw else None

    def set_last_folder(self, kind: FolderKind, folder: Path) -> None:
        self.store.setValue(_FOLDER_KEYS[kind], str(folder))

    # --- window layout ------------------------------------------------------------------------------

    def window_geometry(self) -> QByteArray | None:
        return self._bytes(_GEOMETRY_KEY)

    def window_state(self) -> QByteArray | None:
        return self._bytes(_STATE_KEY)

    def splitter_state(self, name: str) -> QByteArray | None:
        return self._bytes(_SPLITTER_KEY + name)

    def save_layout(self, geometry: QByteArray, state: QByteArray, splitters: dict[str, QByteArray]) -> None:
        self.store.setValue(_GEOMETRY_KEY, geometry)
        self.store.setValue(_STATE_KEY, state)
        for name, value in splitters.items():
            self.store.setValue(_SPLITTER_KEY + name, value)

    def _bytes(self, key: str) -> QByteArray | None:
        raw = self.store.value(key)
        return raw if isinstance(raw, QByteArray) and not raw.isEmpty() else None

    def sync(self) -> None:
        self.store.sync()


def replace_generation(settings: GenerationSettings, **changes: Any) -> GenerationSettings:
    """`settings` with `changes`, or `settings` unchanged when the result would be invalid."""
    try:
        return dataclasses.replace(settings, **changes)
    except CommandError:
        return settings

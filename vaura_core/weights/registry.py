"""Installed models: where they live, how they get there and how they are loaded.

Every model is a folder in the store format (model.safetensors + config.json + manifest.json):

* built-in models ship read-only with the application under `resources/models/<name>/`;
* downloaded and imported models live in the models root, `<root>/<name>/`. The root is the
  `VAURA_HOME` environment variable when set, else the folder chosen in the app's model manager
  (`preferences.json` in the user data folder, so the CLI follows the app), else
  `<user data folder>/models`;
* downloads in progress stay in `<root>/.downloads/<name>/` (partial files are resumed).

Offline mode (`offline=True` or `VAURA_OFFLINE=1`) never touches the network.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaura_core.errors import ModelUnavailableError, VauraError
from vaura_core.weights import catalog as catalog_module
from vaura_core.weights.catalog import CatalogEntry, HttpFile, HubFile, RemoteFile
from vaura_core.weights.download import CancelFlag, DownloadResult, ProgressFn, download, hub_download

if TYPE_CHECKING:
    import torch

    from vaura_core.model.vaura import VAura
    from vaura_core.weights.importers import ImportedWeights

log = logging.getLogger(__name__)

DEFAULT_MODEL = "vaura-tiny"
BUILTIN_MODELS: dict[str, str] = {
    DEFAULT_MODEL: "small V-AURA shipped with VAURA Studio, for trying the app on any machine",
}
# The store format (vaura_core/weights/store.py), named here so listing models needs no torch import.
MANIFEST = "manifest.json"
MODEL_FILES = ("model.safetensors", "config.json", MANIFEST)
DOWNLOADS = ".downloads"
BUILTIN_ROOT = Path(__file__).resolve().parents[2] / "resources" / "models"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_WEIGHT_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".ckpt", ".safetensors", ".pth", ".pt", ".bin", ".zip")
_TRUTHY = {"1", "true", "yes", "on"}


def user_data_dir(platform: str = sys.platform, env: Mapping[str, str] = os.environ) -> Path:
    """The per-user folder for application data on this platform."""
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if platform.startswith("win"):
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / "VAURA Studio"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "VAURA Studio"
    xdg = env.get("XDG_DATA_HOME")
    # XDG says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / "vaura-studio"


PREFERENCES = "preferences.json"


def preferences_path(env: Mapping[str, str] = os.environ) -> Path:
    return user_data_dir(env=env) / PREFERENCES


def chosen_models_root(env: Mapping[str, str] = os.environ) -> Path | None:
    """The models folder the user chose in the app, if any (a damaged file counts as no choice)."""
    try:
        data = json.loads(preferences_path(env).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    chosen = data.get("models_root") if isinstance(data, dict) else None
    return Path(chosen).expanduser() if isinstance(chosen, str) and chosen.strip() else None


def save_models_root(folder: Path | None, env: Mapping[str, str] = os.environ) -> None:
    """Remember the chosen models folder for every later run of the app and the CLI (None: default)."""
    path = preferences_path(env)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    if folder is None:
        data.pop("models_root", None)
    else:
        data["models_root"] = str(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def default_models_root(env: Mapping[str, str] = os.environ) -> Path:
    home = env.get("VAURA_HOME")
    if home:
        return Path(home).expanduser()
    return chosen_models_root(env) or user_data_dir(env=env) / "models"


def offline_from_env(env: Mapping[str, str] = os.environ) -> bool:
    return env.get("VAURA_OFFLINE", "").strip().lower() in _TRUTHY


def is_model_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in MODEL_FILES)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    installed: bool
    builtin: bool
    path: Path | None  # the model folder when installed (or where a built-in one belongs)
    size_bytes: int | None  # on disk when installed, else the catalog's estimate if any
    source: str  # where the weights came from (or will come from)
    description: str
    downloadable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "installed": self.installed,
            "builtin": self.builtin,
            "downloadable": self.downloadable,
            "path": None if self.path is None else str(self.path),
            "size_bytes": self.size_bytes,
            "source": self.source,
            "description": self.description,
        }


class ModelRegistry:
    """Lists, installs, removes and loads models. Safe to create often: it holds no open files."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        catalog: Mapping[str, CatalogEntry] | None = None,
        builtin_root: Path | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else default_models_root()
        self.catalog: Mapping[str, CatalogEntry] = catalog if catalog is not None else catalog_module.CATALOG
        self.builtin_root = Path(builtin_root) if builtin_root is not None else BUILTIN_ROOT

    # --- queries -------------------------------------------------------------------------------

    def builtin_names(self) -> list[str]:
        """The named built-ins (listed even when missing) plus any store folder shipped with the app."""
        names = set(BUILTIN_MODELS)
        if self.builtin_root.is_dir():
            names.update(p.name for p in self.builtin_root.iterdir() if is_model_dir(p))
        return sorted(names)

    def installed_names(self) -> list[str]:
        """Models in the user's models root (not the built-ins)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _NAME.fullmatch(p.name) and is_model_dir(p))

    def list(self) -> list[ModelInfo]:
        """Built-ins first, then every installed or downloadable model by name."""
        builtins = self.builtin_names()
        others = sorted((set(self.installed_names()) | set(self.catalog)) - set(builtins))
        return [self.info(name) for name in [*builtins, *others]]

    def info(self, name: str) -> ModelInfo:
        _check_name(name)
        entry = self.catalog.get(name)
        if name in self.builtin_names():
            folder = self.builtin_root / name
            installed = is_model_dir(folder)
            manifest = _read_manifest(folder) if installed else {}
            return ModelInfo(
                name=name,
                installed=installed,
                builtin=True,
                path=folder,
                size_bytes=_folder_size(folder) if installed else None,
                source="built in",
                description=str(manifest.get("description") or BUILTIN_MODELS.get(name, "")),
            )
        folder = self.root / name
        if is_model_dir(folder):
            manifest = _read_manifest(folder)
            return ModelInfo(
                name=name,
                installed=True,
                builtin=False,
                path=folder,
                size_bytes=_folder_size(folder),
                source=_describe_source(manifest.get("source")),
                description=str(manifest.get("description") or (entry.description if entry else "")),
                downloadable=entry is not None,
            )
        return ModelInfo(
            name=name,
            installed=False,
            builtin=False,
            path=None,
            size_bytes=entry.approx_bytes if entry else None,
            source=entry.source if entry else "",
            description=entry.description if entry else "",
            downloadable=entry is not None,
        )

    def path(self, name: str) -> Path:
        """The folder of an installed model; ModelUnavailableError with what to do otherwise."""
        info = self.info(name)
        if info.installed and info.path is not None:
            return info.path
        if info.builtin:
            raise ModelUnavailableError(
                f"built-in model '{name}' is missing from this installation (expected at {info.path}); "
                "reinstall VAURA Studio, or run `vaura models import PATH` to add other weights"
            )
        if info.downloadable:
            raise ModelUnavailableError(
                f"model '{name}' is not installed; run `vaura models download {name}` "
                "or `vaura models import PATH`"
            )
        raise ModelUnavailableError(
            f"model '{name}' is not installed and is not in the download catalog "
            f"({', '.join(sorted(self.catalog)) or 'empty'}); run `vaura models import PATH --name {name}`"
        )

    def load(self, name: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> VAura:
        """Build the model on `device` from its store folder (see `store.load_model`)."""
        from vaura_core.weights.store import load_model

        return load_model(self.path(name), device, dtype)

    # --- changes -------------------------------------------------------------------------------

    def download(
        self,
        name: str,
        progress: ProgressFn | None = None,
        offline: bool = False,
        cancel: CancelFlag | None = None,
        keep: bool = False,
        status: Callable[[str], None] | None = None,
    ) -> ModelInfo:
        """Fetch a catalog model's files, import them into `<root>/<name>/` and return its info.

        Already installed: returns at once. `keep=True` leaves the downloaded files in
        `<root>/.downloads/<name>/` (an offline re-import can use them); otherwise they are
        deleted once the import succeeded. `status` hears about stages that report no byte
        progress (the conversion after the download can take minutes for the release).
        """
        _check_name(name)
        entry = self.catalog.get(name)
        if entry is None:
            if name in self.builtin_names():
                raise ModelUnavailableError(f"model '{name}' is built in; there is nothing to download")
            raise ModelUnavailableError(
                f"model '{name}' is not in the download catalog; downloadable models: "
                f"{', '.join(sorted(self.catalog)) or 'none'}. Local files: `vaura models import PATH`"
            )
        target = self.root / name
        if is_model_dir(target):
            return self.info(name)
        offline = offline or offline_from_env()
        staging = self.root / DOWNLOADS / name
        fetched = [self._fetch(name, remote, staging, progress, cancel, offline) for remote in entry.files]

        from vaura_core.weights.importers import import_weights

        if status is not None:
            status(f"converting {name} into {target}")
        # Unpack next to the download, not in the system temp folder (often small, or RAM).
        imported = import_weights([r.path for r in fetched], config_hint=entry.config_hint, tmp_dir=staging)
        meta = {
            "name": name,
            "description": entry.description,
            "license": entry.license,
            "source": {
                "kind": "download",
                "files": [_file_record(rf, r) for rf, r in zip(entry.files, fetched, strict=True)],
            },
        }
        self._save(target, imported, meta, overwrite=False)
        if not keep:
            shutil.rmtree(staging, ignore_errors=True)
        return self.info(name)

    def import_path(
        self,
        paths: Sequence[Path],
        name: str | None = None,
        overwrite: bool = False,
        *,
        config_hint: str | None = None,
    ) -> ModelInfo:
        """Convert local weights (any layout `import_weights` reads) into `<root>/<name>/`.

        `config_hint` names a preset for what the files cannot tell (a checkpoint without hparams
        whose sizes are not the release's).
        """
        paths = [Path(p).expanduser() for p in paths]
        if not paths:
            raise VauraError("nothing to import: give at least one weights file or folder")
        for p in paths:
            if not p.exists():
                raise VauraError(f"{p}: no such file or folder")
        name = name if name is not None else name_from_path(paths[0])
        _check_name(name)
        if name in self.builtin_names():
            raise VauraError(f"'{name}' is the name of a built-in model; choose another with --name")
        target = self.root / name
        if target.exists() and not overwrite:
            raise VauraError(f"model '{name}' already exists at {target}; use --force to replace it")

        from vaura_core.weights.importers import import_weights

        scratch = self.root / DOWNLOADS
        scratch.mkdir(parents=True, exist_ok=True)
        imported = import_weights(paths, config_hint=config_hint, tmp_dir=scratch)
        meta = {
            "name": name,
            "description": f"imported from {', '.join(p.name for p in paths)}",
            "source": {"kind": "import", "files": [str(p.resolve()) for p in paths]},
        }
        self._save(target, imported, meta, overwrite=overwrite)
        return self.info(name)

    def remove(self, name: str) -> None:
        """Delete an installed model and any download leftovers; built-ins cannot be removed."""
        _check_name(name)
        if name in self.builtin_names():
            raise VauraError(f"model '{name}' is built into VAURA Studio and cannot be removed")
        target = self.root / name
        leftovers = self.root / DOWNLOADS / name
        if not target.exists():
            if leftovers.exists():
                shutil.rmtree(leftovers)
                return
            raise ModelUnavailableError(f"model '{name}' is not installed in {self.root}; nothing to remove")
        # Rename first so a half-finished delete never looks like an installed model.
        trash = self.root / f".trash-{name}-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(target, trash)
        except OSError as err:  # Windows: a file of the model is still open (e.g. loaded by the app)
            raise VauraError(f"cannot remove {target}: {err.strerror or err}; close what uses it") from None
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(leftovers, ignore_errors=True)

    # --- helpers -------------------------------------------------------------------------------

    def _fetch(
        self,
        name: str,
        remote: RemoteFile,
        staging: Path,
        progress: ProgressFn | None,
        cancel: CancelFlag | None,
        offline: bool,
    ) -> DownloadResult:
        if isinstance(remote, HubFile):
            return hub_download(
                remote.repo_id,
                remote.filename,
                remote.revision,
                staging,
                sha256=remote.sha256,
                progress=progress,
                cancel=cancel,
                offline=offline,
                endpoint=remote.endpoint,
                cache_dir=self.root / DOWNLOADS / ".hf-cache",
            )
        dest = staging / remote.filename
        if offline and not dest.is_file():
            raise ModelUnavailableError(
                f"offline mode is on (--offline or VAURA_OFFLINE), so model '{name}' cannot be "
                f"downloaded from {remote.url}; go online, or import local files with "
                "`vaura models import PATH`"
            )
        result = download(remote.url, dest, sha256=remote.sha256, progress=progress, cancel=cancel)
        if remote.sha256 is None:
            log.warning(
                "no sha256 is published for %s; recorded the downloaded file's sha256 %s in the manifest",
                remote.url,
                result.sha256,
            )
        return result

    def _save(self, target: Path, imported: ImportedWeights, meta: dict[str, Any], overwrite: bool) -> None:
        from vaura_core.weights.store import save_model_dir

        self.root.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "sources": imported.sources}
        save_model_dir(target, imported.config, imported.state_dict, meta, overwrite=overwrite)


def name_from_path(path: Path) -> str:
    """A model name from a weights file or folder name: suffixes dropped, odd characters to '-'."""
    base = path.resolve().name if path.name in ("", ".", "..") else path.name
    lowered = base.lower()
    for suffix in _WEIGHT_SUFFIXES:
        if lowered.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")[:64]
    return cleaned or "imported"


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise VauraError(
            f"{name!r} is not a valid model name: use letters, digits, '.', '_' and '-' "
            "(up to 64, starting with a letter or digit)"
        )


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe_source(source: Any) -> str:
    if not isinstance(source, dict):
        return "unknown"
    files = source.get("files") or []
    shown = [(f.get("url") or f.get("hub") or "") if isinstance(f, dict) else str(f) for f in files]
    kind = {"download": "downloaded from", "import": "imported from"}.get(str(source.get("kind")), "from")
    return f"{kind} {', '.join(s for s in shown if s)}".strip()


def _file_record(remote: RemoteFile, result: DownloadResult) -> dict[str, Any]:
    record: dict[str, Any] = {"sha256": result.sha256, "size_bytes": result.size}
    if isinstance(remote, HttpFile):
        record["url"] = remote.url
        # False: no published hash existed, this one was computed from our download.
        record["sha256_verified"] = remote.sha256 is not None
    else:
        record["hub"] = remote.display
        record.update(repo_id=remote.repo_id, filename=remote.filename, revision=remote.revision)
        record["sha256_verified"] = True
    return record


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

"""Our own model format: one folder with `model.safetensors`, `config.json` and `manifest.json`.

* `model.safetensors`: the state dict in our naming (weight norm folded), dtypes as imported (the
  released DAC stays fp16). Safetensors holds no code, so loading it is safe by construction.
* `config.json`: `VAuraConfig.to_json()`.
* `manifest.json`: format version, name, creation time, the sha256 and size of model.safetensors,
  the sources the weights came from (with their sha256), plus any metadata the caller adds.

A folder is written next to its destination under a temporary name, synced to disk and renamed into
place, so a crash never leaves a half-written model where a complete one is expected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vaura_core.errors import ModelUnavailableError, VauraError
from vaura_core.model.config import VAuraConfig

if TYPE_CHECKING:
    from vaura_core.model.vaura import VAura

__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "load_model",
    "load_state",
    "read_manifest",
    "save_model_dir",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
FORMAT_NAME = "vaura-studio-model"
FORMAT_VERSION = 1
_CODEC_PREFIX = "audio_encoder."
_HASH_CHUNK = 8 << 20


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def save_model_dir(
    dest: Path,
    config: VAuraConfig,
    state_dict: Mapping[str, Tensor],
    meta: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write a model folder at `dest` atomically and return `dest`.

    `meta` entries go into the manifest as they are (they must be JSON-serialisable); `name` and
    `sources` (a list of dicts with path, format, sha256, notes) have their own slots. An existing
    `dest` is replaced only with `overwrite=True`, and only once the new folder is complete.
    """
    from safetensors.torch import save_file

    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise VauraError(f"{dest} already exists; not replacing it without overwrite")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    except OSError as exc:
        raise VauraError(f"cannot create the model folder {dest}: {exc.strerror or exc}") from exc
    try:
        weights = tmp / WEIGHTS_FILE
        save_file(_plain_tensors(state_dict), str(weights), metadata={"format": "pt"})
        _fsync_file(weights)
        digest, size = _sha256(weights), weights.stat().st_size
        _write_text(tmp / CONFIG_FILE, config.to_json() + "\n")
        manifest = {
            **dict(meta),
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": str(meta.get("name") or config.name),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "model_sha256": digest,
            "model_bytes": size,
            "sources": list(meta.get("sources") or []),
        }
        _write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        _fsync_dir(tmp)
        _move_into_place(tmp, dest, overwrite)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise VauraError(f"cannot write the model folder {dest}: {exc.strerror or exc}") from exc
        raise
    return dest


def _plain_tensors(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Contiguous CPU tensors that share no memory (safetensors refuses aliases)."""
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(value, Tensor) or value.is_meta:
            raise VauraError(f"cannot save {key}: it holds no tensor data")
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def _move_into_place(tmp: Path, dest: Path, overwrite: bool) -> None:
    if not dest.exists():
        os.replace(tmp, dest)
    elif not overwrite:
        raise VauraError(f"{dest} appeared while the model was being written; not replacing it")
    else:
        # A folder cannot be atomically replaced by another: set the old one aside, put the new one
        # in, and only then delete the old one (restored if the swap fails).
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except OSError:
            os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dest.parent)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes renames durable on POSIX; Windows cannot open folders and commits renames itself.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The manifest of a model folder; ModelUnavailableError if it is missing or damaged."""
    path = Path(model_dir) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelUnavailableError(f"{model_dir}: not a model folder ({MANIFEST_FILE} is missing)") from None
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{path}: damaged manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ModelUnavailableError(f"{path}: not a VAURA Studio model manifest")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelUnavailableError(
            f"{model_dir}: written by a newer VAURA Studio (model format {version!r}); update the app"
        )
    return data


def load_state(model_dir: Path, *, verify_hash: bool = False) -> tuple[VAuraConfig, dict[str, Tensor]]:
    """(config, state dict) of a model folder, tensors on the CPU in their stored dtypes.

    With `verify_hash` the weights file is checked against the manifest's sha256 first.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelUnavailableError(f"{model_dir}: model folder not found")
    manifest = read_manifest(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelUnavailableError(
            f"{model_dir}: {WEIGHTS_FILE} is missing; re-import or download the model"
        )
    config = _read_config(model_dir / CONFIG_FILE)
    if verify_hash:
        expected = manifest.get("model_sha256")
        actual = _sha256(weights)
        if actual != expected:
            raise ModelUnavailableError(
                f"{weights}: damaged (sha256 {actual[:12]}... does not match the manifest's "
                f"{str(expected)[:12]}...); re-import or download the model again"
            )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelUnavailableError(f"{weights}: damaged weights file ({exc})") from None
    return config, state


def _read_config(path: Path) -> VAuraConfig:
    try:
        return VAuraConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ModelUnavailableError(f"{path.parent}: {CONFIG_FILE} is missing") from None
    except (OSError, ValueError, TypeError) as exc:
        raise ModelUnavailableError(f"{path}: damaged model config ({exc})") from None


def load_model(
    model_dir: Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    verify_hash: bool = False,
) -> VAura:
    """Build the model of a folder, ready for inference (eval mode, no gradients).

    The network is built on the meta device and adopts the loaded tensors without copies. `dtype`
    applies to the visual encoder and the transformer. The codec keeps its stored dtype (fp16 for
    the release) except on the CPU, where it runs in float32.
    """
    from vaura_core.model.vaura import build_model

    config, state = load_state(model_dir, verify_hash=verify_hash)
    device = torch.device(device)
    try:
        model = build_model(config, device="meta")
        model.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, ValueError) as exc:
        raise ModelUnavailableError(
            f"{model_dir}: the weights do not match the model config ({str(exc).splitlines()[0]}); "
            "re-import the model"
        ) from None
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ModelUnavailableError(f"{model_dir}: {left[0]} was not loaded; re-import the model")
    for name, child in model.named_children():
        if name + "." == _CODEC_PREFIX:
            child.to(device=device, dtype=torch.float32 if device.type == "cpu" else None)
        else:
            child.to(device=device, dtype=dtype)
    model.requires_grad_(False)
    return model.eval()

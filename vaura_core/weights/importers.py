"""Import every released V-AURA weights format into one validated state dict in our naming.

Accepted inputs, recognised by content (spec: vaura.md sections 2.1, 4, 7, 8.2 and 10):

* the release tarball `24-08-01T08-34-26.tar.gz`, read member by member (nothing is extracted:
  the chosen checkpoint is streamed to a private temp file);
* its extracted experiment folder (`checkpoints/*.ckpt` plus `<experiment>/hparams.yaml`);
* the Lightning `.ckpt` (`state_dict` with `visual_feature_extractor.*`, `sampler.*`,
  `audio_encoder.model.*`; `hyper_parameters` read as inert data);
* Segment AVCLIP's `epoch_best.pt` (only `module.v_encoder.*` / `v_encoder.*` kept);
* DAC's `weights.pth` (`state_dict` + `metadata.kwargs`).

Several inputs merge by component (visual tower, fusion transformer, codec). Like the original,
where the strict Lightning load overwrites what the component files provided, a V-AURA checkpoint
wins over a separate component file. Weight norm is folded, the configuration is inferred from
tensor shapes (plus hparams, the hint, or the release values), and the result must match
`build_model(config)` key for key and shape for shape.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import math
import re
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

import torch
from torch import Tensor

from vaura_core.errors import CheckpointFormatError, UnsafeCheckpointError, VauraError
from vaura_core.model.config import PRESETS, CodecConfig, LMConfig, VAuraConfig, VisualConfig, preset
from vaura_core.model.weight_norm import fold_weight_norm
from vaura_core.weights.unpickle import safe_load, to_plain

__all__ = [
    "ImportedWeights",
    "choose_checkpoint",
    "convert_state_dict",
    "import_weights",
    "infer_config",
]

VISUAL = "visual_feature_extractor."
SAMPLER = "sampler."
CODEC = "audio_encoder.model."
_COMPONENTS = {
    VISUAL: "the visual encoder (visual_feature_extractor.*: Segment AVCLIP epoch_best.pt)",
    SAMPLER: "the fusion transformer (sampler.*: the V-AURA .ckpt)",
    CODEC: "the audio codec (audio_encoder.model.*: DAC weights.pth)",
}
# Parts of a Synchformer video tower that V-AURA replaces by Identity (vaura.md 2.1 step 3).
_VISUAL_DROPPED = ("head.", "pre_logits.", "temp_attn_agg.")
_VAL_LOSS = re.compile(r"val_loss=([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)")
_HASH_CHUNK = 8 << 20
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")  # gzip, bzip2, xz (tar inside)


@dataclass
class ImportedWeights:
    """A complete model: its config, its state dict (our naming, stored dtypes) and where it came from.

    Each source is {"path", "format", "sha256", "notes"}; notes say what was used or ignored.
    """

    config: VAuraConfig
    state_dict: dict[str, Tensor]
    sources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Part:
    """What one input contributes: tensors in the checkpoint's naming, plus config evidence."""

    source: dict[str, Any]
    tensors: dict[str, Tensor]
    rank: int  # 0: a V-AURA checkpoint (wins), 1: a component file
    hparams: dict[str, Any] | None = None
    dac_kwargs: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------
def import_weights(
    paths: Sequence[Path | str],
    config_hint: VAuraConfig | str | None = None,
    *,
    tmp_dir: Path | None = None,
) -> ImportedWeights:
    """Read `paths` (any mix of the formats above) into one complete, validated model.

    `config_hint` (a config or a preset name) supplies what shapes cannot tell, such as head
    counts, when the files carry no hparams and the sizes are not the release's. `tmp_dir` is where
    a checkpoint inside a tarball is unpacked (default: the system temp folder); it needs room for
    that checkpoint. Raises CheckpointFormatError (naming the file and the problem) or
    UnsafeCheckpointError.
    """
    if not paths:
        raise CheckpointFormatError("no weights files given")
    try:
        hint = preset(config_hint) if isinstance(config_hint, str) else config_hint
    except KeyError as exc:
        raise VauraError(str(exc.args[0])) from None
    with tempfile.TemporaryDirectory(prefix="vaura-import-", dir=tmp_dir, ignore_cleanup_errors=True) as tmp:
        parts = [_read_input(Path(p), Path(tmp)) for p in paths]
        merged, hparams, dac_kwargs = _merge(parts)
        try:
            config, state = convert_state_dict(
                merged, hparams=hparams, dac_kwargs=dac_kwargs, config_hint=hint
            )
        except CheckpointFormatError as exc:
            names = ", ".join(str(p) for p in paths)
            raise CheckpointFormatError(f"{names}: {exc}") from None
        state = {k: _own(v) for k, v in state.items()}
        sources = [p.source for p in parts]
        # Drop every view of the inputs before the temp folder goes (Windows cannot delete a mapped file).
        del parts, merged
        gc.collect()
    return ImportedWeights(config=config, state_dict=state, sources=sources)


def convert_state_dict(
    state_dict: Mapping[str, Tensor],
    *,
    hparams: Mapping[str, Any] | None = None,
    dac_kwargs: Mapping[str, Any] | None = None,
    config_hint: VAuraConfig | None = None,
) -> tuple[VAuraConfig, dict[str, Tensor]]:
    """A checkpoint-naming state dict (weight-normed) -> (inferred config, our-naming state dict).

    Checks that the result has exactly the keys and shapes of `build_model(config)`.
    """
    kept = {k: v for k, v in state_dict.items() if not _is_dropped_visual(k)}
    try:
        state = fold_weight_norm(kept)
    except ValueError as exc:
        raise CheckpointFormatError(f"weights are inconsistent: {exc}") from None
    config = infer_config(state, hparams=hparams, dac_kwargs=dac_kwargs, config_hint=config_hint)
    _validate(config, state)
    return config, {k: state[k] for k in _expected_shapes(config)}  # the model's own key order


def choose_checkpoint(names: Iterable[str]) -> str:
    """The checkpoint the original code would load from a `checkpoints/` folder.

    A single `.ckpt` is used as is; otherwise the lowest `val_loss=` in the file names wins and
    files without one (last.ckpt) are ignored unless nothing else is there.
    """
    ckpts = sorted(n for n in names if n.endswith(".ckpt"))
    if not ckpts:
        raise CheckpointFormatError("no .ckpt file in the checkpoints folder")
    if len(ckpts) == 1:
        return ckpts[0]
    scored = []
    for name in ckpts:
        match = _VAL_LOSS.search(PurePosixPath(name).name)
        if match:
            scored.append((float(match.group(1)), name))
    if scored:
        return min(scored)[1]
    last = [n for n in ckpts if PurePosixPath(n).name == "last.ckpt"]
    if len(last) == 1:
        return last[0]
    raise CheckpointFormatError(
        f"cannot tell which of {len(ckpts)} checkpoints to use (no val_loss= in their names): "
        + ", ".join(PurePosixPath(n).name for n in ckpts)
    )


# --------------------------------------------------------------------------------------------------
# Reading one input
# --------------------------------------------------------------------------------------------------
def _read_input(path: Path, tmp: Path) -> _Part:
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: no such file or folder")
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar":
        return _read_tarball(path, tmp)
    source = _source(path, "")
    return _read_checkpoint(path, source)


def _read_checkpoint(
    file: Path, source: dict[str, Any], hparams: dict[str, Any] | None = None, shown: str | None = None
) -> _Part:
    """Classify a torch file by its content and extract its tensors. `shown` names it in messages."""
    path = shown or str(file)
    obj = safe_load(file, name=path)
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: holds a {type(obj).__name__}, not a weights dictionary")
    sd = obj.get("state_dict")
    if isinstance(sd, dict) and _tensor_dict(path, sd):
        keys = list(sd)
        if any(k.startswith((VISUAL, SAMPLER, CODEC)) for k in keys):
            return _lightning_part(path, obj, sd, source, hparams)
        if any(k.startswith(("module.v_encoder.", "v_encoder.")) for k in keys):
            return _avclip_part(path, sd, source)
        metadata = to_plain(obj.get("metadata"))
        if isinstance(metadata, dict) and isinstance(metadata.get("kwargs"), dict):
            return _dac_part(path, sd, metadata["kwargs"], source)
        if any(k.startswith(("encoder.block.", "decoder.model.", "quantizer.")) for k in keys):
            return _dac_part(path, sd, None, source)
    elif (
        sd is None
        and all(isinstance(k, str) for k in obj)
        and any(isinstance(k, str) and k.startswith((VISUAL, SAMPLER, CODEC)) for k in obj)
        and _tensor_dict(path, obj)
    ):
        # A bare state dict in the checkpoint's naming (what some tools re-save).
        source["format"] = "state-dict"
        return _Part(source, {k: v for k, v in obj.items() if isinstance(v, Tensor)}, rank=0)
    raise CheckpointFormatError(
        f"{path}: not a V-AURA checkpoint, Segment AVCLIP epoch_best.pt or DAC weights.pth "
        "(no recognised tensors in its state_dict)"
    )


def _tensor_dict(path: str, d: dict[Any, Any]) -> bool:
    if not all(isinstance(k, str) for k in d):
        raise CheckpointFormatError(f"{path}: state_dict has non-string keys")
    return any(isinstance(v, Tensor) for v in d.values())


def _lightning_part(
    path: str,
    obj: dict[str, Any],
    sd: dict[str, Any],
    source: dict[str, Any],
    hparams: dict[str, Any] | None,
) -> _Part:
    source["format"] = source["format"] or "lightning-ckpt"
    tensors = {k: v for k, v in sd.items() if k.startswith((VISUAL, SAMPLER, CODEC))}
    others = [k for k in sd if k not in tensors]
    if others:
        source["notes"].append(f"ignored {len(others)} entries outside the model, e.g. {others[0]}")
    if not all(isinstance(v, Tensor) for v in tensors.values()):
        raise CheckpointFormatError(f"{path}: state_dict entries are not all tensors")
    if hparams is None:
        plain = to_plain(obj.get("hyper_parameters"))
        hparams = plain if isinstance(plain, dict) else None
    for key in ("pytorch-lightning_version", "epoch", "global_step"):
        if isinstance(obj.get(key), str | int):
            source["notes"].append(f"{key} {obj[key]}")
    present = [name for prefix, name in _COMPONENTS.items() if any(k.startswith(prefix) for k in tensors)]
    source["notes"].append("holds " + "; ".join(p.split(" (")[0] for p in present))
    return _Part(source, tensors, rank=0, hparams=hparams)


def _avclip_part(path: str, sd: dict[str, Any], source: dict[str, Any]) -> _Part:
    source["format"] = "avclip-epoch-best"
    tensors: dict[str, Tensor] = {}
    for key, value in sd.items():
        if not key.startswith(("module.v_encoder.", "v_encoder.")):
            continue  # the audio tower, logit scale and bridges (vaura.md 2.1 step 4)
        # The original removes these substrings anywhere in the key, not only as a prefix.
        name = key.replace("module.", "").replace("v_encoder.", "")
        if not isinstance(value, Tensor):
            raise CheckpointFormatError(f"{path}: {key} is not a tensor")
        tensors[VISUAL + name] = value
    source["notes"].append(f"kept {len(tensors)} video-tower tensors of {len(sd)}")
    return _Part(source, tensors, rank=1)


def _dac_part(path: str, sd: dict[str, Any], kwargs: dict[str, Any] | None, source: dict[str, Any]) -> _Part:
    source["format"] = "dac-weights"
    tensors = {}
    for key, value in sd.items():
        if not isinstance(value, Tensor):
            raise CheckpointFormatError(f"{path}: {key} is not a tensor")
        tensors[CODEC + key] = value
    if kwargs is None:
        source["notes"].append("no metadata.kwargs: codec sizes taken from tensor shapes")
    return _Part(source, tensors, rank=1, dac_kwargs=kwargs)


def _read_folder(path: Path) -> _Part:
    """An extracted release: <exp>/checkpoints/*.ckpt and <exp>/<logger name>/hparams.yaml."""
    exp = path
    if not (exp / "checkpoints").is_dir():
        found = [d for d in sorted(path.iterdir()) if (d / "checkpoints").is_dir()]
        if len(found) != 1:
            raise CheckpointFormatError(
                f"{path}: not a V-AURA experiment folder (expected a checkpoints/ folder inside)"
            )
        exp = found[0]
    names = [p.name for p in (exp / "checkpoints").iterdir() if p.is_file()]
    try:
        ckpt = exp / "checkpoints" / choose_checkpoint(names)
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{exp / 'checkpoints'}: {exc}") from None
    hparams_file = _pick_hparams([p.relative_to(exp).as_posix() for p in exp.rglob("hparams*.yaml")])
    source = _source(ckpt, "vaura-experiment-folder")
    hparams = None
    if hparams_file is not None:
        text = (exp / hparams_file).read_bytes()
        hparams = _parse_hparams(text, exp / hparams_file, source)
        source["hparams"] = str(exp / hparams_file)
        source["hparams_sha256"] = hashlib.sha256(text).hexdigest()
    source["notes"].append(f"chose {ckpt.name} of {len(names)} checkpoint files")
    part = _read_checkpoint(ckpt, source, hparams)
    if part.source["format"] != "vaura-experiment-folder":
        raise CheckpointFormatError(f"{ckpt}: not a V-AURA checkpoint")
    return part


def _pick_hparams(candidates: list[str]) -> str | None:
    """hparams.original.yaml wins (the demo rewrites hparams.yaml), then hparams.yaml, shallowest first."""
    usable = [c for c in candidates if not c.startswith("checkpoints/")]
    for name in ("hparams.original.yaml", "hparams.yaml"):
        matches = sorted(
            (c for c in usable if PurePosixPath(c).name == name), key=lambda c: (c.count("/"), c)
        )
        if matches:
            return matches[0]
    return None


def _parse_hparams(text: bytes, where: Path | str, source: dict[str, Any]) -> dict[str, Any] | None:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        source["notes"].append(f"ignored unreadable {where}: {str(exc).splitlines()[0]}")
        return None
    return data if isinstance(data, dict) else None


def _read_tarball(path: Path, tmp: Path) -> _Part:
    """The release tarball: choose the checkpoint as the original does and stream it to a temp file."""
    try:
        with tarfile.open(path, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(path, m)
            files = {_member_name(m): m for m in members if m.isfile()}
            ckpt_names = [n for n in files if PurePosixPath(n).parent.name == "checkpoints"]
            if not ckpt_names:
                raise CheckpointFormatError(f"{path}: archive holds no checkpoints/*.ckpt")
            try:
                chosen = choose_checkpoint(ckpt_names)
            except CheckpointFormatError as exc:
                raise CheckpointFormatError(f"{path}: {exc}") from None
            root = PurePosixPath(chosen).parent.parent
            local = [_relative(n, root) for n in files]
            hp_rel = _pick_hparams([n for n in local if n is not None])
            source = _source(path, "vaura-release-tarball")
            source["notes"].append(f"chose {chosen} of {len(ckpt_names)} checkpoint files")
            hparams = None
            if hp_rel is not None:
                hp_name = (root / hp_rel).as_posix()
                member_file = tf.extractfile(files[hp_name])
                if member_file is None:
                    raise CheckpointFormatError(f"{path}: cannot read {hp_name}")
                hparams = _parse_hparams(member_file.read(), f"{path}:{hp_name}", source)
                source["hparams"] = hp_name
            target = tmp / f"member-{len(list(tmp.iterdir()))}.ckpt"
            member_file = tf.extractfile(files[chosen])
            if member_file is None:
                raise CheckpointFormatError(f"{path}: cannot read {chosen}")
            _unpack(path, member_file, chosen, target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CheckpointFormatError(f"{path}: damaged or unreadable archive ({exc})") from exc
    part = _read_checkpoint(target, source, hparams, shown=f"{path}:{chosen}")
    if part.source["format"] != "vaura-release-tarball":
        raise CheckpointFormatError(f"{path}: member {chosen} is not a V-AURA checkpoint")
    return part


def _unpack(path: Path, member_file: IO[bytes], name: str, target: Path) -> None:
    """Copy one archive member to our own temp file (never to a path taken from the archive)."""
    with member_file:
        try:
            out = open(target, "wb")  # noqa: SIM115 - closed below; write errors are reported apart
        except OSError as exc:
            raise VauraError(f"cannot unpack {name} from {path} to {target.parent}: {exc.strerror}") from exc
        with out:
            while chunk := member_file.read(_HASH_CHUNK):
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise VauraError(
                        f"cannot unpack {name} from {path} to {target.parent}: {exc.strerror}"
                    ) from exc


def _member_name(member: tarfile.TarInfo) -> str:
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name


def _relative(name: str, root: PurePosixPath) -> str | None:
    if root == PurePosixPath("."):
        return name
    path = PurePosixPath(name)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None


def _check_member(path: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise UnsafeCheckpointError(f"{path}: archive member {name!r} points outside the archive; refused")
    if member.issym() or member.islnk():
        raise UnsafeCheckpointError(f"{path}: archive member {name!r} is a link; refused")
    if not (member.isfile() or member.isdir()):
        raise UnsafeCheckpointError(f"{path}: archive member {name!r} is a device or special file; refused")


def _source(path: Path, fmt: str) -> dict[str, Any]:
    return {"path": str(path), "format": fmt, "sha256": _sha256(path), "notes": []}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Merging inputs
# --------------------------------------------------------------------------------------------------
def _merge(parts: list[_Part]) -> tuple[dict[str, Tensor], dict[str, Any] | None, dict[str, Any] | None]:
    merged: dict[str, Tensor] = {}
    owner: dict[str, _Part] = {}
    full = [p for p in parts if p.rank == 0]
    if len(full) > 1:
        raise CheckpointFormatError(
            "more than one V-AURA checkpoint given: " + ", ".join(p.source["path"] for p in full)
        )
    for part in sorted(parts, key=lambda p: p.rank):
        for prefix, name in _COMPONENTS.items():
            tensors = {k: v for k, v in part.tensors.items() if k.startswith(prefix)}
            if not tensors:
                continue
            short = name.split(" (")[0]
            if prefix in owner:
                part.source["notes"].append(
                    f"not used: {short} already comes from {owner[prefix].source['path']}"
                )
                continue
            owner[prefix] = part
            merged.update(tensors)
            if part.rank == 1:
                part.source["notes"].append(f"provides {short}")
    missing = [name for prefix, name in _COMPONENTS.items() if prefix not in owner]
    if missing:
        given = ", ".join(Path(p.source["path"]).name for p in parts)
        raise CheckpointFormatError(f"the weights are incomplete ({given}): missing " + "; ".join(missing))
    hparams = next((p.hparams for p in parts if p.hparams), None)
    codec_part = owner[CODEC]
    dac_kwargs = codec_part.dac_kwargs
    return merged, hparams, dac_kwargs


def _is_dropped_visual(key: str) -> bool:
    return key.startswith(VISUAL) and key[len(VISUAL) :].startswith(_VISUAL_DROPPED)


def _own(t: Tensor) -> Tensor:
    """A contiguous tensor with its own memory (inputs may be views of a mapped file)."""
    if t.is_meta:
        return t
    return torch.empty_like(t, memory_format=torch.contiguous_format).copy_(t)


# --------------------------------------------------------------------------------------------------
# Config inference
# --------------------------------------------------------------------------------------------------
class _Evidence:
    """Resolves settings that shapes cannot give: hparams, then the hint, then the release value."""

    def __init__(self, hparams: Mapping[str, Any] | None, hint: VAuraConfig | None) -> None:
        self.hparams = hparams or {}
        self.hint = hint

    def hparam(self, *path: str) -> Any:
        node: Any = self.hparams
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node if isinstance(node, int | float) and not isinstance(node, bool) else None


def infer_config(
    state: Mapping[str, Tensor],
    *,
    hparams: Mapping[str, Any] | None = None,
    dac_kwargs: Mapping[str, Any] | None = None,
    config_hint: VAuraConfig | None = None,
) -> VAuraConfig:
    """The VAuraConfig of a folded state dict in our naming.

    Sizes come from tensor shapes; head counts, norm eps, block size and sample rate from the
    hparams (`sampler_config.params.*`, `audio_encoder_config.params.model_sr`), else from
    `config_hint`, else the release values when the shapes equal the release's.
    """
    ev = _Evidence(hparams, config_hint)
    try:
        visual = _infer_visual(state, ev)
        codec = _infer_codec(state, ev, dac_kwargs)
        lm = _infer_lm(state, ev, codec)
        tokens_per_segment = visual.frames // visual.tubelet
        if lm.video_tokens % tokens_per_segment:
            raise CheckpointFormatError(
                f"{lm.video_tokens} visual tokens per window is not a whole number of "
                f"{tokens_per_segment}-token segments"
            )
        hint = config_hint
        fields: dict[str, Any] = {
            "visual": visual,
            "lm": lm,
            "codec": codec,
            "fps": hint.fps if hint else VAuraConfig().fps,
            "window_segments": lm.video_tokens // tokens_per_segment,
        }
        config = VAuraConfig(name="imported", **fields)
        if hint is not None:
            config = replace(config, name=hint.name)
        elif replace(config, name="vaura") == PRESETS["vaura"]:
            config = PRESETS["vaura"]
    except KeyError as exc:
        raise CheckpointFormatError(f"the weights lack {exc.args[0]}") from None
    except ValueError as exc:  # VAuraConfig's own consistency checks
        raise CheckpointFormatError(f"the weights describe an inconsistent model: {exc}") from None
    return config


def infer_visual_config(tower_state: Mapping[str, Tensor], hint: VAuraConfig) -> VisualConfig:
    """The visual tower's config from its own state dict (keys without the model's prefix).

    Sizes (input size, patch, frames, dim, depth) come from the shapes, head count and eps from
    `hint` (shapes cannot give them). Raises CheckpointFormatError when the tensors are not a tower.
    """
    state = {VISUAL + k: v for k, v in tower_state.items()}
    try:
        return _infer_visual(state, _Evidence(None, hint))
    except (KeyError, IndexError, ZeroDivisionError) as exc:
        raise CheckpointFormatError(f"not a visual tower's weights: {exc}") from None


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    """How many consecutive numbered children `prefix{i}.` exist."""
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    n = 0
    while n in found:
        n += 1
    if n != len(found):
        raise CheckpointFormatError(f"{prefix}* entries are not numbered 0..{len(found) - 1}")
    return n


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise KeyError(key)
    return tuple(state[key].shape)


def _unknown(what: str) -> CheckpointFormatError:
    return CheckpointFormatError(
        f"cannot tell {what} from these weights (no hparams, and the sizes are not the release's); "
        "pass a config hint"
    )


def _infer_visual(state: Mapping[str, Tensor], ev: _Evidence) -> VisualConfig:
    p = VISUAL
    dim = _shape(state, p + "cls_token")[-1]
    patch = _shape(state, p + "patch_embed_3d.proj.weight")
    tubelet, patch_size = patch[2], patch[-1]
    n_patches = _shape(state, p + "pos_embed")[1] - 1
    side = math.isqrt(n_patches)
    if side * side != n_patches:
        raise CheckpointFormatError(f"visual position table has {n_patches} patches, not a square grid")
    frames = _shape(state, p + "temp_embed")[1] * tubelet
    depth = _count(state, p + "blocks.")
    mlp_ratio = _shape(state, p + "blocks.0.mlp.fc1.weight")[0] / dim
    release = VisualConfig()
    hint = ev.hint.visual if ev.hint is not None else None
    if hint is not None and hint.dim == dim:
        heads, eps = hint.heads, hint.eps
    elif dim == release.dim:
        heads, eps = release.heads, release.eps
    else:
        raise _unknown("the visual encoder's head count")
    return VisualConfig(
        img_size=side * patch_size,
        patch_size=patch_size,
        frames=frames,
        tubelet=tubelet,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_ratio=mlp_ratio,
        eps=eps,
    )


def _infer_codec(
    state: Mapping[str, Tensor], ev: _Evidence, dac_kwargs: Mapping[str, Any] | None
) -> CodecConfig:
    p = CODEC
    encoder_dim = _shape(state, p + "encoder.block.0.weight")[0]
    n_enc = _count(state, p + "encoder.block.")
    # Encoder blocks 1..n-3 end with a strided conv whose kernel is twice its stride.
    encoder_rates = tuple(
        _shape(state, f"{p}encoder.block.{i}.block.4.weight")[-1] // 2
        for i in range(1, n_enc)
        if f"{p}encoder.block.{i}.block.4.weight" in state
    )
    decoder_dim = _shape(state, p + "decoder.model.0.weight")[0]
    n_dec = _count(state, p + "decoder.model.")
    decoder_rates = tuple(
        _shape(state, f"{p}decoder.model.{i}.block.1.weight")[-1] // 2
        for i in range(1, n_dec)
        if f"{p}decoder.model.{i}.block.1.weight" in state
    )
    n_codebooks = _count(state, p + "quantizer.quantizers.")
    codebook_size, codebook_dim = _shape(state, p + "quantizer.quantizers.0.codebook.weight")
    latent = _shape(state, p + "quantizer.quantizers.0.in_proj.weight")[1]
    sample_rate = None
    if dac_kwargs is not None and isinstance(dac_kwargs.get("sample_rate"), int):
        sample_rate = dac_kwargs["sample_rate"]
    sample_rate = sample_rate or ev.hparam("audio_encoder_config", "params", "model_sr")
    if sample_rate is None and ev.hint is not None:
        sample_rate = ev.hint.codec.sample_rate
    codec = CodecConfig(
        sample_rate=int(sample_rate or CodecConfig().sample_rate),
        encoder_dim=encoder_dim,
        encoder_rates=encoder_rates,
        decoder_dim=decoder_dim,
        decoder_rates=decoder_rates,
        n_codebooks=n_codebooks,
        codebook_size=codebook_size,
        codebook_dim=codebook_dim,
    )
    if codec.latent_dim != latent:
        raise CheckpointFormatError(
            f"codec latent width {latent} does not match encoder width {encoder_dim} x 2^{len(encoder_rates)}"
        )
    if dac_kwargs is not None:
        _check_dac_kwargs(codec, dac_kwargs)
    return codec


def _check_dac_kwargs(codec: CodecConfig, kwargs: Mapping[str, Any]) -> None:
    expected = codec.dac_kwargs()
    for key, value in kwargs.items():
        if key not in expected or value is None:
            continue  # quantizer_dropout and the like do not change inference
        have = expected[key]
        if isinstance(value, list | tuple):
            value = list(value)
        if value != have:
            raise CheckpointFormatError(f"DAC metadata says {key}={value!r} but the tensors say {have!r}")


def _infer_lm(state: Mapping[str, Tensor], ev: _Evidence, codec: CodecConfig) -> LMConfig:
    p = SAMPLER
    n_layer = _count(state, p + "layers.")
    video_dim = _shape(state, p + "empty_video_emb")[-1]
    model_dim = _shape(state, p + "norm.weight")[0]
    hidden = _shape(state, p + "layers.0.feed_forward.w1.weight")[0]
    video_tokens, feat_dim = _shape(state, p + "cls_embeddings.uncond_embedding")
    n_tok = _count(state, p + "tok_embeddings.")
    vocab, cb_dim = _shape(state, p + "tok_embeddings.0.emb.weight")
    latent = _shape(state, p + "tok_embeddings.0.out_proj.weight")[0]
    if (n_tok, vocab - 1, cb_dim, latent) != (
        codec.n_codebooks,
        codec.codebook_size,
        codec.codebook_dim,
        codec.latent_dim,
    ):
        raise CheckpointFormatError(
            f"the transformer's token embeddings ({n_tok} x {vocab} x {cb_dim} -> {latent}) do not fit the "
            f"codec ({codec.n_codebooks} codebooks of {codec.codebook_size} x {codec.codebook_dim}, "
            f"latent {codec.latent_dim})"
        )
    if model_dim != video_dim + latent:
        raise CheckpointFormatError(
            f"transformer width {model_dim} is not video {video_dim} + audio {latent}"
        )
    if feat_dim != _shape(state, VISUAL + "cls_token")[-1]:
        raise CheckpointFormatError(f"the null video ({feat_dim}-d) does not fit the visual features")

    release = LMConfig()
    hint = ev.hint.lm if ev.hint is not None and ev.hint.model_dim == model_dim else None
    is_release_width = model_dim == VAuraConfig().model_dim
    n_head = ev.hparam("sampler_config", "params", "nhead")
    if n_head is None:
        n_head = hint.n_head if hint else (release.n_head if is_release_width else None)
    if n_head is None:
        raise _unknown("the transformer's head count")
    audio_block = ev.hparam("sampler_config", "params", "block_size_audio")
    video_block = ev.hparam("sampler_config", "params", "block_size_video")
    if audio_block is not None:
        block_size = int(max(audio_block, video_block or 0))
    else:
        block_size = hint.block_size if hint else release.block_size
    norm_eps = ev.hparam("sampler_config", "params", "layer_norm_eps")
    if norm_eps is None:
        norm_eps = hint.norm_eps if hint else release.norm_eps
    base = hint or release
    lm = LMConfig(
        n_layer=n_layer,
        n_head=int(n_head),
        video_dim=video_dim,
        block_size=block_size,
        rope_base=base.rope_base,
        norm_eps=float(norm_eps),
        multiple_of=base.multiple_of,
        video_tokens=video_tokens,
        tokens_per_video_token=base.tokens_per_video_token,
    )
    return _fit_ffn(lm, model_dim, hidden)


def _fit_ffn(lm: LMConfig, model_dim: int, hidden: int) -> LMConfig:
    """Pick a `multiple_of` that reproduces the stored SwiGLU width (the hint's or 256 first)."""
    base = int(2 * (4 * model_dim) / 3)
    for m in (lm.multiple_of, 256, 128, 64, 32, 16, 8, 4, 2, 1):
        if (base + m - 1) // m * m == hidden:
            return replace(lm, multiple_of=m)
    raise CheckpointFormatError(f"feed-forward width {hidden} cannot come from model width {model_dim}")


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _expected_shapes(config: VAuraConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of `build_model(config)`, built on the meta device (seconds: cached)."""
    from vaura_core.model.vaura import build_model

    return {k: tuple(v.shape) for k, v in build_model(config, device="meta").state_dict().items()}


def _validate(config: VAuraConfig, state: Mapping[str, Tensor]) -> None:
    expected = _expected_shapes(config)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {s})"
        for k, s in expected.items()
        if k in state and tuple(state[k].shape) != s
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise CheckpointFormatError("the weights do not fit a V-AURA model: " + "; ".join(problems))
    not_float = [k for k, v in state.items() if not v.dtype.is_floating_point]
    if not_float:
        raise CheckpointFormatError(
            f"weights must be floating point; {not_float[0]} is {state[not_float[0]].dtype}"
        )

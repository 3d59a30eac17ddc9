"""Writers of the released weight files, laid out like the originals, for a model of ours.

They invert our naming (weight norm folded) back to the checkpoints' (vaura.md sections 2.1, 4, 7
and 8.2): every folded conv weight `w` becomes `weight_g = ||w||` (one norm per output channel, as
`torch.nn.utils.weight_norm` initialises it) and `weight_v = w`, and the DAC part of the V-AURA
checkpoint is stored in float16. Config objects are stand-ins that pickle their state the way
OmegaConf does (`_content` of nodes holding `_val`), so loading must treat them as inert data.
"""

from __future__ import annotations

import tarfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from vaura_core.model.config import VAuraConfig

RUN = "24-08-01T08-34-26"
EXPERIMENT = "vgg-9cb-viscond-avclip_delayed-channel_concat-llama_like-ib_04-mm1_hparams"
BEST_CKPT = "epoch=37-step=86000-val_loss=4.123.ckpt"
DECOY_CKPTS = ("epoch=21-step=50000-val_loss=4.321.ckpt", "last.ckpt")
VISUAL, SAMPLER, CODEC = "visual_feature_extractor.", "sampler.", "audio_encoder.model."
COMPONENTS = {"visual": VISUAL, "sampler": SAMPLER, "codec": CODEC}


# --------------------------------------------------------------------------------------------------
# OmegaConf stand-ins: same pickled state layout, defined here so nothing of omegaconf is needed
# --------------------------------------------------------------------------------------------------
class Metadata:
    def __init__(self, key: Any = None) -> None:
        self.ref_type = Any
        self.object_type = None
        self.optional = True
        self.key = key
        self.flags: dict[str, bool] = {}


class AnyNode:
    def __init__(self, value: Any, key: Any, parent: Any) -> None:
        self._val = value
        self._metadata = Metadata(key)
        self._parent = parent

    def __getstate__(self) -> dict[str, Any]:
        return {"_metadata": self._metadata, "_parent": self._parent, "_val": self._val}


class DictConfig:
    def __init__(self, content: dict[str, Any], key: Any = None, parent: Any = None) -> None:
        self._metadata = Metadata(key)
        self._parent = parent
        self._content = {k: _node(v, k, self) for k, v in content.items()}

    def __getstate__(self) -> dict[str, Any]:
        return {"_metadata": self._metadata, "_parent": self._parent, "_content": self._content}


class ListConfig:
    def __init__(self, content: list[Any], key: Any = None, parent: Any = None) -> None:
        self._metadata = Metadata(key)
        self._parent = parent
        self._content = [_node(v, i, self) for i, v in enumerate(content)]

    def __getstate__(self) -> dict[str, Any]:
        return {"_metadata": self._metadata, "_parent": self._parent, "_content": self._content}


def _node(value: Any, key: Any, parent: Any) -> Any:
    if isinstance(value, dict):
        return DictConfig(value, key, parent)
    if isinstance(value, list):
        return ListConfig(value, key, parent)
    return AnyNode(value, key, parent)


# --------------------------------------------------------------------------------------------------
# Naming and content
# --------------------------------------------------------------------------------------------------
def is_weight_normed(key: str) -> bool:
    """Keys stored as weight_g/weight_v in the release: the sampler's out_proj and every DAC conv."""
    if key.startswith(SAMPLER):
        return key.startswith(SAMPLER + "tok_embeddings.") and key.endswith(".out_proj.weight")
    return key.startswith(CODEC) and key.endswith(".weight") and not key.endswith(".codebook.weight")


def original_state_dict(
    model: torch.nn.Module,
    *,
    components: tuple[str, ...] = ("visual", "sampler", "codec"),
    codec_dtype: torch.dtype = torch.float16,
) -> OrderedDict[str, Tensor]:
    """The model's state dict in the checkpoint's naming (unfolded weight norm)."""
    prefixes = tuple(COMPONENTS[c] for c in components)
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in model.state_dict().items():
        if not key.startswith(prefixes):
            continue
        dtype = codec_dtype if key.startswith(CODEC) else value.dtype
        w = value.detach().float()
        if is_weight_normed(key):
            base = key[: -len(".weight")]
            g = w.reshape(w.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (w.dim() - 1))
            out[base + ".weight_g"] = g.to(dtype)
            out[base + ".weight_v"] = w.to(dtype).clone()
        else:
            out[key] = value.detach().to(dtype).clone()
    return out


def release_hparams(cfg: VAuraConfig) -> dict[str, Any]:
    """The VAURAModel.__init__ arguments Lightning saves (vaura.md 8.2), as plain data."""
    return {
        "learning_rate": 0.0001,
        "lr_scheduler": {"target": "torch.optim.lr_scheduler.LinearLR", "params": {"start_factor": 0.1}},
        "weight_decay": 0.01,
        "betas": [0.9, 0.95],
        "batch_size": 8,
        "use_visual_conditioning": True,
        "feature_extractor_config": {
            "target": "models.modules.feature_extractors.avclip.motionformer.MotionFormer",
            "params": {
                "extract_features": True,
                "factorize_space_time": True,
                "agg_space_module": "TransformerEncoderLayer",
                "agg_time_module": "torch.nn.Identity",
                "add_global_repr": False,
                "ckpt_path": "/scratch/project/segment_avclip/vggsound/epoch_best.pt",
            },
        },
        "audio_encoder_config": {
            "target": "models.modules.dac.model.DacModelWrapper",
            "params": {"model_sr": cfg.codec.sample_rate, "ckpt_path": None},
        },
        "sampler_config": {
            "target": "models.modules.sampler.llama.Transformer",
            "params": {
                "num_layers": cfg.lm.n_layer,
                "d_model": cfg.model_dim,
                "nhead": cfg.lm.n_head,
                "dim_feedforward": 4096,
                "dropout": 0.1,
                "activation": "gelu",
                "layer_norm_eps": cfg.lm.norm_eps,
                "d_codebook": cfg.codec.codebook_size,
                "num_codebooks": cfg.codec.n_codebooks,
                "block_size_audio": cfg.lm.block_size,
                "block_size_video": 64,
                "cond_feature_channel_scaler": cfg.model_dim // cfg.lm.video_dim,
                "positional_embedder": "learned",
            },
        },
        "visual_bridge_config": {"target": "torch.nn.Identity", "params": {}},
        "pattern_provider_config": {
            "target": "models.modules.misc.codebook_patterns.DelayedPatternProvider",
            "params": {"n_q": cfg.codec.n_codebooks},
        },
        "predict_at_val_start": False,
        "freeze_feature_extractor": True,
        "files_to_track_during_training": ["???"],
        "flatten_vis_feats": True,
        "apply_per_video_frame_mask": False,
    }


def _lightning_dict(model: torch.nn.Module, components: tuple[str, ...], decoy: bool) -> dict[str, Any]:
    cfg: VAuraConfig = model.cfg  # type: ignore[assignment]
    state = original_state_dict(model, components=components)
    if decoy:  # a checkpoint the importer must not pick
        state[SAMPLER + "norm.weight"] = state[SAMPLER + "norm.weight"] + 1.0
    trainable = [k for k in state if k.startswith(SAMPLER)][:4]
    hparams = {
        k: (DictConfig(v) if isinstance(v, dict) else ListConfig(v) if isinstance(v, list) else v)
        for k, v in release_hparams(cfg).items()
    }
    return {
        "epoch": 37,
        "global_step": 86000,
        "pytorch-lightning_version": "2.2.1",
        "state_dict": state,
        "loops": {
            "fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 38, "completed": 37}}}
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": {
                "monitor": "val_loss",
                "best_model_score": torch.tensor(4.123),
                "best_model_path": f"/scratch/logs/{RUN}/checkpoints/{BEST_CKPT}",
                "best_k_models": {f"/scratch/logs/{RUN}/checkpoints/{BEST_CKPT}": torch.tensor(4.123)},
            }
        },
        "optimizer_states": [
            {
                "state": {
                    i: {
                        "step": torch.tensor(86000.0),
                        "exp_avg": torch.randn_like(state[k].float()),
                        "exp_avg_sq": torch.rand_like(state[k].float()),
                    }
                    for i, k in enumerate(trainable)
                },
                "param_groups": [
                    {"lr": 1e-4, "betas": (0.9, 0.95), "weight_decay": 0.01, "params": [0, 1, 2, 3]}
                ],
            }
        ],
        "lr_schedulers": [{"last_epoch": 86000, "_step_count": 86001, "base_lrs": [1e-4]}],
        "native_amp_scaling_state": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 120},
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------
def write_lightning_ckpt(
    model: torch.nn.Module,
    path: Path,
    *,
    components: tuple[str, ...] = ("visual", "sampler", "codec"),
    decoy: bool = False,
) -> Path:
    """The V-AURA Lightning checkpoint of `model` (optionally without some components)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_lightning_dict(model, components, decoy), path)
    return path


def write_release_folder(model: torch.nn.Module, root: Path) -> Path:
    """`<root>/24-08-01T08-34-26/` with checkpoints/ (best, a worse one, last.ckpt) and hparams.yaml."""
    exp = Path(root) / RUN
    write_lightning_ckpt(model, exp / "checkpoints" / BEST_CKPT)
    for name in DECOY_CKPTS:
        write_lightning_ckpt(model, exp / "checkpoints" / name, decoy=True)
    hparams = exp / EXPERIMENT / "hparams.yaml"
    hparams.parent.mkdir(parents=True, exist_ok=True)
    hparams.write_text(yaml.safe_dump(release_hparams(model.cfg), sort_keys=False))  # type: ignore[arg-type]
    return exp


def write_release_tarball(model: torch.nn.Module, path: Path) -> Path:
    """`24-08-01T08-34-26.tar.gz` laid out like the release (see `write_release_folder`)."""
    path = Path(path)
    staging = path.parent / (path.name + ".staging")
    exp = write_release_folder(model, staging)
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        tf.add(exp, arcname=RUN)
    return path


def write_avclip_pt(model: torch.nn.Module, path: Path) -> Path:
    """Synchformer's Segment AVCLIP `epoch_best.pt`: DDP-prefixed towers plus training state."""
    state: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in model.visual_feature_extractor.state_dict().items():  # type: ignore[union-attr]
        state["module.v_encoder." + key] = value.detach().clone()
    g = torch.Generator().manual_seed(7)
    state["module.a_encoder.patch_embed.proj.weight"] = torch.randn(16, 1, 16, 16, generator=g)
    state["module.a_encoder.blocks.0.attn.qkv.weight"] = torch.randn(48, 16, generator=g)
    state["module.v_proj.weight"] = torch.randn(8, 16, generator=g)
    state["module.logit_scale"] = torch.tensor(2.659)
    args = DictConfig(
        {
            "action": "train_avsync_model",
            "model": {
                "target": "model.sync_model.Synchformer",
                "params": {
                    "vfeat_extractor": {
                        "target": "model.modules.feat_extractors.visual.motionformer.MotionFormer",
                        "params": {
                            "ckpt_path": "./model/modules/feat_extractors/visual/ssv2_divided_224_16x4.pyth"
                        },
                    }
                },
            },
            "training": {"base_learning_rate": 2e-6, "num_epochs": 10000},
        }
    )
    ckpt = {
        "epoch": 27,
        "name": "23-12-22T16-10-50",
        "state_dict": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 2e-6, "params": [0, 1]}]},
        "metrics": {"val_loss": 1.234, "val_accuracy_1": 0.61},
        "args": args,
        "scaler": {"scale": 1024.0, "growth_factor": 2.0},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def write_dac_weights(model: torch.nn.Module, path: Path) -> Path:
    """DAC's `weights.pth` (audiotools format): fp32 weight-normed `state_dict` + `metadata.kwargs`."""
    cfg: VAuraConfig = model.cfg  # type: ignore[assignment]
    full = original_state_dict(model, components=("codec",), codec_dtype=torch.float32)
    state = OrderedDict((k[len(CODEC) :], v) for k, v in full.items())
    kwargs = {**cfg.codec.dac_kwargs(), "quantizer_dropout": False}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "metadata": {"kwargs": kwargs}}, path)
    return path

"""Importing every released weights format, saving to our store and loading back the same model."""

from __future__ import annotations

import ast
import io
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.official_layout import (
    BEST_CKPT,
    CODEC,
    RUN,
    VISUAL,
    original_state_dict,
    write_avclip_pt,
    write_dac_weights,
    write_lightning_ckpt,
    write_release_folder,
    write_release_tarball,
)
from vaura_core.errors import CheckpointFormatError, ModelUnavailableError, UnsafeCheckpointError, VauraError
from vaura_core.model.config import PRESETS, preset
from vaura_core.model.vaura import VAura, build_model
from vaura_core.model.weight_norm import fold_weight_norm
from vaura_core.weights.importers import choose_checkpoint, convert_state_dict, import_weights
from vaura_core.weights.store import load_model, load_state, read_manifest, save_model_dir

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def source() -> VAura:
    """A `test`-preset model with every parameter non-trivial."""
    torch.manual_seed(1234)
    model = build_model(preset("test"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        model.sampler.cls_embeddings.uncond_embedding.normal_()
    # As `load_model` leaves it: some kernels pick another (equally valid) path for grad-free weights.
    return model.requires_grad_(False)


@pytest.fixture(scope="module")
def files(source: VAura, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("release")
    return {
        "ckpt": write_lightning_ckpt(source, root / "vaura.ckpt"),
        "tarball": write_release_tarball(source, root / f"{RUN}.tar.gz"),
        "folder": write_release_folder(source, root / "logs"),
        "avclip": write_avclip_pt(source, root / "segment_avclip" / "epoch_best.pt"),
        "dac": write_dac_weights(source, root / "dac" / "weights.pth"),
        "no_visual": write_lightning_ckpt(source, root / "no_visual.ckpt", components=("sampler", "codec")),
        "sampler_only": write_lightning_ckpt(source, root / "sampler_only.ckpt", components=("sampler",)),
    }


@pytest.fixture(scope="module")
def expected(source: VAura) -> dict[str, torch.Tensor]:
    """What an import must produce exactly: the checkpoint's tensors, weight norm folded."""
    return fold_weight_norm(original_state_dict(source))


def _assert_matches_source(state: dict[str, torch.Tensor], source: VAura) -> None:
    """fp32 parts bit-exact; the codec within fp16 rounding (the checkpoint stores it in fp16)."""
    reference = source.state_dict()
    assert list(state) == list(reference)
    for key, want in reference.items():
        got = state[key]
        if key.startswith(CODEC):
            torch.testing.assert_close(got.float(), want, rtol=4e-3, atol=4e-3 * float(want.abs().max()))
        else:
            assert got.dtype == want.dtype, key
            assert torch.equal(got, want), key


# --------------------------------------------------------------------------------------------------
# Each format
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("inputs", "fmt"),
    [
        (["ckpt"], "lightning-ckpt"),
        (["tarball"], "vaura-release-tarball"),
        (["folder"], "vaura-experiment-folder"),
    ],
)
def test_full_checkpoint_formats(
    files: dict[str, Path], source: VAura, expected: dict[str, torch.Tensor], inputs: list[str], fmt: str
) -> None:
    imported = import_weights([files[name] for name in inputs], config_hint="test")
    assert imported.config == preset("test")
    assert imported.sources[0]["format"] == fmt
    assert len(imported.sources[0]["sha256"]) == 64
    assert set(imported.state_dict) == set(expected)
    for key, want in expected.items():
        got = imported.state_dict[key]
        assert got.dtype == want.dtype, key
        assert torch.equal(got, want), key
    _assert_matches_source(imported.state_dict, source)
    assert imported.state_dict[CODEC + "decoder.model.0.weight"].dtype == torch.float16
    if fmt != "lightning-ckpt":  # the best val_loss checkpoint, not the decoys
        assert any(BEST_CKPT in note for note in imported.sources[0]["notes"])


def test_ckpt_without_visual_plus_avclip(files: dict[str, Path], source: VAura) -> None:
    imported = import_weights([files["avclip"], files["no_visual"]], config_hint=preset("test"))
    assert [s["format"] for s in imported.sources] == ["avclip-epoch-best", "lightning-ckpt"]
    assert any("visual encoder" in n for n in imported.sources[0]["notes"])
    _assert_matches_source(imported.state_dict, source)


def test_sampler_ckpt_plus_avclip_plus_dac(files: dict[str, Path], source: VAura) -> None:
    imported = import_weights([files["sampler_only"], files["avclip"], files["dac"]], config_hint="test")
    assert imported.config == preset("test")
    # DAC's own file is fp32: folded with g == ||v|| it reproduces the source weights exactly.
    reference = source.state_dict()
    for key, value in imported.state_dict.items():
        assert value.dtype == torch.float32, key
        assert torch.equal(value, reference[key]), key


def test_checkpoint_wins_over_component_files(files: dict[str, Path], source: VAura) -> None:
    imported = import_weights([files["dac"], files["ckpt"]], config_hint="test")
    assert imported.state_dict[CODEC + "decoder.model.0.weight"].dtype == torch.float16
    assert any("not used" in n for n in imported.sources[0]["notes"])


@pytest.mark.parametrize(
    ("inputs", "missing"),
    [
        (["sampler_only"], ["visual encoder", "audio codec"]),
        (["avclip"], ["fusion transformer", "audio codec"]),
        (["avclip", "dac"], ["fusion transformer"]),
    ],
)
def test_missing_components_are_listed(files: dict[str, Path], inputs: list[str], missing: list[str]) -> None:
    with pytest.raises(CheckpointFormatError, match="incomplete") as info:
        import_weights([files[name] for name in inputs], config_hint="test")
    for name in missing:
        assert name in str(info.value)


def test_two_full_checkpoints_are_ambiguous(files: dict[str, Path]) -> None:
    with pytest.raises(CheckpointFormatError, match="more than one"):
        import_weights([files["ckpt"], files["tarball"]], config_hint="test")


def test_unknown_sizes_need_a_hint(files: dict[str, Path]) -> None:
    with pytest.raises(CheckpointFormatError, match="config hint"):
        import_weights([files["ckpt"]])


def test_hparams_win_over_the_hint(files: dict[str, Path]) -> None:
    test = preset("test")
    hint = replace(test, lm=replace(test.lm, n_head=2, norm_eps=1e-3))
    imported = import_weights([files["ckpt"]], config_hint=hint)
    assert imported.config.lm == test.lm  # nhead and layer_norm_eps from sampler_config.params


class _Payload:
    def __init__(self, *call: object) -> None:
        self.call = call

    def __reduce__(self) -> tuple[object, ...]:
        return self.call[0], self.call[1:]


def test_malicious_checkpoint_inside_a_tarball(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save(
        {"state_dict": {"sampler.norm.weight": torch.ones(2)}, "x": _Payload(os.system, f"touch {marker}")},
        evil,
    )
    tarball = tmp_path / f"{RUN}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(evil, arcname=f"{RUN}/checkpoints/{BEST_CKPT}")
    with pytest.raises(UnsafeCheckpointError, match=rf"{RUN}\.tar\.gz:{RUN}/checkpoints/"):
        import_weights([tarball], config_hint="test")
    assert not marker.exists()


def test_truncated_checkpoint(files: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(files["ckpt"].read_bytes()[:5000])
    with pytest.raises(CheckpointFormatError, match=r"cut\.ckpt"):
        import_weights([cut], config_hint="test")


def test_not_a_weights_file(tmp_path: Path) -> None:
    junk = tmp_path / "notes.pt"
    torch.save({"hello": torch.ones(1)}, junk)
    with pytest.raises(CheckpointFormatError, match=r"notes\.pt"):
        import_weights([junk])
    with pytest.raises(CheckpointFormatError, match="no such file"):
        import_weights([tmp_path / "absent.ckpt"])


# --------------------------------------------------------------------------------------------------
# The release sizes, on the meta device, from the reference key list
# --------------------------------------------------------------------------------------------------
def _reference_state() -> dict[str, torch.Tensor]:
    state = {}
    for line in (DATA / "vaura-state-dict.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        state[key] = torch.empty(ast.literal_eval(shape), dtype=getattr(torch, dtype), device="meta")
    return state


def test_release_key_list_infers_the_release_config() -> None:
    state = _reference_state()
    assert len(state) == 757
    config, converted = convert_state_dict(state)
    assert config == PRESETS["vaura"]
    pairs = sum(k.endswith(".weight_g") for k in state)
    assert len(converted) == 757 - pairs == 670  # each weight_g/weight_v pair became one weight
    assert converted[CODEC + "decoder.model.6.weight"].dtype == torch.float16


def test_shape_and_key_mismatches_are_named() -> None:
    state = _reference_state()
    del state["sampler.layers.3.attention.wo.weight"]
    state["sampler.extra.weight"] = torch.empty(3, device="meta")
    state[VISUAL + "blocks.1.mlp.fc2.bias"] = torch.empty(5, device="meta")
    with pytest.raises(CheckpointFormatError) as info:
        convert_state_dict(state)
    message = str(info.value)
    assert "sampler.layers.3.attention.wo.weight" in message
    assert "sampler.extra.weight" in message
    assert "blocks.1.mlp.fc2.bias (5,)" in message


def test_visual_head_entries_are_dropped() -> None:
    state = _reference_state()
    state[VISUAL + "head.weight"] = torch.empty(174, 768, device="meta")
    state[VISUAL + "pre_logits.fc.weight"] = torch.empty(768, 768, device="meta")
    _, converted = convert_state_dict(state)
    assert not any(k.startswith((VISUAL + "head.", VISUAL + "pre_logits.")) for k in converted)


# --------------------------------------------------------------------------------------------------
# Choosing the checkpoint; unsafe archives
# --------------------------------------------------------------------------------------------------
def test_choose_checkpoint_like_the_original() -> None:
    names = [
        "last.ckpt",
        "epoch=3-val_loss=4.500.ckpt",
        "epoch=9-val_loss=4.25.ckpt",
        "e=1-val_loss=4.3.ckpt",
    ]
    assert choose_checkpoint(names) == "epoch=9-val_loss=4.25.ckpt"
    assert choose_checkpoint(["last.ckpt"]) == "last.ckpt"
    assert choose_checkpoint(["last.ckpt", "hparams.yaml"]) == "last.ckpt"
    with pytest.raises(CheckpointFormatError, match="cannot tell"):
        choose_checkpoint(["a.ckpt", "b.ckpt"])
    with pytest.raises(CheckpointFormatError, match=r"no \.ckpt"):
        choose_checkpoint(["hparams.yaml"])


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        member.size = len(data)
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../evil/checkpoints/x.ckpt"),
        tarfile.TarInfo("/abs/checkpoints/x.ckpt"),
    ],
    ids=["dotdot", "absolute"],
)
def test_archive_paths_outside_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    path = _tar_with(tmp_path / "evil.tar.gz", member, b"data")
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.tar\.gz"):
        import_weights([path])


def test_archive_links_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo(f"{RUN}/checkpoints/{BEST_CKPT}")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    path = _tar_with(tmp_path / "link.tar.gz", link)
    with pytest.raises(UnsafeCheckpointError, match="link"):
        import_weights([path])


def test_archive_without_checkpoint(tmp_path: Path) -> None:
    path = _tar_with(tmp_path / "empty.tar.gz", tarfile.TarInfo(f"{RUN}/readme.txt"), b"hi")
    with pytest.raises(CheckpointFormatError, match="no checkpoints"):
        import_weights([path])


# --------------------------------------------------------------------------------------------------
# Store round trip
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    imported = import_weights([files["tarball"]], config_hint="test")
    dest = tmp_path_factory.mktemp("store") / "models" / "vaura-test"
    return save_model_dir(
        dest, imported.config, imported.state_dict, {"sources": imported.sources, "note": "x"}
    )


def test_store_keeps_dtypes_and_records_sources(stored: Path, expected: dict[str, torch.Tensor]) -> None:
    assert sorted(p.name for p in stored.iterdir()) == ["config.json", "manifest.json", "model.safetensors"]
    assert [p.name for p in stored.parent.iterdir()] == ["vaura-test"]  # no temp folders left
    config, state = load_state(stored, verify_hash=True)
    assert config == preset("test")
    assert set(state) == set(expected)
    for key, want in expected.items():
        assert state[key].dtype == want.dtype
        assert torch.equal(state[key], want), key
    manifest = read_manifest(stored)
    assert manifest["format_version"] == 1
    assert manifest["note"] == "x"
    assert manifest["sources"][0]["format"] == "vaura-release-tarball"
    assert len(manifest["sources"][0]["sha256"]) == 64


def test_loaded_model_computes_what_the_source_computes(stored: Path, source: VAura) -> None:
    model = load_model(stored)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.audio_encoder.dtype == torch.float32  # codec in fp32 on the CPU
    _assert_matches_source(model.state_dict(), source)

    cfg = source.cfg
    g = torch.Generator().manual_seed(5)
    frames = (
        torch.rand(1, 2, 3, cfg.visual.frames, cfg.visual.img_size, cfg.visual.img_size, generator=g) * 2 - 1
    )
    with torch.no_grad():
        assert torch.equal(model.visual_feature_extractor(frames), source.visual_feature_extractor(frames))
        features = torch.randn(2, cfg.lm.video_tokens, cfg.visual.dim, generator=g)
        tokens = torch.randint(0, cfg.special_token + 1, (2, cfg.n_codebooks, 40), generator=g)
        got = model.sampler(tokens, model.sampler.project_video(features))
        want = source.sampler(tokens, source.sampler.project_video(features))
        assert torch.equal(got, want)
        codes = torch.randint(0, cfg.codec.codebook_size, (1, cfg.n_codebooks, 6), generator=g)
        wave, ref = model.audio_encoder.decode(codes), source.audio_encoder.decode(codes)
        assert wave.shape == ref.shape == (1, 6 * cfg.codec.hop_length)
        # fp16-stored codec weights: close to the fp32 source, not equal.
        assert float((wave - ref).abs().max()) <= 0.05 * float(ref.abs().max())


def test_store_never_clobbers_and_replaces_atomically(stored: Path, tmp_path: Path) -> None:
    config, state = load_state(stored)
    dest = tmp_path / "m"
    save_model_dir(dest, config, state, {"name": "first"})
    with pytest.raises(VauraError, match="already exists"):
        save_model_dir(dest, config, state, {"name": "second"})
    assert read_manifest(dest)["name"] == "first"
    save_model_dir(dest, config, state, {"name": "second"}, overwrite=True)
    assert read_manifest(dest)["name"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_failed_save_leaves_nothing(stored: Path, tmp_path: Path) -> None:
    config, state = load_state(stored)
    state["sampler.norm.weight"] = torch.empty(3, device="meta")  # cannot be written
    with pytest.raises(VauraError):
        save_model_dir(tmp_path / "m", config, state, {})
    assert list(tmp_path.iterdir()) == []


def test_damaged_store_folders(stored: Path, tmp_path: Path) -> None:
    config, state = load_state(stored)
    with pytest.raises(ModelUnavailableError, match="not found"):
        load_state(tmp_path / "absent")
    dest = save_model_dir(tmp_path / "m", config, state, {})
    weights = dest / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit inside tensor data: only the hash notices
    weights.write_bytes(bytes(data))
    load_state(dest)
    with pytest.raises(ModelUnavailableError, match="sha256"):
        load_state(dest, verify_hash=True)
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ModelUnavailableError, match="damaged"):
        load_state(dest)
    (dest / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailableError, match="config"):
        load_state(dest)
    (dest / "manifest.json").unlink()
    with pytest.raises(ModelUnavailableError, match="manifest"):
        load_state(dest)

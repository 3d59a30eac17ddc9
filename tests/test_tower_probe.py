"""`vaura tower-events`: scoring a training checkpoint's event calls on Foley World scenes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from vaura_core.cli import main as cli_main
from vaura_core.errors import VauraError
from vaura_core.media.frames import to_model_tensor
from vaura_core.model.config import preset
from vaura_core.model.vaura import VAura
from vaura_core.training.data import MATERIAL_CLASSES, material_of
from vaura_core.training.lm_train import EventHead, save_checkpoint
from vaura_core.training.tower_probe import (
    load_probe,
    probe_tower,
    score_tokens,
    token_calls,
)


def test_score_tokens_counts_each_kind_of_call():
    labels = np.array([0, 2, 0, 1, 3, 0])
    calls = np.array([0, 2, 1, 0, 1, 0])
    impacts = [
        {"frame": 2, "with": None, "surface": "floor"},  # token 1: called
        {"frame": 7, "with": 1, "surface": None},  # token 3: missed
        {"frame": 9, "with": None, "surface": "left_wall"},  # token 4: called, wrong material
        {"frame": 40, "with": None, "surface": "floor"},  # past the scored tokens: not counted
    ]
    out = score_tokens(calls, labels, impacts, tubelet=2)
    assert (out.impact_tokens, out.right, out.missed, out.wrong_material) == (3, 1, 1, 1)
    assert (out.empty_tokens, out.false_alarms) == (3, 1)
    assert out.found_by_kind == {"floor": [1, 1], "object": [0, 1], "wall": [1, 1]}
    assert out.rates()["false_alarms"] == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The same tower and head saved as pretraining (tower.pt) and transformer-stage (lm.pt) files."""
    folder = tmp_path_factory.mktemp("work")
    cfg = preset("tiny")
    torch.manual_seed(3)
    model = VAura(cfg)
    head = EventHead(cfg.visual.dim)
    head.reset_parameters(torch.Generator().manual_seed(4))
    torch.nn.init.normal_(head.proj.bias, std=1.0)  # calls of several classes, not all "none"
    tower_file, lm_file = folder / "tower.pt", folder / "lm.pt"
    torch.save({"tower": model.visual_feature_extractor.state_dict(), "head": head.state_dict()}, tower_file)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(lm_file, model, opt, 7, [{"step": 7.0, "loss": 1.0}], aux_head=head)
    return cfg, model, head, tower_file, lm_file


def test_both_checkpoint_kinds_load_the_same_tower_and_calls(checkpoints):
    cfg, model, head, tower_file, lm_file = checkpoints
    frames = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():  # the tower as the engine feeds it: the frames of the two whole segments
        feats = model.visual_feature_extractor.encode_segments(to_model_tensor(frames[:32], 16))
        expected = head(feats.reshape(-1, cfg.visual.dim)).argmax(-1).numpy()
    for path in (tower_file, lm_file):
        tower, loaded_head = load_probe(path, cfg)
        calls = token_calls(tower, loaded_head, frames)
        assert len(calls) == 16  # two whole segments of 8 tokens; the 8 trailing frames are dropped
        np.testing.assert_array_equal(calls, expected)


def test_a_phased_event_head_is_scored_by_material(tmp_path, checkpoints):
    cfg, model, _head, _tower_file, _lm_file = checkpoints
    n_mat = len(MATERIAL_CLASSES)
    head = EventHead(cfg.visual.dim, 1 + n_mat * cfg.visual.tubelet)
    head.reset_parameters(torch.Generator().manual_seed(5))
    with torch.no_grad():  # a second-frame call of material 2 wins
        head.proj.bias.zero_()
        head.proj.bias[n_mat + 2] = 10.0
    path = tmp_path / "tower.pt"
    torch.save({"tower": model.visual_feature_extractor.state_dict(), "head": head.state_dict()}, path)
    tower, loaded = load_probe(path, cfg)
    assert loaded.n_classes == 1 + n_mat * cfg.visual.tubelet
    frames = np.random.default_rng(1).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        feats = model.visual_feature_extractor.encode_segments(to_model_tensor(frames, 16))
        raw = head(feats.reshape(-1, cfg.visual.dim)).argmax(-1).numpy()
    calls = token_calls(tower, loaded, frames)
    assert (raw == n_mat + 2).all() and (calls == 2).all()  # folded onto its material


def test_probe_scores_every_token_of_the_scenes(checkpoints):
    cfg, _model, _head, tower_file, lm_file = checkpoints
    a = probe_tower(tower_file, cfg, [990_000, 990_001], 2.56)
    b = probe_tower(lm_file, cfg, [990_000, 990_001], 2.56)
    assert a.to_dict() == b.to_dict()
    assert a.impact_tokens + a.empty_tokens == 2 * 32  # 4 segments of 8 tokens per scene
    assert a.right + a.missed + a.wrong_material == a.impact_tokens
    assert sum(total for _found, total in a.found_by_kind.values()) >= a.impact_tokens > 0


def test_bad_checkpoints_are_named(tmp_path, checkpoints):
    cfg = checkpoints[0]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    for path, words in [
        (tmp_path / "missing.pt", "no such file"),
        (junk, "not a readable training checkpoint"),
        (foreign, "neither a pretrained tower"),
        (tmp_path, "is a folder"),
    ]:
        with pytest.raises(VauraError, match=words) as info:
            load_probe(path, cfg)
        assert str(path) in str(info.value)
    deeper = dataclasses.replace(cfg, visual=dataclasses.replace(cfg.visual, depth=3))
    tower = VAura(deeper).visual_feature_extractor.state_dict()
    odd = tmp_path / "deeper.pt"
    torch.save({"tower": tower, "head": EventHead(48).state_dict()}, odd)  # a head for another width
    with pytest.raises(VauraError, match="does not fit the vaura-tiny visual tower") as info:
        load_probe(odd, cfg)
    assert "proj.weight" in str(info.value)  # names the tensor
    broken = tmp_path / "broken.pt"
    torch.save({"tower": {**tower, "pos_embed": torch.zeros(3)}, "head": checkpoints[2].state_dict()}, broken)
    with pytest.raises(VauraError, match="does not fit the vaura-tiny visual tower"):
        load_probe(broken, cfg)


def test_a_tower_of_other_sizes_is_scored_at_its_own(tmp_path, checkpoints):
    cfg, _model, head = checkpoints[:3]
    wide = dataclasses.replace(cfg, visual=dataclasses.replace(cfg.visual, img_size=96))  # --img-size 96
    torch.manual_seed(5)
    path = tmp_path / "tower96.pt"
    torch.save({"tower": VAura(wide).visual_feature_extractor.state_dict(), "head": head.state_dict()}, path)
    tower, _ = load_probe(path, cfg)
    assert tower.cfg == wide.visual
    frames = np.random.default_rng(1).integers(0, 256, (16, 96, 96, 3), dtype=np.uint8)
    assert len(token_calls(tower, head, frames)) == 8
    result = probe_tower(path, cfg, [990_000], 1.28)  # frames rendered at 96 px, or the tower would refuse
    assert result.impact_tokens + result.empty_tokens == 16
    deeper = dataclasses.replace(cfg, visual=dataclasses.replace(cfg.visual, depth=3))  # a deeper tower
    deep_tower = VAura(deeper).visual_feature_extractor.state_dict()
    torch.save({"tower": deep_tower, "head": head.state_dict()}, path)
    assert load_probe(path, cfg)[0].cfg == deeper.visual


def test_cli_prints_json_and_rejects_bad_input(checkpoints, tmp_path, capsys):
    lm_file = checkpoints[4]
    assert (
        cli_main(
            ["tower-events", "--checkpoint", str(lm_file), "--count", "1", "--duration", "1.28", "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["impact_tokens"] + out["empty_tokens"] == 16
    assert set(out["rates"]) >= {"right", "missed", "wrong_material", "false_alarms"}
    assert cli_main(["tower-events", "--checkpoint", str(tmp_path / "none.pt"), "--count", "1"]) == 2
    assert "none.pt: no such file" in capsys.readouterr().err
    assert cli_main(["tower-events", "--checkpoint", str(lm_file), "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err


def test_a_model_folder_with_impact_cues_is_probed_with_its_own_head(tmp_path):
    from vaura_core.weights.store import save_model_dir

    cfg = preset("tiny")
    cued = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, impact_cues=9))
    torch.manual_seed(6)
    model = VAura(cued)
    torch.nn.init.normal_(model.sampler.cue_head.bias, std=1.0)
    save_model_dir(tmp_path / "cued", cued, model.state_dict(), {})
    tower, head = load_probe(tmp_path / "cued", cfg)
    assert head.n_classes == 9 and torch.equal(head.proj.bias, model.sampler.cue_head.bias)
    frames = np.random.default_rng(2).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        feats = model.visual_feature_extractor.encode_segments(to_model_tensor(frames, 16))
        raw = model.sampler.cue_head(feats.reshape(-1, cfg.visual.dim)).argmax(-1).numpy()
    np.testing.assert_array_equal(token_calls(tower, head, frames), material_of(raw))
    uncued = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, impact_cues=0))
    save_model_dir(tmp_path / "plain", uncued, VAura(uncued).state_dict(), {})
    with pytest.raises(VauraError, match="plain: this model ships no event head"):
        load_probe(tmp_path / "plain", cfg)

"""The visual tower's dense motion targets (`training.motion`) and their loss in both training stages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaura_core.model.config import preset
from vaura_core.model.vaura import VAura
from vaura_core.training.data import WindowSet, clip_of_scene, render_scene
from vaura_core.training.lm_train import LMTrainSettings, train_lm
from vaura_core.training.motion import MOTION_CHANNELS, MotionAux, motion_targets
from vaura_core.training.schedule import StepBudget
from vaura_core.training.stream import ClipStream, StreamSettings
from vaura_core.training.tower_train import TowerTrainSettings, pretrain_tower

TINY = preset("tiny")
CFG = preset("test")
SECONDS = CFG.window_segments * CFG.segment_seconds


def _collision_scene():
    """A 10 s tiny-model scene with a collision of two objects (the first such seed from 0)."""
    for seed in range(40):
        scene = render_scene(seed, TINY, 10.0)
        if any(e["kind"] == "impact" and e.get("with") is not None for e in scene.events):
            return seed, scene
    raise AssertionError("no collision in 40 scenes")


def test_targets_put_each_object_in_the_patch_that_shows_it():
    seed, scene = _collision_scene()
    assert clip_of_scene(scene, seed, TINY).motion is None  # only the training streams need them
    clip = clip_of_scene(scene, seed, TINY, motion=True)
    targets = clip.motion
    assert targets is not None
    grid, patch, tub = 4, TINY.visual.patch_size, TINY.visual.tubelet
    assert targets.shape == (len(clip.frames) // tub, grid * grid, len(MOTION_CHANNELS))
    assert targets.dtype == np.float32
    occupied = targets[..., 0] > 0
    # An object crossing into the next patch between a token's frames counts in both.
    assert (occupied.sum(1) >= 1).all() and (occupied.sum(1) <= tub * len(scene.objects)).all()
    # The patch named for an object holds that object's colour in the model's own frames.
    for token in range(0, len(targets), 17):
        frames = clip.frames[token * tub : (token + 1) * tub].astype(float)
        for p in np.flatnonzero(occupied[token]):
            row, col = divmod(int(p), grid)
            cell = frames[:, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch].reshape(-1, 3)
            nearest = min(
                np.abs(cell - np.array(o.material.colour, dtype=float)).sum(1).min() for o in scene.objects
            )
            assert nearest < 60, (token, p)
    # Collisions are marked on the tokens of their frames; nothing but occupancy where no object is.
    hits = {
        int(e["frame"]) // tub for e in scene.events if e["kind"] == "impact" and e.get("with") is not None
    }
    marked = set(np.flatnonzero(targets[..., 5].max(1) > 0).tolist())
    assert hits <= marked | {t for t in hits if t >= len(targets)} and marked <= hits
    assert not (targets[..., 1:][~occupied]).any()


def test_velocity_and_push_follow_the_physics():
    from vaura_core.foley_world.scene import GRAVITY

    _seed, scene = _collision_scene()
    # One object alone: falling freely for 10 frames, then bouncing up at frame 10.
    fps, n = scene.spec.fps, 20
    scene.objects = scene.objects[:1]
    scene.events = []
    vy = np.array([-GRAVITY * k / fps if k < 10 else 1.0 - GRAVITY * (k - 10) / fps for k in range(n)])
    scene.velocities = np.stack([np.full(n, 0.3), vy], -1)[:, None]
    scene.positions = np.stack([np.full(n, 0.5), np.full(n, 0.6)], -1)[:, None]
    targets = motion_targets(scene, n, TINY.visual)
    patch = int(np.flatnonzero(targets[0, :, 0])[0])
    assert np.count_nonzero(targets[..., 0]) == n // 2  # one patch per token, the same one
    assert targets[1:, patch, 1] == pytest.approx(0.3)
    assert targets[4, patch, 2] == pytest.approx((vy[8] + vy[9]) / 2)
    # Gravity alone pushes nothing; the bounce does; alone, nothing is near.
    assert targets[1:5, patch, 3] == pytest.approx(0.0, abs=1e-6)
    assert targets[5, patch, 3] == pytest.approx(np.log1p(10 * (1.0 + GRAVITY * 10 / fps)))
    assert not targets[..., 4:].any()


def test_the_motion_loss_falls_and_needs_capture():
    data = ClipStream(CFG, None, range(700, 703), SECONDS, StreamSettings(workers=0, initial_clips=3))
    with data:
        torch.manual_seed(0)
        model = VAura(CFG)
        tower = model.visual_feature_extractor
        aux = MotionAux(tower, 1.0, 2e-2, seed=0)
        frames, _codes, _labels = data.step_batch(0, 2, seed=0)
        targets = data.step_motion(0, 2, seed=0)
        assert targets.shape[:2] == (2, CFG.lm.video_tokens)
        with pytest.raises(RuntimeError, match="capture"):
            aux.loss(targets)
        losses = []
        with aux.capture():
            for _ in range(15):
                tower(frames)
                loss = aux.batch_loss(data, 0, 2, seed=0)
                loss.backward()
                aux.step(2e-2, 1.0)
                losses.append(float(loss.detach()))
        assert losses[-1] < 0.8 * losses[0]  # the head alone learns (the tower is not stepped here)
        assert aux.logged_mean() == pytest.approx(sum(losses) / len(losses))  # the log row's value
        assert math.isnan(aux.logged_mean())  # and counting starts again
        assert not tower.spatial_attn_agg._forward_pre_hooks  # the hook is gone


def test_stream_motion_matches_the_batch_windows():
    with ClipStream(CFG, None, range(710, 716), SECONDS, StreamSettings(workers=0, initial_clips=4)) as s:
        for step in (0, 3):
            data = s.window_set(step)
            motion = s.step_motion(step, 3, seed=2)
            _frames, _codes, labels = s.step_batch(step, 3, seed=2)
            indices = s._indices(data, step, 3, 2)
            assert torch.equal(motion, data.token_motion(indices))
            assert torch.equal(labels, data.token_labels(indices))


def test_both_stages_train_with_the_motion_loss_and_resume_it(tmp_path):
    settings = StreamSettings(workers=0, initial_clips=3, buffer_clips=3, clips_per_step=0.5)
    with ClipStream(CFG, None, range(720, 740), SECONDS, settings) as stream:
        torch.manual_seed(0)
        model = VAura(CFG)
        tower_settings = TowerTrainSettings(batch_size=2, warmup=1, motion_weight=1.0)
        res = pretrain_tower(model, stream, StepBudget(steps=3), seed=1, settings=tower_settings, log_every=1)
        assert res.motion is not None and all("motion" in row for row in res.history)
        s = LMTrainSettings(batch_size=2, warmup=1, motion_weight=0.5)
        ckpt = tmp_path / "lm.pt"
        out = train_lm(
            model,
            stream,
            StepBudget(steps=2),
            seed=1,
            settings=s,
            checkpoint=ckpt,
            motion_head=res.motion,
            log_every=1,
        )
        assert all(row["motion"] > 0 for row in out.history)
        saved = torch.load(ckpt, weights_only=True)
        assert set(saved["motion"]) == {"head", "optimizer"}
        # Resumed, the motion head goes on from the checkpoint's state (its moments included).
        again = train_lm(model, stream, StepBudget(steps=3), seed=1, settings=s, checkpoint=ckpt, log_every=1)
        assert again.steps == 3 and "motion" in again.history[-1]


def test_the_motion_loss_needs_targets_and_a_sane_weight():
    from tests.test_training_aux import _clip, _codes, _random_events

    clip = _clip(3, _random_events(3, 5 * CFG.visual.frames, 12))
    data = WindowSet(CFG, [clip], [_codes(clip, 3)])  # hand-made: labels, no motion
    assert not data.has_motion
    with pytest.raises(ValueError, match="motion targets"):
        train_lm(VAura(CFG), data, StepBudget(steps=1), seed=0, settings=LMTrainSettings(motion_weight=1.0))
    with pytest.raises(ValueError, match="motion targets"):
        pretrain_tower(
            VAura(CFG), data, StepBudget(steps=1), seed=0, settings=TowerTrainSettings(motion_weight=1)
        )
    with pytest.raises(ValueError, match="motion_weight must be >= 0"):
        train_lm(VAura(CFG), data, StepBudget(steps=1), seed=0, settings=LMTrainSettings(motion_weight=-1.0))
    with pytest.raises(ValueError, match="no motion targets"):
        data.token_motion([0])


def test_train_tiny_cli_motion_weight(tmp_path, capsys):
    from vaura_core.cli import main

    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--motion-weight", "-1"]) == 2
    assert "--motion-weight" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_the_card_names_the_motion_loss_and_its_weight():
    from tests.test_training_aux import record_of
    from vaura_core.training.card import render_model_card
    from vaura_core.training.tiny import MOTION_WEIGHT

    def card(weight: float) -> str:
        history = [{"step": 1.0, "loss": 4.0, "q0": 4.0, "motion": 0.8}]
        record = record_of(history, {"aux_weight": 1.0, "lm": {"aux_weight": 1.0, "motion_weight": weight}})
        return render_model_card({"name": "t", "training": record}, TINY, None)

    shipped = card(MOTION_WEIGHT)
    assert "dense motion loss on the visual tower (weight 1," in shipped and "--motion-weight" not in shipped
    assert "| step | loss | motion | q0 |" in shipped  # the loss's column in the transformer curve
    off = card(0.0)
    assert "--motion-weight 0" in off and "dense motion loss" not in off

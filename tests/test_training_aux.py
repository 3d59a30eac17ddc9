"""Auxiliary event supervision of the visual tower: labels, the loss, and that it leaves the model alone."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vaura_core.errors import VauraError
from vaura_core.foley_world.materials import MATERIALS
from vaura_core.model.config import VAuraConfig, preset
from vaura_core.model.vaura import VAura
from vaura_core.training.data import (
    CACHE_VERSION,
    MATERIAL_CLASSES,
    N_EVENT_CLASSES,
    ClipData,
    FrameEvents,
    WindowSet,
    _cache_path,
    build_clips,
    clip_token_count,
    event_class_count,
    event_class_names,
    frame_events,
    material_of,
    token_labels,
)
from vaura_core.training.lm_train import (
    EventHead,
    LMTrainSettings,
    aux_class_weights,
    codebook_losses,
    lm_loss,
    make_optimizer,
    onset_token_weights,
    train_lm,
    trainable_parts,
)
from vaura_core.training.schedule import StepBudget, cosine_lr

CFG = preset("test")
WOOD, METAL = MATERIAL_CLASSES.index("wood") + 1, MATERIAL_CLASSES.index("metal") + 1


def _impact(frame: int, material: str, strength: float) -> dict[str, object]:
    return {"time": frame / 25, "frame": frame, "kind": "impact", "material": material, "strength": strength}


def test_material_classes_are_the_sorted_material_names():
    assert MATERIAL_CLASSES == tuple(sorted(MATERIALS)) == ("drum", "glass", "metal", "wood")
    assert N_EVENT_CLASSES == 5


def test_frame_events_keep_the_loudest_impact_and_mark_sustained_sounds():
    events = [
        _impact(2, "wood", 0.4),
        _impact(2, "metal", 0.9),  # a collision: two events on one frame, the louder names it
        _impact(5, "glass", 0.3),
        {"frame": 6, "end_frame": 9, "kind": "slide", "material": "wood", "strength": 0.2, "time": 0.24},
        _impact(40, "drum", 1.0),  # past the clip: dropped
    ]
    fe = frame_events(events, 12)
    assert fe.impact.tolist() == [0, 0, METAL, 0, 0, MATERIAL_CLASSES.index("glass") + 1, 0, 0, 0, 0, 0, 0]
    assert fe.strength[2] == pytest.approx(0.9) and fe.strength[0] == 0
    assert fe.sustained.tolist() == [False] * 6 + [True] * 3 + [False] * 3
    assert fe.impact.dtype == np.int64 and fe.sustained.dtype == bool


def test_token_labels_cover_tubelet_frames_and_pick_the_loudest():
    tubelet = CFG.visual.tubelet
    assert tubelet == 2
    n = CFG.visual.frames  # one segment
    fe = frame_events(
        [
            _impact(3, "wood", 0.5),  # second frame of token 1
            _impact(4, "metal", 0.5),  # first frame of token 2: on the boundary, not in token 1
            _impact(8, "wood", 0.3),  # token 4 holds two impacts: the louder (metal) wins
            _impact(9, "metal", 0.8),
            _impact(12, "metal", 0.6),  # token 6: equal strengths, the earlier frame wins
            _impact(13, "wood", 0.6),
        ],
        n,
    )
    labels = token_labels(fe, tubelet)
    assert labels.shape == (n // tubelet,)
    assert labels.tolist() == [0, WOOD, METAL, 0, METAL, 0, METAL, 0]
    # A token's label does not depend on where within the token the impact falls.
    for frame in range(n):
        one = token_labels(frame_events([_impact(frame, "wood", 0.1)], n), tubelet)
        assert one.tolist() == [WOOD if j == frame // tubelet else 0 for j in range(n // tubelet)]
    # No impacts, only a sustained sound: every token says "none".
    quiet = frame_events(
        [{"frame": 0, "end_frame": n, "kind": "roll", "material": "metal", "strength": 1}], n
    )
    assert token_labels(quiet, tubelet).tolist() == [0] * (n // tubelet)


def _clip(seed: int, events: list[dict[str, object]], n_segments: int = 5, paint: bool = False) -> ClipData:
    rng = np.random.default_rng(seed)
    n = n_segments * CFG.visual.frames
    size = CFG.visual.img_size
    frames = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    fe = frame_events(events, n)
    if paint:
        # Learnable pictures: dark noise, and an impact frame filled with its material's colour.
        frames //= 8
        for f in np.flatnonzero(fe.impact):
            frames[f] = MATERIALS[MATERIAL_CLASSES[fe.impact[f] - 1]].colour
    audio = rng.standard_normal(int(n / CFG.fps * 44100)).astype(np.float32) * 0.1
    return ClipData(seed, frames, audio, 44100, fe)


def _codes(clip: ClipData, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(
        0, CFG.vocab_size, (CFG.n_codebooks, clip_token_count(CFG, len(clip.frames))), generator=g
    )


def _random_events(seed: int, n_frames: int, count: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    frames = rng.choice(n_frames, count, replace=False)
    return [_impact(int(f), MATERIAL_CLASSES[int(rng.integers(4))], float(rng.random())) for f in frames]


def test_phased_labels_also_name_the_frame_of_the_token():
    tubelet, n, m = CFG.visual.tubelet, CFG.visual.frames, len(MATERIAL_CLASSES)
    events = [
        _impact(3, "wood", 0.5),
        _impact(4, "metal", 0.5),
        _impact(8, "wood", 0.3),
        _impact(9, "metal", 0.8),
    ]
    fe = frame_events(events, n)
    phased = token_labels(fe, tubelet, phased=True)
    # token 1: wood on its second frame; token 2: metal on its first; token 4: the louder metal, second
    assert phased.tolist() == [0, WOOD + m, METAL, 0, METAL + m, 0, 0, 0]
    np.testing.assert_array_equal(material_of(phased), token_labels(fe, tubelet))
    for frame in range(n):
        one = token_labels(frame_events([_impact(frame, "drum", 0.1)], n), tubelet, phased=True)
        drum = MATERIAL_CLASSES.index("drum") + 1
        assert one[frame // tubelet] == drum + (frame % tubelet) * m and one.sum() == one[frame // tubelet]
    assert event_class_count(tubelet, False) == N_EVENT_CLASSES
    names = event_class_names(tubelet, True)
    assert len(names) == event_class_count(tubelet, True) == 1 + m * tubelet
    assert names[WOOD + m] == "wood@1" and names[METAL] == "metal@0"
    # the window set and the trainers size everything from the labels' classes
    clip = _clip(4, _random_events(4, 5 * n, 16), paint=True)
    data = WindowSet(CFG, [clip], [_codes(clip, 4)], phased=True)
    counts = data.label_counts()
    assert len(counts) == 1 + m * tubelet and counts[m + 1 :].sum() > 0 and counts[1 : m + 1].sum() > 0
    torch.manual_seed(0)
    settings = LMTrainSettings(batch_size=2, warmup=1, cfg_dropout=0.0, aux_weight=1.0)
    res = train_lm(VAura(CFG), data, StepBudget(steps=2), seed=2, settings=settings)
    assert res.aux_head is not None and res.aux_head.n_classes == 1 + m * tubelet
    plain = EventHead(CFG.visual.dim)
    with pytest.raises(ValueError, match="event head has 5 classes"):
        train_lm(VAura(CFG), data, StepBudget(steps=1), seed=2, settings=settings, aux_head=plain)


def test_window_token_labels_follow_the_visual_token_order():
    per_seg, n_f, tub = CFG.visual.tokens_per_segment, CFG.visual.frames, CFG.visual.tubelet
    # Window 1 starts at clip segment 1; its segment 2, token 3 covers clip frames 3*16 + 6 and + 7.
    frame = 3 * n_f + 3 * tub + 1
    clip = _clip(0, [_impact(frame, "wood", 0.7), _impact(n_f, "metal", 0.2)])
    data = WindowSet(CFG, [clip], [_codes(clip, 0)])
    assert data.has_labels
    labels = data.token_labels([1, 0])
    assert labels.shape == (2, CFG.window_segments * per_seg) == (2, CFG.lm.video_tokens)
    assert labels.dtype == torch.long
    expected = torch.zeros_like(labels)
    expected[0, 2 * per_seg + 3] = WOOD
    expected[0, 0] = METAL  # clip frame 16 is window 1's first frame
    expected[1, 3 * per_seg + 3] = WOOD
    expected[1, per_seg] = METAL
    assert torch.equal(labels, expected)
    frames, codes = data.batch([1, 0])  # the old call is unchanged
    assert frames.shape[:2] == (2, CFG.window_segments) and codes.shape[0] == 2
    # Counts are over every window's tokens (windows overlap, as the sampler sees them).
    counts = data.label_counts()
    assert counts.sum() == len(data) * CFG.lm.video_tokens
    assert counts[WOOD] == 2 and counts[METAL] == 2
    unlabelled = WindowSet(CFG, [ClipData(0, clip.frames, clip.audio, 44100)], [_codes(clip, 0)])
    assert not unlabelled.has_labels
    with pytest.raises(ValueError, match="event labels"):
        unlabelled.token_labels([0])


def test_class_weights_favour_the_rare_impacts():
    w = aux_class_weights(torch.tensor([900, 25, 25, 50, 0]))
    assert w[0] == pytest.approx(1.0) and w[1] == pytest.approx(6.0) and w[3] == pytest.approx(math.sqrt(18))
    assert w[4] == w.max()  # absent from the data: never a target
    assert torch.equal(aux_class_weights(torch.zeros(5, dtype=torch.long)), torch.ones(5))


def test_rendered_clips_carry_their_labels_through_a_versioned_cache(tmp_path):
    from vaura_core.foley_world.scene import generate_scene

    seed, duration = 7, 0.64
    stale = tmp_path / f"clip-{seed}.npz"  # the cache format of version 1: no labels
    np.savez(stale, frames=np.zeros(1), audio=np.zeros(1), sample_rate=44100)
    size = CFG.visual.img_size
    name = _cache_path(tmp_path, seed, size).name
    assert name == f"clip-{seed}-{size}px-v{CACHE_VERSION}.npz" != stale.name
    (clip,) = build_clips([seed], CFG, duration, tmp_path)
    assert _cache_path(tmp_path, seed, size).exists()
    assert clip.events is not None and clip.frames.shape[0] == 16
    scene = generate_scene(seed, duration=duration, fps=CFG.fps, size=128)
    expected = frame_events(scene.events, 16)
    for name in ("impact", "strength", "sustained"):
        assert np.array_equal(getattr(clip.events, name), getattr(expected, name)), name
    (again,) = build_clips([seed], CFG, duration, tmp_path)  # read back from the cache
    assert isinstance(again.events, FrameEvents)
    assert np.array_equal(again.events.impact, clip.events.impact)
    assert np.array_equal(again.events.sustained, clip.events.sustained)
    # A tower of another input size shares the cache folder but never the frames.
    wider = dataclasses.replace(CFG, visual=dataclasses.replace(CFG.visual, img_size=2 * size))
    (big,) = build_clips([seed], wider, duration, tmp_path)
    assert big.frames.shape[1:3] == (2 * size, 2 * size) and clip.frames.shape[1:3] == (size, size)


def test_the_event_loss_falls_and_leaves_the_model_tensors_alone():
    n = 5 * CFG.visual.frames
    clip = _clip(1, _random_events(1, n, 16), paint=True)
    data = WindowSet(CFG, [clip], [_codes(clip, 1)])
    torch.manual_seed(0)
    model = VAura(CFG)
    names = list(model.state_dict())
    settings = LMTrainSettings(batch_size=2, lr=3e-3, warmup=1, cfg_dropout=0.0, aux_weight=1.0)
    res = train_lm(model, data, StepBudget(steps=8), seed=2, settings=settings, log_every=1)
    aux = [row["aux"] for row in res.history]
    # Both windows are in every batch, so the loss on the same data must fall step after step.
    assert all(b < a for a, b in itertools.pairwise(aux)) and aux[-1] < aux[0] - 0.15, aux
    assert all(0.0 <= row["aux_acc"] <= 1.0 for row in res.history)
    assert isinstance(res.aux_head, EventHead)
    assert list(model.state_dict()) == names  # the head is the trainer's, not the model's
    assert not any("aux" in k or "event" in k for k in names)
    assert not any(p.requires_grad for p in res.aux_head.parameters())


def _reference_training(
    model: VAura, data: WindowSet, steps: int, seed: int, s: LMTrainSettings
) -> list[float]:
    """The LM training loop as it was before the event loss: what aux_weight=0 must reproduce."""
    from vaura_core.training.data import EpochSampler

    for part in trainable_parts(model):
        part.train().requires_grad_(True)
    model.visual_feature_extractor.patch_embed.requires_grad_(False)
    opt = make_optimizer(model, s)
    sampler = EpochSampler(len(data), s.batch_size, seed)
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, s.lr, s.warmup)
        frames, codes = data.batch(sampler.indices(step))
        g = torch.Generator().manual_seed(seed * 7919 + step)
        null_mask = torch.rand(len(codes), generator=g) < s.cfg_dropout
        loss, _ = lm_loss(model, frames, codes, null_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for part in trainable_parts(model) for p in part.parameters() if p.requires_grad]
        nn.utils.clip_grad_norm_(params, s.grad_clip)
        opt.step()
        losses.append(float(loss))
    return losses


def test_aux_weight_zero_trains_exactly_as_before():
    clip = _clip(2, _random_events(2, 5 * CFG.visual.frames, 10))
    data = WindowSet(CFG, [clip], [_codes(clip, 2)])
    s = LMTrainSettings(batch_size=2, warmup=1, cfg_dropout=0.5, aux_weight=0.0)
    torch.manual_seed(0)
    ref = VAura(CFG)
    ref_losses = _reference_training(ref, data, 3, seed=4, s=s)
    torch.manual_seed(0)
    model = VAura(CFG)
    res = train_lm(model, data, StepBudget(steps=3), seed=4, settings=s, log_every=1)
    assert [row["loss"] for row in res.history] == ref_losses
    assert res.aux_head is None and "aux" not in res.history[0]
    for (name, p), q in zip(ref.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    # ... and it needs no labels at all.
    bare = WindowSet(CFG, [ClipData(2, clip.frames, clip.audio, 44100)], [_codes(clip, 2)])
    torch.manual_seed(0)
    again = VAura(CFG)
    assert train_lm(again, bare, StepBudget(steps=3), seed=4, settings=s, log_every=1).history == res.history
    with pytest.raises(ValueError, match="event labels"):
        train_lm(VAura(CFG), bare, StepBudget(steps=1), seed=4, settings=LMTrainSettings(batch_size=2))
    with pytest.raises(ValueError, match="aux_weight"):
        train_lm(VAura(CFG), data, StepBudget(steps=1), seed=4, settings=LMTrainSettings(aux_weight=-1.0))


def _crash_at(step: int):
    def crash(row: dict[str, float]) -> None:
        if row["step"] == step:
            raise KeyboardInterrupt  # after that step, before its checkpoint: the step before is on disk

    return crash


def _interrupted_run(
    cfg: VAuraConfig, data: WindowSet, s: LMTrainSettings, ckpt: Path, aux_head: EventHead | None = None
) -> None:
    """Four steps of seed 1 from a fresh model (torch seed 0), checkpointing after every step, killed
    after step 3 is logged: `ckpt` then holds step 2, the step before."""
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_lm(
            VAura(cfg),
            data,
            StepBudget(steps=4),
            seed=1,
            settings=s,
            checkpoint=ckpt,
            checkpoint_seconds=0.0,
            log_every=1,
            on_log=_crash_at(3),
            aux_head=aux_head,
        )


def test_resume_keeps_the_event_head(tmp_path):
    clip = _clip(3, _random_events(3, 5 * CFG.visual.frames, 12))
    data = WindowSet(CFG, [clip], [_codes(clip, 3)])
    s = LMTrainSettings(batch_size=2, warmup=1, aux_weight=0.5)
    torch.manual_seed(0)
    straight = VAura(CFG)
    res = train_lm(straight, data, StepBudget(steps=4), seed=1, settings=s, log_every=1)
    ckpt = tmp_path / "lm.pt"
    _interrupted_run(CFG, data, s, ckpt)
    saved = torch.load(ckpt, weights_only=True)
    assert set(saved["aux_head"]) == {"proj.weight", "proj.bias"}
    assert list(saved["model"]) == list(straight.state_dict())
    torch.manual_seed(0)
    resumed = VAura(CFG)
    again = train_lm(resumed, data, StepBudget(steps=4), seed=1, settings=s, checkpoint=ckpt, log_every=1)
    assert again.steps == 4
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name
    for name, p in res.aux_head.state_dict().items():
        assert torch.allclose(p, again.aux_head.state_dict()[name], atol=1e-6), name
    assert [r["step"] for r in again.history] == [1.0, 2.0, 3.0, 4.0]
    assert again.history[-1]["aux"] == pytest.approx(res.history[-1]["aux"], abs=1e-5)


def test_checkpoints_resume_across_the_event_head_switch(tmp_path):
    clip = _clip(4, _random_events(4, 5 * CFG.visual.frames, 12))
    data = WindowSet(CFG, [clip], [_codes(clip, 4)])
    off = LMTrainSettings(batch_size=2, warmup=1, aux_weight=0.0)
    on = LMTrainSettings(batch_size=2, warmup=1, aux_weight=1.0)
    ckpt = tmp_path / "lm.pt"
    # A checkpoint from before the event head (none saved) resumes with a fresh head.
    train_lm(VAura(CFG), data, StepBudget(steps=2), seed=1, settings=off, checkpoint=ckpt, log_every=1)
    assert "aux_head" not in torch.load(ckpt, weights_only=True)
    res = train_lm(VAura(CFG), data, StepBudget(steps=4), seed=1, settings=on, checkpoint=ckpt, log_every=1)
    assert res.aux_head is not None and res.steps == 4
    assert "aux" not in res.history[0] and math.isfinite(res.history[-1]["aux"])
    saved = torch.load(ckpt, weights_only=True)
    assert "aux_head" in saved and len(saved["optimizer"]["param_groups"]) == 4
    assert math.isnan(saved["history"][0, saved["history_keys"].index("aux")])
    # ... and one with the head resumes with it switched off.
    res = train_lm(VAura(CFG), data, StepBudget(steps=5), seed=1, settings=off, checkpoint=ckpt, log_every=1)
    assert res.steps == 5 and res.aux_head is None
    assert len(torch.load(ckpt, weights_only=True)["optimizer"]["param_groups"]) == 2


def record_of(history: list[dict[str, float]], settings: dict[str, object]) -> dict[str, object]:
    """The manifest's training record of a made-up run with this transformer curve and settings."""
    from vaura_core.training.tiny import TinyTrainingReport, training_record

    report = TinyTrainingReport(
        out_dir=None,  # type: ignore[arg-type]
        seed=0,
        seconds=1.0,
        data_seconds=0.1,
        codec_steps=1,
        codec_seconds=0.1,
        lm_steps=len(history),
        lm_seconds=0.5,
        lm_history=history,
        settings=settings,
    )
    return training_record(report)


def test_training_record_and_card_show_the_event_loss():
    from vaura_core.training.card import render_model_card
    from vaura_core.training.tiny import ONSET_FADE

    history = [
        {"step": 1.0, "loss": 4.0, "q0": 4.0, "q1": 4.0, "q8": 4.0, "aux": 1.5, "aux_acc": math.nan},
        {"step": 2.0, "loss": 3.0, "q0": 3.0, "q1": 3.0, "q8": 3.0, "aux": 0.9, "aux_acc": 0.25},
    ]
    record = record_of(history, {"aux_weight": 0.5, "lm": {"aux_weight": 0.5, "onset_weight": 3.0}})
    assert record["lm_curve"][0] == {"step": 1.0, "loss": 4.0, "q0": 4.0, "q1": 4.0, "q8": 4.0, "aux": 1.5}
    assert record["lm_curve"][1]["aux_acc"] == 0.25
    card = render_model_card({"name": "t", "training": record}, CFG, None)
    assert "| step | aux | aux_acc | loss |" in card
    assert "--aux-weight 0.5 --onset-weight 3" in card and "auxiliary event loss" in card
    assert "with an impact weigh 4 in that average" in card
    assert "--video-lookahead 0" in card  # the test preset aligns by position as the original
    ahead = dataclasses.replace(CFG, lm=dataclasses.replace(CFG.lm, video_lookahead=1))
    ahead_card = render_model_card({"name": "t", "training": record}, ahead, None)
    assert "--video-lookahead 1" in ahead_card and "`lm.video_lookahead`" in ahead_card
    timed = dataclasses.replace(CFG, lm=dataclasses.replace(CFG.lm, video_lead_steps=2))  # tiny's
    timed_card = render_model_card({"name": "t", "training": record}, timed, None)
    assert "--video-l" not in timed_card and "audio step 2 ahead (`lm.video_lead_steps`" in timed_card
    assert "--no-phased-events" in card and "and the frame it starts on" not in card  # an older record
    phased = {**record, "settings": {**record["settings"], "phased_events": True}}
    phased_card = render_model_card({"name": "t", "training": phased}, CFG, None)
    assert "phased-events" not in phased_card and "and the frame it starts on" in phased_card
    later = dataclasses.replace(CFG, lm=dataclasses.replace(CFG.lm, video_lead_steps=5))
    assert "--video-lead-steps 5" in render_model_card({"name": "t", "training": record}, later, None)
    flip = not preset("tiny").lm.video_phase
    told = dataclasses.replace(CFG, lm=dataclasses.replace(CFG.lm, video_lead_steps=2, video_phase=flip))
    told_card = render_model_card({"name": "t", "training": record}, told, None)
    assert (" --video-phase" if flip else " --no-video-phase") in told_card
    assert ("`lm.video_phase`" in told_card) == flip
    wide = dataclasses.replace(ahead, visual=dataclasses.replace(ahead.visual, img_size=96))
    on_gpu = {**record, "settings": {**record["settings"], "device": "cuda", "machine": "x86_64, H200"}}
    gpu_card = render_model_card({"name": "t", "training": on_gpu}, wide, None)
    assert "--img-size 96 --device cuda`" in gpu_card and "96 px crop" in gpu_card
    assert "--device" not in card and "--img-size" not in render_model_card(
        {"name": "t", "training": record}, dataclasses.replace(CFG, visual=preset("tiny").visual), None
    )
    assert "- note:" not in card and "--clips" not in card  # the default number of clips
    # The Foley World version the clips came from, where the record has it (older ones do not).
    assert "Foley World clips of" in card
    worlded = {**record, "settings": {**record["settings"], "foley_world": "1.0"}}
    assert "Foley World 1.0 clips of" in render_model_card({"name": "t", "training": worlded}, CFG, None)
    fewer = {**record, "settings": {**record["settings"], "n_clips": 4}}
    assert "--clips 4 --aux-weight 0.5" in render_model_card({"name": "t", "training": fewer}, CFG, None)
    noted = render_model_card({"name": "t", "training": {**record, "note": "paused twice"}}, CFG, None)
    # A record without the codec's impact share is a run from before it: every excerpt was random.
    # ... and one without the onset weight's fade held it to the end, one without motion loss had none
    assert "--onset-weight 3 --onset-fade 1 1 --motion-weight 0 --codec-impact-share 0 " in card
    assert "just before an impact" not in card and ONSET_FADE != (1.0, 1.0)
    faded = {
        **record["settings"],
        "lm": {"onset_weight": 3.0, "onset_fade_start": 0.5, "onset_fade_end": 0.7},
    }
    faded_card = render_model_card({"name": "t", "training": {**record, "settings": faded}}, CFG, None)
    assert ("--onset-fade 0.5 0.7" in faded_card) == (ONSET_FADE != (0.5, 0.7))
    assert "weigh 4 in that average until 50% of the steps, falling linearly to 1 at 70%" in faded_card
    shared = {**record["settings"], "codec": {"impact_share": 0.5}}
    shared_card = render_model_card({"name": "t", "training": {**record, "settings": shared}}, CFG, None)
    assert "--codec-impact-share" not in shared_card and "50% of each batch's excerpts" in shared_card
    assert "- note: paused twice" in noted


def test_stream_workers_follow_the_workers_asked_for():
    from vaura_core.training.tiny import stream_workers

    # The 2-core CPU recipe: one renderer beside the transformer, two for the tower's frames.
    assert [s.workers for s in stream_workers(2)] == [1, 2]
    assert [s.workers for s in stream_workers(1)] == [1, 1]
    assert [s.workers for s in stream_workers(15)] == [14, 15]  # a GPU machine's spare cores
    from vaura_core.cli.train_tiny_cmd import default_workers

    assert default_workers("cpu") == 2
    assert default_workers("cuda") == max(2, (os.cpu_count() or 2) - 1)


def test_machine_description_names_the_cpu_and_its_vector_unit():
    from vaura_core.training.tiny import machine_description

    text = machine_description(torch.device("cpu"))
    assert text.startswith(f"{platform.machine()} {torch.get_num_threads()} threads, ")
    # The vector unit torch dispatches to (AVX2, AVX512, DEFAULT...): what set the speed of the run.
    assert text.endswith(f"({torch.backends.cpu.get_cpu_capability()})")


def test_train_tiny_img_size_builds_a_wider_tower():
    from vaura_core.cli.train_tiny_cmd import _config

    cfg = _config(None, 96)
    assert cfg.visual.img_size == 96 and cfg.lm == preset("tiny").lm and cfg.codec == preset("tiny").codec
    tower = VAura(cfg).visual_feature_extractor
    assert tower.pos_embed.shape[1] == 1 + (96 // 16) ** 2
    assert _config(None, None) == preset("tiny") and preset("tiny").lm.video_lead_steps == 2
    by_position = _config(2, None).lm
    assert by_position.video_lookahead == 2 and by_position.video_lead_steps is None
    by_time = _config(None, None, 5).lm
    assert by_time.video_lookahead == 0 and by_time.video_lead_steps == 5
    assert _config(None, None, None, True).lm.video_phase
    assert not _config(None, None, None, False).lm.video_phase
    assert not by_position.video_phase  # position alignment has no phase to tell


def test_train_tiny_tubelet_gives_finer_visual_tokens():
    from vaura_core.cli.train_tiny_cmd import _config
    from vaura_core.training.card import render_model_card

    cfg = _config(None, tubelet=1)
    assert cfg.visual.tubelet == 1 and cfg.lm.video_tokens == 4 * 16
    model = VAura(cfg)
    assert model.visual_feature_extractor.temp_embed.shape[1] == 16
    assert model.sampler.cls_embeddings(torch.zeros(1, 64, cfg.visual.dim)).shape == (1, 64, cfg.lm.video_dim)
    # each 40 ms token spans 3 or 4 audio steps
    assert set(torch.bincount(cfg.video_token_of_step(torch.arange(cfg.window_tokens))).tolist()) <= {3, 4}
    card = render_model_card({"name": "t", "training": {}}, cfg, None)
    assert "--tubelet 1" in card and "4 x 16 visual tokens" in card
    assert "--tubelet" not in render_model_card({"name": "t", "training": {}}, preset("tiny"), None)


def test_train_tiny_cli_checks_the_aux_weight(tmp_path, capsys):
    from vaura_core.cli import main

    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--aux-weight", "-1"]) == 2
    assert "--aux-weight" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--aux-weight", "nan"]) == 2
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--onset-weight", "-2"]) == 2
    assert "--onset-weight" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--onset-fade", "0.7", "0.5"]) == 2
    assert "--onset-fade needs 0 <= START <= END <= 1" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--video-lookahead", "-1"]) == 2
    assert "--video-lookahead" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--video-lookahead", "1", "--video-phase"]) == 2
    assert "--video-phase needs time alignment" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--tubelet", "3"]) == 2
    assert "--tubelet must be 1, 2, 4 or 8" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--tubelet", "1", "--video-lookahead", "1"]) == 2
    assert "--tubelet needs time alignment" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--video-lead-steps", "-1"]) == 2
    assert "--video-lead-steps must be between 0 and 64" in capsys.readouterr().err
    both = ["--video-lookahead", "1", "--video-lead-steps", "2"]
    assert main(["train-tiny", "--out", str(tmp_path / "m"), *both]) == 2
    assert "pick different alignments" in capsys.readouterr().err
    for size in ("40", "0", "240"):
        assert main(["train-tiny", "--out", str(tmp_path / "m"), "--img-size", size]) == 2
        assert "--img-size must be a multiple of 16" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    with pytest.raises(SystemExit):
        main(["train-tiny", "--help"])
    from vaura_core.training.tiny import N_CLIPS, ONSET_WEIGHT

    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default {ONSET_WEIGHT:g}, the shipped" in help_text and f"(default {N_CLIPS})" in help_text


def test_onset_weights_mark_the_timesteps_of_impact_tokens_by_time():
    labels = torch.tensor([[0, 2, 0, 0], [0, 0, 0, 1]])
    w = onset_token_weights(labels, 20, 4.0, seen=torch.tensor([True, True]))
    assert w.shape == (2, 20)
    assert w[0].tolist() == [1.0] * 5 + [5.0] * 5 + [1.0] * 10  # token 1 of 4 covers timesteps 5..9
    assert w[1].tolist() == [1.0] * 15 + [5.0] * 5
    # rows that saw the null video keep plain weights: nothing in it says where the impacts are
    assert (onset_token_weights(labels, 20, 4.0, seen=torch.tensor([False, True]))[0] == 1).all()


def test_weighted_codebook_losses_are_weighted_means_over_timesteps():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 9, 30, 17, generator=g)
    codes = torch.randint(0, 17, (2, 9, 21), generator=g)
    plain = codebook_losses(logits, codes)
    torch.testing.assert_close(codebook_losses(logits, codes, torch.ones(2, 21)), plain)
    only_first = torch.zeros(2, 21)
    only_first[0, 0] = 1.0
    want = torch.stack(
        [torch.nn.functional.cross_entropy(logits[0, q, q][None], codes[0, q, :1]) for q in range(9)]
    )
    torch.testing.assert_close(codebook_losses(logits, codes, only_first), want)


def test_onset_weighting_changes_training_and_needs_labels():
    clip = _clip(3, _random_events(3, 5 * CFG.visual.frames, 12))
    data = WindowSet(CFG, [clip], [_codes(clip, 3)])
    runs = []
    for extra in (0.0, 4.0):
        torch.manual_seed(0)
        s = LMTrainSettings(batch_size=2, warmup=1, cfg_dropout=0.0, aux_weight=0.0, onset_weight=extra)
        runs.append(train_lm(VAura(CFG), data, StepBudget(steps=2), seed=4, settings=s, log_every=1).history)
    assert runs[0][0]["loss"] != runs[1][0]["loss"]
    bare = WindowSet(CFG, [ClipData(3, clip.frames, clip.audio, 44100)], [_codes(clip, 3)])
    s = LMTrainSettings(batch_size=2, aux_weight=0.0, onset_weight=1.0)
    with pytest.raises(ValueError, match="onset weighting needs"):
        train_lm(VAura(CFG), bare, StepBudget(steps=1), seed=4, settings=s)
    with pytest.raises(ValueError, match="onset_weight"):
        train_lm(VAura(CFG), data, StepBudget(steps=1), seed=4, settings=LMTrainSettings(onset_weight=-1.0))


def test_the_onset_weight_holds_then_fades_to_zero():
    s = LMTrainSettings(onset_weight=5.0, onset_fade_start=0.5, onset_fade_end=0.7)
    assert [s.onset_weight_at(k, 100) for k in (0, 49, 50, 60, 70, 99)] == pytest.approx([5, 5, 5, 2.5, 0, 0])
    assert LMTrainSettings(onset_weight=5.0).onset_weight_at(99, 100) == 5.0  # the default: no fade
    step = LMTrainSettings(onset_weight=2.0, onset_fade_start=0.3, onset_fade_end=0.3)
    assert (step.onset_weight_at(29, 100), step.onset_weight_at(30, 100)) == (2.0, 0.0)
    for start, end in ((0.8, 0.5), (-0.1, 0.5), (0.5, 1.5)):
        with pytest.raises(ValueError, match="fade"):
            LMTrainSettings(onset_fade_start=start, onset_fade_end=end)


def test_train_lm_weighs_impact_tokens_by_the_faded_weight(monkeypatch):
    import vaura_core.training.lm_train as lm_train

    seen: list[float] = []
    real = lm_train.onset_token_weights

    def spy(labels, n_tokens, extra, seen_rows=None):
        seen.append(extra)
        return real(labels, n_tokens, extra, seen_rows)

    monkeypatch.setattr(lm_train, "onset_token_weights", spy)
    clip = _clip(3, _random_events(3, 5 * CFG.visual.frames, 12))
    data = WindowSet(CFG, [clip], [_codes(clip, 3)])
    s = LMTrainSettings(
        batch_size=2, warmup=1, aux_weight=0.0, onset_weight=4.0, onset_fade_start=0.25, onset_fade_end=0.75
    )
    train_lm(VAura(CFG), data, StepBudget(steps=4), seed=4, settings=s)
    assert seen == pytest.approx([4.0, 4.0, 2.0])  # step 3 of 4 has weight 0: plain means, no weights


def test_a_model_with_impact_cues_trains_its_own_event_head(tmp_path):
    from vaura_core.weights.store import load_model, save_model_dir

    cfg = dataclasses.replace(CFG, lm=dataclasses.replace(CFG.lm, video_lead_steps=2, impact_cues=9))
    clip = _clip(5, _random_events(5, 5 * cfg.visual.frames, 16), paint=True)
    data = WindowSet(cfg, [clip], [_codes(clip, 5)], phased=True)
    pretrained = EventHead(cfg.visual.dim, 9)
    pretrained.reset_parameters(torch.Generator().manual_seed(3))
    s = LMTrainSettings(batch_size=2, lr=3e-3, warmup=1, cfg_dropout=0.0, aux_weight=1.0)

    # The pretrained head is where the model's cue head starts (one step at a negligible rate).
    torch.manual_seed(0)
    model = VAura(cfg)
    still = dataclasses.replace(s, lr=1e-12)
    res = train_lm(model, data, StepBudget(steps=1), seed=2, settings=still, aux_head=pretrained)
    assert res.aux_head is not None and res.aux_head.proj is model.sampler.cue_head
    for name, p in pretrained.proj.state_dict().items():
        assert torch.allclose(model.sampler.cue_head.state_dict()[name], p, atol=1e-6), name

    torch.manual_seed(0)
    model = VAura(cfg)
    res = train_lm(model, data, StepBudget(steps=8), seed=2, settings=s, aux_head=pretrained, log_every=1)
    aux = [row["aux"] for row in res.history]
    assert aux[-1] < aux[0] - 0.15, aux
    head = model.sampler.cue_head
    assert not torch.allclose(head.weight, pretrained.proj.weight)  # the event loss trained the model's head
    assert float(model.sampler.cue_emb.abs().sum()) > 0  # and the transformer's loss reached the cues
    assert {"sampler.cue_head.weight", "sampler.cue_head.bias", "sampler.cue_emb"} <= set(model.state_dict())

    # The cues travel with the model folder.
    save_model_dir(tmp_path / "m", cfg, model.state_dict(), {})
    loaded = load_model(tmp_path / "m")
    assert loaded.cfg.lm.impact_cues == 9
    assert torch.equal(loaded.sampler.cue_emb, model.sampler.cue_emb)

    # A crashed run resumes to the same weights (the head's moments are among the model's groups).
    torch.manual_seed(0)
    straight = VAura(cfg)
    train_lm(straight, data, StepBudget(steps=4), seed=1, settings=s, aux_head=pretrained, log_every=1)
    ckpt = tmp_path / "lm.pt"
    _interrupted_run(cfg, data, s, ckpt, aux_head=pretrained)
    assert len(torch.load(ckpt, weights_only=True)["optimizer"]["param_groups"]) == 2
    torch.manual_seed(0)
    resumed = VAura(cfg)
    again = train_lm(
        resumed, data, StepBudget(steps=4), seed=1, settings=s, checkpoint=ckpt, aux_head=pretrained
    )
    assert again.steps == 4
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name
    # A checkpoint of another configuration is named, not a state-dict traceback.
    uncued = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, impact_cues=0))
    with pytest.raises(VauraError, match=r"lm\.pt: saved by a run with another model configuration"):
        train_lm(VAura(uncued), data, StepBudget(steps=5), seed=1, settings=s, checkpoint=ckpt)
    plain = WindowSet(cfg, [clip], [_codes(clip, 5)])
    with pytest.raises(ValueError, match="cue head has 9 classes, the labels 5"):
        train_lm(VAura(cfg), plain, StepBudget(steps=1), seed=1, settings=s)


def test_train_tiny_impact_cues_option_config_and_card(tmp_path, capsys):
    from vaura_core.cli import main
    from vaura_core.cli.train_tiny_cmd import _config
    from vaura_core.training.card import render_model_card
    from vaura_core.training.tiny import train_tiny

    cued = _config(None, impact_cues=True)
    assert cued.lm.impact_cues == 9 and cued.lm.video_lead_steps == 2  # none, 4 materials x 2 frames
    assert _config(None, tubelet=1, impact_cues=True).lm.impact_cues == 5
    assert _config(None, impact_cues=False).lm.impact_cues == 0
    assert _config(None).lm.impact_cues == preset("tiny").lm.impact_cues
    assert _config(1, impact_cues=None).lm.impact_cues == 0  # position alignment has no frame steps
    default_on = bool(preset("tiny").lm.impact_cues)
    card = render_model_card({"name": "t", "training": {}}, cued, None)
    assert ("--impact-cues" in card) != default_on and "`lm.impact_cues`" in card
    trained = {"name": "t", "training": {"settings": {"aux_weight": 1.0, "phased_events": True}}}
    assert "the model's own cue head (`lm.impact_cues`, shipped)" in render_model_card(trained, cued, None)
    uncued = render_model_card(trained, _config(None, impact_cues=False), None)
    assert "used only in training and not shipped" in uncued
    plain = render_model_card({"name": "t", "training": {}}, _config(None, impact_cues=False), None)
    assert ("--no-impact-cues" in plain) == default_on and "`lm.impact_cues`" not in plain
    out = str(tmp_path / "m")
    assert main(["train-tiny", "--out", out, "--impact-cues", "--video-lookahead", "1"]) == 2
    assert "--impact-cues needs time alignment" in capsys.readouterr().err
    assert main(["train-tiny", "--out", out, "--impact-cues", "--no-phased-events"]) == 2
    assert "--impact-cues needs the phased event labels" in capsys.readouterr().err
    with pytest.raises(VauraError, match="impact cues have 9 classes but the plain event labels 5"):
        train_tiny(tmp_path / "x", config=cued, phased_events=False)


def test_train_tiny_cue_span_option_config_and_card(tmp_path, capsys):
    from vaura_core.cli import main
    from vaura_core.cli.train_tiny_cmd import _config
    from vaura_core.training.card import render_model_card

    tiny_span = preset("tiny").lm.impact_cue_span
    other = tiny_span + 3
    spanned = _config(None, impact_cues=True, cue_span=other)
    assert spanned.lm.impact_cues == 9 and spanned.lm.impact_cue_span == other
    assert _config(None, impact_cues=True).lm.impact_cue_span == tiny_span
    assert _config(None, impact_cues=False, cue_span=other).lm.impact_cue_span == 1  # no cues to span
    card = render_model_card({"name": "t", "training": {}}, spanned, None)
    assert f"--cue-span {other}" in card and "`lm.impact_cue_span`" in card
    same = render_model_card({"name": "t", "training": {}}, _config(None, impact_cues=True), None)
    assert "--cue-span" not in same
    for temperature in (0.5, 1.0):
        lm = dataclasses.replace(spanned.lm, impact_cue_temperature=temperature)
        text = render_model_card({"name": "t", "training": {}}, dataclasses.replace(spanned, lm=lm), None)
        assert ("logits are divided by 0.5 (`lm.impact_cue_temperature`)" in text) == (temperature == 0.5)
    for views in (1, 2):
        lm = dataclasses.replace(spanned.lm, impact_cue_views=views)
        text = render_model_card({"name": "t", "training": {}}, dataclasses.replace(spanned, lm=lm), None)
        assert ("in 2 segmentations of the clip" in text and "`lm.impact_cue_views`" in text) == (views == 2)
    out = str(tmp_path / "m")
    assert main(["train-tiny", "--out", out, "--cue-span", "0"]) == 2
    assert "--cue-span must be between 1 and 32" in capsys.readouterr().err
    assert main(["train-tiny", "--out", out, "--cue-span", "4", "--no-impact-cues"]) == 2
    assert "--cue-span needs impact cues" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_a_work_checkpoint_of_another_configuration_is_named():
    from vaura_core.training.resume import load_part

    wider, saved = nn.Linear(4, 5), nn.Linear(4, 3)
    with pytest.raises(
        VauraError, match=r"tower\.pt: saved by a run with another model configuration \(size "
    ):
        load_part(wider, saved.state_dict(), Path("w/tower.pt"), "pretrain the tower again")
    same = nn.Linear(4, 5)
    load_part(wider, same.state_dict(), Path("w/tower.pt"), "pretrain the tower again")
    assert torch.equal(wider.weight, same.weight)

"""vaura-tiny training: data alignment, the teacher-forcing loss, and that a few steps learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaura_core.media.geometry import centre_crop
from vaura_core.model.config import preset
from vaura_core.model.vaura import VAura
from vaura_core.training.codec_train import (
    CodecTrainSettings,
    ImpactIndex,
    impact_crops,
    random_crops,
    train_codec,
)
from vaura_core.training.data import (
    MATERIAL_CLASSES,
    ClipData,
    EpochSampler,
    WindowSet,
    clip_token_count,
    frame_events,
    impact_starts,
    model_frames,
    segment_token,
    window_segments_of,
)
from vaura_core.training.lm_train import (
    LMTrainSettings,
    codebook_losses,
    lm_loss,
    teacher_forcing_inputs,
    train_lm,
)
from vaura_core.training.schedule import StepBudget, cosine_lr

CFG = preset("test")


def _fake_clip(seed: int, n_segments: int = 5) -> ClipData:
    rng = np.random.default_rng(seed)
    n = n_segments * CFG.visual.frames
    frames = rng.integers(0, 256, (n, CFG.visual.img_size, CFG.visual.img_size, 3), dtype=np.uint8)
    audio = rng.standard_normal(int(n / CFG.fps * 44100)).astype(np.float32) * 0.1
    # Some impacts, so that the default training (with the visual event loss) has labels.
    events = [
        {"frame": int(f), "kind": "impact", "material": MATERIAL_CLASSES[int(f) % 4], "strength": 0.5}
        for f in rng.choice(n, n // 8, replace=False)
    ]
    return ClipData(seed, frames, audio, 44100, frame_events(events, n))


def _fake_codes(clip: ClipData, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = clip_token_count(CFG, len(clip.frames))
    return torch.randint(0, CFG.vocab_size, (CFG.n_codebooks, n), generator=g)


def test_model_frames_follow_the_inference_geometry():
    # A picture whose left half is black and right half white: the crop keeps the edge in the middle.
    pictures = np.zeros((2, 128, 128, 3), dtype=np.uint8)
    pictures[:, :, 64:] = 255
    out = model_frames(pictures, 64)
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8
    scaled_size = round(64 * 256 / 224)  # 73: the short side the media pipeline scales to
    assert scaled_size == 73
    # 128 -> 73 puts the edge at 36.5 px; the crop starts at round(9 / 2) = 4, so it lands at 32.5.
    assert (out[:, :, :31] == 0).all() and (out[:, :, 34:] == 255).all()
    assert centre_crop(np.zeros((73, 73)), 64).shape == (64, 64)


def test_windows_slice_frames_and_tokens_like_the_engine():
    from vaura_core.engine.timeline import Timeline

    clip = _fake_clip(1)
    codes = _fake_codes(clip, 1)
    data = WindowSet(CFG, [clip], [codes])
    assert window_segments_of(CFG, len(clip.frames)) == [0, 1]
    assert len(data) == 2
    frames, batch_codes = data.batch([1])
    assert frames.shape == (1, 4, 3, 16, CFG.visual.img_size, CFG.visual.img_size)
    assert batch_codes.shape == (1, CFG.n_codebooks, CFG.window_tokens)
    # Segment 1 = frames 16..79, scaled to [-1, 1] as the media pipeline does.
    first = torch.from_numpy(clip.frames[16]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(frames[0, 0, :, 0], first)
    last = torch.from_numpy(clip.frames[79]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(frames[0, 3, :, 15], last)
    t0 = Timeline(CFG).segment_token(1)
    assert segment_token(CFG, 1) == t0 == 55
    assert torch.equal(batch_codes[0], codes[:, t0 : t0 + CFG.window_tokens])


def test_teacher_forcing_hides_the_last_step_and_aligns_targets():
    codes = torch.randint(0, 64, (2, 9, 221))
    seq = teacher_forcing_inputs(codes, 64)
    assert seq.shape == (2, 9, 230)
    for q in range(9):
        assert torch.equal(seq[:, q, q + 1 : q + 221], codes[:, q, :220])
        assert (seq[:, q, q + 221] == 64).all()  # step 220 is never shown
    # Logits that put all their mass on code (q, t) at position t + q give (almost) zero loss ...
    logits = torch.full((2, 9, 230, 64), -30.0)
    for q in range(9):
        logits[:, q, q : q + 221].scatter_(-1, codes[:, q, :, None], 30.0)
    assert codebook_losses(logits, codes).max() < 1e-6
    # ... and one position off they are wrong.
    shifted = torch.roll(logits, 1, dims=2)
    assert codebook_losses(shifted, codes).min() > 10


def test_cosine_schedule_and_fixed_budget():
    assert cosine_lr(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert cosine_lr(100, 100, 1.0, 10, floor=0.05) == pytest.approx(0.05)
    budget = StepBudget(steps=7)
    budget.start()
    assert budget.update(3) == 7 and not budget.finished(6) and budget.finished(7)
    with pytest.raises(ValueError, match="steps or seconds"):
        StepBudget()


def test_epoch_sampler_is_deterministic_and_covers_each_epoch():
    a, b = EpochSampler(10, 3, seed=5), EpochSampler(10, 3, seed=5)
    assert [a.indices(k) for k in range(6)] == [b.indices(k) for k in range(6)]
    epoch = [i for k in range(3) for i in a.indices(k)]
    assert len(set(epoch)) == 9  # three batches of 3 from one permutation of 10
    assert EpochSampler(10, 3, seed=6).indices(0) != a.indices(0)


def _lm_run(seed: int, steps: int) -> tuple[VAura, list[float], torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = VAura(CFG)
    clip = _fake_clip(2)
    data = WindowSet(CFG, [clip], [_fake_codes(clip, 2)])
    frames, codes = data.batch([0, 1])
    with torch.no_grad():
        before = float(lm_loss(model, frames, codes)[0])
    settings = LMTrainSettings(batch_size=2, lr=3e-3, warmup=1, cfg_dropout=0.0)
    res = train_lm(model, data, StepBudget(steps=steps), seed=seed, settings=settings, log_every=1)
    return model, [before, *(row["loss"] for row in res.history)], frames, codes


def test_a_few_lm_steps_lower_the_loss_deterministically():
    model, losses, frames, codes = _lm_run(seed=3, steps=4)
    with torch.no_grad():
        after = float(lm_loss(model, frames, codes)[0])
    assert after < losses[0] - 0.3, losses  # both windows are the whole data set: it must fit them
    again, losses2, _, _ = _lm_run(seed=3, steps=4)
    assert losses == losses2
    for (name, p), q in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert not any(p.requires_grad for p in model.parameters())  # handed back ready for inference


def test_lm_training_resumes_from_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    clip = _fake_clip(4)
    data = WindowSet(CFG, [clip], [_fake_codes(clip, 4)])
    settings = LMTrainSettings(batch_size=2, warmup=1)
    straight = VAura(CFG)
    train_lm(straight, data, StepBudget(steps=4), seed=1, settings=settings)
    ckpt = tmp_path / "lm.pt"

    def crash(row: dict[str, float]) -> None:
        if row["step"] == 2:
            raise KeyboardInterrupt  # after step 2, before its checkpoint: step 1 is on disk

    torch.manual_seed(0)
    crashed = VAura(CFG)
    with pytest.raises(KeyboardInterrupt):
        train_lm(
            crashed,
            data,
            StepBudget(steps=4),
            seed=1,
            settings=settings,
            checkpoint=ckpt,
            checkpoint_seconds=0.0,
            log_every=1,
            on_log=crash,
        )
    torch.manual_seed(0)
    resumed = VAura(CFG)  # a fresh process: everything comes from the checkpoint
    res = train_lm(resumed, data, StepBudget(steps=4), seed=1, settings=settings, checkpoint=ckpt)
    assert res.steps == 4
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name


def test_a_few_codec_steps_lower_the_loss_deterministically():
    t = np.arange(44100) / 44100
    # Decaying tones: the codec must learn to reproduce them from random weights.
    audio = [(0.5 * np.sin(2 * np.pi * f * t) * np.exp(-3 * t)).astype(np.float32) for f in (220, 880)]
    settings = CodecTrainSettings(batch_size=2, crop_tokens=8, warmup=1, lr=3e-3)
    runs = [
        train_codec(audio, CFG.codec, StepBudget(steps=6), seed=2, settings=settings, log_every=3)
        for _ in range(2)
    ]
    first, last = runs[0].history[0]["mel"], runs[0].history[-1]["mel"]
    assert last < first, runs[0].history
    assert runs[0].history == runs[1].history
    state = runs[0].state_dict
    assert not any(k.endswith(("weight_g", "weight_v")) for k in state)  # folded for `Codec`
    from vaura_core.model.codec import Codec

    codec = Codec.from_state_dict(CFG.codec, state)
    codes = codec.encode(torch.from_numpy(audio[0][:4096]), 44100)
    assert codes.shape == (1, CFG.n_codebooks, 8)
    # Given the impacts, half of each batch sits on them: other crops, another run.
    impacts = [np.array([[0, 1]]), np.array([[0, 2]])]
    on_impacts = train_codec(
        audio, CFG.codec, StepBudget(steps=3), seed=2, settings=settings, log_every=3, impacts=impacts
    )
    assert on_impacts.history[0]["mel"] != runs[0].history[0]["mel"]
    bad = CodecTrainSettings(impact_share=1.5)
    with pytest.raises(ValueError, match="impact_share"):
        train_codec(audio, CFG.codec, StepBudget(steps=1), seed=2, settings=bad, impacts=impacts)


def test_impact_starts_are_the_contact_frames_in_samples():
    events = [
        {"frame": 5, "kind": "impact", "material": "glass", "strength": 0.4},
        {"frame": 30, "kind": "impact", "material": "drum", "strength": 0.9},
        {"frame": 12, "kind": "slide", "material": "wood", "strength": 0.2, "end_frame": 20},
    ]
    frames, audio = np.zeros((40, 8, 8, 3), np.uint8), np.zeros(70560, np.float32)
    clip = ClipData(0, frames, audio, 44100, frame_events(events, 40))
    rows = impact_starts(clip, 25)
    glass, drum = MATERIAL_CLASSES.index("glass") + 1, MATERIAL_CLASSES.index("drum") + 1
    assert rows.tolist() == [[5 * 1764, glass], [30 * 1764, drum]]
    assert impact_starts(ClipData(0, clip.frames, clip.audio, 44100, None), 25).shape == (0, 2)


def test_impact_crops_hold_the_attack_and_draw_materials_evenly():
    # A click at each impact, 1.0 for the lone class-1 impact, 0.5 for the nine of class 2, far enough
    # apart that a crop holds one: materials must come up about equally often all the same, and every
    # crop must hold its click 5-50 % of the way in.
    audio = np.zeros(200_000, np.float32)
    starts = [10_000] + [20_000 + 15_000 * i for i in range(9)]
    audio[starts[0]] = 1.0
    audio[starts[1:]] = 0.5
    rows = np.array([[starts[0], 1]] + [[s, 2] for s in starts[1:]])
    index = ImpactIndex([rows])
    length = 4096
    crops = impact_crops([audio], index, 400, length, torch.Generator().manual_seed(0))[:, 0]
    assert crops.shape == (400, length)
    peak, at = crops.abs().max(dim=-1)
    assert int((crops != 0).sum()) == 400  # one click in every crop
    assert int(at.min()) >= int(0.05 * length) and int(at.max()) <= int(0.5 * length)
    lone = int((peak == 1.0).sum())
    assert 150 <= lone <= 250, lone
    again = impact_crops([audio], index, 400, length, torch.Generator().manual_seed(0))[:, 0]
    assert torch.equal(crops, again)
    assert random_crops([audio], 0, length, torch.Generator()).shape == (0, 1, length)
    assert not ImpactIndex([np.zeros((0, 2), np.int64)])


def test_train_tiny_cli_rejects_bad_input(tmp_path, capsys):
    from vaura_core.cli import main

    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train-tiny", "--out", str(blocker)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--tower-steps", "0"]) == 2
    assert "--tower-steps must be at least 1" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--clips", "9999"]) == 2
    assert "--clips must be at most 9996" in capsys.readouterr().err
    assert main(["train-tiny", "--out", str(tmp_path / "m"), "--codec-impact-share", "1.5"]) == 2
    assert "--codec-impact-share must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "m-work").exists()  # refused before anything was written

"""Fresh-clip training data (`ClipStream`), the visual tower's event pretraining and the video probe."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tests.test_training_aux import _clip, _codes, _random_events
from vaura_core.errors import VauraError
from vaura_core.model.config import preset
from vaura_core.model.vaura import VAura
from vaura_core.training import stream as stream_mod
from vaura_core.training.data import ClipData, WindowSet, clip_token_count
from vaura_core.training.lm_train import LMTrainSettings, train_lm, video_reliance
from vaura_core.training.schedule import StepBudget
from vaura_core.training.stream import ClipStream, StreamSettings
from vaura_core.training.tower_train import TowerTrainSettings, pretrain_tower

CFG = preset("test")
SECONDS = CFG.window_segments * CFG.segment_seconds  # one window per clip: quick to render


def _codec_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return VAura(CFG).audio_encoder.model.state_dict()


def _stream(workers: int, codec: bool = True, **kw: float) -> ClipStream:
    settings = StreamSettings(
        workers=workers, initial_clips=2, buffer_clips=3, clips_per_step=0.5, prefetch=1
    )
    settings = StreamSettings(**{**settings.__dict__, **kw})
    return ClipStream(CFG, _codec_state() if codec else None, range(500, 520), SECONDS, settings)


def test_the_schedule_adds_clips_at_the_set_rate_and_keeps_the_newest():
    with _stream(0) as s:
        assert [s.available(k) for k in range(6)] == [(0, 2), (0, 2), (0, 3), (0, 3), (1, 4), (1, 4)]
        assert s.clips_used(6) == 4
        with pytest.raises(VauraError, match="20 scenes"):
            s.available(40)


def test_batches_depend_only_on_the_seed_and_step_and_carry_real_codes_and_labels():
    with _stream(0) as a, _stream(0) as b:
        mine = []
        for step in range(4):
            fa, ca, la = a.step_batch(step, 3, seed=5)
            fb, cb, lb = b.step_batch(step, 3, seed=5)
            assert torch.equal(fa, fb) and torch.equal(ca, cb) and torch.equal(la, lb)
            mine.append(fa)
        size = CFG.visual.img_size
        assert fa.shape == (3, CFG.window_segments, 3, CFG.visual.frames, size, size)
        assert ca.shape == (3, CFG.n_codebooks, CFG.window_tokens) and int(ca.max()) > 0
        assert la.shape == (3, CFG.lm.video_tokens)
        others = [a.step_batch(step, 3, seed=6)[0] for step in range(4)]
        assert not all(torch.equal(x, y) for x, y in zip(mine, others, strict=True))
        assert int(a.label_counts()[1:].sum()) > 0  # Foley World impacts are labelled


def test_worker_processes_give_the_same_batches_as_rendering_in_process():
    with _stream(0) as here, _stream(1) as there:
        for step in (0, 3):
            for x, y in zip(here.step_batch(step, 2, seed=1), there.step_batch(step, 2, seed=1), strict=True):
                assert torch.equal(x, y)


def test_a_stream_without_codec_gives_zero_codes_of_the_right_shape():
    with _stream(0, codec=False) as s:
        _frames, codes, labels = s.step_batch(0, 2, seed=0)
    assert codes.shape == (2, CFG.n_codebooks, CFG.window_tokens) and not codes.any()
    assert labels is not None


def test_a_failing_scene_is_named(monkeypatch: pytest.MonkeyPatch):
    def broken(seed: int, cfg: object, duration: float, **kw: object) -> None:
        raise RuntimeError("no pictures")

    monkeypatch.setattr(stream_mod, "render_clip", broken)
    with _stream(0) as s, pytest.raises(VauraError, match="scene 500 failed: no pictures"):
        s.step_batch(0, 1, seed=0)


def test_bad_stream_settings_are_refused():
    with pytest.raises(ValueError, match="stream settings"):
        _stream(0, initial_clips=5)  # more than the buffer holds


def _painted_windows(seed: int) -> WindowSet:
    n = 5 * CFG.visual.frames
    clip = _clip(seed, _random_events(seed, n, 16), paint=True)
    return WindowSet(CFG, [clip], [_codes(clip, seed)])


def test_tower_pretraining_learns_the_events_and_leaves_the_transformer_alone():
    data = _painted_windows(3)
    torch.manual_seed(0)
    model = VAura(CFG)
    before = {k: v.clone() for k, v in model.sampler.state_dict().items()}
    settings = TowerTrainSettings(batch_size=2, lr=3e-3, warmup=1)
    res = pretrain_tower(model, data, StepBudget(steps=12), seed=1, settings=settings, log_every=1)
    aux = [row["aux"] for row in res.history]
    assert all(b < a for a, b in itertools.pairwise(aux)) and aux[-1] < aux[0] - 0.15, aux
    assert res.steps == 12 and len(res.history) == 12
    for k, v in model.sampler.state_dict().items():
        assert torch.equal(v, before[k]), k

    # The transformer stage goes on with that head rather than a fresh one.
    head_weight = res.head.proj.weight.detach().clone()
    lm_settings = LMTrainSettings(batch_size=2, warmup=1, lr=1e-9)  # too small to move anything
    out = train_lm(model, data, StepBudget(steps=1), seed=1, settings=lm_settings, aux_head=res.head)
    assert out.aux_head is res.head
    torch.testing.assert_close(res.head.proj.weight, head_weight, rtol=1e-5, atol=1e-6)


def test_tower_pretraining_needs_labels():
    clip = _clip(4, [])
    bare = WindowSet(CFG, [ClipData(4, clip.frames, clip.audio, 44100)], [_codes(clip, 4)])
    with pytest.raises(ValueError, match="event labels"):
        pretrain_tower(VAura(CFG), bare, StepBudget(steps=1), seed=0)


def test_the_probe_columns_are_logged_with_the_video_reliance_losses():
    data = _painted_windows(5)
    torch.manual_seed(0)
    model = VAura(CFG)
    probe = data.batch([0, 1])
    own, other = video_reliance(model, *probe)
    assert np.isfinite(own) and np.isfinite(other) and own != other  # the rolled video changes the loss
    res = train_lm(
        model,
        data,
        StepBudget(steps=4),
        seed=0,
        settings=LMTrainSettings(batch_size=2, warmup=1),
        log_every=2,
        probe=probe,
        probe_every=4,
    )
    assert "probe_own" not in res.history[0] and {"probe_own", "probe_other"} <= set(res.history[1])


def test_clip_token_count_matches_the_stream_codes():
    with _stream(0) as s:
        ws = s.window_set(0)
    assert ws.codes[0].shape[1] == clip_token_count(CFG, ws.frames[0].shape[0])

"""Still pictures make no hits: frame changes, the clip's moving frames, and cues gated by them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.lm_fixtures import spy_on_windows
from vaura_core.engine.engine import ClipFeatures, Engine
from vaura_core.engine.features import compute_clip_features
from vaura_core.engine.stillness import BEFORE, STILL_CHANGE, FrameChanges
from vaura_core.generation.sampling import SamplingParams
from vaura_core.model.config import preset
from vaura_core.model.vaura import build_model


def _cue_cfg():
    cfg = preset("test")
    return dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lead_steps=2, impact_cues=9))


def _segments(values: np.ndarray, frames: int = 16, size: int = 8) -> torch.Tensor:
    """(n, 3, frames, size, size) segments whose frame i is filled with values[i]."""
    x = torch.tensor(values, dtype=torch.float32)[:, None, None, None].expand(-1, 3, size, size)
    return x.reshape(-1, frames, 3, size, size).transpose(1, 2).contiguous()


def test_frame_changes_span_batches_and_mark_frames_near_motion():
    rng = np.random.default_rng(0)
    values = np.zeros(64)
    values[:20] = np.arange(20) * 0.5  # moving for 20 frames (a change of 0.5 each)
    values[20:] = values[19]  # then still
    values += rng.uniform(-STILL_CHANGE / 3, STILL_CHANGE / 3, 64)  # noise below the threshold
    segs = _segments(values)
    changes = FrameChanges()
    changes.add(segs[:1])  # two batches: the change across their boundary counts too
    changes.add(segs[1:])
    moving = changes.moving(80)  # 16 frames past the clip: padding, still
    last_change = 19
    expected = np.zeros(80, bool)
    expected[: last_change + BEFORE + 1] = True  # a frame sees changes from BEFORE before it
    assert moving.numpy().tolist() == expected.tolist()
    # Frame 0 has no frame before it: its change is unknown, so it and the frames that see it move.
    still = FrameChanges()
    still.add(_segments(np.full(32, 0.3)))
    assert still.moving(32).numpy().tolist() == [True] * (BEFORE + 1) + [False] * (32 - BEFORE - 1)


def _square_clip(path: Path, moving_s: float, still_s: float, fps: int = 25) -> Path:
    """A white square crossing a grey picture for `moving_s` seconds, then standing still."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        n_moving, n = round(moving_s * fps), round((moving_s + still_s) * fps)
        for i in range(n):
            picture = np.full((64, 64, 3), 90, np.uint8)
            x = 4 + 2 * min(i, n_moving - 1)
            picture[24:36, x : x + 12] = 240
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_clip_features_mark_where_the_picture_moves(tmp_path: Path):
    clip = _square_clip(tmp_path / "square.mp4", 1.0, 1.6)
    torch.manual_seed(0)
    model = build_model(_cue_cfg()).eval()
    feats = compute_clip_features(model, clip)
    assert feats.moving is not None and feats.moving.dtype == torch.bool
    assert feats.moving.shape == (*feats.features.shape[:2], model.cfg.visual.tubelet)
    per_frame = feats.moving.reshape(-1)
    assert per_frame[:24].all()  # the square moves for 25 frames
    assert not per_frame[30:].any()  # then nothing changes, the padding neither
    torch.manual_seed(0)
    assert compute_clip_features(build_model(preset("test")).eval(), clip).moving is None


def test_still_frames_get_no_cues():
    torch.manual_seed(0)
    lm = build_model(_cue_cfg()).eval().sampler
    with torch.no_grad():
        lm.cue_head.bias.copy_(torch.arange(9, dtype=torch.float32))  # every impact class likely
    feats = torch.randn(2, 32, lm.cfg.visual.dim)
    gate = torch.ones(2, 32, 2, dtype=torch.bool)
    gate[0, 5, 1] = gate[1, :, 0] = False  # one frame of a token; the first frame of every token
    with torch.no_grad():
        free = lm.project_video(feats)
        gated = lm.project_video(feats, cue_gate=gate)
    dim = lm.cfg.lm.video_dim
    assert torch.equal(free[..., :dim], gated[..., :dim])  # the video channel is untouched
    probs, kept = free[..., dim:].reshape(2, 32, 2, 4), gated[..., dim:].reshape(2, 32, 2, 4)
    assert (probs > 0).all()
    assert torch.equal(kept, probs * gate[..., None])


def test_the_engine_gates_each_window_and_its_predicted_hits(monkeypatch):
    torch.manual_seed(0)
    model = build_model(_cue_cfg()).eval()
    segs = model.cfg.window_segments + 2
    feats = torch.randn(segs, 8, model.cfg.visual.dim)
    moving = torch.zeros(segs, 8, 2, dtype=torch.bool)
    moving[::2] = True  # every other segment moves
    seen = spy_on_windows(monkeypatch, "cue_gate")
    eng = Engine(model, "test")
    clip = ClipFeatures(feats, segs * 0.64, None, moving)
    eng.generate(clip, SamplingParams(), [1], chains=1, candidates=1)
    assert len(seen) > 1
    for f, g in seen:
        first = int(torch.nonzero((feats.reshape(segs, -1) == f[0, :8].reshape(-1)).all(-1))[0])
        want = moving[first : first + model.cfg.window_segments].reshape(1, -1, 2)
        assert torch.equal(g, want)
    with torch.no_grad():  # likely hits that vary from frame to frame: peaks everywhere
        model.sampler.cue_head.bias.copy_(torch.tensor([-9.0] + [3.0] * 8))
        model.sampler.cue_head.weight.normal_(0.0, 0.5)

    def segment_of(times: np.ndarray) -> np.ndarray:
        return np.floor(times / (16 / model.cfg.fps))

    hits = eng._hits(clip)
    assert len(hits) and (segment_of(hits) % 2 == 0).all()  # none where the picture is still
    ungated = eng._hits(dataclasses.replace(clip, moving=None))
    assert (segment_of(ungated) % 2 == 1).any()


@pytest.mark.parametrize("value", [0.0, STILL_CHANGE * 0.9])
def test_a_picture_changing_less_than_the_threshold_is_still(value):
    changes = FrameChanges()
    values = np.zeros(32)
    values[1::2] = value  # flickers below the threshold
    changes.add(_segments(values))
    assert not changes.moving(32)[BEFORE + 1 :].any()

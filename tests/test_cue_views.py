"""Impact cues read from the model's own segmentation and ones shifted by part of a segment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.lm_fixtures import random_features, random_lm, spy_on_windows
from tests.media_factory import make_video
from vaura_core.engine.cue_views import EDGE_WEIGHT, CueViews, token_weights
from vaura_core.engine.engine import ClipFeatures, Engine
from vaura_core.engine.features import compute_clip_features
from vaura_core.generation.generate import generate_window
from vaura_core.generation.sampling import SamplingParams
from vaura_core.media.frames import model_segments
from vaura_core.media.probe import probe
from vaura_core.model.config import preset
from vaura_core.model.vaura import build_model


def _cue_cfg(views: int):
    cfg = preset("test")
    lm = dataclasses.replace(cfg.lm, video_lead_steps=2, impact_cues=9, impact_cue_views=views)
    return dataclasses.replace(cfg, lm=lm)


def _time_encoder(tokens: int, tubelet: int):
    """A stand-in tower whose token k of a segment is the mean of its frames' values: with frames
    valued by their index in the clip, every view must give a token the same number."""

    def encode(segments: torch.Tensor) -> torch.Tensor:
        per_frame = segments.mean(dim=(1, 3, 4))  # (n, F)
        per_token = per_frame.reshape(len(segments), tokens, tubelet).mean(-1)
        return per_token[..., None].expand(-1, -1, 3).clone()

    return encode


@pytest.mark.parametrize("views", [2, 4])
def test_shifted_views_line_up_with_the_clips_tokens(views):
    cfg = _cue_cfg(views)
    frames, tubelet = cfg.visual.frames, cfg.visual.tubelet
    tokens = frames // tubelet
    n_seg = 7
    clip = torch.arange(n_seg * frames, dtype=torch.float32)  # frame i holds the value i
    segs = clip.reshape(n_seg, 1, frames, 1, 1).expand(n_seg, 3, frames, 4, 4)
    encode = _time_encoder(tokens, tubelet)
    collected = CueViews(cfg, encode)
    for batch in (segs[:3], segs[3:4], segs[4:]):  # batches of any size, in order
        collected.add(batch)
    own = encode(segs)
    got = collected.combine(own)
    assert got.shape == own.shape
    assert torch.allclose(got, own)  # the same frames, whichever segmentation saw them
    # Each shifted view covers every token from its offset to the last segment's start.
    for parts, offset in zip(collected._parts, collected.offsets, strict=True):
        assert offset == frames // views * (collected.offsets.index(offset) + 1)
        assert sum(len(p) for p in parts) == n_seg - 1


def test_views_are_averaged_with_less_weight_on_segment_edges():
    cfg = _cue_cfg(2)
    tokens = cfg.visual.frames // cfg.visual.tubelet
    n_seg = 3
    segs = torch.zeros(n_seg, 3, cfg.visual.frames, 4, 4)
    # own segmentation says 0 everywhere, the shifted one says 1: a token's result is the shifted
    # view's share of the weight.
    views = CueViews(cfg, lambda s: torch.ones(len(s), tokens, 2))
    views.add(segs)
    got = views.combine(torch.zeros(n_seg, tokens, 2))[..., 0].reshape(-1)
    w = token_weights(tokens)
    assert w[0] == w[-1] == EDGE_WEIGHT and torch.all(w[1:-1] == 1)
    half = tokens // 2
    for t in range(n_seg * tokens):
        shifted = t - half
        if shifted < 0 or shifted >= (n_seg - 1) * tokens:  # the clip's ends: only its own view
            assert got[t] == 0, t
            continue
        w_own, w_view = w[t % tokens], w[shifted % tokens]
        assert torch.isclose(got[t], w_view / (w_own + w_view)), t


def test_one_view_and_models_without_cues_keep_no_cue_features(tmp_path: Path):
    clip = make_video(tmp_path / "c.mp4", duration=3.0, size=(64, 48))
    for cfg in (_cue_cfg(1), preset("test")):
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        assert compute_clip_features(model, clip).cue_features is None


def test_clip_features_carry_the_views_cue_features(tmp_path: Path):
    clip = make_video(tmp_path / "c.mp4", duration=3.3, size=(64, 48))  # not a whole window
    torch.manual_seed(0)
    model = build_model(_cue_cfg(2)).eval()
    got = compute_clip_features(model, clip)
    assert got.cue_features is not None and got.cue_features.shape == got.features.shape
    info = probe(clip)
    segs = torch.cat(list(model_segments(info, model.cfg)))
    with torch.inference_mode():
        want = CueViews(model.cfg, model.encode_segments)
        want.add(segs)
        n = len(segs)
        expect = want.combine(got.features[:n])
    # every real segment but the last, whose shifted view runs into the frames held after the clip
    k = (n - 1) * segs.shape[2] // model.cfg.visual.tubelet
    flat = got.cue_features.reshape(-1, got.features.shape[-1])
    assert torch.allclose(flat[:k], expect.reshape(-1, got.features.shape[-1])[:k], atol=1e-5)
    assert not torch.allclose(got.cue_features, got.features)


def test_generation_reads_the_cues_from_the_cue_features():
    lm = random_lm(seed=12, lead_steps=2, cues=9)
    feats = random_features(lm)
    other = random_features(lm, seed=2)
    params = SamplingParams(temperature=1.0, top_k=0, cfg_scale=3.0)
    n = lm.cfg.window_tokens

    def run(cues):
        return generate_window(lm, feats, n, params=params, seeds=[5], cue_features=cues, keep_logits=True)

    plain, same, moved = run(None), run(feats), run(other)
    assert torch.equal(plain.codes, same.codes)
    assert not torch.allclose(torch.stack(plain.step_logits), torch.stack(moved.step_logits))
    # the cue features move the cues only: the video channel is the features' own
    video = lm.project_video(feats, None, other)
    dim = lm.cfg.lm.video_dim
    assert torch.equal(video[..., :dim], lm.project_video(feats)[..., :dim])
    assert torch.allclose(video[..., dim:], lm.project_video(other)[..., dim:])
    with pytest.raises(ValueError, match="differ in shape"):
        run(other[:, :-1])


def test_engine_passes_each_windows_cue_features(monkeypatch):
    torch.manual_seed(0)
    model = build_model(_cue_cfg(2)).eval()
    segs = model.cfg.window_segments + 3
    feats = torch.randn(segs, 8, model.cfg.visual.dim)
    cues = feats + torch.arange(segs, dtype=torch.float32)[:, None, None]  # says which segment
    seen = spy_on_windows(monkeypatch, "cue_features")
    Engine(model, "test").generate(ClipFeatures(feats, segs * 0.64, cues), SamplingParams(), [1], chains=1)
    assert len(seen) > 1
    dim = feats.shape[-1]
    for f, c in seen:
        # every row of a window: the cue features of the same segments as its features
        index = (c - f).reshape(len(c), -1, 8, dim)[:, :, 0, 0].round().long()
        for row in range(len(c)):
            segments = index[row].tolist()
            assert segments == list(range(segments[0], segments[0] + len(segments)))
            assert torch.allclose(f[row], feats[segments].reshape(-1, dim))


def test_cue_views_must_divide_a_segment():
    cfg = _cue_cfg(1)
    with pytest.raises(ValueError, match="impact_cue_views must divide"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, impact_cue_views=3))
    with pytest.raises(ValueError, match="impact_cue_views must divide"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, impact_cue_views=0))
    assert preset("tiny").lm.impact_cue_views == 2


def test_bench_times_the_views_and_passes_their_cues(monkeypatch):
    from vaura_core import bench

    torch.manual_seed(0)
    model = build_model(_cue_cfg(2)).eval()
    encoded, cues = [], []
    real_encode, real_window = model.encode_segments, bench.generate_window

    def count(segments, *a, **kw):
        encoded.append(len(segments))
        return real_encode(segments, *a, **kw)

    def spy(lm, features, n, **kw):
        cues.append(kw["cue_features"])
        return real_window(lm, features, n, **kw)

    monkeypatch.setattr(model, "encode_segments", count)
    monkeypatch.setattr(bench, "generate_window", spy)
    res = bench.run_bench(model, name="t", tokens=24, uncached=False)
    segs = model.cfg.window_segments
    assert encoded == [1, segs, segs - 1]  # warm-up, the window, its shifted view
    assert cues and all(c is not None and c.shape[1] == segs * 8 for c in cues)
    assert res.visual_encode_s > 0

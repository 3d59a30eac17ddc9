"""Window planning, whole-clip generation of any length, region regeneration and splicing."""

import numpy as np
import pytest
import torch

from tests.lm_fixtures import random_lm
from vaura_core.engine.engine import ClipFeatures, Engine, apply_take, track_from_take
from vaura_core.engine.splice import equal_power_fades, splice
from vaura_core.engine.timeline import Timeline, plan_windows
from vaura_core.generation.sampling import SamplingParams
from vaura_core.model.config import preset

CFG = preset("test")
TL = Timeline(CFG)


def test_window_plans_cover_range_with_release_prompt_lengths():
    n_seg = TL.segments_for(10.0)
    total = TL.tokens_for(10.0)
    plans = plan_windows(TL, 0, total, n_seg, stride_segments=1)
    assert plans[0].prompt_len == 0 and plans[0].n_tokens == 221
    assert all(p.prompt_len in (165, 166) for p in plans[1:-1])
    # contiguous, complete, each window inside the clip's segments and aligned to its first segment
    assert [p.prompt_from for p in plans[1:]] == [p.token_end for p in plans[:-1]]
    assert plans[-1].token_end == total
    for p in plans:
        assert p.segment + CFG.window_segments <= n_seg
        assert p.token_start == round(p.segment * 0.64 * 44100 / 512)
        assert 0 <= p.prompt_len < p.n_tokens <= 221
    # 1.28 s stride keeps 111 tokens of context
    wide = plan_windows(TL, 0, total, n_seg, stride_segments=2)
    assert all(p.prompt_len in (110, 111) for p in wide[1:-1])


@pytest.mark.parametrize("seconds", [0.5, 2.56, 3.0, 7.37])
def test_plans_for_odd_durations(seconds):
    plans = plan_windows(TL, 0, TL.tokens_for(seconds), TL.segments_for(seconds))
    assert plans[-1].token_end == TL.tokens_for(seconds)


def test_region_plan_starts_inside_a_window():
    n_seg = TL.segments_for(8.0)
    p0 = TL.token_at(4.2)
    plans = plan_windows(TL, p0, p0 + 80, n_seg)
    assert plans[0].prompt_from == p0 and plans[0].prompt_len <= 166


def test_equal_power_and_splice_leave_outside_untouched():
    out_, in_ = equal_power_fades(100)
    np.testing.assert_allclose(out_**2 + in_**2, 1.0, rtol=1e-6)
    track = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    new = np.ones(300, np.float32)
    res = splice(track, new, 200, 50, 60)
    assert np.array_equal(res[:200], track[:200]) and np.array_equal(res[500:], track[500:])
    assert np.array_equal(res[250:440], new[50:240])


@pytest.fixture(scope="module")
def engine():
    model = torch.nn.Module()
    model.cfg = CFG
    model.sampler = random_lm()
    model.device = torch.device("cpu")

    class FakeCodec:  # a deterministic stand-in decoder: token value -> constant block of samples
        hop_length, decode_overlap, device = 512, 0, torch.device("cpu")

        def decode(self, codes, chunk_tokens=None):
            return codes[:, 0].float().repeat_interleave(512, dim=-1) / CFG.vocab_size

    model.audio_encoder = FakeCodec()
    return Engine(model, "test")


def _clip(seconds: float, seed: int = 0) -> ClipFeatures:
    g = torch.Generator().manual_seed(seed)
    n = TL.segments_for(seconds)
    return ClipFeatures(torch.randn(n, 8, CFG.visual.dim, generator=g), seconds)


def test_generate_any_length_and_variations(engine):
    clip = _clip(3.9)
    params = SamplingParams(temperature=1.0, top_k=20, cfg_scale=3.0)
    seen = []
    takes = engine.generate(clip, params, [1, 2], progress=seen.append)
    assert len(takes) == 2
    for t in takes:
        assert len(t.audio) == round(3.9 * 44100)
        assert t.codes.shape == (9, TL.tokens_for(3.9)) and (t.codes >= 0).all()
        assert t.record()["seed"] == t.seed and t.record()["params"]["top_k"] == 20
    assert not np.array_equal(takes[0].codes, takes[1].codes)
    assert seen[-1].fraction == pytest.approx(1.0) and seen[-1].eta_seconds == pytest.approx(0.0)
    # the same seed alone reproduces the take from the batch
    again = engine.generate(clip, params, [2])
    assert np.array_equal(again[0].codes, takes[1].codes)


def test_regenerate_region_is_bit_identical_outside(engine):
    clip = _clip(4.0, seed=3)
    params = SamplingParams(temperature=1.0, top_k=20, cfg_scale=3.0)
    track = track_from_take(engine.generate(clip, params, [5])[0], 44100)
    t0, t1, xf = 2.0, 2.5, 0.05
    takes = engine.regenerate(clip, track, t0, t1, params, [7, 8], crossfade=xf)
    p0 = TL.token_at(t0)
    for take in takes:
        assert np.array_equal(take.codes[:, :0], track.codes[:, p0:p0])
        new = apply_take(track, take)
        a, b = round((t0 - xf) * 44100), round((t1 + xf) * 44100)
        assert np.array_equal(new.audio[:a], track.audio[:a])
        assert np.array_equal(new.audio[b:], track.audio[b:])
        assert np.array_equal(new.codes[:, :p0], track.codes[:, :p0])
        assert not np.array_equal(new.audio[a:b], track.audio[a:b])
    assert not np.array_equal(takes[0].codes, takes[1].codes)
    # a region at the very start and one reaching the end of the clip
    for r0, r1 in [(0.0, 0.4), (3.6, 4.0)]:
        t = engine.regenerate(clip, track, r0, r1, params, [1])[0]
        new = apply_take(track, t)
        assert len(new.audio) == len(track.audio)
    with pytest.raises(ValueError, match="not inside"):
        engine.regenerate(clip, track, 3.0, 5.0, params, [1])


def test_generate_a_range_starts_fresh_at_its_segment(engine):
    clip = _clip(4.0, seed=4)
    params = SamplingParams(temperature=1.0, top_k=20, cfg_scale=3.0)
    take = engine.generate(clip, params, [3], start=1.0, end=2.1)[0]
    assert take.sample_start == 44100 and len(take.audio) == round(1.1 * 44100)
    assert take.token_start == TL.segment_token(1)  # the segment boundary at or before 1.0 s
    assert take.codes.shape[1] == TL.tokens_for(2.1) - take.token_start

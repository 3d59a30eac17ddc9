"""Cached vs uncached decoding, CFG, prompts, seeds, sampling filters, progress and cancel."""

import dataclasses
import math

import pytest
import torch

from tests.lm_fixtures import random_features, random_lm
from vaura_core.errors import Cancelled
from vaura_core.generation.generate import CancelToken, generate_window
from vaura_core.generation.sampling import (
    SamplingParams,
    make_generators,
    sample,
    sample_row,
    top_k_filter,
)
from vaura_core.model.config import preset

STEPS = 40


@pytest.fixture(scope="module")
def lm():
    return random_lm()


@pytest.mark.parametrize("cfg_scale", [1.0, 4.0])
@pytest.mark.parametrize("prompt_len", [0, 17])
def test_cached_equals_uncached(lm, cfg_scale, prompt_len):
    feats = random_features(lm, batch=2)
    params = SamplingParams(temperature=1.0, top_k=30, cfg_scale=cfg_scale)
    prompt = torch.randint(0, lm.cfg.vocab_size, (2, 9, prompt_len)) if prompt_len else None
    kw = {"params": params, "seeds": [3, 4], "prompt": prompt, "keep_logits": True}
    cached = generate_window(lm, feats, STEPS, **kw)
    oracle = generate_window(lm, feats, STEPS, use_cache=False, **kw)
    assert torch.equal(cached.codes, oracle.codes)
    assert len(cached.step_logits) == STEPS + 9 - (prompt_len + 1)
    for a, b in zip(cached.step_logits, oracle.step_logits, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if prompt is not None:
        assert torch.equal(cached.codes[..., :prompt_len], prompt)
    assert cached.codes.min() >= 0 and cached.codes.max() < lm.cfg.vocab_size


def test_lookahead_gives_each_position_a_later_visual_token_in_every_path():
    lm = random_lm(seed=5, lookahead=1)
    video = torch.randn(1, lm.cfg.lm.video_tokens, lm.cfg.lm.video_dim)
    r, tv = lm.cfg.lm.tokens_per_video_token, lm.cfg.lm.video_tokens
    got = lm._video_at(video, 0, tv * r + 3)
    for p in (0, r - 1, r, 5 * r + 2, (tv - 1) * r - 1):
        assert torch.equal(got[0, p], video[0, p // r + 1])
    # the last token's positions and beyond look past the window: the learned "no video" embedding
    assert torch.equal(got[0, (tv - 1) * r :], lm.empty_video_emb[0].expand(r + 3, -1))
    feats = random_features(lm, batch=2)
    params = SamplingParams(temperature=1.0, top_k=30, cfg_scale=3.0)
    cached = generate_window(lm, feats, STEPS, params=params, seeds=[3, 4])
    oracle = generate_window(lm, feats, STEPS, params=params, seeds=[3, 4], use_cache=False)
    assert torch.equal(cached.codes, oracle.codes)
    plain = generate_window(random_lm(seed=5), feats, STEPS, params=params, seeds=[3, 4])
    assert not torch.equal(plain.codes, cached.codes)


@pytest.mark.parametrize("lead", [0, 2, 9])
def test_time_alignment_gives_each_step_the_token_of_its_time_in_every_path(lead):
    lm = random_lm(seed=6, lead_steps=lead)
    cfg = lm.cfg
    tv = cfg.lm.video_tokens
    video = torch.randn(1, tv, cfg.lm.video_dim)
    n = cfg.window_tokens + cfg.n_codebooks
    got = lm._video_at(video, 0, n)
    token_seconds = cfg.visual.tubelet / cfg.fps  # 80 ms
    for p in range(n):
        own = math.floor(p / cfg.codec.frame_rate / token_seconds + 1e-9)
        if own >= tv:  # a step past the window's pictures
            assert torch.equal(got[0, p], lm.empty_video_emb.reshape(-1))
        else:  # the token at the time of step p + lead, the last one at most
            led = min(tv - 1, math.floor((p + lead) / cfg.codec.frame_rate / token_seconds + 1e-9))
            assert torch.equal(got[0, p], video[0, led]), p
    # a slice starting mid-window (the KV-cache path) sees the same channels
    assert torch.equal(lm._video_at(video, 40, 30), got[:, 40:70])
    feats = random_features(lm, batch=2)
    params = SamplingParams(temperature=1.0, top_k=30, cfg_scale=3.0)
    cached = generate_window(lm, feats, STEPS, params=params, seeds=[3, 4])
    oracle = generate_window(lm, feats, STEPS, params=params, seeds=[3, 4], use_cache=False)
    assert torch.equal(cached.codes, oracle.codes)


def test_time_alignment_fixes_the_position_drift():
    cfg = preset("tiny")
    steps = torch.arange(cfg.window_tokens)
    timed = cfg.video_token_of_step(steps)
    # 221 steps span the 32 tokens evenly, 6 or 7 steps each; by position (p // 7) the picture
    # drifts behind the sound and the last token is left only 4 steps
    counts = torch.bincount(timed)
    assert len(counts) == cfg.lm.video_tokens and set(counts.tolist()) <= {6, 7}
    assert torch.bincount(steps // cfg.lm.tokens_per_video_token).tolist()[-1] == 4
    assert int(timed[-1]) == cfg.lm.video_tokens - 1 and cfg.video_token_of_step(6) == 0


def test_video_phase_tells_each_step_where_it_is_in_its_token():
    cfg = preset("tiny")
    assert cfg.video_phases == 7  # 80 ms tokens at 86.13 steps a second span 6 or 7 steps
    tokens = torch.arange(cfg.lm.video_tokens)
    first = cfg.first_step_of_video_token(tokens)
    # the first step of each token is the first whose time is in it, and the step before is not
    assert torch.equal(cfg.video_token_of_step(first), tokens)
    assert torch.equal(cfg.video_token_of_step(first[1:] - 1), tokens[:-1])
    lead = 2
    lm = random_lm(seed=8, lead_steps=lead, phase=True)
    tv, n = lm.cfg.lm.video_tokens, lm.cfg.window_tokens + lm.cfg.n_codebooks
    video = torch.randn(1, tv, lm.cfg.lm.video_dim)
    got = lm._video_at(video, 0, n)
    emb = lm.video_phase_emb
    base = random_lm(seed=8, lead_steps=lead)
    plain = base._video_at(video, 0, n)
    inside = torch.nonzero(~torch.all(plain[0] == base.empty_video_emb.reshape(-1), dim=-1)).flatten()
    assert 0 < len(inside) < n
    for p in inside.tolist():
        led = int(lm.cfg.video_token_of_step(p + lead))
        phase = p + lead - int(lm.cfg.first_step_of_video_token(led))
        assert 0 <= phase < lm.cfg.video_phases
        assert torch.allclose(got[0, p], plain[0, p] + emb[phase]), p
    outside = [p for p in range(n) if p not in set(inside.tolist())]
    assert torch.equal(got[0, outside], lm.empty_video_emb[0].expand(len(outside), -1))
    # the phases run 0, 1, ... from each change of picture, so two steps seeing one token differ
    assert not torch.allclose(got[0, inside[0]], got[0, inside[1]])
    assert torch.equal(lm._video_at(video, 40, 30), got[:, 40:70])  # the KV-cache path's slices
    feats = random_features(lm, batch=2)
    params = SamplingParams(temperature=1.0, top_k=30, cfg_scale=3.0)
    cached = generate_window(lm, feats, STEPS, params=params, seeds=[3, 4])
    oracle = generate_window(lm, feats, STEPS, params=params, seeds=[3, 4], use_cache=False)
    assert torch.equal(cached.codes, oracle.codes)
    with pytest.raises(ValueError, match="video_phase needs time alignment"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lead_steps=None, video_phase=True))
    assert not hasattr(random_lm(seed=8, lead_steps=lead), "video_phase_emb")  # the release has none


def test_impact_cues_point_at_the_steps_where_frames_start():
    lead = 2
    lm = random_lm(seed=9, lead_steps=lead, cues=9)
    cfg, dim = lm.cfg, lm.cfg.lm.video_dim
    tubelet, materials = cfg.visual.tubelet, 4
    feats = random_features(lm)
    video = lm.project_video(feats)
    probs = torch.softmax(lm.cue_head(feats), dim=-1)[..., 1:]
    assert video.shape[-1] == dim + 8 and torch.allclose(video[..., dim:], probs)
    n = cfg.window_tokens + cfg.n_codebooks
    got = lm._video_at(video, 0, n)
    # Without cues (and the same empty embedding) the channel is the plain time alignment.
    base = random_lm(seed=9, lead_steps=lead)
    base.empty_video_emb.data.copy_(lm.empty_video_emb)
    plain = base._video_at(video[..., :dim], 0, n)
    emb = lm.cue_emb.reshape(tubelet, materials, dim)
    cued = []
    for p in range(n):
        step = p + lead
        frame = int(cfg.frame_of_step(step))
        token, phase = divmod(frame, tubelet)
        inside = int(cfg.video_token_of_step(p)) < cfg.lm.video_tokens and token < cfg.lm.video_tokens
        if inside and int(cfg.first_step_of_frame(frame)) == step:
            want = probs[0, token, phase * materials : (phase + 1) * materials] @ emb[phase]
            assert torch.allclose(got[0, p] - plain[0, p], want, atol=1e-6), p
            cued.append(frame)
        else:
            assert torch.equal(got[0, p], plain[0, p]), p
    # one pointer per frame, 3 or 4 steps apart (40 ms frames at 86.13 steps a second)
    assert cued == list(range(cued[0], cued[0] + len(cued))) and len(cued) > n // 4
    assert torch.equal(lm._video_at(video, 40, 30), got[:, 40:70])  # the KV-cache path's slices
    # A null row (CFG's other half) gets the null video, which cues nothing.
    pair = lm.project_video(torch.cat([feats, feats]), torch.tensor([False, True]))
    null_video = lm.cls_embeddings(lm.null_features(1))
    assert torch.equal(pair[0], video[0]) and torch.equal(pair[1, :, :dim], null_video[0])
    assert not pair[1, :, dim:].any()
    assert torch.equal(lm._video_at(pair, 0, n)[1], base._video_at(null_video, 0, n)[0])
    params = SamplingParams(temperature=1.0, top_k=30, cfg_scale=3.0)
    feats2 = random_features(lm, batch=2)
    cached = generate_window(lm, feats2, STEPS, params=params, seeds=[3, 4])
    oracle = generate_window(lm, feats2, STEPS, params=params, seeds=[3, 4], use_cache=False)
    assert torch.equal(cached.codes, oracle.codes)
    tiny = preset("tiny")
    by_position = dataclasses.replace(tiny.lm, video_lead_steps=None, impact_cues=9)
    with pytest.raises(ValueError, match="impact_cues needs time alignment"):
        dataclasses.replace(tiny, lm=by_position)
    with pytest.raises(ValueError, match="impact_cues must be 0 or 1 \\+ materials x 2"):
        dataclasses.replace(tiny, lm=dataclasses.replace(tiny.lm, impact_cues=8))
    assert not hasattr(base, "cue_head") and not hasattr(base, "cue_emb")  # the release has none


def test_impact_cue_span_counts_down_to_each_frame_start():
    lead, span = 2, 5
    lm = random_lm(seed=10, lead_steps=lead, cues=9, cue_span=span)
    cfg, dim = lm.cfg, lm.cfg.lm.video_dim
    tubelet, materials = cfg.visual.tubelet, 4
    assert lm.cue_emb.shape == (span * 8, dim)
    feats = random_features(lm)
    video = lm.project_video(feats)
    probs = video[0, :, dim:]
    n = cfg.window_tokens + cfg.n_codebooks
    got = lm._video_at(video, 0, n)
    base = random_lm(seed=10, lead_steps=lead)
    base.empty_video_emb.data.copy_(lm.empty_video_emb)
    plain = base._video_at(video[..., :dim], 0, n)
    emb = lm.cue_emb.reshape(span, tubelet, materials, dim)
    counts = []
    for p in range(n):
        if int(cfg.video_token_of_step(p)) >= cfg.lm.video_tokens:
            assert torch.equal(got[0, p], plain[0, p]), p
            continue
        want, marks = torch.zeros(dim), 0
        for d in range(span):  # a frame starting d steps after the step p + lead
            step = p + lead + d
            frame = int(cfg.frame_of_step(step))
            token, phase = divmod(frame, tubelet)
            if token < cfg.lm.video_tokens and int(cfg.first_step_of_frame(frame)) == step:
                want += probs[token, phase * materials : (phase + 1) * materials] @ emb[d, phase]
                marks += 1
        assert torch.allclose(got[0, p] - plain[0, p], want, atol=1e-5), p
        counts.append(marks)
    # frames start every 3 or 4 steps, so a 5-step countdown sees one or two of them
    assert set(counts[: n // 2]) == {1, 2}
    assert torch.equal(lm._video_at(video, 40, 30), got[:, 40:70])  # the KV-cache path's slices
    params = SamplingParams(temperature=1.0, top_k=30, cfg_scale=3.0)
    feats2 = random_features(lm, batch=2)
    cached = generate_window(lm, feats2, STEPS, params=params, seeds=[3, 4])
    oracle = generate_window(lm, feats2, STEPS, params=params, seeds=[3, 4], use_cache=False)
    assert torch.equal(cached.codes, oracle.codes)
    # A span of 1 is the single marker on the frame's first step, with the same tensor shape.
    assert random_lm(seed=10, lead_steps=lead, cues=9).cue_emb.shape == (8, dim)
    tiny = preset("tiny")
    uncued = random_lm(seed=10, lead_steps=lead, cue_span=span)  # a span without cues adds nothing
    same = random_lm(seed=10, lead_steps=lead)._video_at(video[..., :dim], 0, n)
    assert not hasattr(uncued, "cue_emb") and torch.equal(uncued._video_at(video[..., :dim], 0, n), same)
    with pytest.raises(ValueError, match="impact_cue_span must be at least 1"):
        dataclasses.replace(tiny, lm=dataclasses.replace(tiny.lm, impact_cue_span=0))


def test_impact_cue_temperature_sharpens_the_head_outside_training_only():
    lm = random_lm(seed=11, lead_steps=2, cues=9)
    feats = random_features(lm)
    dim = lm.cfg.lm.video_dim
    logits = lm.cue_head(feats).float()
    as_trained = lm.project_video(feats)
    assert torch.allclose(as_trained[..., dim:], torch.softmax(logits, dim=-1)[..., 1:])
    sharp = dataclasses.replace(lm.cfg, lm=dataclasses.replace(lm.cfg.lm, impact_cue_temperature=0.4))
    lm.cfg = sharp
    got = lm.project_video(feats)
    assert torch.allclose(got[..., dim:], torch.softmax(logits / 0.4, dim=-1)[..., 1:])
    assert torch.equal(got[..., :dim], as_trained[..., :dim])  # the video channel is untouched
    lm.train()  # training sees the head's own probabilities, which its loss calibrates
    assert torch.allclose(lm.project_video(feats)[..., dim:], as_trained[..., dim:])
    lm.eval()
    feats2 = random_features(lm, batch=2)
    params = SamplingParams(temperature=1.0, top_k=30, cfg_scale=3.0)
    cached = generate_window(lm, feats2, STEPS, params=params, seeds=[3, 4])
    oracle = generate_window(lm, feats2, STEPS, params=params, seeds=[3, 4], use_cache=False)
    assert torch.equal(cached.codes, oracle.codes)
    tiny = preset("tiny")
    with pytest.raises(ValueError, match="impact_cue_temperature must be above 0"):
        dataclasses.replace(tiny, lm=dataclasses.replace(tiny.lm, impact_cue_temperature=0.0))


def test_impact_cues_leave_every_other_initial_tensor_and_the_random_stream_alone():
    from vaura_core.model.vaura import VAura

    tiny = preset("tiny")
    plain_cfg = dataclasses.replace(tiny, lm=dataclasses.replace(tiny.lm, impact_cues=0))
    torch.manual_seed(5)
    plain, after_plain = VAura(plain_cfg).state_dict(), torch.rand(3)
    torch.manual_seed(5)
    cued_model = VAura(tiny)
    cued, after_cued = cued_model.state_dict(), torch.rand(3)
    assert tiny.lm.impact_cues and set(cued) - set(plain) == {
        "sampler.cue_head.weight",
        "sampler.cue_head.bias",
        "sampler.cue_emb",
    }
    for name, tensor in plain.items():  # the codec, built after the transformer, included
        assert torch.equal(tensor, cued[name]), name
    assert torch.equal(after_plain, after_cued)
    assert not cued_model.sampler.cue_head.weight.any() and not cued_model.sampler.cue_emb.any()


def test_lead_steps_are_checked():
    cfg = preset("test")
    with pytest.raises(ValueError, match="video_lead_steps"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lead_steps=-1))
    with pytest.raises(ValueError, match="video_lead_steps"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lead_steps=cfg.window_tokens))
    with pytest.raises(ValueError, match="position alignment only"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lookahead=1, video_lead_steps=0))


def test_lookahead_must_stay_inside_the_window():
    cfg = preset("test")
    with pytest.raises(ValueError, match="video_lookahead"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lookahead=-1))
    with pytest.raises(ValueError, match="video_lookahead"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lookahead=cfg.lm.video_tokens))


def test_logits_depend_on_video_and_guidance(lm):
    feats = random_features(lm)
    params = SamplingParams(greedy=True, cfg_scale=1.0)
    a = generate_window(lm, feats, 12, params=params, seeds=[0], keep_logits=True).step_logits[0]
    b = generate_window(lm, -feats, 12, params=params, seeds=[0], keep_logits=True).step_logits[0]
    c = generate_window(
        lm, feats, 12, params=SamplingParams(greedy=True, cfg_scale=3.0), seeds=[0], keep_logits=True
    ).step_logits[0]
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, c)


def test_seed_reproducible_across_batch_composition(lm):
    feats = random_features(lm)
    params = SamplingParams(temperature=1.0, top_k=0, cfg_scale=3.0)
    batch = generate_window(lm, feats, STEPS, params=params, seeds=[11, 22, 33]).codes
    alone = generate_window(lm, feats, STEPS, params=params, seeds=[22]).codes
    other = generate_window(lm, feats, STEPS, params=params, seeds=[5, 33]).codes
    assert torch.equal(batch[1], alone[0])
    assert torch.equal(batch[2], other[1])
    assert not torch.equal(batch[0], batch[1])  # different seeds do differ


def test_greedy_ignores_seed(lm):
    feats = random_features(lm)
    params = SamplingParams(greedy=True, cfg_scale=2.0)
    a = generate_window(lm, feats, 20, params=params, seeds=[1, 2]).codes
    assert torch.equal(a[0], a[1])
    # top-k 1 and a tiny top-p are greedy too
    k1 = generate_window(lm, feats, 20, params=SamplingParams(top_k=1, cfg_scale=2.0), seeds=[9]).codes
    p0 = generate_window(lm, feats, 20, params=SamplingParams(top_p=1e-6, cfg_scale=2.0), seeds=[9]).codes
    assert torch.equal(k1[0], a[0]) and torch.equal(p0[0], a[0])


def test_top_k_filter_keeps_k_largest():
    probs = torch.softmax(torch.randn(3, 50), -1)
    out = top_k_filter(probs, 5)
    assert ((out > 0).sum(-1) == 5).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(3))
    top = probs.topk(5, -1).indices
    assert (out.gather(-1, top) > 0).all()


def _reference_row(logits, params, g):
    """The original's sampling of one (Q, V) row: softmax, filter, renormalise, torch.multinomial."""
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p > 0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        cum = torch.cumsum(sorted_probs, dim=-1)
        sorted_probs = torch.where(cum - sorted_probs > params.top_p, 0.0, sorted_probs)
        sorted_probs = sorted_probs / sorted_probs.sum(dim=-1, keepdim=True)
        return order.gather(-1, torch.multinomial(sorted_probs, 1, generator=g))[:, 0]
    if 0 < params.top_k < probs.shape[-1]:
        kth = torch.topk(probs, params.top_k, dim=-1).values[..., -1:]
        probs = torch.where(probs < kth, torch.zeros_like(probs), probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=g)[:, 0]


@pytest.mark.parametrize(
    "params",
    [SamplingParams(), SamplingParams(temperature=1.3, top_k=0), SamplingParams(top_k=0, top_p=0.9)],
)
def test_batched_sampling_draws_each_row_as_the_original_would_alone(params):
    logits = torch.randn(3, 9, 1025) * 3
    seeds = [7, 8, 9]
    mine, theirs = (make_generators(seeds, torch.device("cpu")) for _ in range(2))
    for _ in range(4):  # later draws too: each row's random stream advances as if it were alone
        got = sample(logits, params, mine)
        want = torch.stack([_reference_row(logits[b], params, theirs[b]) for b in range(3)])
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match="generators"):
        sample(logits, params, make_generators(seeds[:2], torch.device("cpu")))


def _draws(logits, params, n=4000):
    g = torch.Generator().manual_seed(0)
    return torch.stack([sample_row(logits, params, g) for _ in range(n)])[:, 0]


def test_sampling_distributions():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -2.0, -3.0]])
    probs = torch.softmax(logits[0], -1)
    plain = torch.bincount(_draws(logits, SamplingParams(temperature=1.0, top_k=0)), minlength=6) / 4000
    torch.testing.assert_close(plain, probs, atol=0.03, rtol=0)
    k2 = _draws(logits, SamplingParams(temperature=1.0, top_k=2))
    assert set(k2.tolist()) == {0, 1}
    # nucleus 0.8 keeps tokens 0 and 1 (0.64 + 0.24 >= 0.8) only
    p8 = _draws(logits, SamplingParams(temperature=1.0, top_k=0, top_p=0.8))
    assert set(p8.tolist()) == {0, 1}
    cold = _draws(logits, SamplingParams(temperature=0.1, top_k=0))
    hot = _draws(logits, SamplingParams(temperature=5.0, top_k=0))
    assert (cold == 0).float().mean() > 0.99
    assert len(set(hot.tolist())) == 6 and (hot == 0).float().mean() < 0.4


def test_progress_every_step_and_cancel(lm):
    feats = random_features(lm)
    seen = []
    generate_window(
        lm, feats, 20, params=SamplingParams(), seeds=[1], progress=lambda d, t: seen.append((d, t))
    )
    total = 20 + 9 - 1
    assert seen == [(i, total) for i in range(1, total + 1)]

    token = CancelToken()

    def cancel_at_5(done, total):
        if done == 5:
            token.cancel()

    with pytest.raises(Cancelled):
        generate_window(lm, feats, 20, params=SamplingParams(), seeds=[1], progress=cancel_at_5, cancel=token)


@pytest.mark.parametrize("prompt_len", [0, 23])
def test_final_timesteps_are_reported_while_the_window_runs(lm, prompt_len):
    """Each report is a prefix of the window's final codes, and they come before the window ends."""
    feats = random_features(lm, batch=2)
    prompt = torch.randint(0, lm.cfg.vocab_size, (2, 9, prompt_len)) if prompt_len else None
    seen = []
    kw = {"params": SamplingParams(cfg_scale=3.0), "seeds": [5, 6], "prompt": prompt}
    out = generate_window(lm, feats, 60, on_final=lambda codes, n: seen.append((codes.clone(), n)), **kw)
    assert len(seen) >= 2 and seen[-1][1] < 60
    ns = [n for _, n in seen]
    assert ns == sorted(set(ns)) and ns[0] > 0
    for codes, n in seen:
        assert codes.shape == (2, 9, n) and torch.equal(codes, out.codes[..., :n])
    assert torch.equal(generate_window(lm, feats, 60, **kw).codes, out.codes)  # listening changes nothing


def test_bad_requests(lm):
    feats = random_features(lm)
    with pytest.raises(ValueError, match="prompt"):
        generate_window(
            lm, feats, 10, params=SamplingParams(), seeds=[1], prompt=torch.zeros(1, 9, 10).long()
        )
    with pytest.raises(ValueError, match="visual tokens"):
        generate_window(lm, feats[:, :5], 10, params=SamplingParams(cfg_scale=3.0), seeds=[1])
    with pytest.raises(ValueError, match="positions"):
        generate_window(lm, feats, 300, params=SamplingParams(), seeds=[1])
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=1.5)

"""Best of several candidates: predicted hits, agreement, the choice, and generation that keeps it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vaura_core.engine import candidates as cand
from vaura_core.engine.candidates import (
    DEFAULT_CANDIDATES,
    MAX_CANDIDATES,
    agreement,
    best_candidate,
    candidate_seed,
    effective_candidates,
    frame_hit_probability,
    matches,
    predicted_hits,
)
from vaura_core.engine.chains import kept_ranges, plan_chains
from vaura_core.engine.engine import ClipFeatures, Engine, track_from_take
from vaura_core.engine.onset_flux import onset_times
from vaura_core.engine.timeline import Timeline
from vaura_core.foley_world.materials import MATERIALS
from vaura_core.foley_world.scene import SceneObject
from vaura_core.foley_world.sound import impact_sound, object_voice
from vaura_core.generation.sampling import SamplingParams
from vaura_core.model.config import preset
from vaura_core.model.vaura import build_model

SR = 44100
PARAMS = SamplingParams(temperature=1.0, top_k=20, cfg_scale=3.0)


def _cue_cfg():
    cfg = preset("test")
    return dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_lead_steps=2, impact_cues=9))


@pytest.fixture(scope="module")
def cue_engine() -> Engine:
    torch.manual_seed(0)
    return Engine(build_model(_cue_cfg()).eval(), "cue-test")


def _features(cfg, segments: int, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(segments, cfg.visual.frames // cfg.visual.tubelet, cfg.visual.dim, generator=g)


def _clip(seconds: float, cfg) -> ClipFeatures:
    return ClipFeatures(_features(cfg, Timeline(cfg).segments_for(seconds)), seconds)


def _hits_audio(times: list[float], seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    voice = object_voice(seed, SceneObject(0, MATERIALS["wood"], 0.075, 0))
    out = np.zeros(int(seconds * SR))
    for t in times:
        s = impact_sound("wood", voice, 0.6, rng, SR)
        i = round(t * SR)
        out[i : i + len(s)] += s[: len(out) - i]
    return out.astype(np.float32)


def test_predicted_hits_are_the_peaks_at_or_above_the_threshold():
    p = np.array([0.0, 0.2, 0.5, 0.4, 0.1, 0.29, 0.31, 0.31, 0.0, 0.9])
    # frame 2 peaks; of the two equal frames 6 and 7 the later one counts once; the last frame peaks
    np.testing.assert_allclose(predicted_hits(p, 25), [2 / 25, 7 / 25, 9 / 25])
    assert predicted_hits(np.full(10, cand.HIT_PROBABILITY - 0.01), 25).size == 0
    assert predicted_hits(np.zeros(0), 25).size == 0


def test_agreement_is_the_f1_of_onsets_against_hits():
    assert agreement(np.zeros(0), np.zeros(0)) == 1.0
    assert agreement(np.zeros(0), np.array([1.0])) == 0.0
    assert agreement(np.array([1.0]), np.zeros(0)) == 0.0
    # one of two hits matched (1.03 within 50 ms; 2.2 too far), one onset extra: 2 x 1 / (2 + 3)
    assert agreement(np.array([1.0, 2.0]), np.array([1.03, 2.2, 3.0])) == pytest.approx(0.4)


def test_best_candidate_keeps_the_row_whose_hits_land_on_the_predicted_ones():
    hits = np.array([0.5, 1.5, 2.5, 3.2])
    rows = np.stack(
        [
            _hits_audio([t + 0.12 for t in hits]),  # every hit 120 ms late
            _hits_audio(list(hits)),  # on time
            _hits_audio([0.5, 2.5]),  # half of them
        ]
    )
    assert best_candidate(rows, SR, 0.0, hits, 0.0, 4.0) == 1
    # Judged only on [0, 1): the second and third rows tie there, and the first of equals wins.
    assert best_candidate(rows[[0, 2, 1]], SR, 0.0, hits, 0.0, 1.0) == 1
    # Times are absolute: audio starting at 10 s against hits shifted alike.
    assert best_candidate(rows, SR, 10.0, hits + 10.0, 10.0, 14.0) == 1
    assert best_candidate(np.stack([rows[1], rows[1]]), SR, 0.0, hits, 0.0, 4.0) == 0


def test_only_models_with_impact_cues_choose():
    with_cues, without = _cue_cfg(), preset("test")
    assert effective_candidates(with_cues, None) == DEFAULT_CANDIDATES == 3
    assert effective_candidates(with_cues, 5) == 5
    assert effective_candidates(without, None) == 1 and effective_candidates(without, 5) == 1
    for bad in (0, MAX_CANDIDATES + 1):
        with pytest.raises(ValueError, match="candidates must be 1 to"):
            effective_candidates(with_cues, bad)
    assert effective_candidates(preset("tiny"), None) == 3  # the embedded model's preset has cues


def test_candidate_seeds_start_with_the_takes_own_and_differ():
    assert candidate_seed(7, 0) == 7
    seeds = {candidate_seed(s, j) for s in range(50) for j in range(1, MAX_CANDIDATES)}
    assert len(seeds) == 50 * (MAX_CANDIDATES - 1) and all(0 <= s < 2**63 for s in seeds)
    assert seeds.isdisjoint(range(50))


def test_frame_hit_probability_sums_the_materials_of_each_frame(cue_engine):
    cfg = cue_engine.cfg
    feats = _features(cfg, 2, seed=1)
    p = frame_hit_probability(cue_engine.model, feats)
    tokens = feats.shape[0] * feats.shape[1]
    assert p.shape == (tokens * cfg.visual.tubelet,)
    with torch.no_grad():
        probs = cue_engine.model.sampler.impact_probs(feats.reshape(tokens, -1))
    per_frame = probs.reshape(tokens, cfg.visual.tubelet, -1).sum(-1).reshape(-1)
    np.testing.assert_allclose(p, per_frame.numpy(), rtol=1e-6)
    assert (p >= 0).all() and (p <= 1 + 1e-6).all()


def test_kept_ranges_tile_the_range_between_the_seams():
    tl = Timeline(_cue_cfg())
    parts = plan_chains(tl, 0, tl.tokens_for(10.0), tl.segments_for(10.0), 4)
    ranges = kept_ranges(tl, parts, 0.0, 10.0)
    assert len(ranges) == len(parts) > 1
    assert ranges[0][0] == 0.0 and ranges[-1][1] == 10.0
    for (a, b), (c, _d), nxt in zip(ranges, ranges[1:], parts[1:], strict=False):
        assert a < b == c
        assert nxt.token_start * tl.hop / tl.sample_rate < b  # inside the overlap, after the next starts


def _pick(index: int, calls: list):
    def pick(audio, sample_rate, audio_start, hits, lo, hi):
        calls.append((len(audio), lo, hi))
        return index

    return pick


@pytest.mark.parametrize("chains", [1, 4])
def test_generation_keeps_the_chosen_candidate_of_every_stretch(cue_engine, monkeypatch, chains):
    clip = _clip(10.0, cue_engine.cfg)
    calls: list = []
    monkeypatch.setattr(cand, "best_candidate", _pick(2, calls))
    take = cue_engine.generate(clip, PARAMS, [5], chains=chains, candidates=3)[0]
    alone = cue_engine.generate(clip, PARAMS, [candidate_seed(5, 2)], chains=chains, candidates=1)[0]
    np.testing.assert_array_equal(take.codes, alone.codes)
    np.testing.assert_allclose(take.audio, alone.audio, atol=1e-5)
    assert take.seed == 5 and take.candidates == 3 and take.record()["candidates"] == 3
    assert alone.candidates == 1
    # one choice per stretch among three rows, the stretches' ranges covering the clip
    n_parts = len(
        plan_chains(cue_engine.tl, 0, cue_engine.tl.tokens_for(10.0), clip.features.shape[0], chains)
    )
    assert [c[0] for c in calls] == [3] * n_parts
    assert calls[0][1] == 0.0 and calls[-1][2] == 10.0


def test_each_take_of_a_batch_chooses_among_its_own_candidates(cue_engine, monkeypatch):
    clip = _clip(3.0, cue_engine.cfg)
    monkeypatch.setattr(cand, "best_candidate", lambda audio, *a: len(audio) - 1)
    takes = cue_engine.generate(clip, PARAMS, [1, 2], candidates=2)
    for take, seed in zip(takes, [1, 2], strict=True):
        alone = cue_engine.generate(clip, PARAMS, [candidate_seed(seed, 1)], candidates=1)[0]
        np.testing.assert_array_equal(take.codes, alone.codes)
        assert take.seed == seed


def test_region_regeneration_keeps_the_chosen_candidate(cue_engine, monkeypatch):
    clip = _clip(6.0, cue_engine.cfg)
    track = track_from_take(cue_engine.generate(clip, PARAMS, [0], candidates=1)[0], SR)
    calls: list = []
    monkeypatch.setattr(cand, "best_candidate", _pick(1, calls))
    take = cue_engine.regenerate(clip, track, 2.0, 3.5, PARAMS, [9], candidates=2)[0]
    alone = cue_engine.regenerate(clip, track, 2.0, 3.5, PARAMS, [candidate_seed(9, 1)], candidates=1)[0]
    np.testing.assert_array_equal(take.codes, alone.codes)
    np.testing.assert_allclose(take.audio, alone.audio, atol=1e-5)
    assert calls == [(2, 2.0, 3.5)] and take.candidates == 2


def test_a_model_without_cues_samples_once(monkeypatch):
    torch.manual_seed(0)
    cfg = preset("test")
    eng = Engine(build_model(cfg).eval(), "plain")
    clip = _clip(3.0, cfg)
    monkeypatch.setattr(cand, "best_candidate", _pick(0, calls := []))
    take = eng.generate(clip, PARAMS, [4], candidates=3)[0]
    assert take.candidates == 1 and calls == []
    np.testing.assert_array_equal(take.codes, eng.generate(clip, PARAMS, [4], candidates=1)[0].codes)


def test_by_default_a_cue_model_chooses_among_three_by_its_own_hits(cue_engine, monkeypatch):
    clip = _clip(6.0, cue_engine.cfg)
    seen: list = []
    real = cand.best_candidate

    def spy(audio, sample_rate, audio_start, hits, lo, hi):
        seen.append(hits)
        return real(audio, sample_rate, audio_start, hits, lo, hi)

    monkeypatch.setattr(cand, "best_candidate", spy)
    take = cue_engine.generate(clip, PARAMS, [3], chains=2)[0]
    assert take.candidates == DEFAULT_CANDIDATES and len(seen) == 2
    feats = clip.features
    expected = predicted_hits(frame_hit_probability(cue_engine.model, feats), cue_engine.cfg.fps)
    np.testing.assert_allclose(seen[0], expected)
    assert np.isfinite(take.audio).all() and len(take.audio) == cue_engine.tl.samples_for(6.0)


def test_the_light_detector_finds_the_protocols_onsets_on_true_audio():
    """`onset_flux` stands in for the alignment protocol's detector (librosa) while choosing: on Foley
    World's ground-truth audio both find nearly every event, nearly always within a hop of each other."""
    import mir_eval

    from vaura_core.evaluation.onsets import detect_onsets
    from vaura_core.evaluation.sync import reference_onsets
    from vaura_core.foley_world.scene import SceneSpec, build_scene
    from vaura_core.foley_world.writer import clip_seed

    n_ref = n_light = found = agree = 0
    errors = []
    for i in range(5):
        scene = build_scene(SceneSpec(clip_seed(5, i), 6.0))
        audio = np.asarray(scene.audio, np.float32)
        ref, _ = reference_onsets(scene.events)
        light, protocol = onset_times(audio, SR), detect_onsets(audio, SR)
        n_ref, n_light = n_ref + len(ref), n_light + len(light)
        pairs = mir_eval.util.match_events(ref, light, 0.05)
        found += len(pairs)
        errors += [light[j] - ref[k] for k, j in pairs]
        agree += matches(protocol, light, 0.02)
    assert n_ref > 40
    assert found >= 0.97 * n_ref and found >= 0.95 * n_light, (found, n_ref, n_light)
    # within a hop nearly always (a slide's slow start can come later)
    assert np.quantile(np.abs(errors), 0.95) <= 0.0101 and abs(np.mean(errors)) <= 0.01
    assert agree >= 0.95 * n_ref


def test_matching_in_time_order_pairs_as_many_as_mir_eval():
    import mir_eval

    rng = np.random.default_rng(0)
    for _ in range(200):
        a = np.sort(rng.uniform(0, 2, rng.integers(0, 12)))
        b = np.sort(rng.uniform(0, 2, rng.integers(0, 12)))
        expected = len(mir_eval.util.match_events(a, b, 0.05)) if len(a) and len(b) else 0
        assert matches(a, b, 0.05) == expected


def test_the_light_detector_handles_silence_and_short_audio():
    assert onset_times(np.zeros(SR, np.float32), SR).size == 0
    assert onset_times(np.zeros(100, np.float32), SR).size == 0
    clicks = _hits_audio([0.5, 1.5])
    np.testing.assert_allclose(onset_times(clicks, SR), [0.5, 1.5], atol=0.011)

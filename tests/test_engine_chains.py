"""Parallel chains: planning, joining audio and tokens, and whole-clip generation with K chains."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.test_engine import TL, _clip, engine  # noqa: F401  (the module-scoped engine fixture)
from vaura_core.engine.chains import (
    MAX_CHAINS,
    OVERLAP_SEGMENTS,
    Chain,
    heard_from,
    join_audio,
    join_codes,
    plan_chains,
    seam_fade,
    seam_span,
)
from vaura_core.generation.sampling import SamplingParams

PARAMS = SamplingParams(temperature=1.0, top_k=20, cfg_scale=3.0)


@pytest.mark.parametrize("chains", [1, 2, 3, 4, 9])
def test_chains_cover_the_range_and_overlap_by_a_segment(chains: int):
    n_segments = TL.segments_for(10.0)
    n_tokens = TL.tokens_for(10.0)
    parts = plan_chains(TL, 0, n_tokens, n_segments, chains)
    assert 1 <= len(parts) <= min(chains, n_segments // TL.cfg.window_segments)
    assert parts[0].token_start == 0 and parts[-1].token_end == n_tokens
    for a, b in itertools.pairwise(parts):
        assert b.token_start == TL.segment_token(b.segment)
        assert a.token_end == TL.segment_token(b.segment + OVERLAP_SEGMENTS)  # one segment of overlap
        assert b.segment - a.segment >= TL.cfg.window_segments  # each stretch spans a window
    for p in parts:
        assert p.segment + TL.cfg.window_segments <= n_segments  # a whole window of video exists


def test_a_short_range_stays_one_chain():
    assert len(plan_chains(TL, 0, TL.tokens_for(3.0), TL.segments_for(3.0), 4)) == 1
    for bad in (0, MAX_CHAINS + 1):
        with pytest.raises(ValueError, match="chains must be 1 to"):
            plan_chains(TL, 0, 100, 8, bad)


def _two_chains() -> list[Chain]:
    return [Chain(0, 0, TL.segment_token(5)), Chain(4, TL.segment_token(4), TL.segment_token(8))]


def test_chains_switch_at_the_quietest_moment_of_the_overlap_per_take():
    parts = _two_chains()
    n = parts[-1].token_end * TL.hop
    lo, hi = seam_span(TL, *parts)
    assert TL.segment_token(4) * TL.hop < lo < hi < TL.segment_token(5) * TL.hop
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1.0, (2, parts[0].token_end * TL.hop)).astype(np.float32)
    b = rng.normal(0, 1.0, (2, (parts[1].token_end - parts[1].token_start) * TL.hop)).astype(np.float32) + 5
    # A quiet gap in both chains, at a different place for each take.
    quiet = [lo + (hi - lo) // 5, lo + (hi - lo) * 3 // 4]
    for row, q in enumerate(quiet):
        a[row, q - 4000 : q + 4000] = 0.0
        b[row, q - 4000 - parts[1].token_start * TL.hop : q + 4000 - parts[1].token_start * TL.hop] = 0.0
    out, cuts = join_audio(TL, parts, [a, b], n)
    fade = seam_fade(TL)
    for row, q in enumerate(quiet):
        cut = int(cuts[0][row])
        assert abs(cut - q) <= 4000 - fade // 2  # the whole crossfade lies in the silence
        at = cut - fade // 2
        assert np.array_equal(out[row, :at], a[row, :at])  # one chain before, the other after
        rel = at + fade - parts[1].token_start * TL.hop
        assert np.array_equal(out[row, at + fade :], b[row, rel:])
        assert not out[row, at : at + fade].any()

    codes = [np.zeros((2, 9, parts[-1].token_end), np.int64), np.ones((2, 9, parts[-1].token_end), np.int64)]
    joined = join_codes(TL, parts, codes, cuts)
    for row in range(2):
        switch = int(cuts[0][row]) // TL.hop
        assert not joined[row, :, :switch].any() and joined[row, :, switch:].all()


def test_a_chain_is_heard_only_from_its_seam_span_on():
    """What `heard_from` leaves undecoded never reaches the joined track, and it is most of the overlap."""
    parts = plan_chains(TL, 0, TL.tokens_for(10.0), TL.segments_for(10.0), 4)
    heard = heard_from(TL, parts)
    assert heard[0] == 0 and len(heard) == len(parts) == 4
    overlap = round(OVERLAP_SEGMENTS * TL.tokens_per_segment())
    assert all(overlap // 2 <= h < overlap for h in heard[1:])
    rng = np.random.default_rng(3)
    wavs = [rng.normal(0, 1.0, (2, (p.token_end - p.token_start) * TL.hop)).astype(np.float32) for p in parts]
    n = parts[-1].token_end * TL.hop
    out, cuts = join_audio(TL, parts, wavs, n)
    for wav, h in zip(wavs, heard, strict=True):
        wav[:, : h * TL.hop] = 100.0  # what is never decoded
    again, cuts_again = join_audio(TL, parts, wavs, n)
    assert np.array_equal(again, out)
    assert all(np.array_equal(a, b) for a, b in zip(cuts, cuts_again, strict=True))


def test_a_seam_fades_between_loud_chains():
    parts = _two_chains()
    n = parts[-1].token_end * TL.hop
    a = np.full((1, parts[0].token_end * TL.hop), 2.0, np.float32)
    b = np.full((1, (parts[1].token_end - parts[1].token_start) * TL.hop), 3.0, np.float32)
    out, cuts = join_audio(TL, parts, [a, b], n)
    lo, hi = seam_span(TL, *parts)
    cut, fade = int(cuts[0][0]), seam_fade(TL)
    assert lo <= cut - fade // 2 and cut + fade // 2 <= hi
    at = cut - fade // 2
    assert np.all(out[0, :at] == 2.0) and np.all(out[0, at + fade :] == 3.0)
    ramp = out[0, at : at + fade]
    assert ramp[0] == pytest.approx(2.0, rel=0.01) and ramp[-1] == pytest.approx(3.0, rel=0.01)
    assert ramp[fade // 2] == pytest.approx((2.0 + 3.0) * np.sqrt(0.5), rel=0.02)  # equal power


def test_generation_with_chains_fills_the_clip_and_reproduces(engine):  # noqa: F811
    clip = _clip(5.3, seed=6)  # 9 segments: two stretches
    takes = engine.generate(clip, PARAMS, [1, 2], chains=2)
    n = TL.tokens_for(5.3)
    for t in takes:
        assert t.chains == 2 and t.record()["chains"] == 2
        assert len(t.audio) == round(5.3 * 44100) and np.isfinite(t.audio).all()
        assert t.codes.shape == (9, n) and (t.codes >= 0).all()
    assert not np.array_equal(takes[0].codes, takes[1].codes)
    # One seed alone gives the same take as inside the batch.
    again = engine.generate(clip, PARAMS, [2], chains=2)[0]
    assert np.array_equal(again.codes, takes[1].codes) and np.array_equal(again.audio, takes[1].audio)
    # The first stretch starts as the sequential generation does: same seed, same video, same window.
    sequential = engine.generate(clip, PARAMS, [2], chains=1)[0]
    assert sequential.chains == 1 and not np.array_equal(sequential.codes, takes[1].codes)
    assert np.array_equal(sequential.codes[:, : TL.window_tokens], takes[1].codes[:, : TL.window_tokens])


def test_chains_run_their_windows_side_by_side(engine, monkeypatch):  # noqa: F811
    """The schedule alone (the model is replaced): K chains need about 1/K of the decode steps."""
    import torch

    from vaura_core.engine import engine as engine_mod
    from vaura_core.generation.generate import WindowResult

    calls = []

    def fake_window(lm, features, n_steps, *, params, seeds, prompt=None, progress=None, cancel=None, **_kw):
        calls.append((features.shape[0], n_steps, 0 if prompt is None else prompt.shape[-1], list(seeds)))
        codes = torch.zeros(len(seeds), TL.cfg.n_codebooks, n_steps, dtype=torch.long)
        if prompt is not None:
            codes[..., : prompt.shape[-1]] = prompt.clamp(min=0)  # a prompt's -1 entries are generated
        return WindowResult(codes, None, 0.0, n_steps)

    monkeypatch.setattr(engine_mod, "generate_window", fake_window)
    clip = _clip(10.0, seed=7)
    steps = {}
    for k in (1, 4):
        calls.clear()
        engine.generate(clip, PARAMS, [3, 4], chains=k)
        steps[k] = sum(n - p for _, n, p, _ in calls)
        if k == 4:
            assert calls[0][0] == 8  # four stretches x two variations in one batch
            assert len({s for *_, seeds in calls for s in seeds}) == sum(len(c[3]) for c in calls)
    assert steps[4] < 0.4 * steps[1], steps


def test_chained_audio_is_decoded_while_the_windows_run(engine, monkeypatch):  # noqa: F811
    """Pieces go to the codec before their window ends, and the audio is still that of the codes."""
    from vaura_core.engine import engine as engine_mod

    seen: list[int] = []
    advance = engine_mod.BackgroundDecode.advance

    def spy(self, final: int) -> None:
        seen.append(final)
        advance(self, final)

    monkeypatch.setattr(engine_mod.BackgroundDecode, "advance", spy)
    take = engine.generate(_clip(10.0, seed=8), PARAMS, [5], chains=4)[0]
    assert take.chains == 4
    assert any(0 < t < TL.window_tokens - 32 for t in seen), seen
    # The test codec turns each token into a constant block: outside the seams' crossfades the take's
    # audio is exactly its codes, so no piece was decoded from tokens that changed afterwards.
    want = (np.repeat(take.codes[0].astype(np.float32), TL.hop) / TL.cfg.vocab_size)[: len(take.audio)]
    assert np.count_nonzero(~np.isclose(take.audio, want, atol=1e-6)) <= 3 * seam_fade(TL)

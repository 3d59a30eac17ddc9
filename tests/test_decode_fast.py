"""The lean one-token decode step (`FastDecoder`) and the sampler's draw against their references."""

from __future__ import annotations

import pytest
import torch

from tests.lm_fixtures import random_features, random_lm
from vaura_core.generation.generate import generate_window
from vaura_core.generation.sampling import SamplingParams, apply_cfg, draw
from vaura_core.model import decode, lm
from vaura_core.model.decode import FastDecoder


def _prefilled(model: lm.FusionLM, rows: int, n_prompt: int, seed: int = 0):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, cfg.vocab_size + 1, (rows, cfg.n_codebooks, 60), generator=g)
    video = model.project_video(random_features(model, rows, seed=seed + 1).to(model.norm.weight.dtype))
    caches = [model.new_cache(rows, 60) for _ in range(2)]
    for cache in caches:
        model(seq[..., :n_prompt], video, start=0, cache=cache, last_only=True)
    return seq, video, caches


@pytest.mark.parametrize("large", [False, True], ids=["small weights", "large-weight kernels"])
@pytest.mark.parametrize("rows", [1, 2, 4])
def test_fast_steps_give_the_module_path_logits_and_cache(
    rows: int, large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if large:  # the mm(W, x.T) form and separate w1 / w3, as for the released model on a CPU
        monkeypatch.setattr(decode, "_SKINNY_MIN_WEIGHT", 0)
        monkeypatch.setattr(lm, "_SKINNY_MIN_WEIGHT", 0)
    model = random_lm(seed=rows)
    seq, video, (fast_cache, ref_cache) = _prefilled(model, rows, n_prompt=12, seed=rows)
    fast = FastDecoder(model, fast_cache, video)
    with torch.inference_mode():
        for pos in range(12, 40):
            got = fast.step(seq[..., pos], pos)
            want = model(seq[..., pos : pos + 1], video, start=pos, cache=ref_cache, last_only=True)[:, :, -1]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert fast_cache.length == ref_cache.length == 40
    torch.testing.assert_close(fast_cache.k[..., :40, :], ref_cache.k[..., :40, :], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_cache.v[..., :40, :], ref_cache.v[..., :40, :], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_guided_steps_mix_the_rows_before_the_heads(dtype: torch.dtype) -> None:
    model = random_lm(seed=5).to(dtype)
    seq, video, (guided_cache, plain_cache) = _prefilled(model, 4, n_prompt=8, seed=2)
    guided, plain = FastDecoder(model, guided_cache, video), FastDecoder(model, plain_cache, video)
    with torch.inference_mode():
        for pos in range(8, 24):
            got = guided.step(seq[..., pos], pos, guidance=6.0)
            logits = plain.step(seq[..., pos], pos)
            want = apply_cfg(logits[:2], logits[2:], 6.0)
            assert got.shape == want.shape == (2, model.cfg.n_codebooks, model.cfg.vocab_size)
            tol = 1e-4 if dtype == torch.float32 else 0.5  # bfloat16: rounded before or after the mix
            torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    # the caches hold all four rows, guided or not
    torch.testing.assert_close(guided_cache.k[..., :24, :], plain_cache.k[..., :24, :])


def test_guided_steps_need_rows_in_pairs() -> None:
    model = random_lm(seed=5)
    seq, video, (cache, _) = _prefilled(model, 3, n_prompt=4, seed=1)
    with pytest.raises(ValueError, match="pairs"):
        FastDecoder(model, cache, video).step(seq[..., 4], 4, guidance=3.0)


def test_fast_steps_in_another_dtype_normalise_in_float32() -> None:
    model = random_lm(seed=7).to(torch.bfloat16)
    seq, video, (fast_cache, ref_cache) = _prefilled(model, 2, n_prompt=5, seed=3)
    fast = FastDecoder(model, fast_cache, video)
    assert not fast.fold
    with torch.inference_mode():
        for pos in range(5, 20):
            got = fast.step(seq[..., pos], pos)
            want = model(seq[..., pos : pos + 1], video, start=pos, cache=ref_cache, last_only=True)[:, :, -1]
            # bfloat16 keeps 8 bits: the same operations in another grouping agree to a few ulps.
            torch.testing.assert_close(got, want, rtol=0.05, atol=0.1)


def test_cached_generation_with_fast_steps_matches_the_uncached_oracle() -> None:
    model = random_lm(seed=11)
    feats = random_features(model, 2, seed=4)
    params = SamplingParams(temperature=0.9, top_k=20, cfg_scale=3.0)
    prompt = torch.randint(0, model.cfg.vocab_size, (2, model.cfg.n_codebooks, 6))
    fast = generate_window(model, feats, 30, params=params, seeds=[1, 2], prompt=prompt)
    oracle = generate_window(model, feats, 30, params=params, seeds=[1, 2], prompt=prompt, use_cache=False)
    assert torch.equal(fast.codes, oracle.codes)


@pytest.mark.parametrize("shape", [(9, 128), (1, 7), (4, 1024)])
def test_draw_is_torch_multinomial(shape: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(*shape, generator=g) * 3, dim=-1)
    probs[0, : shape[1] // 2] = 0.0  # zeroed entries, as after top-k, are never drawn
    probs = probs / probs.sum(-1, keepdim=True)
    mine, theirs = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
    for _ in range(300):
        assert torch.equal(draw(probs, mine), torch.multinomial(probs, 1, generator=theirs))
    # The streams stayed in step too: the next number drawn is the same.
    assert torch.equal(torch.rand(3, generator=mine), torch.rand(3, generator=theirs))


def test_a_row_whose_prompt_ends_early_has_the_rest_generated():
    model = random_lm(seed=13)
    feats = random_features(model, 2, seed=5)
    params = SamplingParams(temperature=0.9, top_k=20, cfg_scale=3.0)
    prompt = torch.randint(0, model.cfg.vocab_size, (2, model.cfg.n_codebooks, 8))
    ragged = prompt.clone()
    ragged[1, :, 7] = -1  # row 1 knows 7 timesteps, row 0 all 8
    out = generate_window(model, feats, 20, params=params, seeds=[4, 5], prompt=ragged)
    assert torch.equal(out.codes[0, :, :8], prompt[0]) and torch.equal(out.codes[1, :, :7], prompt[1, :, :7])
    assert (out.codes >= 0).all()
    # Generation starts one column earlier, at the shorter prompt's end.
    alone = generate_window(model, feats[:1], 20, params=params, seeds=[4], prompt=prompt[:1])
    assert out.steps == alone.steps + 1


@pytest.mark.parametrize("large", [False, True], ids=["small weights", "large weights"])
def test_small_models_decode_on_one_thread_and_leave_the_count_as_it_was(
    large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if large:
        monkeypatch.setattr(decode, "_SKINNY_MIN_WEIGHT", 0)
    model = random_lm(seed=3)
    seen: set[int] = set()
    step = FastDecoder.step

    def spy(self, tokens, pos, guidance=None):
        seen.add(torch.get_num_threads())
        return step(self, tokens, pos, guidance)

    monkeypatch.setattr(FastDecoder, "step", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate_window(model, random_features(model, 1), 20, params=SamplingParams(), seeds=[1])
        assert seen == ({2} if large else {1})  # call-bound steps: one thread; others keep theirs
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

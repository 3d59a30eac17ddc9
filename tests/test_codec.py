"""The DAC adapter: weight-norm folding, key layout of the release, decode/encode shapes and numerics.

Only small codecs run; the full 44.1 kHz DAC is built on the meta device to check its layout.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from pathlib import Path

import pytest
import torch

from vaura_core.model.codec import Codec, InferenceSnake, fold_weight_norm
from vaura_core.model.config import CodecConfig, preset
from vaura_core.model.weight_norm import fold_pair, has_weight_norm

REFERENCE = Path(__file__).parent / "data" / "vaura-state-dict.txt"
PREFIX = "audio_encoder.model."
SMALL = CodecConfig(encoder_dim=4, decoder_dim=32, codebook_size=64)


def weight_normed_dac(cfg: CodecConfig, seed: int = 0):
    """A plain `dac.DAC` (legacy weight norm still on) with random g, v, biases, alphas and codebooks."""
    import dac

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = dac.DAC(**cfg.dac_kwargs()).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight_g"):
                # Far from ||v|| (so folding that ignored g would show), yet the output stays unsaturated.
                param.uniform_(0.3, 1.0)
            elif name.endswith("alpha"):
                param.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.05)
    return model


def dac_decode(model, codes: torch.Tensor) -> torch.Tensor:
    """What the original wrapper does: from_codes, then the decoder."""
    with torch.no_grad():
        return model.decoder(model.quantizer.from_codes(codes)[0])[:, 0]


@pytest.fixture(scope="module")
def reference_dac():
    return weight_normed_dac(SMALL)


@pytest.fixture(scope="module")
def codec(reference_dac) -> Codec:
    return Codec.from_state_dict(SMALL, reference_dac.state_dict())


@pytest.fixture(scope="module")
def full_meta_codec() -> Codec:
    """The release's 44.1 kHz codec, built without allocating any weights."""
    with torch.device("meta"):
        return Codec(CodecConfig())


def random_codes(cfg: CodecConfig, steps: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.codebook_size, (batch, cfg.n_codebooks, steps), generator=gen)


# --- weight-norm folding -----------------------------------------------------------------


def test_fold_pair_is_g_times_unit_v_per_output_channel() -> None:
    v = torch.randn(5, 3, 7, dtype=torch.float64)
    g = torch.rand(5, 1, 1, dtype=torch.float64) + 0.5
    expected = torch.stack([g[i, 0, 0] * v[i] / v[i].norm() for i in range(5)])
    torch.testing.assert_close(fold_pair(g, v), expected)
    # The legacy hook's own formula agrees.
    torch.testing.assert_close(fold_pair(g, v), torch._weight_norm(v, g, 0))


def test_fold_pair_computes_in_float32_and_returns_v_dtype() -> None:
    v = (torch.randn(4, 300, 1) * 200).half()  # a float16 sum of squares would overflow
    g = torch.rand(4, 1, 1).half()
    folded = fold_pair(g, v)
    assert folded.dtype == torch.float16
    assert torch.isfinite(folded).all()
    exact = torch._weight_norm(v.double(), g.double(), 0)
    torch.testing.assert_close(folded.double(), exact, rtol=1e-3, atol=1e-4)


def test_fold_weight_norm_replaces_pairs_and_passes_the_rest() -> None:
    bias, other = torch.randn(4), torch.randn(2, 2)
    sd = {
        "a.bias": bias,
        "a.weight_g": torch.rand(4, 1, 1),
        "a.weight_v": torch.randn(4, 2, 3),
        "b.weight": other,
        "c.out_proj.weight_v": torch.randn(6, 8, 1),
        "c.out_proj.weight_g": torch.rand(6, 1, 1),
    }
    folded = fold_weight_norm(sd)
    assert list(folded) == ["a.bias", "a.weight", "b.weight", "c.out_proj.weight"]
    assert folded["a.bias"] is bias and folded["b.weight"] is other
    assert folded["a.weight"].shape == (4, 2, 3)
    torch.testing.assert_close(folded["a.weight"], torch._weight_norm(sd["a.weight_v"], sd["a.weight_g"], 0))
    assert has_weight_norm(sd) and not has_weight_norm(folded)


@pytest.mark.parametrize(
    ("sd", "message"),
    [
        ({"x.weight_g": torch.ones(2, 1)}, r"'x\.weight_v' is missing"),
        ({"x.weight_v": torch.ones(2, 3)}, r"'x\.weight_g' is missing"),
        (
            {"x.weight": torch.ones(2, 3), "x.weight_g": torch.ones(2, 1), "x.weight_v": torch.ones(2, 3)},
            r"'x' has both",
        ),
        ({"x.weight_g": torch.ones(3, 1), "x.weight_v": torch.ones(2, 3)}, r"cannot fold .*'x'"),
    ],
)
def test_fold_weight_norm_rejects_broken_pairs(sd: dict[str, torch.Tensor], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fold_weight_norm(sd)


# --- layout of the released checkpoint ---------------------------------------------------


def reference_codec_entries() -> dict[str, tuple[tuple[int, ...], str]]:
    """`audio_encoder.model.*` of the reference key list, prefix stripped: key -> (shape, dtype)."""
    entries = {}
    for line in REFERENCE.read_text().splitlines():
        if line.startswith(PREFIX):
            key, shape, dtype = line.split("\t")
            dims = tuple(int(d) for d in re.findall(r"\d+", shape))
            entries[key[len(PREFIX) :]] = (dims, dtype)
    return entries


def test_full_size_codec_on_meta_matches_the_released_keys_after_folding(full_meta_codec: Codec) -> None:
    entries = reference_codec_entries()
    assert len(entries) == 301  # sanity check of the parser against the reference file
    assert all(dtype == "float16" for _, dtype in entries.values())
    # Fold meta tensors of the reference shapes: only names and shapes matter here.
    with torch.device("meta"):
        reference = {key: torch.empty(shape) for key, (shape, _) in entries.items()}
    folded = fold_weight_norm(reference)
    own = full_meta_codec.model.state_dict()
    assert list(own) == list(folded)
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in folded.items()}
    assert all(t.is_meta for t in own.values())
    # The element count of the release, less one g value per output channel of each folded conv.
    g_elements = sum(math.prod(shape) for key, (shape, _) in entries.items() if key.endswith("weight_g"))
    assert sum(t.numel() for t in own.values()) == 76_651_890 - g_elements
    # Codec's own keys are the checkpoint's with "audio_encoder." dropped.
    assert all(key.startswith("model.") for key in full_meta_codec.state_dict())


def test_meta_codec_adopts_float16_weights_with_assign(reference_dac) -> None:
    sd = {k: v.half() for k, v in fold_weight_norm(reference_dac.state_dict()).items()}
    with torch.device("meta"):
        codec = Codec(SMALL)
    codec.model.load_state_dict(sd, assign=True)
    assert codec.dtype == torch.float16 and codec.device.type == "cpu"
    assert not any(p.requires_grad for p in codec.parameters())
    assert codec.decode(random_codes(SMALL, 3)).dtype == torch.float32


def test_sizes(full_meta_codec: Codec) -> None:
    codec = full_meta_codec
    assert (codec.sample_rate, codec.hop_length, codec.n_codebooks, codec.codebook_size) == (
        44100,
        512,
        9,
        1024,
    )
    assert codec.frame_rate == pytest.approx(86.1328125)
    assert preset("test").codec == SMALL


# --- decode ------------------------------------------------------------------------------


def test_folded_codec_decodes_like_the_weight_normed_dac(codec: Codec, reference_dac) -> None:
    codes = random_codes(SMALL, 20, batch=2)
    expected = dac_decode(reference_dac, codes)
    got = codec.decode(codes)
    assert got.shape == (2, 20 * 512) and got.dtype == torch.float32
    assert (got - expected).abs().max() < 1e-5
    assert expected.abs().max() > 1e-2  # the comparison is not between two near-silent signals


def test_folding_that_ignored_g_would_be_caught(codec: Codec, reference_dac) -> None:
    folded_codec = codec
    sd = reference_dac.state_dict()
    wrong = {k.replace("weight_v", "weight"): v for k, v in sd.items() if not k.endswith("weight_g")}
    codec = copy.deepcopy(folded_codec)
    codec.model.load_state_dict(wrong)
    codes = random_codes(SMALL, 8)
    assert (codec.decode(codes) - dac_decode(reference_dac, codes)).abs().max() > 1e-3


def test_float16_weights_on_cpu_decode_in_float32(codec: Codec) -> None:
    half = Codec.from_state_dict(SMALL, codec.model.state_dict(), dtype=torch.float16)
    rounded = copy.deepcopy(codec).half().float()
    codes = random_codes(SMALL, 12)
    got = half.decode(codes)
    assert got.dtype == torch.float32
    assert half.dtype == torch.float16  # the weights themselves were not converted
    # Same fp16-rounded weights, float32 arithmetic: equal to float32 precision, so not fp16 compute.
    assert (got - rounded.decode(codes)).abs().max() < 1e-5
    # Against the unrounded weights, only fp16 weight rounding separates them.
    reference = codec.decode(codes)
    assert (got - reference).abs().max() < 2e-2 * reference.abs().max()


def test_bfloat16_weights_on_cpu_also_decode_in_float32(codec: Codec) -> None:
    bf16 = copy.deepcopy(codec).bfloat16()
    rounded = copy.deepcopy(bf16).float()
    codes = random_codes(SMALL, 6)
    assert (bf16.decode(codes) - rounded.decode(codes)).abs().max() < 1e-5


def test_chunked_decode_equals_one_shot_decode(codec: Codec) -> None:
    codes = random_codes(SMALL, 24)
    whole = codec.decode(codes, chunk_tokens=None)
    for chunk in (7, 23):
        assert (codec.decode(codes, chunk_tokens=chunk) - whole).abs().max() < 1e-5, chunk
    # Without context the chunk seams are wrong, so the comparison above can fail.
    assert (codec.decode(codes, chunk_tokens=7, overlap=0) - whole).abs().max() > 1e-3


def test_decode_overlap_covers_the_measured_receptive_field(codec: Codec) -> None:
    steps, at = 64, 32
    codes = random_codes(SMALL, steps)
    changed = codes.clone()
    changed[:, :, at] = (changed[:, :, at] + 1) % SMALL.codebook_size
    diff = (codec.decode(changed, chunk_tokens=None) - codec.decode(codes, chunk_tokens=None))[0].abs()
    touched = torch.nonzero(diff > 0).flatten()
    hop = SMALL.hop_length
    reach = max(at - int(touched.min()) // hop, int(touched.max()) // hop - at)
    assert 4 <= reach <= codec.decode_overlap
    assert codec.decode_overlap <= 2 * reach + 2  # a bound, but not a wasteful one


def test_decode_output_is_an_ordinary_tensor(codec: Codec) -> None:
    wave = codec.decode(random_codes(SMALL, 2))
    assert not wave.is_inference()
    wave.clamp_(-0.5, 0.5)  # callers may edit it in place


def test_decode_accepts_fewer_codebooks_and_empty_input(codec: Codec) -> None:
    assert codec.decode(random_codes(SMALL, 5)[:, :4]).shape == (1, 5 * 512)
    assert codec.decode(torch.zeros(3, 9, 0, dtype=torch.long)).shape == (3, 0)


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (torch.full((1, 9, 4), 64), r"\[0, 64\); found 64 .*special/padding token"),
        (torch.full((1, 9, 4), 99), r"\[0, 64\); found 99 at \(batch 0, codebook 0, step 0\)"),
        (torch.full((1, 9, 4), -1), r"found -1"),
        (torch.zeros(9, 4, dtype=torch.long), r"\(batch, codebooks, time\) integer tensor"),
        (torch.zeros(1, 9, 4), r"integer tensor, got shape \(1, 9, 4\) and dtype torch.float32"),
        (torch.zeros(1, 10, 4, dtype=torch.long), r"10 codebooks; this codec decodes 1 to 9"),
    ],
)
def test_decode_rejects_bad_codes(codec: Codec, codes: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec.decode(codes)


def test_decode_names_where_the_bad_code_is(codec: Codec) -> None:
    codes = random_codes(SMALL, 6)
    codes[0, 5, 3] = 64
    with pytest.raises(ValueError, match=r"codebook 5, step 3"):
        codec.decode(codes)


# --- encode ------------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [1, 511, 512, 513, 3 * 512 - 7])
def test_encode_decode_lengths(codec: Codec, samples: int) -> None:
    wave = torch.randn(2, samples) * 0.1
    codes = codec.encode(wave, 44100)
    tokens = math.ceil(samples / 512)
    assert codes.shape == (2, 9, tokens) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < 64
    assert codec.decode(codes).shape == (2, tokens * 512)


def test_encode_accepts_mono_and_resamples(codec: Codec) -> None:
    wave = torch.randn(16000) * 0.1
    codes = codec.encode(wave, 16000)
    assert codes.shape == (1, 9, math.ceil(math.ceil(16000 * 44100 / 16000) / 512))


def test_encode_matches_dac(codec: Codec, reference_dac) -> None:
    wave = torch.randn(1, 1, 20 * 512) * 0.2
    with torch.no_grad():
        _, expected, *_ = reference_dac.encode(reference_dac.preprocess(wave, 44100))
    assert torch.equal(codec.encode(wave[:, 0], 44100, chunk_tokens=None), expected)


def test_chunked_encode_equals_one_shot_encode(codec: Codec) -> None:
    wave = torch.randn(1, 20 * 512 - 100) * 0.2
    whole = codec.encode(wave, 44100, chunk_tokens=None)
    assert torch.equal(codec.encode(wave, 44100, chunk_tokens=8), whole)
    assert not torch.equal(codec.encode(wave, 44100, chunk_tokens=8, overlap=0), whole)


def test_encode_with_float16_weights_matches_float32(codec: Codec) -> None:
    half = copy.deepcopy(codec).half()
    rounded = copy.deepcopy(half).float()
    wave = torch.randn(1, 6 * 512) * 0.2
    assert torch.equal(half.encode(wave, 44100), rounded.encode(wave, 44100))


@pytest.mark.parametrize(
    ("wave", "rate", "message"),
    [
        (torch.zeros(1, 1, 100), 44100, r"shape \(samples,\) or \(batch, samples\)"),
        (torch.zeros(0), 44100, r"got \(0,\)"),
        (torch.zeros(100, dtype=torch.int16), 44100, r"floating-point tensor, got torch.int16"),
        (torch.full((100,), float("nan")), 44100, r"NaN or infinite"),
        (torch.zeros(100), 0, r"positive integer"),
    ],
)
def test_encode_rejects_bad_input(codec: Codec, wave: torch.Tensor, rate: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec.encode(wave, rate)


# --- loading -----------------------------------------------------------------------------


def test_from_state_dict_reports_missing_unexpected_and_misshaped_entries(reference_dac) -> None:
    sd = fold_weight_norm(reference_dac.state_dict())
    broken = {**sd, "extra.weight": torch.zeros(1)}
    del broken["decoder.model.0.bias"]
    with pytest.raises(ValueError, match=r"missing decoder\.model\.0\.bias; unexpected extra\.weight"):
        Codec.from_state_dict(SMALL, broken)
    with pytest.raises(ValueError, match=r"wrong shape: decoder\.model\.0\.bias \(32,\) instead of \(16,\)"):
        Codec.from_state_dict(CodecConfig(encoder_dim=4, decoder_dim=16, codebook_size=64), sd)


def test_from_state_dict_leaves_nothing_on_meta(codec: Codec) -> None:
    assert not any(t.is_meta for t in codec.state_dict().values())
    assert not codec.training


@pytest.mark.parametrize(("chunk", "overlap"), [(0, None), (-4, None), (8, -1)])
def test_bad_chunking_is_rejected(codec: Codec, chunk: int, overlap: int | None) -> None:
    with pytest.raises(ValueError, match=r"chunk_tokens|overlap"):
        codec.decode(random_codes(SMALL, 4), chunk_tokens=chunk, overlap=overlap)
    with pytest.raises(ValueError, match=r"chunk_tokens|overlap"):
        codec.encode(torch.zeros(600), 44100, chunk_tokens=chunk, overlap=overlap)


# --- Snake for inference -------------------------------------------------------------------


def test_inference_snake_is_dac_snake_bit_for_bit_and_keeps_gradients() -> None:
    from dac.nn.layers import Snake1d

    torch.manual_seed(3)
    ref = Snake1d(5)
    with torch.no_grad():
        ref.alpha.uniform_(0.2, 2.0)
    fast = InferenceSnake(ref.alpha)
    x = torch.randn(2, 5, 301) * 3
    with torch.no_grad():
        assert torch.equal(fast(x), ref(x))
        # DAC reshapes to (B, C, -1) and back: other ranks keep their shape
        y = torch.randn(2, 5, 7, 3)
        assert torch.equal(fast(y), ref(y))
    # With autograd on it stays differentiable (no in-place ops on saved tensors).
    xg = x.clone().requires_grad_(True)
    fast(xg).square().sum().backward()
    expected = torch.autograd.grad(ref(x.clone().requires_grad_(True)).square().sum(), ref.alpha)[0]
    assert xg.grad is not None and fast.alpha.grad is not None
    assert torch.allclose(fast.alpha.grad, expected, rtol=1e-5, atol=1e-5)


def test_codec_runs_its_activations_through_the_inference_snake(codec: Codec) -> None:
    from dac.nn.layers import Snake1d

    kinds = [type(m) for m in codec.model.modules()]
    assert InferenceSnake in kinds and Snake1d not in kinds

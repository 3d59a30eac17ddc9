"""Tests for the Segment AVCLIP visual encoder (vaura_core/model/visual.py).

The references below are written independently of the module, with explicit loops over token
groups, so a wrong grouping, CLS handling, block order or token layout shows up as a mismatch.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from vaura_core.model.config import VisualConfig, preset
from vaura_core.model.visual import DividedAttention, DividedSpaceTimeBlock, MotionFormer

STATE_DICT_LIST = Path(__file__).parent / "data" / "vaura-state-dict.txt"
PREFIX = "visual_feature_extractor."

# 3 temporal tokens x 4 patches: unequal, so swapping the time and space groupings changes results.
TINY = VisualConfig(img_size=32, patch_size=16, frames=6, tubelet=2, dim=8, depth=2, heads=2)


def scramble(module: nn.Module, seed: int) -> None:
    """Overwrite every parameter with well-spread random values (the default init is near-uniform)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(0.4 * noise)


def tiny_model(seed: int = 0, cfg: VisualConfig = TINY) -> MotionFormer:
    model = MotionFormer(cfg).double().eval()
    scramble(model, seed)
    return model


def random_frames(*shape: int, seed: int = 1) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1


# --- naive references -----------------------------------------------------------------------


def naive_divided_attention(attn: DividedAttention, x: Tensor, frames: int, axis: str) -> Tensor:
    b, n, dim = x.shape
    heads = attn.heads
    d = dim // heads
    patches = (n - 1) // frames
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]

    def token(t: int, p: int) -> int:
        return 1 + t * patches + p

    if axis == "time":
        groups = [[token(t, p) for t in range(frames)] for p in range(patches)]
    else:
        groups = [[token(t, p) for p in range(patches)] for t in range(frames)]
    out = torch.zeros_like(x)
    for bi in range(b):
        for hi in range(heads):
            cols = slice(hi * d, (hi + 1) * d)
            qh, kh, vh = q[bi, :, cols] / math.sqrt(d), k[bi, :, cols], v[bi, :, cols]
            out[bi, 0, cols] = torch.softmax(kh @ qh[0], dim=0) @ vh
            for group in groups:
                keys = [0, *group]  # the CLS key/value joins every group
                weights = torch.softmax(qh[group] @ kh[keys].T, dim=-1)
                out[bi, group, cols] = weights @ vh[keys]
    return out @ attn.proj.weight.T + attn.proj.bias


def naive_layer_norm(x: Tensor, norm: nn.LayerNorm) -> Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def naive_gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def naive_block(block: DividedSpaceTimeBlock, x: Tensor, frames: int) -> Tensor:
    x = x + naive_divided_attention(block.timeattn, naive_layer_norm(x, block.norm3), frames, "time")
    x = x + naive_divided_attention(block.attn, naive_layer_norm(x, block.norm1), frames, "space")
    h = naive_gelu(naive_layer_norm(x, block.norm2) @ block.mlp.fc1.weight.T + block.mlp.fc1.bias)
    return x + h @ block.mlp.fc2.weight.T + block.mlp.fc2.bias


def naive_encoder(model: MotionFormer, frames: Tensor) -> Tensor:
    """(N, 3, F, H, W) -> (N, t, D), one segment and one temporal slice at a time."""
    cfg = model.cfg
    t_n, side, ps, tub = cfg.tokens_per_segment, cfg.img_size // cfg.patch_size, cfg.patch_size, cfg.tubelet
    spans = [slice(i * ps, (i + 1) * ps) for i in range(side)]  # square patches
    w3 = model.patch_embed_3d.proj.weight
    agg = model.spatial_attn_agg
    results = []
    for seg in frames:
        tokens = [model.cls_token[0, 0] + model.pos_embed[0, 0]]
        for t in range(t_n):
            for row in range(side):
                for col in range(side):
                    cube = seg[:, t * tub : (t + 1) * tub, spans[row], spans[col]]
                    emb = (w3 * cube).sum(dim=(1, 2, 3, 4)) + model.patch_embed_3d.proj.bias
                    p = row * side + col
                    tokens.append(emb + model.pos_embed[0, 1 + p] + model.temp_embed[0, t])
        x = torch.stack(tokens)[None]
        for block in model.blocks:
            x = naive_block(block, x, t_n)
        x = naive_layer_norm(x[0, 1:], model.norm)
        slices = []
        for t in range(t_n):
            frame_tokens = x[t * side * side : (t + 1) * side * side]
            seq = torch.cat([agg.cls_token[0], frame_tokens])[None]
            slices.append(nn.TransformerEncoderLayer.forward(agg, seq)[0, 0])
        results.append(torch.stack(slices))
    return torch.stack(results)


# --- shapes and names -----------------------------------------------------------------------


def release_visual_entries() -> list[tuple[str, tuple[int, ...]]]:
    entries = []
    for line in STATE_DICT_LIST.read_text(encoding="utf-8").splitlines():
        if line.startswith(PREFIX):
            name, shape, _dtype = line.split("\t")
            entries.append((name.removeprefix(PREFIX), tuple(ast.literal_eval(shape))))
    return entries


def test_release_names_and_shapes_match_checkpoint() -> None:
    with torch.device("meta"):
        model = MotionFormer(preset("vaura").visual)
    expected = release_visual_entries()
    assert len(expected) == 238
    got = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    assert got == expected
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())


def test_release_forward_shape_on_meta() -> None:
    with torch.device("meta"):
        model = MotionFormer(preset("vaura").visual)
        out = model(torch.empty(2, 3, 3, 16, 224, 224))
    assert out.shape == (2, 3, 8, 768)


def test_small_preset_shapes_scale_with_config() -> None:
    cfg = preset("test").visual
    model = MotionFormer(cfg)
    assert model.pos_embed.shape == (1, 1 + cfg.patches_per_frame, cfg.dim) == (1, 5, 32)
    assert model.temp_embed.shape == (1, cfg.tokens_per_segment, cfg.dim) == (1, 8, 32)
    assert model.spatial_attn_agg.linear1.weight.shape == (int(cfg.mlp_ratio * cfg.dim), cfg.dim)
    frames = torch.rand(2, 3, 3, cfg.frames, cfg.img_size, cfg.img_size) * 2 - 1
    with torch.no_grad():
        out = model(frames)
    assert out.shape == (2, 3, cfg.tokens_per_segment, cfg.dim)
    assert torch.isfinite(out).all()


# --- equivalence with independent references ------------------------------------------------


@pytest.mark.parametrize("axis", ["time", "space"])
def test_divided_attention_matches_naive_loops(axis: str) -> None:
    attn = DividedAttention(TINY.dim, TINY.heads).double()
    scramble(attn, seed=3)
    frames, patches = 3, 4
    x = random_frames(2, 1 + frames * patches, TINY.dim, seed=4)
    with torch.no_grad():
        got = attn(x, frames, axis)
        want = naive_divided_attention(attn, x, frames, axis)
        other = naive_divided_attention(attn, x, frames, "space" if axis == "time" else "time")
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert (got - other).abs().max() > 1e-3  # the two groupings really differ on this input


def test_block_order_matches_naive_reference() -> None:
    block = DividedSpaceTimeBlock(TINY).double()
    scramble(block, seed=5)
    x = random_frames(2, 1 + 3 * 4, TINY.dim, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(block(x, 3), naive_block(block, x, 3), rtol=1e-10, atol=1e-10)


def test_position_embedding_layout() -> None:
    model = tiny_model()
    pos = model.position_embedding()[0]
    patches = TINY.patches_per_frame
    assert pos.shape == (1 + TINY.tokens_per_segment * patches, TINY.dim)
    torch.testing.assert_close(pos[0], model.pos_embed[0, 0])
    for t in range(TINY.tokens_per_segment):
        for p in range(patches):
            want = model.pos_embed[0, 1 + p] + model.temp_embed[0, t]
            torch.testing.assert_close(pos[1 + t * patches + p], want)


def test_spatial_aggregator_equals_full_encoder_layer() -> None:
    agg = tiny_model(seed=7).spatial_attn_agg
    tokens = random_frames(5, 4, TINY.dim, seed=8)
    with torch.no_grad():
        full = nn.TransformerEncoderLayer.forward(agg, agg.with_cls(tokens))[:, 0]
        torch.testing.assert_close(agg(tokens), full, rtol=1e-10, atol=1e-10)


def test_encoder_matches_naive_reference() -> None:
    model = tiny_model(seed=9)
    frames = random_frames(2, 3, TINY.frames, TINY.img_size, TINY.img_size, seed=10)
    with torch.no_grad():
        got = model.encode_segments(frames)
        want = naive_encoder(model, frames)
    assert got.shape == (2, TINY.tokens_per_segment, TINY.dim)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


# --- segment independence, chunking, input checks, dtypes -----------------------------------


def test_segments_are_independent_and_chunking_is_exact() -> None:
    model = tiny_model(seed=11)
    b, s = 2, 3
    frames = random_frames(b, s, 3, TINY.frames, TINY.img_size, TINY.img_size, seed=12)
    with torch.no_grad():
        together = model(frames)
        flat = frames.flatten(0, 1)
        alone = torch.stack([model.encode_segments(seg[None])[0] for seg in flat]).unflatten(0, (b, s))
        chunked = model.encode_segments(flat, chunk=4)
        unchunked = model.encode_segments(flat)
        # changing one segment leaves the others' features untouched
        edited = frames.clone()
        edited[0, 1] = -edited[0, 1]
        after = model(edited)
    assert together.shape == (b, s, TINY.tokens_per_segment, TINY.dim)
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chunked, unchunked, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(unchunked, together.flatten(0, 1), rtol=1e-12, atol=1e-12)
    assert (after[0, 1] - together[0, 1]).abs().max() > 1e-3
    mask = torch.ones(b, s, dtype=torch.bool)
    mask[0, 1] = False
    torch.testing.assert_close(after[mask], together[mask], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 3, 6, 32, 32, 1), (1, 1, 3, 8, 32, 32), (1, 1, 3, 6, 48, 32), (1, 1, 1, 6, 32, 32)],
)
def test_wrong_input_shape_is_rejected(shape: tuple[int, ...]) -> None:
    model = MotionFormer(TINY)
    with pytest.raises(ValueError, match="expects frames of shape"):
        model(torch.zeros(shape))


def test_bad_chunk_and_config_are_rejected() -> None:
    model = MotionFormer(TINY)
    with pytest.raises(ValueError, match="chunk"):
        model.encode_segments(torch.zeros(2, 3, 6, 32, 32), chunk=0)
    with pytest.raises(ValueError, match="patch size"):
        MotionFormer(VisualConfig(img_size=40, patch_size=16, dim=8, depth=1, heads=2))
    with pytest.raises(ValueError, match="tubelet"):
        MotionFormer(VisualConfig(img_size=32, frames=5, dim=8, depth=1, heads=2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tracks_float32(dtype: torch.dtype) -> None:
    torch.manual_seed(13)
    ref_model = MotionFormer(TINY).eval()
    half_model = MotionFormer(TINY).eval()
    half_model.load_state_dict(ref_model.state_dict())
    half_model.to(dtype)
    frames = torch.rand(1, 2, 3, TINY.frames, TINY.img_size, TINY.img_size) * 2 - 1
    with torch.no_grad():
        ref = ref_model(frames)
        out = half_model(frames)  # float32 frames are cast to the weights' dtype
    assert out.dtype == dtype
    err = (out.float() - ref).abs().max() / ref.abs().max()
    assert err < 0.05, float(err)

"""The decode-step fast path of the transformer's linear layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaura_core.model import lm
from vaura_core.model.lm import Dense


@pytest.fixture(autouse=True, params=["small weights", "any weight"])
def _skinny_threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test through both kernels: the default (F.linear for these small weights) and mm."""
    if request.param == "any weight":
        monkeypatch.setattr(lm, "_SKINNY_MIN_WEIGHT", 0)


@pytest.mark.parametrize("shape", [(1, 1, 48), (2, 1, 48), (3, 5, 48), (4, 4, 48), (2, 40, 48)])
def test_dense_matches_linear_for_any_row_count(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    layer = Dense(48, 72, bias=False)
    x = torch.randn(*shape)
    out = layer(x)
    assert out.shape == (*shape[:-1], 72)
    torch.testing.assert_close(out, F.linear(x, layer.weight), rtol=1e-5, atol=1e-5)


def test_dense_keeps_linear_state_dict_names_and_bias() -> None:
    layer = Dense(8, 4, bias=True)
    assert set(layer.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 8)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))


def test_dense_backpropagates_like_linear() -> None:
    torch.manual_seed(1)
    layer = Dense(16, 8, bias=False)
    x = torch.randn(2, 16, requires_grad=True)
    layer(x).square().sum().backward()
    grad_w, grad_x = layer.weight.grad.clone(), x.grad.clone()
    layer.weight.grad = None
    x2 = x.detach().clone().requires_grad_(True)
    F.linear(x2, layer.weight).square().sum().backward()
    torch.testing.assert_close(grad_w, layer.weight.grad)
    torch.testing.assert_close(grad_x, x2.grad)


def _small_lm() -> lm.FusionLM:
    from vaura_core.model.config import preset

    torch.manual_seed(3)
    return lm.FusionLM(preset("test")).eval()


def _inputs(model: lm.FusionLM, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model.cfg
    tokens = torch.randint(0, cfg.vocab_size + 1, (batch, cfg.n_codebooks, length))
    return tokens, model.project_video(torch.randn(batch, cfg.lm.video_tokens, cfg.visual.dim))


def test_inference_fast_paths_give_the_training_paths_logits() -> None:
    model = _small_lm()
    tokens, video = _inputs(model, 2, 30)
    with torch.enable_grad():
        reference = model(tokens, video.detach())  # per-codebook modules
    with torch.inference_mode():
        fast = model(tokens, video)  # fused embedding table and heads
    torch.testing.assert_close(fast, reference.detach(), rtol=1e-5, atol=1e-5)


def test_derived_tensors_follow_weight_updates() -> None:
    model = _small_lm()
    tokens, video = _inputs(model, 1, 12)
    with torch.inference_mode():
        before = model(tokens, video)
    other = _small_lm()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    model.load_state_dict(other.state_dict())  # copies in place: same storage, new versions
    with torch.inference_mode():
        after = model(tokens, video)
    with torch.enable_grad():
        expected = other(tokens, video).detach()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)


def test_rope_rotates_adjacent_pairs() -> None:
    torch.manual_seed(4)
    x = torch.randn(2, 5, 3, 8)
    table = lm.rope_table(16, 8, 10_000.0)[3:8]  # positions 3..7
    angles = torch.arange(3, 8)[:, None] / 10_000.0 ** (torch.arange(0, 8, 2) / 8)
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    a, b = x[..., 0::2], x[..., 1::2]
    expected = torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(3)
    torch.testing.assert_close(lm.apply_rope(x, table), expected, rtol=1e-5, atol=1e-5)

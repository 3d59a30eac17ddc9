"""One-token decode steps of the fusion transformer with as few operator calls as possible.

A decode step of a small model is almost all per-call overhead of eager PyTorch (vaura-tiny: about 250
calls and 5 ms per step through the `nn.Module` path, for a few hundred kilobytes of arithmetic).
`FastDecoder` computes the same function as `FusionLM.forward(tokens, video, start=pos, cache=cache,
last_only=True)` for one position: weights are packed once per window (transposed or fused so each
product is a single `mm`/`addmm`, residual adds folded into `addmm`), the per-position video channels
are gathered for every position up front, and keys/values go into the same `KVCache` the prefill
filled. Large weights on the CPU keep the `torch.mm(W, x.T)` form, which streams them faster
(`lm.skinny_linear`); there the step is bound by memory traffic, not by calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vaura_core.model.lm import _SKINNY_MIN_WEIGHT, FusionLM, KVCache


@dataclass(frozen=True)
class _Weight:
    """A projection x @ W.T kept as W.T (contiguous, small weights) or as W (large weights on CPU)."""

    tensor: Tensor
    transposed: bool

    @classmethod
    def of(cls, w: Tensor) -> _Weight:
        if w.device.type == "cpu" and w.numel() >= _SKINNY_MIN_WEIGHT:
            return cls(w, False)
        return cls(w.t().contiguous(), True)

    def apply(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if self.transposed:
            return torch.mm(x, self.tensor) if residual is None else torch.addmm(residual, x, self.tensor)
        out = torch.mm(self.tensor, x.t()).t()  # column-major: later views want rows contiguous
        return out.contiguous() if residual is None else residual + out


@dataclass(frozen=True)
class _Layer:
    attention_norm: Tensor | None  # None: folded into wqkv (float32)
    wqkv: _Weight
    wo: _Weight
    ffn_norm: Tensor | None  # None: folded into w13 / w1 and w3
    w13: _Weight | None  # [w1; w3] when fused, else None and w1/w3 apart
    w1: _Weight | None
    w3: _Weight | None
    w2: _Weight
    k: Tensor  # this layer's key cache (B, H, max_len, D)
    v: Tensor


class FastDecoder:
    """Decode steps for the rows of `video` sharing `cache` (filled by the prefill).

    Valid while the model's weights do not change: it packs them when built (once per window).
    In float32 each RMSNorm weight, and the sqrt(dim) of its mean, are folded into the columns of the
    projection after it, so a norm is a few cheap kernels instead of the many of `F.rms_norm` on a CPU.
    """

    def __init__(self, lm: FusionLM, cache: KVCache, video: Tensor) -> None:
        cfg = lm.cfg
        self.cache = cache
        self.rows = video.shape[0]
        self.n_head, self.head_dim = cfg.lm.n_head, cfg.head_dim
        self.dim = cfg.model_dim
        self.eps = cfg.lm.norm_eps
        self.dtype = lm.norm.weight.dtype
        self.fold = self.dtype == torch.float32
        self.n_q = cfg.n_codebooks
        # Video channels of every position the cache can hold: a step only slices this table.
        self.video = lm._video_at(video, 0, cache.max_len).to(self.dtype)
        self.rope = lm.rope(video.device)
        with torch.inference_mode():
            # The model's projected table of every codebook's embeddings (one gather per step).
            self.table = lm.embedding_table()
            rows = lm.tok_embeddings[0].emb.num_embeddings
            self.offsets = torch.arange(self.n_q, device=video.device) * rows
            self.layers = [self._pack(i, block) for i, block in enumerate(lm.layers)]
            heads = torch.cat([h.weight for h in lm.lm_heads])
            self.norm = None if self.fold else lm.norm.weight
            self.heads = _Weight.of(self._folded(heads, lm.norm.weight))

    def _folded(self, w: Tensor, norm: Tensor) -> Tensor:
        return w * (norm * self.dim**0.5)[None, :] if self.fold else w

    def _pack(self, i: int, block: torch.nn.Module) -> _Layer:
        ff = block.feed_forward
        attn_norm, ffn_norm = block.attention_norm.weight, block.ffn_norm.weight
        w1, w3 = self._folded(ff.w1.weight, ffn_norm), self._folded(ff.w3.weight, ffn_norm)
        fuse = w1.numel() < _SKINNY_MIN_WEIGHT or w1.device.type != "cpu"
        return _Layer(
            attention_norm=None if self.fold else attn_norm,
            wqkv=_Weight.of(self._folded(block.attention.wqkv.weight, attn_norm)),
            wo=_Weight.of(block.attention.wo.weight),
            ffn_norm=None if self.fold else ffn_norm,
            w13=_Weight.of(torch.cat([w1, w3])) if fuse else None,
            w1=None if fuse else _Weight.of(w1),
            w3=None if fuse else _Weight.of(w3),
            w2=_Weight.of(ff.w2.weight),
            k=self.cache.k[i],
            v=self.cache.v[i],
        )

    def _norm(self, x: Tensor, weight: Tensor | None) -> Tensor:
        if weight is None:  # folded: x * sqrt(dim) / sqrt(sum(x^2) + dim * eps), sqrt(dim) in the weights
            return x * x.square().sum(-1, keepdim=True).add_(self.dim * self.eps).rsqrt_()
        return F.rms_norm(x.float(), (self.dim,), eps=self.eps).type_as(x) * weight

    @torch.inference_mode()
    def step(self, tokens: Tensor, pos: int) -> Tensor:
        """Logits (rows, Q, V) at position `pos` for the delayed tokens (rows, Q) at that position."""
        rows, h, d, dim = self.rows, self.n_head, self.head_dim, self.dim
        audio = F.embedding(tokens + self.offsets, self.table).sum(dim=1)  # (rows, latent)
        x = torch.cat([self.video[:, pos], audio], dim=-1)
        rope = self.rope[pos]  # (d / 2,) complex
        end = pos + 1
        for layer in self.layers:
            qkv = layer.wqkv.apply(self._norm(x, layer.attention_norm))  # (rows, 3 * dim)
            # q and k of every head: adjacent pairs as complex numbers, rotated in one product.
            qk = qkv[:, : 2 * dim] if self.fold else qkv[:, : 2 * dim].float()
            qk = torch.view_as_real(torch.view_as_complex(qk.reshape(rows, 2 * h, d // 2, 2)) * rope)
            qk = qk.reshape(rows, 2 * h, 1, d) if self.fold else qk.reshape(rows, 2 * h, 1, d).to(self.dtype)
            layer.k.select(2, pos).copy_(qk[:, h:, 0])
            layer.v.select(2, pos).copy_(qkv[:, 2 * dim :].reshape(rows, h, d))
            out = F.scaled_dot_product_attention(
                qk[:, :h], layer.k.narrow(2, 0, end), layer.v.narrow(2, 0, end)
            )
            x = layer.wo.apply(out.reshape(rows, dim), residual=x)
            hidden = self._norm(x, layer.ffn_norm)
            if layer.w13 is not None:
                gate, up = layer.w13.apply(hidden).chunk(2, dim=-1)
            else:
                assert layer.w1 is not None and layer.w3 is not None
                gate, up = layer.w1.apply(hidden), layer.w3.apply(hidden)
            x = layer.w2.apply(F.silu(gate).mul_(up), residual=x)
        self.cache.length = end
        logits = self.heads.apply(self._norm(x, self.norm)).view(rows, self.n_q, -1)
        return logits if self.fold else logits.float()

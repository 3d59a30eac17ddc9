"""One-token decode steps of the fusion transformer with as few operator calls as possible.

A decode step of a small model is almost all per-call overhead of eager PyTorch (vaura-tiny: about 250
calls and 5 ms per step through the `nn.Module` path, for a few hundred kilobytes of arithmetic).
`FastDecoder` computes the same function as `FusionLM.forward(tokens, video, start=pos, cache=cache,
last_only=True)` for one position: small CPU weights are packed once per window (transposed, [w1; w3]
fused, RMSNorm weights folded in, so each product is a single `mm`/`addmm` with the residual add
inside), the per-position video channels are gathered for every position up front, and keys/values
go into the same `KVCache` the prefill filled. Large weights (the released model) are used in place:
copies would double the memory, and their steps are bound by memory traffic, not by calls; on a CPU
they keep the `torch.mm(W, x.T)` form that streams them faster (`lm.skinny_linear`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vaura_core.model.lm import _SKINNY_MIN_WEIGHT, FusionLM, KVCache


def _packable(w: Tensor) -> bool:
    """Small CPU weights get packed copies (transposed, fused, norms folded in): they cost little
    memory, and their steps are bound by calls. Large or GPU weights are used in place, never copied."""
    return w.device.type == "cpu" and w.numel() < _SKINNY_MIN_WEIGHT


def call_bound(lm: FusionLM) -> bool:
    """Whether `lm`'s decode steps are bound by per-call overhead (small CPU weights, packed). One
    intra-op thread runs them faster than several: OpenMP's fork and join on every small kernel cost
    more than splitting it saves (vaura-tiny on 2 cores: 0.94 ms a step of 2 rows with one thread,
    1.26 ms with two), and the other core decodes audio meanwhile (the 10 s demo clip with 4 chains,
    8 rows a step: audio ready 2.03 s with one-thread steps, 2.35 s with two; docs/benchmarks.md)."""
    return _packable(lm.layers[0].attention.wqkv.weight)


@dataclass(frozen=True)
class _Weight:
    """A projection x @ W.T: W.T packed contiguous (small CPU weights, `mm`/`addmm`), or W as it is."""

    tensor: Tensor
    transposed: bool

    @classmethod
    def of(cls, w: Tensor) -> _Weight:
        return cls(w.t().contiguous(), True) if _packable(w) else cls(w, False)

    def apply(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if self.transposed:
            return torch.mm(x, self.tensor) if residual is None else torch.addmm(residual, x, self.tensor)
        if self.tensor.device.type == "cpu":  # large: streams the weight faster (lm.skinny_linear)
            out = torch.mm(self.tensor, x.t()).t().contiguous()  # later views want rows contiguous
        else:
            out = F.linear(x, self.tensor)
        return out if residual is None else residual + out


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
        self.eps_root = torch.tensor((self.dim * self.eps) ** 0.5, device=video.device)
        self.dtype = lm.norm.weight.dtype
        # Norm weights are folded into the (copied) projections only where those are packed.
        self.fold = self.dtype == torch.float32 and call_bound(lm)
        self.n_q = cfg.n_codebooks
        # Video channels of every position the cache can hold: a step only slices this table.
        self.video = lm._video_at(video, 0, cache.max_len).to(self.dtype)
        self.rope = lm.rope(video.device)
        with torch.inference_mode():
            # The model's projected table of every codebook's embeddings (one gather per step).
            self.table = lm.embedding_table()
            self.offsets = lm.embedding_offsets(video.device)
            self.layers = [self._pack(i, block) for i, block in enumerate(lm.layers)]
            self.norm = None if self.fold else lm.norm.weight
            self.heads = _Weight.of(self._folded(lm.head_weight(), lm.norm.weight))

    def _folded(self, w: Tensor, norm: Tensor) -> Tensor:
        return w * (norm * self.dim**0.5)[None, :] if self.fold else w

    def _pack(self, i: int, block: torch.nn.Module) -> _Layer:
        ff = block.feed_forward
        attn_norm, ffn_norm = block.attention_norm.weight, block.ffn_norm.weight
        w1, w3 = self._folded(ff.w1.weight, ffn_norm), self._folded(ff.w3.weight, ffn_norm)
        fuse = _packable(w1)
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
            # hypot(|x|, sqrt(dim * eps)) is that root in one kernel: 3 calls instead of 5 (half the time)
            return x / torch.hypot(torch.linalg.vector_norm(x, dim=-1, keepdim=True), self.eps_root)
        return F.rms_norm(x.float(), (self.dim,), eps=self.eps).type_as(x) * weight

    @torch.inference_mode()
    def step(self, tokens: Tensor, pos: int, guidance: float | None = None) -> Tensor:
        """Logits (rows, Q, V) at position `pos` for the delayed tokens (rows, Q) at that position.

        With `guidance` s, rows [0, B) are conditioned and [B, 2B) their null-video twins, and the
        result is the guided (B, Q, V) logits u + s (c - u). The heads are linear, so the mix is taken
        of the final hidden states and only B rows go through the heads (16 % of a vaura-tiny step's
        multiply-adds are the heads'); equal to mixing the logits up to float rounding.
        """
        if guidance is not None and self.rows % 2:
            raise ValueError(f"guidance needs conditioned and null rows in pairs, got {self.rows} rows")
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
        hidden = self._norm(x, self.norm)
        if guidance is not None:
            half = rows // 2
            hidden = torch.lerp(hidden[half:], hidden[:half], guidance)  # u + s (c - u)
        logits = self.heads.apply(hidden).view(hidden.shape[0], self.n_q, -1)
        return logits if self.fold else logits.float()

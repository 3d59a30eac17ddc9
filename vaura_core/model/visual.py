"""Segment AVCLIP visual encoder: the Motionformer video tower with divided space-time attention.

Each 16-frame segment is encoded on its own into `tokens_per_segment` (8) vectors of `dim` (768):
a ViT over 2x16x16 tubelets whose blocks attend over time, then over space, then apply an MLP,
followed by a one-layer spatial aggregator that pools each temporal slice into its CLS token.
Parameter names equal the released checkpoint's `visual_feature_extractor.*` keys with the prefix
stripped, so it loads strictly (spec: shared/reference/vaura.md, section 2).

Segments never see each other, so features may be cached per segment and computed in any grouping.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaura_core.model.config import VisualConfig

Axis = Literal["time", "space"]


class PatchEmbed2D(nn.Module):
    """The original ViT's image patch embedding: unused at run time, kept so checkpoints load strictly."""

    def __init__(self, cfg: VisualConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: (N, 3, F, H, W) -> (N, t*h*w, dim), tokens ordered with t slowest."""

    def __init__(self, cfg: VisualConfig) -> None:
        super().__init__()
        kernel = (cfg.tubelet, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.dim, kernel_size=kernel, stride=kernel)

    def forward(self, frames: Tensor) -> Tensor:
        return self.proj(frames).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    # q is already multiplied by head_dim^-0.5, as in the original, so the rounding matches it.
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)


class DividedAttention(nn.Module):
    """Attention restricted to groups of patch tokens, with a CLS token that sees everything.

    Input is (B, 1 + frames * patches, dim): CLS first, then patch tokens with the frame index
    slowest. `axis="time"` groups the tokens sharing a spatial position (each attends over the
    frames); `axis="space"` groups the tokens of one frame (each attends over its patches). Every
    group also sees the CLS key/value; the CLS query attends to all tokens.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, frames: int, axis: Axis) -> Tensor:
        b, n, dim = x.shape
        h, d = self.heads, self.head_dim
        patches = (n - 1) // frames
        q, k, v = self.qkv(x).view(b, n, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # (b, h, n, d)
        q = q * self.scale

        cls_out = _attend(q[:, :, :1], k, v)  # (b, h, 1, d)

        def grouped(t: Tensor) -> Tensor:
            # (b, h, frames * patches, d) -> (b, h, groups, group_len, d)
            t = t[:, :, 1:].unflatten(2, (frames, patches))
            return t.transpose(2, 3) if axis == "time" else t

        qg, kg, vg = grouped(q), grouped(k), grouped(v)
        groups, length = qg.shape[2], qg.shape[3]
        kg = torch.cat([k[:, :, None, :1].expand(-1, -1, groups, -1, -1), kg], dim=3)
        vg = torch.cat([v[:, :, None, :1].expand(-1, -1, groups, -1, -1), vg], dim=3)
        # Fold groups into the head axis: fused SDPA kernels want 4-D inputs.
        out = _attend(
            qg.reshape(b, h * groups, length, d),
            kg.view(b, h * groups, length + 1, d),
            vg.view(b, h * groups, length + 1, d),
        ).view(b, h, groups, length, d)
        if axis == "time":
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, n - 1, d)], dim=2)
        return self.proj(out.transpose(1, 2).reshape(b, n, dim))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention (norm3, no drop path), then space attention (norm1), then the MLP (norm2)."""

    def __init__(self, cfg: VisualConfig) -> None:
        super().__init__()
        # Construction order fixes the state_dict order, which follows the checkpoint.
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.attn = DividedAttention(cfg.dim, cfg.heads)
        self.timeattn = DividedAttention(cfg.dim, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))
        self.norm3 = nn.LayerNorm(cfg.dim, eps=cfg.eps)

    def forward(self, x: Tensor, frames: int) -> Tensor:
        x = x + self.timeattn(self.norm3(x), frames, "time")
        x = x + self.attn(self.norm1(x), frames, "space")
        return x + self.mlp(self.norm2(x))


class SpatialAggregator(nn.TransformerEncoderLayer):
    """A pre-norm encoder layer over [CLS, tokens] that returns the CLS output: (M, L, D) -> (M, D).

    Only the CLS row of the layer's output is used, and everything but attention is per token, so
    this computes just that row (CLS query against all keys/values). That equals the full layer's
    `forward(...)[:, 0]` at a fraction of the cost.
    """

    def __init__(self, cfg: VisualConfig) -> None:
        super().__init__(
            d_model=cfg.dim,
            nhead=cfg.heads,
            dim_feedforward=int(cfg.mlp_ratio * cfg.dim),
            dropout=0.0,
            activation="gelu",  # exact (erf) GELU
            layer_norm_eps=cfg.eps,
            batch_first=True,
            norm_first=True,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))

    def with_cls(self, tokens: Tensor) -> Tensor:
        """(M, L, D) -> (M, 1 + L, D): the learned CLS token prepended, no positional embedding."""
        return torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)

    def forward(self, tokens: Tensor) -> Tensor:  # type: ignore[override]
        seq = self.with_cls(tokens)
        m, n, dim = seq.shape
        heads = self.self_attn.num_heads
        w_q, w_kv = self.self_attn.in_proj_weight.split([dim, 2 * dim])
        b_q, b_kv = self.self_attn.in_proj_bias.split([dim, 2 * dim])
        normed = self.norm1(seq)
        q = F.linear(normed[:, :1], w_q, b_q).view(m, 1, heads, -1).transpose(1, 2)
        k, v = F.linear(normed, w_kv, b_kv).view(m, n, 2, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(m, 1, dim)
        x = seq[:, :1] + self.self_attn.out_proj(attn)
        x = x + self.linear2(self.activation(self.linear1(self.norm2(x))))
        return x[:, 0]


class MotionFormer(nn.Module):
    """Segment AVCLIP video tower: (B, S, 3, F, H, W) in [-1, 1] -> (B, S, tokens_per_segment, dim)."""

    def __init__(self, cfg: VisualConfig) -> None:
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"visual dim {cfg.dim} is not divisible by {cfg.heads} heads")
        if cfg.img_size % cfg.patch_size:
            raise ValueError(f"image size {cfg.img_size} is not a multiple of patch size {cfg.patch_size}")
        if cfg.frames % cfg.tubelet:
            raise ValueError(f"{cfg.frames} frames per segment is not a multiple of tubelet {cfg.tubelet}")
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.patches_per_frame, cfg.dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.tokens_per_segment, cfg.dim))
        self.patch_embed = PatchEmbed2D(cfg)
        self.patch_embed.requires_grad_(False)
        self.patch_embed_3d = PatchEmbed3D(cfg)
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.spatial_attn_agg = SpatialAggregator(cfg)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random initialisation for training-free tests; real use loads checkpoint weights.

        Unlike the original (zero tubelet weights and temporal table) every input path starts
        non-zero here, so tests exercise the whole computation.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for p in (self.cls_token, self.pos_embed, self.temp_embed, self.spatial_attn_agg.cls_token):
            nn.init.trunc_normal_(p, std=0.02)

    def position_embedding(self) -> Tensor:
        """(1, 1 + t * patches, dim): CLS gets pos_embed[0], patch (t, p) pos_embed[1 + p] + temp_embed[t]."""
        spatial = self.pos_embed[:, 1:].repeat(1, self.cfg.tokens_per_segment, 1)
        temporal = self.temp_embed.repeat_interleave(self.cfg.patches_per_frame, dim=1)
        return torch.cat([self.pos_embed[:, :1], spatial + temporal], dim=1)

    def _check(self, frames: Tensor, leading: int) -> None:
        c = self.cfg
        expected = (3, c.frames, c.img_size, c.img_size)
        if frames.dim() != leading + 4 or tuple(frames.shape[leading:]) != expected:
            lead = "(B, S, " if leading == 2 else "(N, "
            raise ValueError(
                f"visual encoder expects frames of shape {lead}{', '.join(map(str, expected))}), "
                f"got {tuple(frames.shape)}"
            )

    def _encode(self, frames: Tensor) -> Tensor:
        t, dim = self.cfg.tokens_per_segment, self.cfg.dim
        x = self.patch_embed_3d(frames.to(self.patch_embed_3d.proj.weight.dtype))
        n = x.shape[0]
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1) + self.position_embedding()
        for block in self.blocks:
            x = block(x, t)
        x = self.norm(x[:, 1:])  # the CLS token is not used by the feature head
        # Tokens are ordered (t, h, w): each temporal slice is pooled over its h*w patches.
        x = self.spatial_attn_agg(x.reshape(n * t, -1, dim))
        return x.view(n, t, dim)

    def encode_segments(self, frames: Tensor, chunk: int | None = None) -> Tensor:
        """(N, 3, F, H, W) segments -> (N, tokens_per_segment, dim).

        With `chunk`, at most that many segments go through the network at once, which bounds
        activation memory for long clips; the result is the same as without it.
        """
        self._check(frames, leading=1)
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be a positive number of segments, got {chunk}")
        if chunk is None or chunk >= frames.shape[0]:
            return self._encode(frames)
        return torch.cat([self._encode(part) for part in frames.split(chunk)], dim=0)

    def forward(self, frames: Tensor) -> Tensor:
        """(B, S, 3, F, H, W) -> (B, S, tokens_per_segment, dim); segments are encoded as a B*S batch."""
        self._check(frames, leading=2)
        b, s = frames.shape[:2]
        return self._encode(frames.flatten(0, 1)).unflatten(0, (b, s))

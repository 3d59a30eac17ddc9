"""The V-AURA fusion transformer ("sampler" in the released checkpoint).

A Llama-style decoder over the delayed DAC token sequence. Each position's input is the channel
concatenation [video (video_dim) | audio (codec latent)]: video features are repeated 7 positions per
visual token and positions past the last visual token get `empty_video_emb` (the release; a config
may instead align video to the audio steps by time, `LMConfig.video_lead_steps`). Parameter names follow
the checkpoint (spec: shared/reference/vaura.md section 3) so it loads strictly.

Unlike the original, attention can run against a static KV cache: prefill once, then one-token decode
steps. Every position's input depends only on its index and token, and attention is causal, so the
cached path computes the same function as a full recompute.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaura_core.model.config import VAuraConfig

# A CPU matmul with a few rows against a weight that does not fit in cache is a matrix-vector
# product bound by memory bandwidth. There torch.mm(W, x.T) streams the weight at about twice the
# rate of F.linear(x, W), which falls back to a poorly blocked GEMM for 2..16 rows (measured: 15 vs
# 6 GB/s for a CFG pair and a 4096 x 1536 weight on 2 cores). Small, cache-resident weights are
# faster through F.linear (13 vs 19 us for 384 x 128).
_SKINNY_ROWS = 16
_SKINNY_MIN_WEIGHT = 1 << 20  # elements (4 MB in float32)


def skinny_linear(x: Tensor, weight: Tensor) -> Tensor:
    """F.linear(x, weight) without bias, through the faster kernel for this shape and device."""
    rows = x.numel() // x.shape[-1]
    if x.device.type != "cpu" or rows > _SKINNY_ROWS or weight.numel() < _SKINNY_MIN_WEIGHT:
        return F.linear(x, weight)
    out = torch.mm(weight, x.reshape(rows, x.shape[-1]).T).T
    return out.reshape(*x.shape[:-1], weight.shape[0])


class Dense(nn.Linear):
    """nn.Linear (same parameters and state-dict names) with a fast path for one-token decode steps."""

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is not None:
            return F.linear(x, self.weight, self.bias)
        return skinny_linear(x, self.weight)


class DerivedTensors:
    """Inference-time tensors computed from parameters (concatenated weights, projected tables).

    An entry is rebuilt when any of its source tensors changes: new storage (`.to()`, loading) or an
    in-place update (an optimiser step bumps the tensor's version counter).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple, Tensor]] = {}

    def get(self, key: str, sources: list[Tensor], build: Callable[[], Tensor]) -> Tensor:
        stamp = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in sources)
        hit = self._entries.get(key)
        if hit is None or hit[0] != stamp:
            hit = (stamp, build())
            self._entries[key] = hit
        return hit[1]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # Normalise in float32 (as the release), scale in the model's dtype.
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


def rope_table(n_pos: int, head_dim: int, base: float) -> Tensor:
    """(n_pos, head_dim / 2) complex64 cos + i sin for adjacent-pair rotary embeddings."""
    freqs = 1.0 / (base ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(n_pos, dtype=torch.float32), freqs)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: Tensor, table: Tensor) -> Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of (B, L, H, D) by the (L, D/2) table, in float32.

    The pair is the complex number x[2i] + i x[2i+1]; one complex product does the rotation, which
    keeps a decode step to a few kernels.
    """
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    t = table[None, :, None]
    if x.device.type == "mps":  # complex tensors are incomplete on Apple GPUs: rotate by hand there
        a, b, cos, sin = pairs[..., 0], pairs[..., 1], t.real, t.imag
        return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(3).type_as(x)
    return torch.view_as_real(torch.view_as_complex(pairs.contiguous()) * t).flatten(3).type_as(x)


class KVCache:
    """Static per-layer key/value buffers of shape (layers, B, H, max_len, D).

    `length` is how many positions hold valid entries; writes must be contiguous from there.
    """

    def __init__(
        self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int, *, dtype, device
    ) -> None:
        shape = (n_layer, batch, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def write(self, layer: int, start: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store (B, H, L, D) at [start, start + L) and return keys/values for [0, start + L)."""
        end = start + k.shape[2]
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class Attention(nn.Module):
    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.head_dim = dim // n_head
        self.wqkv = Dense(dim, 3 * dim, bias=False)
        self.wo = Dense(dim, dim, bias=False)

    def forward(self, x: Tensor, rope: Tensor, start: int, cache: KVCache | None, layer: int) -> Tensor:
        b, n, dim = x.shape
        qkv = self.wqkv(x).reshape(b, n, 3 * self.n_head, self.head_dim)
        # q and k heads side by side get the same rotation: one rope call for both.
        qk = apply_rope(qkv[:, :, : 2 * self.n_head], rope).transpose(1, 2)
        q, k = qk[:, : self.n_head], qk[:, self.n_head :]
        v = qkv[:, :, 2 * self.n_head :].transpose(1, 2)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v = cache.write(layer, start, k, v)
            if n == 1:  # one new query sees every cached position
                out = F.scaled_dot_product_attention(q, k, v)
            else:
                total = start + n
                mask = torch.ones(n, total, dtype=torch.bool, device=x.device).tril(diagonal=start)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(b, n, dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = Dense(dim, hidden, bias=False)
        self.w3 = Dense(dim, hidden, bias=False)
        self.w2 = Dense(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # Decode steps, where fusing [w1; w3] pays, go through `decode.FastDecoder` instead.
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: VAuraConfig) -> None:
        super().__init__()
        self.attention = Attention(cfg.model_dim, cfg.lm.n_head)
        self.feed_forward = FeedForward(cfg.model_dim, cfg.ffn_dim)
        self.attention_norm = RMSNorm(cfg.model_dim, cfg.lm.norm_eps)
        self.ffn_norm = RMSNorm(cfg.model_dim, cfg.lm.norm_eps)

    def forward(self, x: Tensor, rope: Tensor, start: int, cache: KVCache | None, layer: int) -> Tensor:
        h = x + self.attention(self.attention_norm(x), rope, start, cache, layer)
        return h + self.feed_forward(self.ffn_norm(h))


class DacEmbedding(nn.Module):
    """Token table in DAC's codebook space (codebook_dim) projected to the codec latent by a 1x1 conv."""

    def __init__(self, vocab: int, codebook_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab + 1, codebook_dim)  # +1: the special/BOS token
        self.out_proj = nn.Conv1d(codebook_dim, latent_dim, kernel_size=1)

    def forward(self, tokens: Tensor) -> Tensor:
        return F.linear(self.emb(tokens), self.out_proj.weight[:, :, 0], self.out_proj.bias)


class _Projection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim, bias=False)
        self.fc2 = nn.Linear(out_dim, out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class VideoEmbedder(nn.Module):
    """Visual MLP plus the learned "null video" used for classifier-free guidance.

    `uncond_embedding` lives in raw feature space (before the MLP), as in the release.
    """

    def __init__(self, feat_dim: int, video_dim: int, video_tokens: int) -> None:
        super().__init__()
        self.projection = _Projection(feat_dim, video_dim)
        self.register_buffer("uncond_embedding", torch.randn(video_tokens, feat_dim) / feat_dim**0.5)

    def forward(self, features: Tensor) -> Tensor:
        return self.projection(features)


class FusionLM(nn.Module):
    def __init__(self, cfg: VAuraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        lm, codec = cfg.lm, cfg.codec
        self.empty_video_emb = nn.Parameter(torch.zeros(1, 1, lm.video_dim))
        if lm.video_phase:  # zero at first: training starts from the plain time alignment
            self.video_phase_emb = nn.Parameter(torch.zeros(cfg.video_phases, lm.video_dim))
        self.cls_embeddings = VideoEmbedder(cfg.visual.dim, lm.video_dim, lm.video_tokens)
        self.tok_embeddings = nn.ModuleList(
            DacEmbedding(codec.codebook_size, codec.codebook_dim, codec.latent_dim)
            for _ in range(codec.n_codebooks)
        )
        self.layers = nn.ModuleList(TransformerBlock(cfg) for _ in range(lm.n_layer))
        self.norm = RMSNorm(cfg.model_dim, lm.norm_eps)
        self.lm_heads = nn.ModuleList(
            Dense(cfg.model_dim, codec.codebook_size, bias=False) for _ in range(codec.n_codebooks)
        )
        if lm.impact_cues:
            # Zero at first and drawn from no random stream, so every other tensor of a model (the
            # codec built after this one included) starts the same with cues as without: the head is
            # given the pretrained tower's, and training starts from the plain video channel.
            with torch.random.fork_rng(devices=[]):
                self.cue_head = nn.Linear(cfg.visual.dim, lm.impact_cues)
            nn.init.zeros_(self.cue_head.weight)
            nn.init.zeros_(self.cue_head.bias)
            # Rows: steps before the hit (0: the hit's own step) x frame-in-token x material.
            self.cue_emb = nn.Parameter(torch.zeros(lm.impact_cue_span * (lm.impact_cues - 1), lm.video_dim))
        self._rope: Tensor | None = None
        self._derived = DerivedTensors()

    # --- helpers ---------------------------------------------------------------------
    def rope(self, device: torch.device) -> Tensor:
        """The RoPE table, built lazily so construction on the meta device stays free."""
        if self._rope is None or self._rope.device != device:
            lm = self.cfg.lm
            self._rope = rope_table(lm.block_size, self.cfg.head_dim, lm.rope_base).to(device)
        return self._rope

    def embed_audio(self, tokens: Tensor) -> Tensor:
        """(B, Q, L) tokens -> (B, L, latent): the sum of the Q codebooks' embeddings.

        Without autograd (inference) each codebook's table is projected once, ahead of time, into
        one (Q * (V + 1), latent) table, so a step costs one gather and one sum instead of Q
        embedding lookups and Q projections.
        """
        n_q = tokens.shape[1]
        if torch.is_grad_enabled():
            audio = self.tok_embeddings[0](tokens[:, 0])
            for q in range(1, n_q):
                audio = audio + self.tok_embeddings[q](tokens[:, q])
            return audio
        offsets = self.embedding_offsets(tokens.device)[:n_q, None]
        return F.embedding(tokens + offsets, self.embedding_table()).sum(dim=1)

    def embedding_offsets(self, device: torch.device) -> Tensor:
        """(Q,): where each codebook's rows start in `embedding_table`."""
        return (
            torch.arange(len(self.tok_embeddings), device=device) * self.tok_embeddings[0].emb.num_embeddings
        )

    def embedding_table(self) -> Tensor:
        """(Q * (V + 1), latent): every codebook's token table through its projection, stacked.

        Kept between calls (rebuilt when a weight changes), for inference.
        """
        embs = list(self.tok_embeddings)
        sources = [t for e in embs for t in (e.emb.weight, e.out_proj.weight, e.out_proj.bias)]

        def build() -> Tensor:
            return torch.cat(
                [F.linear(e.emb.weight, e.out_proj.weight[:, :, 0], e.out_proj.bias) for e in embs]
            )

        return self._derived.get("embeddings", sources, build)

    def head_weight(self) -> Tensor:
        """(Q * V, D): the codebook heads stacked, kept between calls (rebuilt when one changes)."""
        heads = list(self.lm_heads)
        weights = [h.weight for h in heads]
        return self._derived.get("heads", weights, lambda: torch.cat(weights))

    def head_logits(self, x: Tensor) -> Tensor:
        """(B, L, D) final hidden states -> (B, Q, L, V) logits of every codebook head."""
        if torch.is_grad_enabled():
            return torch.stack([head(x) for head in self.lm_heads], dim=1)
        weight = self.head_weight()
        b, n, _ = x.shape
        return skinny_linear(x, weight).reshape(b, n, len(self.lm_heads), -1).transpose(1, 2)

    def project_video(
        self,
        features: Tensor,
        null_rows: Tensor | None = None,
        cue_features: Tensor | None = None,
        cue_gate: Tensor | None = None,
    ) -> Tensor:
        """(B, Tv, feat_dim) raw visual features -> (B, Tv, video_dim). Rows where `null_rows` (B,)
        bool is set get the CFG null video instead of theirs. With `lm.impact_cues` the cue head's
        impact-class probabilities follow on the last axis (`_video_at` splits them off; sharpened by
        `lm.impact_cue_temperature` outside training), zero in the null rows: the null video cues
        nothing. `cue_features` (same shape as `features`), when given, are what the cue head reads
        instead (`engine.cue_views`); `cue_gate` (B, Tv, tubelet) bool, the frames that may get
        cues at all (`engine.stillness`)."""
        if null_rows is not None:
            null_rows = null_rows.to(features.device)
            null = self.null_features(len(features)).to(features.dtype)
            features = torch.where(null_rows[:, None, None], null, features)
        video = self.cls_embeddings(features)
        if not self.cfg.lm.impact_cues:
            return video
        probs = self.impact_probs(features if cue_features is None else cue_features, cue_gate)
        if null_rows is not None:
            probs = probs * ~null_rows[:, None, None]
        return torch.cat([video, probs.to(video.dtype)], dim=-1)

    def impact_probs(self, features: Tensor, gate: Tensor | None = None) -> Tensor:
        """(..., feat_dim) -> (..., tubelet x materials): the cue head's probability of each (frame in
        the token, material) impact class, frame-major, "none" left out (needs `lm.impact_cues`);
        zero on the frames where `gate` (..., tubelet) bool is false (`engine.stillness`)."""
        logits = self.cue_head(features).float()
        if not self.training:  # the head learns calibrated probabilities; generation sharpens them
            logits = logits / self.cfg.lm.impact_cue_temperature
        probs = F.softmax(logits, dim=-1)[..., 1:]
        if gate is None:
            return probs
        # frame-major classes: each frame's materials follow each other
        materials = probs.shape[-1] // gate.shape[-1]
        return probs * gate.to(probs.device, probs.dtype).repeat_interleave(materials, dim=-1)

    def null_features(self, batch: int) -> Tensor:
        """The CFG null condition in raw feature space, (batch, Tv, feat_dim)."""
        return self.cls_embeddings.uncond_embedding.expand(batch, -1, -1)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        ref = self.norm.weight
        return KVCache(
            self.cfg.lm.n_layer,
            batch,
            self.cfg.lm.n_head,
            max_len or self.cfg.lm.block_size,
            self.cfg.head_dim,
            dtype=ref.dtype,
            device=ref.device,
        )

    def _video_at(self, video: Tensor, start: int, n: int) -> Tensor:
        """Video channels for positions [start, start + n): token p // r + lookahead (position
        alignment), or the token at the time of audio step p + lead (time alignment, plus the step's
        phase in that token with `lm.video_phase`); the empty embedding past the last token."""
        lm, last = self.cfg.lm, video.shape[1] - 1
        if lm.impact_cues:
            video, probs = video[..., : lm.video_dim], video[..., lm.video_dim :]
        pos = torch.arange(start, start + n, device=video.device)
        if lm.video_lead_steps is None:
            idx = pos // lm.tokens_per_video_token + lm.video_lookahead
            valid = idx <= last
        else:
            # Steps whose own time is inside the video keep it; the lead never runs past the end.
            valid = self.cfg.video_token_of_step(pos) <= last
            idx = self.cfg.video_token_of_step(pos + lm.video_lead_steps)
        picked = video[:, idx.clamp(max=last)]
        if lm.video_phase:
            phase = pos + lm.video_lead_steps - self.cfg.first_step_of_video_token(idx)
            picked = picked + self.video_phase_emb[phase].to(video.dtype)
        if lm.impact_cues:
            picked = picked + self._cues_at(probs, pos + lm.video_lead_steps, last)
        empty = self.empty_video_emb.to(video.dtype).expand(video.shape[0], n, -1)
        return torch.where(valid[None, :, None], picked, empty)

    def _cues_at(self, probs: Tensor, steps: Tensor, last: int) -> Tensor:
        """(B, n, video_dim) impact cues for audio `steps` (n,): for each step q and each d below
        `lm.impact_cue_span` where step q + d starts a frame, the cue vectors (their set for d) of that
        frame's (material, frame-in-token) classes weighted by their probabilities in its visual
        token (probs (B, Tv, tubelet x materials), frame-major), summed; zero where no frame starts."""
        cfg = self.cfg
        tubelet, span = cfg.visual.tubelet, cfg.lm.impact_cue_span
        ahead = steps[:, None] + torch.arange(span, device=steps.device)  # (n, span)
        frame = cfg.frame_of_step(ahead)
        token, phase = frame // tubelet, frame % tubelet
        starts = (cfg.first_step_of_frame(frame) == ahead) & (token <= last)
        materials = probs.shape[-1] // tubelet
        # frame-major classes, so frame f = token x tubelet + phase is row f of (B, Tv x tubelet, M)
        per_frame = probs.reshape(probs.shape[0], -1, materials)
        p = per_frame[:, frame.clamp(max=per_frame.shape[1] - 1)] * starts[None, :, :, None]  # B n span M
        emb = self.cue_emb.reshape(span, tubelet, materials, -1)
        picked = emb[torch.arange(span, device=steps.device), phase].to(p.dtype)  # (n, span, materials, D)
        return torch.einsum("bnsm,nsmd->bnd", p, picked)

    # --- forward ---------------------------------------------------------------------
    def forward(
        self,
        tokens: Tensor,
        video: Tensor,
        *,
        start: int = 0,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Logits (B, Q, L, V) for the delayed tokens (B, Q, L) at positions [start, start + L).

        `video` is the projected video (B, Tv, video_dim). Without a cache `start` must be 0 and the
        whole prefix is recomputed (the original behaviour). With `last_only` only the final
        position's logits are computed: (B, Q, 1, V).
        """
        n = tokens.shape[2]
        if cache is None and start != 0:
            raise ValueError("an uncached forward must start at position 0")
        if start + n > self.cfg.lm.block_size:
            raise ValueError(f"sequence of {start + n} positions exceeds block size {self.cfg.lm.block_size}")
        audio = self.embed_audio(tokens)
        x = torch.cat([self._video_at(video, start, n).to(audio.dtype), audio], dim=-1)
        rope = self.rope(x.device)[start : start + n]
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, start, cache, i)
        if cache is not None:
            cache.length = start + n
        if last_only:
            x = x[:, -1:]
        x = self.norm(x)
        return self.head_logits(x).float()

"""Next-token sampling with one random generator per row.

The filters follow V-AURA's `utils/utils.py`: top-k zeroes every probability below the k-th largest
(ties may keep more than k) and renormalises; top-p keeps the smallest prefix of the sorted
distribution whose mass reaches p. A draw is `torch.multinomial`'s (see `draw`) with the row's own
generator, so a row's tokens depend only on its logits and its seed, never on the other rows of the
batch. With B = 1 on CPU this consumes the random stream exactly as the original does after
`torch.manual_seed(seed)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling settings. temperature <= 0 or greedy=True means argmax."""

    temperature: float = 0.95
    top_k: int = 128
    top_p: float = 0.0
    cfg_scale: float = 6.0
    greedy: bool = False

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0 (0 disables it)")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError("top_p must be within [0, 1] (0 disables it)")
        if self.cfg_scale < 0:
            raise ValueError("cfg_scale must be >= 0")

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale > 1.0

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature <= 0

    def to_dict(self) -> dict:
        return asdict(self)


def apply_cfg(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    return uncond + (cond - uncond) * scale


def top_k_filter(probs: Tensor, k: int) -> Tensor:
    """Zero probabilities below the k-th largest along the last dim and renormalise."""
    if k <= 0 or k >= probs.shape[-1]:
        return probs
    kth = torch.topk(probs, k, dim=-1).values[..., -1:]
    probs = torch.where(probs < kth, torch.zeros_like(probs), probs)
    return probs / probs.sum(dim=-1, keepdim=True)


def draw(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One index per row of (R, V) probabilities: the draw `torch.multinomial(probs, 1, generator=...)`
    makes, (R, 1).

    PyTorch draws a single sample as argmax(p / q) with q ~ Exp(1) from the generator
    (`Distributions.cpp`); doing that here gives the same index and random stream without its input
    checks, which cost twice the draw itself per decode step. `tests/test_sampling_draw.py` holds it
    to `torch.multinomial` so a PyTorch upgrade that changes the algorithm cannot go unnoticed.
    """
    if probs.device.type != "cpu":  # other backends may draw differently: leave it to them
        return torch.multinomial(probs, 1, generator=generator)
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return torch.div(probs, q, out=q).argmax(dim=-1, keepdim=True)


def sample_row(logits: Tensor, params: SamplingParams, generator: torch.Generator | None) -> Tensor:
    """(Q, V) logits of one row -> (Q,) token ids."""
    if params.is_greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p > 0.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        cum = torch.cumsum(sorted_probs, dim=-1)
        sorted_probs = torch.where(cum - sorted_probs > params.top_p, 0.0, sorted_probs)
        sorted_probs = sorted_probs / sorted_probs.sum(dim=-1, keepdim=True)
        return order.gather(-1, draw(sorted_probs, generator))[:, 0]
    probs = top_k_filter(probs, params.top_k)
    return draw(probs, generator)[:, 0]


def sample(logits: Tensor, params: SamplingParams, generators: list[torch.Generator]) -> Tensor:
    """(B, Q, V) logits -> (B, Q) tokens, row b drawn with generators[b]."""
    return torch.stack([sample_row(logits[b], params, generators[b]) for b in range(logits.shape[0])])


def make_generators(seeds: list[int], device: torch.device) -> list[torch.Generator]:
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        gens.append(g)
    return gens

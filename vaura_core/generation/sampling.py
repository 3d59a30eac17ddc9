"""Next-token sampling with one random generator per row.

The filters follow V-AURA's `utils/utils.py`: top-k zeroes every probability below the k-th largest
(ties may keep more than k) and renormalises; top-p keeps the smallest prefix of the sorted
distribution whose mass reaches p. A draw is `torch.multinomial`'s (see `draw`) with the row's own
generator, so a row's tokens depend only on its logits and its seed, never on the other rows of the
batch. With B = 1 on CPU this consumes the random stream exactly as the original does after
`torch.manual_seed(seed)`.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    probs = probs.masked_fill(probs < kth, 0.0)
    return probs / probs.sum(dim=-1, keepdim=True)


def top_p_filter(probs: Tensor, p: float) -> tuple[Tensor, Tensor]:
    """The smallest prefix of each sorted distribution whose mass reaches p, renormalised, with the
    order that maps sorted positions back to token ids."""
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    cum = torch.cumsum(sorted_probs, dim=-1)
    sorted_probs = sorted_probs.masked_fill(cum - sorted_probs > p, 0.0)
    return sorted_probs / sorted_probs.sum(dim=-1, keepdim=True), order


def draw(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One index per row of (R, V) probabilities: the draw `torch.multinomial(probs, 1, generator=...)`
    makes, (R, 1).

    PyTorch draws a single sample as argmax(p / q) with q ~ Exp(1) from the generator
    (`Distributions.cpp`); doing that here gives the same index and random stream without its input
    checks, which cost twice the draw itself per decode step. `tests/test_decode_fast.py` holds it
    to `torch.multinomial` so a PyTorch upgrade that changes the algorithm cannot go unnoticed.
    """
    return draw_rows(probs[None], [generator])[0]


def draw_rows(probs: Tensor, generators: Sequence[torch.Generator | None]) -> Tensor:
    """`draw` for (B, R, V) probabilities, batch row b with generators[b]: (B, R, 1)."""
    if probs.device.type != "cpu":  # other backends may draw differently: leave it to them
        return torch.stack(
            [torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generators, strict=True)]
        )
    q = torch.empty_like(probs)
    for row, g in zip(q, generators, strict=True):  # each row's own stream, as if drawn alone
        row.exponential_(1, generator=g)
    return torch.div(probs, q, out=q).argmax(dim=-1, keepdim=True)


def sample(logits: Tensor, params: SamplingParams, generators: Sequence[torch.Generator | None]) -> Tensor:
    """(B, Q, V) logits -> (B, Q) tokens, row b drawn with generators[b].

    The filters run once for the whole batch; row b's tokens are exactly those `sample_row` gives
    it alone (every operation is row-wise), so a row never depends on the others.
    """
    if len(generators) != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits need as many generators, got {len(generators)}")
    if params.is_greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p > 0.0:
        probs, order = top_p_filter(probs, params.top_p)
        return order.gather(-1, draw_rows(probs, generators))[..., 0]
    return draw_rows(top_k_filter(probs, params.top_k), generators)[..., 0]


def sample_row(logits: Tensor, params: SamplingParams, generator: torch.Generator | None) -> Tensor:
    """(Q, V) logits of one row -> (Q,) token ids."""
    return sample(logits[None], params, [generator])[0]


def make_generators(seeds: list[int], device: torch.device) -> list[torch.Generator]:
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        gens.append(g)
    return gens

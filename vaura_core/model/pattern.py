"""The delayed codebook pattern (MusicGen-style), as V-AURA uses it.

Layout for T timesteps and Q codebooks: S = T + Q columns. Column 0 is all special (the BOS step);
codebook q holds timestep t at column s = t + 1 + q. Everything else is the special token.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=64)
def _layout(n_q: int, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors mapping (q, t) to its column: (Q, T) columns and the (Q, S) validity mask."""
    t = torch.arange(n_steps)
    cols = t[None, :] + 1 + torch.arange(n_q)[:, None]
    mask = torch.zeros(n_q, n_steps + n_q, dtype=torch.bool)
    mask.scatter_(1, cols, True)
    return cols, mask


def pattern_mask(n_q: int, n_steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(Q, T + Q) bool: True where column s of codebook q holds a real timestep."""
    return _layout(n_q, n_steps)[1].to(device)


def build_delayed(codes: torch.Tensor, special: int) -> torch.Tensor:
    """(B, Q, T) codes -> (B, Q, T + Q) delayed sequence filled with `special` off the pattern."""
    b, n_q, n_steps = codes.shape
    cols, _ = _layout(n_q, n_steps)
    seq = codes.new_full((b, n_q, n_steps + n_q), special)
    seq.scatter_(2, cols.to(codes.device).expand(b, -1, -1), codes)
    return seq


def revert_delayed(seq: torch.Tensor) -> torch.Tensor:
    """(B, Q, S) delayed sequence -> (B, Q, S - Q) codes: out[q, t] = seq[q, t + 1 + q]."""
    b, n_q, s = seq.shape
    cols, _ = _layout(n_q, s - n_q)
    return seq.gather(2, cols.to(seq.device).expand(b, -1, -1))

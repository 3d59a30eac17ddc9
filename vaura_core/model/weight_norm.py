"""Fold legacy weight-norm pairs (`X.weight_g`, `X.weight_v`) into plain `X.weight` tensors.

The V-AURA checkpoint stores every DAC conv and the sampler's `tok_embeddings.*.out_proj` with
`torch.nn.utils.weight_norm` (spec: vaura.md, section 10 item 10). Inference never changes those
weights, so we fold them once at load time: `weight = g * v / ||v||`, the norm taken per output
channel (dim 0) over all other dims, which is what the legacy hook computes with `dim=0`.
"""

from __future__ import annotations

from torch import Tensor

_G = ".weight_g"
_V = ".weight_v"


def fold_pair(weight_g: Tensor, weight_v: Tensor) -> Tensor:
    """One folded weight: `g * v / ||v||` in float32, returned in `v`'s dtype and shape."""
    if weight_v.dim() < 1 or weight_g.numel() != weight_v.shape[0]:
        raise ValueError(
            f"weight_g {tuple(weight_g.shape)} does not have one value per output channel of "
            f"weight_v {tuple(weight_v.shape)}"
        )
    v = weight_v.float()
    # One norm per output channel over every other dim (a 1-D v gets one norm per element).
    norm = v.reshape(v.shape[0], -1).norm(dim=1)
    scale = weight_g.float().reshape(-1) / norm
    folded = v * scale.reshape((-1,) + (1,) * (v.dim() - 1))
    return folded.to(weight_v.dtype)


def fold_weight_norm(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Replace each `*.weight_g` + `*.weight_v` pair by `*.weight`; pass everything else through.

    Key order is kept: the folded weight takes the place of the first key of its pair. A lone
    `weight_g` or `weight_v`, or a pair whose `weight` also exists, raises ValueError naming the key.
    """
    prefixes = {p for p in map(_pair_prefix, state_dict) if p is not None}
    for prefix in sorted(prefixes):
        for suffix in (_G, _V):
            if prefix + suffix not in state_dict:
                raise ValueError(f"weight-norm tensor {prefix + suffix!r} is missing (its pair is present)")
        if prefix + ".weight" in state_dict:
            raise ValueError(f"{prefix!r} has both a plain weight and a weight-norm pair")

    folded: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        prefix = _pair_prefix(key)
        if prefix is None:
            folded[key] = value
        elif prefix + ".weight" not in folded:
            g, v = state_dict[prefix + _G], state_dict[prefix + _V]
            try:
                folded[prefix + ".weight"] = fold_pair(g, v)
            except ValueError as exc:
                raise ValueError(f"cannot fold weight norm of {prefix!r}: {exc}") from None
    return folded


def _pair_prefix(key: str) -> str | None:
    """`X` for `X.weight_g` or `X.weight_v`, else None."""
    for suffix in (_G, _V):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return None


def has_weight_norm(state_dict: dict[str, Tensor]) -> bool:
    """True if any key is a legacy weight-norm tensor."""
    return any(key.endswith((_G, _V)) for key in state_dict)

"""Loading a work folder's checkpoint into the model a run was asked for."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from vaura_core.errors import VauraError


def load_part(module: nn.Module, state: dict[str, Tensor], path: Path, redo: str) -> None:
    """`module.load_state_dict(state)`, or a `VauraError` naming `path` and the first tensor that does
    not fit when another configuration wrote it (impact cues, tower input size...); `redo` says what
    deleting the file does."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise VauraError(
            f"{path}: saved by a run with another model configuration ({mismatch_detail(exc)}); delete "
            f"it to {redo}, or run with the options that wrote it"
        ) from None


def mismatch_detail(exc: RuntimeError, limit: int = 200) -> str:
    """The first tensor `load_state_dict`'s error names (its first line only says which module)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines()]
    return (lines[1] if len(lines) > 1 else lines[0])[:limit]

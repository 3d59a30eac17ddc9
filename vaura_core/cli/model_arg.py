"""`--model` of the commands that run a model: an installed model's name or a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vaura_core.errors import VauraError

if TYPE_CHECKING:
    import torch

    from vaura_core.model.vaura import VAura

HELP = "installed model name, or a model folder as `vaura train-tiny` writes (default: the embedded model)"


def load_model_arg(
    value: str | None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[VAura, str, Path]:
    """The model, the name it goes by, and its folder. A value naming an existing folder loads that
    folder; anything else is looked up among the installed models. Raises `ModelUnavailableError`
    (not installed, damaged) or `VauraError` (neither a folder nor a valid name)."""
    from vaura_core.weights.registry import DEFAULT_MODEL, ModelRegistry
    from vaura_core.weights.store import load_model

    name = value or DEFAULT_MODEL
    folder = Path(name).expanduser()
    if folder.is_dir():
        return load_model(folder, device, dtype), folder.name, folder
    if "/" in name or "\\" in name or folder.exists():
        raise VauraError(f"{name}: no such model folder (give a folder or an installed model's name)")
    registry = ModelRegistry()
    return registry.load(name, device=device, dtype=dtype), name, registry.path(name)

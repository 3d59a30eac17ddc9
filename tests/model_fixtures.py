"""Installed random-weight models for end-to-end tests (never the embedded one)."""

from __future__ import annotations

from pathlib import Path

import torch

from vaura_core.model.config import preset
from vaura_core.model.vaura import build_model
from vaura_core.weights.store import save_model_dir


def install_random_model(root: Path, name: str = "test-random", seed: int = 0) -> Path:
    """Save a `test`-preset model with small random weights as an installed model under `root`."""
    dest = root / name
    if dest.exists():
        return dest
    torch.manual_seed(seed)
    model = build_model(preset("test"))
    with torch.no_grad():
        for p in model.sampler.parameters():
            p.normal_(0.0, 0.2)
    return save_model_dir(
        dest, model.cfg, model.state_dict(), {"name": name, "description": "random test weights"}
    )

"""Model weights: safe checkpoint reading, importers for the released formats, and our model store.

* `unpickle`: `safe_load` reads torch checkpoints and pickles without running code from them.
* `importers`: `import_weights` turns the V-AURA release (tarball, folder, .ckpt), Segment AVCLIP's
  `epoch_best.pt` and DAC's `weights.pth` into one validated state dict and config.
* `store`: `save_model_dir` / `load_model` / `load_state` for our model folders (safetensors).
* `catalog`, `download`, `registry`: what can be installed, fetching it, and installed models.

Names are imported lazily so that `import vaura_core.weights` stays cheap (no torch import).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "safe_load": "unpickle",
    "to_plain": "unpickle",
    "Inert": "unpickle",
    "ImportedWeights": "importers",
    "import_weights": "importers",
    "choose_checkpoint": "importers",
    "save_model_dir": "store",
    "load_model": "store",
    "load_state": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

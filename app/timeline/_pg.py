"""pyqtgraph, bound to PySide6 and configured once for the timeline.

pyqtgraph picks an already imported Qt binding before trying its own preference order (PyQt6 first),
so PySide6 is imported here before it; every timeline module takes `pg` from this module.
"""

from __future__ import annotations

import PySide6.QtCore  # noqa: F401  (must come before pyqtgraph, see above)

# isort: split
import pyqtgraph as pg

# Thumbnails are numpy (H, W, 3) pictures; row-major keeps them the right way round.
pg.setConfigOptions(imageAxisOrder="row-major")

__all__ = ["pg"]

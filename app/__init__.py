"""VAURA Studio desktop GUI (PySide6). All model work lives in `vaura_core`; this package only presents it."""

import os

# pyqtgraph picks PyQt6 over PySide6 when both are installed and neither is imported yet; every GUI module
# lives under this package, so pinning the binding here runs before any pyqtgraph import.
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

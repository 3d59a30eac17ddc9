"""VAURA Studio core: the V-AURA engine, media I/O, projects and the `vaura` CLI.

This package never imports Qt, pyqtgraph or sounddevice (enforced by an import-linter contract).
"""

__version__ = "0.1.0"

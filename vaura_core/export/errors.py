"""The export package's error type."""

from __future__ import annotations

from vaura_core.errors import VauraError


class ExportError(VauraError):
    """An export could not be written; the message names the file and the reason."""

"""Errors the user can act on. Each carries a message that names the file and the problem."""

from __future__ import annotations


class VauraError(Exception):
    """Base class: the message is shown to the user as is."""


class ModelUnavailableError(VauraError):
    """A model is not installed, cannot be downloaded, or its files are damaged."""


class UnsafeCheckpointError(VauraError):
    """A pickle tried to run code or build an object we do not allow."""


class CheckpointFormatError(VauraError):
    """A weights file is not in any format we can import."""


class Cancelled(VauraError):
    """The user cancelled a long operation."""

"""One exception hierarchy for deepfer; the CLI prints these as one-line messages, the server
maps them to HTTP codes."""

from __future__ import annotations


class DeepferError(Exception):
    """Base class of every error deepfer raises on purpose (bad input, missing files, ...)."""


class DataError(DeepferError):
    """A dataset file or folder is missing, malformed or unreadable.

    The message names the file (and the row or member) at fault.
    """


class ProtocolError(DeepferError):
    """An evaluation protocol does not exist or does not apply to the data at hand."""


class ModelError(DeepferError):
    """A model name, checkpoint or weight file is unknown or incompatible."""

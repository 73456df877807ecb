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


class ParameterError(DeepferError):
    """A parameter of a library call is out of range or unknown.

    Attributes:
        param: the parameter's name as the library spells it (``min_score``); the CLI and the
            server say which option set it (``--min-score``).
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


MAX_MESSAGE_CHARS = 1000


def one_line(message: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """An error message as printed or answered: whitespace runs (newlines included) made single
    spaces, and cut to ``limit`` characters, whatever input a message quotes.

    Example:
        >>> one_line("a\\n  b")
        'a b'
    """
    text = " ".join(str(message).split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"

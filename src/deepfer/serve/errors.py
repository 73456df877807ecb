"""deepfer's errors as HTTP answers: one table from exception to status code, and the one body
every error has, ``{"error": "..."}``. A 500 never shows its traceback to the client; the server
logs it."""

from __future__ import annotations

from deepfer.errors import DataError, DeepferError, one_line


class HTTPError(DeepferError):
    """An error the server answers with a given status (413, 415, 503, ...).

    Args:
        status: the HTTP status code.
        message: the client-facing message (no paths, no tracebacks).
        headers: extra response headers (``Retry-After``, ...).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def too_large(message: str) -> HTTPError:
    return HTTPError(413, message)


def unsupported(message: str) -> HTTPError:
    return HTTPError(415, message)


def status_for(exc: BaseException) -> int:
    """The status code of a library error: :class:`HTTPError` its own, a bad image
    (:class:`~deepfer.errors.DataError`) 400, anything else 500."""
    if isinstance(exc, HTTPError):
        return exc.status
    if isinstance(exc, DataError):
        return 400
    return 500


def public_message(exc: BaseException) -> str:
    """What the client is told: the message of a 4xx error, a fixed text for a 5xx one."""
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, HTTPError):
        return "internal server error (logged on the server)"
    return one_line(exc) or HTTPError.__name__


__all__ = ["DeepferError", "HTTPError", "public_message", "status_for", "too_large", "unsupported"]

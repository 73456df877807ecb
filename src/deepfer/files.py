"""Writing files so that a kill or a crash mid-write never leaves a truncated one, and hashing them:
the one atomic write that checkpoints, training logs, teacher caches and the dataset cache share."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "not_a_file", "sha256_bytes", "sha256_file"]


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed to disk and
    renamed over ``path``, on an exception it is removed and ``path`` is left as it was.

    Args:
        path: the file to (re)write; its folder is created if missing.
        mode: ``"wb"`` (default) or ``"w"`` for text.
        **kwargs: passed to :func:`open` (``newline``, ``encoding``).

    Example:
        >>> with atomic_open(tmp / "log.csv", "w", newline="") as f:  # doctest: +SKIP
        ...     f.write("epoch\\n1\\n")
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One unique name per writer: several processes (DDP ranks) may write the same file at once.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; these are shared like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The hex sha256 digest of a file's contents, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def not_a_file(path: str | Path) -> str:
    """Why ``path`` is not a regular file that can be read, in a few words, for a message that
    starts with the path: ``no such file``, ``a symbolic link loop``, ``a broken symbolic link``,
    ``a folder, not a file``, ``a FIFO (named pipe)``, ``a device``, ``a socket``, ``not a regular file``.

    Example:
        >>> not_a_file("/nonexistent/x.jpg")
        'no such file'
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if os.path.islink(path):
            return "a broken symbolic link"
        return "no such file" if exc.errno == errno.ENOENT else (exc.strerror or "cannot be read").lower()
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"

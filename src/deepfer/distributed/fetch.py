"""Inputs named by URI (``s3://``, ``gs://``, ``file://``...): each object is copied to a local
temporary file through pyarrow's filesystems, read as a local file, then removed."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deepfer.errors import DataError

__all__ = ["local_copy"]


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path holding the object at ``uri`` while the context lasts (a ``file://`` URI is
    its own path, not copied).

    Raises:
        DataError: the object cannot be opened or read.
    """
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise DataError(f"{uri}: cannot open ({type(exc).__name__}: {exc})") from exc
    if isinstance(fs, pafs.LocalFileSystem):
        yield Path(path)
        return
    fd, tmp = tempfile.mkstemp(prefix="deepfer-", suffix=Path(path).suffix)
    try:
        try:
            with fs.open_input_stream(path) as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except Exception as exc:
            raise DataError(f"{uri}: cannot read ({type(exc).__name__}: {exc})") from exc
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)

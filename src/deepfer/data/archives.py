"""Archive members: the files of a dataset read from a folder, a ``.zip`` or a ``.tar(.gz)``
through one interface.

Readers match member names with patterns, so a dataset packed under an extra top-level folder
(``fer2013/train/...``) is found as well as one packed at the root.
"""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from deepfer.data.limits import MAX_MEMBER_BYTES, MIB
from deepfer.errors import DataError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def require(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a Path, or raise DataError naming what was expected there."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder (expected {what})")
    return p


def iter_members(
    path: Path, keep: Callable[[str], bool]
) -> Iterator[tuple[str, Callable[..., bytes]]]:
    """Yield ``(relative posix name, read)`` for every file under ``path`` that ``keep`` accepts.

    ``read(limit=MAX_MEMBER_BYTES)`` returns the bytes, refusing a member larger than ``limit``
    from its size as the folder, the zip's directory or the tar header states it, before a byte is
    inflated (``zipfile`` and ``tarfile`` then read no more than that size); for tar archives it
    must be called before the next item is requested (tar members are read in one sequential pass,
    which is what makes a .tar.gz fast). Names are sorted for folders and zips, and in archive
    order for tars.
    """
    keep_ = keep
    keep = lambda name: not _junk(name) and keep_(name)  # noqa: E731
    if path.is_dir():
        names = sorted(
            p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()
        )
        for name in names:
            if keep(name):
                yield name, (lambda limit=MAX_MEMBER_BYTES, n=name: _file_read(path / n, limit))
    elif path.name.lower().endswith(".zip"):
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path}: not a readable zip archive ({exc})") from None
        with zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if not info.is_dir() and keep(info.filename):
                    yield info.filename, (lambda limit=MAX_MEMBER_BYTES, i=info: _zip_read(zf, i, path, limit))
    elif path.name.lower().endswith((".tar", ".tar.gz", ".tgz")):
        try:
            tf = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"{path}: not a readable tar archive ({exc})") from None
        with tf:
            try:
                for member in tf:
                    name = member.name.removeprefix("./")
                    if member.isfile() and keep(name):
                        yield name, (lambda limit=MAX_MEMBER_BYTES, m=member: _tar_read(tf, m, path, limit))
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise DataError(f"{path}: archive is truncated or corrupt ({exc})") from None
    else:
        raise DataError(f"{path}: expected a folder, .zip, .tar or .tar.gz")


def iter_matches(
    path: Path, pattern: re.Pattern[str]
) -> Iterator[tuple[str, re.Match[str], Callable[[], bytes]]]:
    """:func:`iter_members` for the members whose name ``pattern`` finds (``pattern.search``):
    ``(name, match, read)``, so that a reader parses each name once."""
    for name, read in iter_members(path, lambda n: pattern.search(n) is not None):
        m = pattern.search(name)
        if m is not None:  # always: iter_members kept only these names
            yield name, m, read


def _junk(name: str) -> bool:
    """macOS resource forks and Finder metadata that archives pick up (``__MACOSX/``, ``._x``)."""
    parts = name.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def _too_large(where: str, size: int, limit: int) -> DataError:
    return DataError(f"{where}: {size / MIB:,.1f} MiB once inflated, more than the {limit // MIB} MiB a "
                     "dataset file may take; refused")


def _file_read(path: Path, limit: int) -> bytes:
    size = path.stat().st_size
    if size > limit:
        raise _too_large(str(path), size, limit)
    return path.read_bytes()


def _zip_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limit: int) -> bytes:
    if info.file_size > limit:  # zipfile reads no more than this size (and checks the CRC)
        raise _too_large(f"{path}::{info.filename}", info.file_size, limit)
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}::{info.filename}: cannot read archive member ({exc})") from None


def _tar_read(tf: tarfile.TarFile, member: tarfile.TarInfo, path: Path, limit: int) -> bytes:
    if member.size > limit:  # tarfile reads no more than the header's size
        raise _too_large(f"{path}::{member.name}", member.size, limit)
    try:
        f = tf.extractfile(member)
        return f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}::{member.name}: cannot read archive member ({exc})") from None


def member_path(root: Path, name: str) -> str:
    """How a sample's source is written in ``FaceData.paths``."""
    return str(root / name) if root.is_dir() else f"{root}::{name}"


def fingerprint(path: Path) -> str:
    """A cheap identity of a file or folder's content state (names, sizes, mtimes)."""
    if path.is_file():
        st = path.stat()
        return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    parts = [str(path.resolve())]
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            st = os.stat(os.path.join(root, f))
            parts.append(f"{os.path.relpath(os.path.join(root, f), path)}|{st.st_size}|{st.st_mtime_ns}")
    return "\n".join(parts)

"""What a dataset file may cost to read: compressed text inflated through a cap while it streams,
CSV rows no longer than a line cap, archive members no larger than their declared size allows, and
error messages that quote at most a short piece of the input.

The caps sit far above the real datasets (``fer2013.csv``: 35,887 rows of 2,304 pixel values, a
few KB each; the dataset images: a few KB to a few hundred KB) and far below what a small hostile
file could otherwise ask for: ``benchmarks/fuzz.py --hostile`` measures the peak memory of
``deepfer data info`` on each recipe (``benchmarks/FUZZ.md``).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from deepfer.errors import DataError

MIB = 1024 * 1024
MAX_TEXT_BYTES = 512 * MIB  # a CSV, after inflating
MAX_LINE_CHARS = 64 * 1024  # one CSV line: several times a fer2013.csv row
MAX_LINES = 1_000_000  # of a CSV: 28x fer2013.csv's rows; bounds the time blank lines can take
MAX_MEMBER_BYTES = 64 * MIB  # one image file in a folder or archive, after inflating
SHOWN_CHARS = 80  # of an input quoted in an error message

_ASCII_INT = re.compile(r"[+-]?[0-9]+\Z")


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` quoted for an error message: its ``repr``, cut to ``limit`` characters and said so.

    Example:
        >>> shown("abc")
        "'abc'"
        >>> shown("x" * 1000, 8)
        "'xxxxxxxx'... (1,000 characters)"
    """
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def ascii_int(text: str) -> int:
    """``int(text)`` for ASCII digits only (``int`` also takes Arabic-Indic and other Unicode
    digits, and underscores).

    Raises:
        ValueError: anything but an optional sign and ASCII digits (surrounding blanks allowed).
    """
    text = text.strip()
    if not _ASCII_INT.match(text):
        raise ValueError(f"not an integer: {shown(text)}")
    return int(text)


class _Capped(io.RawIOBase):
    """A binary stream that raises :class:`DataError` once more than ``limit`` bytes came out."""

    def __init__(self, raw: IO[bytes], limit: int, where: str, inflated: bool) -> None:
        self._raw, self._limit, self._where, self._inflated = raw, limit, where, inflated
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._raw.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{self._where}: corrupt gzip data ({exc})") from None
        self.count += len(data)
        if self.count > self._limit:
            what = "inflates to" if self._inflated else "is"
            cap = f"{self._limit // MIB} MiB" if self._limit >= MIB else f"{self._limit:,} bytes"
            raise DataError(f"{self._where}: {what} more than {cap} of text; refused "
                            "(a compression bomb, or not this dataset's CSV)")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_text(source: Path | bytes, where: str, limit: int = MAX_TEXT_BYTES) -> IO[str]:
    """A text stream of a CSV file or its bytes, gzip-compressed or not, inflated while it is read
    and refused past ``limit`` bytes.

    Raises:
        DataError (while reading): past ``limit``, or corrupt gzip data.
    """
    raw: IO[bytes] = open(source, "rb") if isinstance(source, Path) else io.BytesIO(source)  # noqa: SIM115
    head = raw.read(2)
    raw.seek(0)
    inflated = head == b"\x1f\x8b"
    if inflated:
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    capped = io.BufferedReader(_Capped(raw, limit, where, inflated), 1 << 20)
    return io.TextIOWrapper(capped, encoding="utf-8-sig", newline="")


def csv_rows(source: str | IO[str], where: str, max_line: int = MAX_LINE_CHARS,
             max_lines: int = MAX_LINES) -> Iterator[list[str]]:
    """The rows of a CSV, header first, one row per line (a quoted field cannot span lines), each
    line at most ``max_line`` characters: a row's cost is bounded before the csv module splits it;
    at most ``max_lines`` lines.

    Raises:
        DataError: naming the file and line: a line too long, too many lines, a malformed row,
            bytes that are not UTF-8 text.
    """
    stream = io.StringIO(source) if isinstance(source, str) else source
    line_no = 0
    try:
        while True:
            line = stream.readline(max_line + 1)
            if not line:
                return
            line_no += 1
            if line_no > max_lines:
                raise DataError(f"{where}: more than {max_lines:,} lines; refused")
            if len(line) > max_line:
                raise DataError(f"{where} line {line_no}: longer than {max_line:,} characters; refused")
            try:
                row = next(csv.reader((line,), strict=True), [])
            except csv.Error as exc:
                raise DataError(f"{where} line {line_no}: malformed CSV ({exc})") from None
            yield row
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} line {line_no + 1}: not a text CSV file (not UTF-8: {exc.reason})") from None
    finally:
        stream.close()

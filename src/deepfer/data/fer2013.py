"""FER2013 (Goodfellow et al. 2013): Kaggle's ``fer2013.csv`` and the image-folder layout.

Both give 48x48 grayscale faces with the 7 FER2013 classes; the original split (``Usage``) comes
from the CSV column or from the ``Training_/PublicTest_/PrivateTest_`` file-name prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from deepfer.data.archives import fingerprint, iter_members, member_path, require
from deepfer.data.cache import cached
from deepfer.data.faces import FaceCollector, FaceData
from deepfer.data.limits import MAX_TEXT_BYTES, ascii_int, csv_rows, open_text, shown
from deepfer.errors import DataError
from deepfer.labels import FER2013_FOLDERS, emotion_index

USAGES = ("Training", "PublicTest", "PrivateTest")
_IMAGE = re.compile(
    r"(?:^|/)(train|training|test|val|valid|validation)/([A-Za-z]+)/([^/]+\.(?:jpe?g|png|bmp))$",
    re.IGNORECASE,
)
_CSV = re.compile(r"(?:^|/)[^/]*\.csv(?:\.gz)?$", re.IGNORECASE)
_PIXELS = re.compile(r"[0-9 \t]*\Z")  # ASCII digits and blanks only
_FOLDER_SPLIT = {"train": "Training", "training": "Training", "val": "PublicTest",
                 "valid": "PublicTest", "validation": "PublicTest", "test": "Test"}


def load_fer2013(path: str | Path, size: int = 48, use_cache: bool = True) -> FaceData:
    """Read FER2013 from ``fer2013.csv`` (or ``.csv.gz``), or from an image-folder tree.

    Args:
        path: a CSV file, or a folder / ``.zip`` / ``.tar.gz`` holding either a
            ``fer2013.csv`` or ``train/<emotion>/*.jpg`` and ``test/<emotion>/*.jpg``.
        size: side of the square images returned.
        use_cache: keep the decoded arrays in the on-disk cache.

    Returns:
        FaceData whose ``splits`` are ``Training``/``PublicTest``/``PrivateTest`` (``Test``
        for image folders whose names carry no prefix).
    """
    src = require(path, "fer2013.csv or a train/ + test/ image folder")
    return cached(
        lambda: _load(src, size), use_cache, reader="fer2013", source=fingerprint(src), size=size
    )


def _load(src: Path, size: int) -> FaceData:
    if src.is_file() and _CSV.search(src.name):
        return read_fer2013_csv(src, str(src), size)
    csv_member: tuple[str, bytes] | None = None
    out = FaceCollector("fer2013", size)
    for name, read in iter_members(src, lambda n: bool(_IMAGE.search(n) or _CSV.search(n))):
        if _CSV.search(name):
            if csv_member is None and "fer2013" in name.lower():
                csv_member = (name, read(MAX_TEXT_BYTES))
            continue
        where = member_path(src, name)
        m = _IMAGE.search(name)
        if m is None:  # iter_members kept only CSVs and names this pattern finds
            raise DataError(f"{where}: not a <split>/<emotion>/<image> member")
        folder, emotion, filename = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if emotion not in FER2013_FOLDERS:
            raise DataError(f"{where}: unknown emotion folder {shown(emotion)}")
        prefix = filename.split("_", 1)[0]
        split = prefix if prefix in USAGES else _FOLDER_SPLIT[folder]
        out.add_encoded(read(), emotion_index(FER2013_FOLDERS[emotion]), where, split=split)
    if out:
        return out.build({"source": str(src), "format": "image-folder"})
    if csv_member is not None:
        return read_fer2013_csv(csv_member[1], member_path(src, csv_member[0]), size)
    raise DataError(
        f"{src}: no FER2013 data found (expected fer2013.csv or train/<emotion>/*.jpg)"
    )


def read_fer2013_csv(data: bytes | Path, where: str, size: int = 48) -> FaceData:
    """Parse a Kaggle ``fer2013.csv`` (gzip-compressed or not), from its file or its bytes,
    streamed: at most :data:`~deepfer.data.limits.MAX_TEXT_BYTES` inflated, lines of at most
    :data:`~deepfer.data.limits.MAX_LINE_CHARS`.

    Raises:
        DataError: naming the file and row for missing columns, an emotion outside 0-6, an
            unknown ``Usage``, a pixel string that is not 2304 ASCII numbers in 0-255, or text
            past the caps.
    """
    return _parse_rows(csv_rows(open_text(data, where), where), where, size)


def _parse_rows(rows: Iterable[list[str]], where: str, size: int) -> FaceData:
    it = iter(rows)
    header = [h.strip() for h in next(it, [])]
    if "pixels" not in header:
        raise DataError(f"{where}: missing column 'pixels' (header: {shown(','.join(header)) if header else 'empty'})")
    if "emotion" not in header:
        raise DataError(
            f"{where}: missing column 'emotion' (Kaggle's test.csv has no labels; use fer2013.csv)"
        )
    i_emo, i_pix = header.index("emotion"), header.index("pixels")
    i_use = header.index("Usage") if "Usage" in header else None
    out = FaceCollector("fer2013", size)
    for row_no, row in enumerate(it):
        at = f"{where} row {row_no} (line {row_no + 2})"
        if not row:
            continue
        if len(row) < len(header):
            raise DataError(f"{at}: {len(row)} fields, expected {len(header)}")
        try:
            emotion = ascii_int(row[i_emo])
        except ValueError:
            raise DataError(f"{at}: emotion {shown(row[i_emo])} is not an integer") from None
        if not 0 <= emotion <= 6:
            raise DataError(f"{at}: emotion {emotion} is outside 0-6")
        if not _PIXELS.match(row[i_pix]):  # numpy, like int(), also reads Arabic-Indic digits
            raise DataError(f"{at}: pixels contain a value that is not an integer in 0-255")
        try:
            values = np.array(row[i_pix].split(), dtype=np.int64)
        except (ValueError, OverflowError):
            raise DataError(f"{at}: pixels contain a value that is not an integer in 0-255") from None
        if values.size != 48 * 48:
            raise DataError(f"{at}: pixels has {values.size} values, expected 2304 (48x48)")
        if values.min() < 0 or values.max() > 255:
            raise DataError(f"{at}: pixel values must lie in 0-255")
        usage = row[i_use].strip() if i_use is not None else "Training"
        if usage not in USAGES:
            raise DataError(f"{at}: Usage {shown(usage)} is not one of {', '.join(USAGES)}")
        out.add(values.astype(np.uint8).reshape(48, 48), emotion, f"{where}#{row_no}", split=usage)
    if not out:
        raise DataError(f"{where}: no data rows")
    return out.build({"source": where, "format": "csv"})

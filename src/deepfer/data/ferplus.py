"""FER+ (Barsoum et al. 2016): ten annotators' votes per FER2013 image, read with the lossless
``FER2013Train/Valid/Test`` PNGs or joined to a ``fer2013.csv`` by row position."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np

from deepfer.data.archives import fingerprint, is_archive, iter_matches, member_path, require
from deepfer.data.cache import cached
from deepfer.data.faces import FaceCollector, FaceData, decode_stored
from deepfer.data.fer2013 import load_fer2013
from deepfer.data.limits import ascii_int, csv_rows, open_text, shown
from deepfer.errors import DataError
from deepfer.labels import EMOTIONS, FERPLUS_COLUMNS, FERPLUS_TO_EMOTION, emotion_index

LabelMode = Literal["majority", "soft"]
FOLDER_USAGE = {"FER2013Train": "Training", "FER2013Valid": "PublicTest", "FER2013Test": "PrivateTest"}
_PNG = re.compile(r"(?:^|/)(FER2013Train|FER2013Valid|FER2013Test)/([^/]+\.png)$")
# vote column -> deepfer emotion index, for the 8 emotion columns
_COLUMN_TO_INDEX = np.array([emotion_index(FERPLUS_TO_EMOTION[c]) for c in FERPLUS_COLUMNS[:8]])


def load_ferplus(
    path: str | Path,
    size: int = 48,
    labels: LabelMode = "majority",
    fer2013_csv: str | Path | None = None,
    use_cache: bool = True,
) -> FaceData:
    """Read FER+ votes and images.

    Args:
        path: ``fer2013new.csv``, or a folder holding it together with the
            ``FER2013Train/Valid/Test`` folders or an archive of them.
        size: side of the square images returned.
        labels: ``majority``: an image keeps the emotion that more than half of its votes
            name, after single votes are dropped as outliers, and images whose majority is
            unknown / not-a-face or that have no majority are dropped (Barsoum et al. 2016).
            ``soft``: every image whose top vote is an emotion is kept; ``soft_labels`` is the
            vote distribution over the 8 emotions and ``labels`` its arg-max.
        fer2013_csv: take the pixels from this ``fer2013.csv`` instead, joined by row position.

    Returns:
        FaceData with ``soft_labels`` (N, 8) in deepfer's emotion order; ``meta`` records the
        images found and dropped per split.
    """
    if labels not in ("majority", "soft"):
        raise DataError(f"unknown FER+ label mode {labels!r}; expected 'majority' or 'soft'")
    src = require(path, "fer2013new.csv or a folder holding it")
    votes_file = src if src.is_file() else src / "fer2013new.csv"
    if not votes_file.is_file():
        raise DataError(f"{src}: no fer2013new.csv here (FER+ votes file)")
    csv_path = None if fer2013_csv is None else require(fer2013_csv, "fer2013.csv")
    image_src = csv_path if csv_path is not None else _find_images(votes_file.parent)
    return cached(
        lambda: _load(votes_file, image_src, csv_path is not None, size, labels),
        use_cache, reader="ferplus", votes=fingerprint(votes_file),
        images=fingerprint(image_src), size=size, labels=labels,
    )


def _find_images(folder: Path) -> Path:
    if any((folder / name).is_dir() for name in FOLDER_USAGE):
        return folder
    archives = sorted(p for p in folder.iterdir() if is_archive(p))
    if len(archives) == 1:
        return archives[0]
    raise DataError(
        f"{folder}: expected FER2013Train/, FER2013Valid/, FER2013Test/ folders or one archive "
        f"of them beside fer2013new.csv (or pass fer2013_csv=...)"
    )


def read_votes(votes_file: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Usage, image name and the (N, 10) vote counts of every row of ``fer2013new.csv``.

    Raises:
        DataError: naming the file (and row) for a header that is not FER+'s, a malformed row,
            vote counts that are not integers, or no rows at all.
    """
    reader = csv_rows(open_text(votes_file, str(votes_file)), str(votes_file))
    header = [h.strip() for h in next(reader, [])]
    expected = ["Usage", "Image name", *FERPLUS_COLUMNS]
    if header != expected:
        raise DataError(f"{votes_file}: header {shown(','.join(header))} is not the FER+ header "
                        f"{','.join(expected)}")
    usages, names, votes = [], [], []
    for row_no, row in enumerate(reader):
        if not row:
            continue
        if len(row) != len(expected):
            raise DataError(f"{votes_file} row {row_no}: {len(row)} fields, expected {len(expected)}")
        try:
            votes.append([ascii_int(v) for v in row[2:]])
        except ValueError:
            raise DataError(f"{votes_file} row {row_no}: vote counts must be integers") from None
        usages.append(row[0].strip())
        names.append(row[1].strip())
    if not votes:
        raise DataError(f"{votes_file}: no data rows")
    return usages, names, np.asarray(votes, dtype=np.float32)


def process_votes(votes: np.ndarray, mode: LabelMode) -> tuple[np.ndarray, np.ndarray]:
    """Turn (N, 10) vote counts into labels and 8-emotion distributions.

    Returns:
        ``keep`` (bool, N) and ``soft`` (N, 8) in deepfer's emotion order; rows not kept have
        no usable label in this mode.
    """
    v = np.where(votes <= 1, 0.0, votes)  # a single vote is treated as annotator noise
    total = v.sum(1)
    top = v.argmax(1)
    is_emotion = top < 8
    if mode == "majority":
        keep = is_emotion & (v.max(1) > 0.5 * total)
    else:
        keep = is_emotion & (v[:, :8].sum(1) > 0)
    soft = np.zeros((len(v), len(EMOTIONS)), np.float32)
    soft[:, _COLUMN_TO_INDEX] = v[:, :8]
    s = soft.sum(1, keepdims=True)
    soft = np.divide(soft, s, out=np.zeros_like(soft), where=s > 0)
    return keep, soft


def _load(votes_file: Path, image_src: Path, from_csv: bool, size: int, mode: LabelMode) -> FaceData:
    usages, names, votes = read_votes(votes_file)
    keep, soft = process_votes(votes, mode)
    pixels: dict[int, np.ndarray] = {}
    where: dict[int, str] = {}
    if from_csv:
        base = load_fer2013(image_src, size=48, use_cache=False)
        if len(base) != len(usages):
            raise DataError(
                f"{image_src}: {len(base)} rows, but {votes_file} has {len(usages)}: "
                "joining by row position needs the complete fer2013.csv"
            )
        for row in range(len(base)):
            if base.splits[row] != usages[row]:
                raise DataError(f"{image_src} row {row}: Usage {base.splits[row]} differs from FER+ {usages[row]}")
            pixels[row], where[row] = base.images[row], str(base.paths[row])
    else:
        # The later row wins for the 4 duplicated names: FER+'s generator overwrote the earlier.
        row_of = {(u, n): i for i, (u, n) in enumerate(zip(usages, names)) if n}
        for name, m, read in iter_matches(image_src, _PNG):
            usage = FOLDER_USAGE[m.group(1)]
            row = row_of.get((usage, m.group(2)))
            at = member_path(image_src, name)
            if row is None:
                raise DataError(f"{at}: image has no row in {votes_file}")
            pixels[row], where[row] = decode_stored(read(), at), at
    found = {u: 0 for u in FOLDER_USAGE.values()}
    dropped = {u: 0 for u in FOLDER_USAGE.values()}
    out = FaceCollector("ferplus", size)
    for row in sorted(pixels):
        found[usages[row]] += 1
        if not keep[row]:
            dropped[usages[row]] += 1
            continue
        out.add(pixels[row], int(soft[row].argmax()), where[row], split=usages[row], soft=soft[row])
    if not out:
        raise DataError(f"{image_src}: no FER+ images found")
    return out.build(
        {"source": str(votes_file), "images": str(image_src), "label_mode": mode,
              "rows": len(usages), "images_found": found, "dropped": dropped},
    )

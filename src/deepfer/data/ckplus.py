"""CK+ (Lucey et al. 2010): the ``CK+48/<class>/`` crops and the original release layout
(``cohn-kanade-images/`` frames with ``Emotion/`` label files)."""

from __future__ import annotations

import re
from pathlib import Path

from deepfer.data.archives import fingerprint, iter_members, member_path, require
from deepfer.data.cache import cached
from deepfer.data.faces import FaceCollector, FaceData
from deepfer.errors import DataError
from deepfer.labels import CKPLUS_CODES, CKPLUS_FOLDERS, emotion_index

_CK48 = re.compile(r"(?:^|/)([A-Za-z]+)/(S\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)
_FRAME = re.compile(r"(?:^|/)cohn-kanade-images/(S\d+)/(\d+)/(S\d+_\d+_(\d+))\.png$")
_EMOTION = re.compile(r"(?:^|/)Emotion/(S\d+)/(\d+)/(S\d+_\d+_\d+)_emotion\.txt$")


def load_ckplus(
    path: str | Path,
    size: int = 48,
    last_frames: int = 1,
    first_as_neutral: bool = False,
    use_cache: bool = True,
) -> FaceData:
    """Read CK+ from the ``CK+48`` folder layout or from the original release.

    Args:
        path: folder / ``.zip`` / ``.tar.gz`` with ``<class>/Sxxx_sss_ffffffff.png`` (CK+48) or
            with ``cohn-kanade-images/`` and ``Emotion/`` (the original release).
        size: side of the square images returned.
        last_frames: original layout only: how many frames at the end of each labelled
            sequence to take (the label file names the last one).
        first_as_neutral: original layout only: add each labelled sequence's first frame as
            ``neutral``.

    Returns:
        FaceData with ``subjects`` = ``Sxxx`` and ``groups`` = ``Sxxx_sss`` (the frames of one
        sequence are near-duplicates: split by subject, never by image).
    """
    src = require(path, "a CK+48 folder or the original CK+ release")
    if last_frames < 1:
        raise DataError(f"last_frames must be >= 1, got {last_frames}")
    return cached(
        lambda: _load(src, size, last_frames, first_as_neutral), use_cache, reader="ckplus",
        source=fingerprint(src), size=size, last=last_frames, first=first_as_neutral,
    )


def _load(src: Path, size: int, last_frames: int, first_as_neutral: bool) -> FaceData:
    out = FaceCollector("ckplus", size)

    def add(data: bytes, where: str, label: str, subject: str, sequence: str) -> None:
        out.add_encoded(data, emotion_index(label), where, subject=subject, group=f"{subject}_{sequence}")

    label_files: dict[tuple[str, str], tuple[str, bytes]] = {}
    frames: dict[tuple[str, str], list[tuple[int, str]]] = {}
    fmt = None
    for name, read in iter_members(
        src, lambda n: bool(_CK48.search(n) or _FRAME.search(n) or _EMOTION.search(n))
    ):
        if (m := _EMOTION.search(name)) is not None:
            label_files[(m.group(1), m.group(2))] = (member_path(src, name), read())
        elif (m := _FRAME.search(name)) is not None:
            frames.setdefault((m.group(1), m.group(2)), []).append((int(m.group(4)), name))
        elif (m := _CK48.search(name)) is not None and fmt != "original":
            folder = m.group(1).lower()
            if folder not in CKPLUS_FOLDERS:
                continue
            fmt = "CK+48"
            add(read(), member_path(src, name), CKPLUS_FOLDERS[folder], m.group(2), m.group(3))
    if label_files:
        fmt = "original"
        out = FaceCollector("ckplus", size)  # CK+48-like names inside the release do not count
        wanted: dict[str, tuple[str, str, str]] = {}
        for (subject, seq), (where, text) in sorted(label_files.items()):
            label = _parse_label(text, where)
            seq_frames = sorted(frames.get((subject, seq), []))
            if not seq_frames:
                raise DataError(f"{where}: no frames for this sequence in cohn-kanade-images/")
            for _, name in seq_frames[-last_frames:]:
                wanted[name] = (label, subject, seq)
            if first_as_neutral:
                wanted.setdefault(seq_frames[0][1], ("neutral", subject, seq))
        for name, read in iter_members(src, lambda n: n in wanted):
            label, subject, seq = wanted[name]
            add(read(), member_path(src, name), label, subject, seq)
    if not out:
        raise DataError(
            f"{src}: no CK+ images found (expected <class>/Sxxx_sss_ffffffff.png or "
            "cohn-kanade-images/ + Emotion/)"
        )
    return out.build({"source": str(src), "format": fmt})


def _parse_label(text: bytes, where: str) -> str:
    try:
        code = int(round(float(text.decode("ascii").strip())))
    except (UnicodeDecodeError, ValueError, OverflowError):  # OverflowError: "inf"
        raise DataError(f"{where}: expected one emotion code (0-7), got {text[:40]!r}") from None
    if code not in CKPLUS_CODES:
        raise DataError(f"{where}: emotion code {code} is outside 0-7")
    return CKPLUS_CODES[code]

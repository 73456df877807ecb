"""Landmark alignment: a face warped so that its eye centres and its mouth centre land on one fixed
template, so that a model can cut its eyes-and-brows and mouth blocks at fixed places
(``prior-attention``) and still have them follow each face's landmarks.

Three points decide a similarity (rotation, uniform scale, shift): the two eye centres and the
mouth centre (the middle of the mouth corners). They are what every landmark source here gives:
YuNet's five points (eyes, nose, mouth corners) for photos, dlib's 68 for the training faces
(:mod:`deepfer.data.landmarks`). A similarity keeps the face's proportions, so an open mouth
stays open (cutting each block to its own landmark box and resizing it would squash that away).

:data:`TEMPLATE` is where the three points lie on FER2013's own framing: the median of dlib's
points on the FER2013 training faces where dlib's detector found the face, made left-right
symmetric (so that a mirrored aligned face is an aligned face). A face already framed like
FER2013 barely moves; a tilted, shifted or zoomed one is brought to that framing.

An alignment is refused (``None``: the caller keeps the unaligned face, the fixed-block
fallback) when the points are implausible: a rotation over :data:`MAX_ANGLE` degrees, or points
that a similarity cannot bring near the template (a residual over :data:`MAX_RESIDUAL` of the
face: eyes and mouth in proportions no upright face has). The scale is not bounded here: a face in
a photo may be any size; the dataset side bounds it (:data:`deepfer.data.alignment.MILD`).
"""

from __future__ import annotations

import cv2
import numpy as np

from deepfer.vision.geometry import Detection

__all__ = ["MAX_ANGLE", "MAX_RESIDUAL", "TEMPLATE", "align_faces", "aligned_transform",
           "alignment", "alignments", "points_from_68", "points_from_detection", "similarity"]

# (x, y) fractions of the face: left eye centre (image left), right eye centre, mouth centre.
# The median of dlib's points on the 1,359 of 2,000 FER2013 training faces (seed 0) its detector
# found, (0.3135, 0.3958), (0.6812, 0.3917), (0.5, 0.7688), symmetrised (benchmarks/ALIGNMENT.md).
TEMPLATE: np.ndarray = np.array([[0.3162, 0.3938], [0.6838, 0.3938], [0.5, 0.7688]])
MAX_ANGLE = 45.0
MAX_RESIDUAL = 0.08


def points_from_68(points: np.ndarray) -> np.ndarray:
    """The template's three points from dlib's 68 landmarks: ``(N, 68, 2)`` -> ``(N, 3, 2)``
    (eye centres: the mean of each eye's six points; mouth centre: the middle of its corners)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (68, 2):
        raise ValueError(f"68-point landmarks must have shape (N, 68, 2), got {p.shape}")
    return _ordered(np.stack([p[:, 36:42].mean(1), p[:, 42:48].mean(1), (p[:, 48] + p[:, 54]) / 2], 1))


def points_from_detection(det: Detection) -> np.ndarray | None:
    """The three points ``(3, 2)`` in image pixels from a detection's five landmarks (eyes, nose,
    mouth corners); ``None`` for a detection without mouth corners (Haar's, dlib's HOG)."""
    if det.landmarks is None or len(det.landmarks) < 5:
        return None
    p = np.asarray(det.landmarks, dtype=np.float64)
    return _ordered(np.stack([p[0], p[1], (p[3] + p[4]) / 2])[None])[0]


def _ordered(p: np.ndarray) -> np.ndarray:
    # The eye further left in the image first, whichever name a landmark scheme gives it.
    swap = p[:, 0, 0] > p[:, 1, 0]
    p = p.copy()
    p[swap, 0], p[swap, 1] = p[swap, 1], p[swap, 0].copy()
    return p


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity taking points ``src`` to ``dst``: the closed form for 2-D
    points (Umeyama, IEEE TPAMI 13(4), 1991, with reflections excluded by construction),
    batched over leading axes.

    Args:
        src: ``(..., K, 2)`` points, K >= 2.
        dst: ``(K, 2)`` or ``(..., K, 2)`` points.

    Returns:
        float64 ``(..., 2, 3)`` matrices ``m`` with ``dst ~ m @ (x, y, 1)``.

    Example:
        >>> src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> (similarity(src, 2 * src + 3).round(6) + 0.0).tolist()
        [[2.0, 0.0, 3.0], [0.0, 2.0, 3.0]]
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(-2, keepdims=True), dst.mean(-2, keepdims=True)
    s, d = src - mu_s, dst - mu_d
    var = np.maximum((s**2).sum((-2, -1)), 1e-12)
    a = (s * d).sum((-2, -1)) / var  # scale * cos
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(-1) / var  # scale * sin
    lin = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)  # (..., 2, 2)
    shift = mu_d[..., 0, :] - (lin @ mu_s[..., 0, :, None])[..., 0]
    return np.concatenate([lin, shift[..., None]], -1)


def alignments(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`alignment` for many faces at once: ``(N, 3, 2)`` points -> ``(N, 2, 3)`` matrices
    and a bool ``(N,)`` mask of the accepted ones (refused rows are left as computed)."""
    src = np.asarray(points, dtype=np.float64).reshape(-1, 3, 2)
    finite = np.isfinite(src).all((1, 2))
    src = np.where(finite[:, None, None], src, TEMPLATE * size - 0.5)  # placeholders for missing points
    dst = TEMPLATE * size - 0.5
    m = similarity(src, dst)
    angle = np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
    moved = src @ m[:, :, :2].transpose(0, 2, 1) + m[:, None, :, 2]
    residual = np.linalg.norm(moved - dst, axis=2).max(1) / size  # on the crop
    return m, finite & (np.abs(angle) <= MAX_ANGLE) & (residual <= MAX_RESIDUAL)


def alignment(points: np.ndarray, size: int) -> np.ndarray | None:
    """The similarity ``(2, 3)`` taking a face's three points (pixels of the picture they were
    found in, OpenCV's convention: pixel ``i`` is centred on ``i``) to the template on a ``size`` x
    ``size`` crop, ready for ``cv2.warpAffine``; ``None`` when it is implausible (see the module
    docstring) or a point is missing (NaN)."""
    m, ok = alignments(np.asarray(points, dtype=np.float64).reshape(1, 3, 2), size)
    return m[0] if ok[0] else None


def align_faces(faces: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces warped onto the template, where their points allow it.

    Args:
        faces: uint8 ``(N, S, S)`` face crops.
        points: ``(N, 3, 2)`` the three points as (x, y) fractions of each crop; NaN where none
            were found.

    Returns:
        The uint8 ``(N, S, S)`` faces (the unaligned face where no plausible alignment exists;
        border pixels repeat outside the crop) and a bool ``(N,)`` mask of the aligned ones.
    """
    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.shape[1] != faces.shape[2]:
        raise ValueError(f"align_faces takes square (N, S, S) faces, got {faces.shape}")
    size = faces.shape[1]
    out = faces.copy()
    ms, done = alignments(np.asarray(points, dtype=np.float64) * size - 0.5, size)  # fractions -> pixel centres
    for i in np.flatnonzero(done):
        face, m = faces[i], ms[i]
        out[i] = cv2.warpAffine(face, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out, done


def aligned_transform(det: Detection, size: int) -> np.ndarray | None:
    """The affine map ``(2, 3)`` from picture pixels to a ``size`` x ``size`` aligned crop of the
    face ``det`` (from its five landmarks), or ``None`` without mouth corners or when implausible."""
    pts = points_from_detection(det)
    return None if pts is None else alignment(pts, size)

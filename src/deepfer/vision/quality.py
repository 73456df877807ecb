"""How usable a detected face is: the detector's score, the face's width in pixels, its roll and an
approximate yaw from the landmarks, and a blur measure of the crop the model sees. Reported with
every face (``deepfer predict`` JSON and CSV, the Python ``Face``, the server) so that callers can
drop faces the model should not be trusted on (``--min-face``, ``--min-score``, or their own rule).

Roll is the angle of the line from the eye on the image's left to the other eye (positive:
clockwise in the image, the person's head tilted towards their left shoulder); the crop is rotated
by it, so the model sees the eyes level. Yaw is an estimate from a frontal face model: the nose
tip lies about half an inter-ocular distance in front of the eyes, so a head turned by ``yaw``
moves it off the eyes' midpoint by ``tan(yaw)`` half eye-distances (positive: the nose towards the
image's right). It is an estimate, not a measurement: it cannot tell yaw from a nose that is
off-centre for other reasons, and YuNet's landmarks, which lean towards a frontal layout (see
:class:`~deepfer.vision.detect.YuNetDetector`), make it read low.

Blur is the variance of the Laplacian of the model's crop (uint8, the model's input size): high
for sharp faces, low for blurred faces and for tiny ones enlarged to the model's size; it is
comparable between faces only at the same model input size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from deepfer.vision.geometry import Detection

__all__ = ["Quality", "blur", "face_quality", "roll_yaw"]


@dataclass(frozen=True)
class Quality:
    """Per-face quality measures (``None`` where the detector does not give what they need).

    Attributes:
        score: the detector's confidence in [0, 1] (``None`` for Haar and dlib, which give none).
        width: the face's box width in pixels of the image.
        roll: in-plane rotation of the eye line in degrees (``None`` without eye landmarks).
        yaw: approximate left-right head turn in degrees (``None`` without eyes and nose).
        blur: variance of the Laplacian of the model's crop (lower: blurrier).
    """

    score: float | None
    width: int
    roll: float | None
    yaw: float | None
    blur: float

    def to_dict(self) -> dict[str, float | int | None]:
        """The JSON object of one face's ``quality``."""
        return asdict(self)


def roll_yaw(det: Detection) -> tuple[float | None, float | None]:
    """Roll and approximate yaw in degrees from a detection's landmarks (see the module docstring).

    Example:
        >>> d = Detection((0, 0, 100, 100), landmarks=[(30, 40), (70, 40), (50, 60)])
        >>> roll_yaw(d)
        (0.0, 0.0)
    """
    if det.eyes is None:
        return None, None
    (lx, ly), (rx, ry) = det.eyes
    dx, dy = rx - lx, ry - ly
    half = math.hypot(dx, dy) / 2
    roll = math.degrees(math.atan2(dy, dx))
    nose = det.point("nose")
    if nose is None or half == 0:
        return round(roll, 2), None
    # The nose's offset from the eyes' midpoint along the eye line, in half eye-distances.
    offset = ((nose[0] - (lx + rx) / 2) * dx + (nose[1] - (ly + ry) / 2) * dy) / (2 * half * half)
    return round(roll, 2), round(math.degrees(math.atan(offset)), 2)


def blur(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a uint8 (S, S) crop: lower is blurrier.

    Example:
        >>> blur(np.full((48, 48), 128, np.uint8))
        0.0
    """
    return round(float(cv2.Laplacian(crop, cv2.CV_64F).var()), 2)


def face_quality(det: Detection, crop: np.ndarray) -> Quality:
    """The quality of one detected face, given the crop the model sees.

    Args:
        det: the detection.
        crop: its uint8 (S, S) crop, as :func:`deepfer.vision.crop.crop_face` made it.

    Returns:
        The face's :class:`Quality`.
    """
    roll, yaw = roll_yaw(det)
    return Quality(det.score, int(det.box[2]), roll, yaw, blur(crop))

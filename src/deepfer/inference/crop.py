"""From a detector's box to the face crop the model was trained on: the one place that knows how
FER2013 frames a face.

FER2013's faces were registered automatically so that each is centred and fills about the same
part of its 48x48 frame (Goodfellow et al., 2013). Measured on 800 FER2013 training
faces enlarged 1.5 to 4 times (72 to 192 px), padded and detected again
(``benchmarks/bench_inference.py --framing`` repeats it), the 48x48 frame is 1.03 times the side of
OpenCV's frontal-face Haar box and centred on it, at every face size. dlib's HOG box is coarser:
its size jumps with dlib's pyramid levels, so the frame is 1.0 to 1.28 times its side depending
on the face's size (1.17 on average for faces of 96 to 192 px), and its centre lies 0.09 box
heights above the box's centre. :data:`FRAMINGS` holds these numbers; every crop, whatever the
detector, comes out framed like a FER2013 face, then goes through
:func:`deepfer.data.imageio.resize`, the same resize the dataset readers use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from deepfer.data.imageio import resize

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the original image
Point = tuple[float, float]


@dataclass(frozen=True)
class Framing:
    """How to turn a detector's box into a FER2013-like square crop.

    Attributes:
        scale: side of the crop / the larger side of the box.
        dx: shift of the crop's centre from the box's centre, in box widths (right is positive).
        dy: the same, in box heights (down is positive).
    """

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0


FRAMINGS: dict[str, Framing] = {
    "haar": Framing(scale=1.03),
    "dlib": Framing(scale=1.17, dy=-0.09),
    "none": Framing(scale=1.0),  # boxes that already frame the face like FER2013 (--no-detect)
}


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    Attributes:
        box: (x, y, w, h) in pixels of the image the detector was given.
        eyes: the centres of the face's left and right eye in image coordinates (the eye on the
            image's left first), when the detector gives landmarks; the crop is then rotated so that
            they are level.
        score: the detector's confidence, where it has one.
    """

    box: Box
    eyes: tuple[Point, Point] | None = None
    score: float | None = None


def crop_square(box: Box, framing: Framing) -> tuple[float, float, float]:
    """Centre x, centre y and side of the square crop ``framing`` makes of ``box``."""
    x, y, w, h = box
    side = max(w, h) * framing.scale
    return x + w / 2 + framing.dx * w, y + h / 2 + framing.dy * h, side


def crop_face(gray: np.ndarray, det: Detection, framing: Framing, size: int) -> np.ndarray:
    """The (size, size) uint8 crop of one detected face, framed like a FER2013 face.

    Parts of the crop that fall outside the image repeat its border pixels. With eye landmarks
    the image is first rotated about the crop's centre so that the eyes are level.

    Args:
        gray: uint8 (H, W) image.
        det: the detection.
        framing: how the detector's box relates to a FER2013 frame (:data:`FRAMINGS`).
        size: the model's input side.

    Returns:
        uint8 array (size, size).
    """
    cx, cy, side = crop_square(det.box, framing)
    side = max(1, round(side))
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    if det.eyes is not None:
        (lx, ly), (rx, ry) = det.eyes
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        # Rotate about the crop's centre, then translate so that the crop lands at (0, 0).
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        m[:, 2] -= (x0, y0)
        patch = cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        return resize(patch, size)
    h, w = gray.shape
    x1, y1 = x0 + side, y0 + side
    patch = gray[max(y0, 0) : max(min(y1, h), 0), max(x0, 0) : max(min(x1, w), 0)]
    if patch.size == 0:  # a box wholly outside the image: nothing sensible to read
        patch = gray[:1, :1]
    pads = (max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0))
    if any(pads):
        patch = cv2.copyMakeBorder(patch, *pads, borderType=cv2.BORDER_REPLICATE)
    return resize(np.ascontiguousarray(patch), size)


def crop_faces(gray: np.ndarray, detections: Sequence[Detection], framing: Framing, size: int) -> np.ndarray:
    """Crops of all ``detections`` of one image, uint8 (N, size, size)."""
    if not detections:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([crop_face(gray, d, framing, size) for d in detections])


def whole_image(gray: np.ndarray, size: int) -> np.ndarray:
    """``--no-detect``: the whole image is the face, resized exactly as the dataset readers do."""
    return resize(gray, size)[None]

"""From a detector's box to the face crop the model was trained on, and back: the one place that
knows how FER2013 frames a face.

FER2013's faces were registered automatically so that each is centred and fills about the same
part of its 48x48 frame (Goodfellow et al., 2013). Measured on 800 FER2013 training
faces enlarged 1.5 to 4 times (72 to 192 px), padded and detected again
(``benchmarks/bench_inference.py --framing`` repeats it), the 48x48 frame is 1.03 times the side of
OpenCV's frontal-face Haar box and centred on it, at every face size. dlib's HOG box is coarser:
its size jumps with dlib's pyramid levels, so the frame is 1.0 to 1.28 times its side depending
on the face's size (1.17 on average for faces of 96 to 192 px), and its centre lies 0.09 box
heights above the box's centre. YuNet's box is taller than wide (it reaches up the forehead): the
frame is 1.0 times its larger side (1.016, 1.007, 0.989, 0.966 for faces of 72, 96, 144 and
192 px) and centred on it (within 0.03 box heights). With eye landmarks (YuNet's) the crop is
also rotated about its centre so that the eyes are level; on JAFFE's upright faces that changes
nothing measurable (the default FER2013 weights classify 112 of 213 faces right either way at
scale 1.0, ``framing.jaffe_accuracy_by_scale`` in ``benchmarks/framing_results.json``), and on
tilted faces it is what keeps the crop like a training face. :data:`FRAMINGS` holds these
numbers; every crop, whatever the detector, comes out framed like a FER2013 face, then goes through
:func:`deepfer.vision.pictures.resize`, the same resize the dataset readers use.

For a model that takes landmark-aligned faces (``Preprocess.align == "landmarks"``, asked for by
``align=True``), a detection with five landmarks (YuNet's) is instead warped by
:func:`deepfer.vision.align.aligned_transform`, its eyes and mouth onto the template the model was
trained on, straight to the model's size (when that shrinks the face, the warp goes to the face's
own scale and :func:`~deepfer.vision.pictures.resize` averages it down: a bilinear warp of a
face ten times the model's side would keep one pixel in a hundred and alias). Without mouth
corners (Haar, dlib's HOG, ``--no-detect``) or when the alignment is refused as implausible, the
face is framed as above: the fixed-block fallback the model was also trained with.
:func:`face_transform` is the one place that makes that choice, for the crop and for the uncrop.

:func:`uncrop` is the inverse: it lays a map computed on a crop (an explanation's heatmap) back
where the crop came from in the photo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from deepfer.vision.align import aligned_transform
from deepfer.vision.geometry import Box, Detection
from deepfer.vision.pictures import resize

__all__ = ["FRAMINGS", "Framing", "crop_face", "crop_faces", "crop_square", "crop_transform", "face_transform",
           "uncrop", "whole_image"]


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
    "yunet": Framing(scale=1.0),
    "none": Framing(scale=1.0),  # boxes that already frame the face like FER2013 (--no-detect)
}


def crop_square(box: Box, framing: Framing) -> tuple[float, float, float]:
    """Centre x, centre y and side of the square crop ``framing`` makes of ``box``.

    Example:
        >>> crop_square((10, 20, 100, 100), Framing(1.0))
        (60.0, 70.0, 100.0)
    """
    x, y, w, h = box
    side = max(w, h) * framing.scale
    return x + w / 2 + framing.dx * w, y + h / 2 + framing.dy * h, side


def _corner(det: Detection, framing: Framing) -> tuple[int, int, int]:
    """The crop's top-left corner and side, in whole image pixels."""
    cx, cy, side = crop_square(det.box, framing)
    side = max(1, round(side))
    return round(cx - side / 2), round(cy - side / 2), side


def crop_transform(det: Detection, framing: Framing) -> tuple[np.ndarray, int]:
    """The affine map from image pixels to the crop's pixels (before the resize to the model's
    size) and the crop's side: a shift, or a rotation about the crop's centre when the detection
    has eyes (they come out level).

    Returns:
        float64 (2, 3) matrix ``m`` (crop = ``m @ (x, y, 1)``) and the side in pixels.
    """
    x0, y0, side = _corner(det, framing)
    if det.eyes is None:
        return np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]]), side
    cx, cy, _ = crop_square(det.box, framing)
    (lx, ly), (rx, ry) = det.eyes
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    # Rotate about the crop's centre, then translate so that the crop lands at (0, 0).
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[:, 2] -= (x0, y0)
    return m, side


def face_transform(det: Detection, framing: Framing, size: int, align: bool = False) -> tuple[np.ndarray, bool]:
    """The affine map from picture pixels to the model's ``size`` x ``size`` crop of ``det`` (both in
    OpenCV's convention, pixel ``i`` centred on ``i``), and whether it is a landmark alignment.

    With ``align``, :func:`~deepfer.vision.align.aligned_transform` where the detection has five
    landmarks and they are plausible; otherwise the FER2013 framing of :func:`crop_transform`
    followed by the resize to ``size``.

    Returns:
        float64 (2, 3) matrix ``m`` (crop = ``m @ (x, y, 1)``) and ``True`` if the crop is aligned.
    """
    if align:
        m = aligned_transform(det, size)
        if m is not None:
            return m, True
    m, side = crop_transform(det, framing)
    k = size / side  # the resize, pixel centres kept: u = k * (c + 0.5) - 0.5
    out = k * m
    out[:, 2] += 0.5 * k - 0.5
    return out, False


def _warp(gray: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """``gray`` warped by ``m`` (picture -> crop pixels) onto a ``size`` x ``size`` crop; a shrinking
    map warps at the face's own scale first, then :func:`resize` (area) brings it to ``size``."""
    scale = math.hypot(m[0, 0], m[1, 0])
    side = size if scale >= 1.0 else max(size, round(size / scale))
    k = size / side
    # The map onto the (side, side) patch whose resize to ``size`` is ``m`` (see face_transform).
    m1 = m / k
    m1[:, 2] = (m[:, 2] + 0.5) / k - 0.5
    patch = cv2.warpAffine(gray, m1, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return resize(patch, size)


def crop_face(gray: np.ndarray, det: Detection, framing: Framing, size: int, align: bool = False) -> np.ndarray:
    """The (size, size) uint8 crop of one detected face, framed like a FER2013 face.

    Parts of the crop that fall outside the image repeat its border pixels. With eye landmarks
    the image is first rotated about the crop's centre so that the eyes are level.

    Args:
        gray: uint8 (H, W) image.
        det: the detection.
        framing: how the detector's box relates to a FER2013 frame (:data:`FRAMINGS`).
        size: the model's input side.
        align: the model takes landmark-aligned faces: warp the eyes and mouth onto the template
            where the detection has five landmarks (see :func:`face_transform`); the framing
            otherwise.

    Returns:
        uint8 array (size, size).
    """
    m, aligned = face_transform(det, framing, size, align)
    if aligned:
        return _warp(gray, m, size)
    if det.eyes is not None:
        m, side = crop_transform(det, framing)
        patch = cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        return resize(patch, size)
    # Without a rotation, a slice: exactly the pixels, no resampling before the resize.
    x0, y0, side = _corner(det, framing)
    h, w = gray.shape
    x1, y1 = x0 + side, y0 + side
    patch = gray[max(y0, 0) : max(min(y1, h), 0), max(x0, 0) : max(min(x1, w), 0)]
    if patch.size == 0:  # a box wholly outside the image: nothing sensible to read
        patch = gray[:1, :1]
    pads = (max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0))
    if any(pads):
        patch = cv2.copyMakeBorder(patch, *pads, borderType=cv2.BORDER_REPLICATE)
    return resize(np.ascontiguousarray(patch), size)


def crop_faces(gray: np.ndarray, detections: Sequence[Detection], framing: Framing, size: int,
               align: bool = False) -> np.ndarray:
    """Crops of all ``detections`` of one image, uint8 (N, size, size) (``align``: see :func:`crop_face`)."""
    if not detections:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([crop_face(gray, d, framing, size, align) for d in detections])


def whole_image(gray: np.ndarray, size: int) -> np.ndarray:
    """``--no-detect``: the whole image is the face, resized exactly as the dataset readers do;
    uint8 (1, size, size)."""
    return resize(gray, size)[None]


def uncrop(face_map: np.ndarray, det: Detection, framing: Framing, shape: tuple[int, int],
           scale: float = 1.0, align: bool = False) -> np.ndarray:
    """A map computed on a face's crop, laid where the crop came from: the inverse of
    :func:`crop_face`.

    Args:
        face_map: (S, S) values on the crop as the model saw it (S: the model's input side).
        det: the detection the crop was made from.
        framing: the framing it was made with.
        shape: (H, W) of the output: the original image scaled by ``scale``.
        scale: output pixels per image pixel (below 1 for a smaller canvas).
        align: the crop was made with ``align`` (the same choice, :func:`face_transform`, is made
            again, so an aligned crop and a fallback one are each undone by their own map).

    Returns:
        float32 ``shape``, the map's values where the crop lay (bilinear), zero outside it.

    Shape:
        - face_map: :math:`(S, S)`
        - output: ``shape``
    """
    m, _ = face_transform(det, framing, face_map.shape[0], align)
    # output pixel o -> image pixel (o + 0.5) / scale - 0.5 -> map pixel m @ (x, y, 1)
    lin = m[:, :2] / scale
    off = m[:, :2] @ np.full(2, 0.5 / scale - 0.5) + m[:, 2]
    out_to_map = np.hstack([lin, off[:, None]]).astype(np.float64)
    return cv2.warpAffine(face_map.astype(np.float32), out_to_map, (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)

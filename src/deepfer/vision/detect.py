"""Face detectors behind one protocol, and the registry that names them.

A detector returns :class:`~deepfer.vision.geometry.Detection` objects: a box, a score where it has
one, and landmark points where it gives them (the eyes first, then nose and mouth corners, in the
order of :data:`~deepfer.vision.geometry.LANDMARKS`); :mod:`deepfer.vision.crop` levels the eyes
of a face that has them. Each detector carries the :class:`~deepfer.vision.crop.Framing` that turns
its boxes into FER2013-like crops.

Two ship, both offline from what pip packages install. ``haar`` (the default) is OpenCV's
frontal-face Haar cascade, which ``opencv-python-headless`` ships in ``cv2.data.haarcascades``.
``dlib`` is dlib's HOG + linear SVM detector, whose model is compiled into the ``dlib`` module
(``pip install 'deepfer[dlib]'``, which installs ``dlib-bin``). Neither gives landmarks or scores,
so their crops are not rotated.

Both run on a grayscale copy shrunk to ``work_width`` pixels wide (320 by default; smaller
images are not enlarged) and map the boxes back: a 640x480 photo is searched at 320x240, which is
what keeps detection at a few milliseconds. ``benchmarks/bench_inference.py`` measures recall and
speed of each on JAFFE.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from deepfer.errors import DeepferError
from deepfer.vision.crop import FRAMINGS, Framing
from deepfer.vision.geometry import Detection

log = logging.getLogger(__name__)

__all__ = ["DETECTORS", "Detection", "DlibDetector", "FaceDetector", "HaarDetector", "create_detector",
           "list_detectors"]


class FaceDetector(Protocol):
    """What predict, explain, the server and the JAFFE reader need from a detector.

    Attributes:
        name: the registry name (``haar``, ``dlib``).
        framing: how its boxes relate to a FER2013 frame (:data:`~deepfer.vision.crop.FRAMINGS`).
    """

    name: str
    framing: Framing

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """Faces in a uint8 (H, W) image, largest first; boxes (and landmarks, where the detector
        gives them) in the image's pixels."""
        ...


def _shrink(gray: np.ndarray, work_width: int | None) -> tuple[np.ndarray, float]:
    """The image at most ``work_width`` wide and the factor that maps its pixels back."""
    w = gray.shape[1]
    if not work_width or w <= work_width:
        return gray, 1.0
    f = work_width / w
    small = cv2.resize(gray, (work_width, max(1, round(gray.shape[0] * f))), interpolation=cv2.INTER_AREA)
    return small, w / work_width


def _scaled(boxes: list[tuple[int, int, int, int]], back: float, shape: tuple[int, ...]) -> list[Detection]:
    h, w = shape[:2]
    out = []
    for x, y, bw, bh in sorted(boxes, key=lambda b: -b[2] * b[3]):
        x0, y0 = round(x * back), round(y * back)
        out.append(Detection((x0, y0, min(round(bw * back), w - x0), min(round(bh * back), h - y0))))
    return out


class HaarDetector:
    """OpenCV's Viola-Jones cascade (``haarcascade_frontalface_default.xml``).

    Args:
        cascade: a file name in ``cv2.data.haarcascades`` or a path to a cascade XML.
        work_width: detect on a copy at most this wide (``None``: full size).
        scale_factor: step between the scales searched.
        min_neighbors: overlapping detections needed to keep a face (higher: fewer false faces).
        min_size: smallest face side searched, in pixels of the shrunk copy.

    Example:
        >>> det = HaarDetector()
        >>> det.detect(np.zeros((480, 640), np.uint8))
        []
    """

    name = "haar"
    framing = FRAMINGS["haar"]

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", work_width: int | None = 320,
                 scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 30) -> None:
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise DeepferError(f"cannot load the Haar cascade {path} (is opencv-python-headless<5 installed?)")
        self.work_width = work_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """Faces in a uint8 (H, W) image, largest first."""
        small, back = _shrink(gray, self.work_width)
        boxes = self.classifier.detectMultiScale(small, scaleFactor=self.scale_factor,
                                                 minNeighbors=self.min_neighbors,
                                                 minSize=(self.min_size, self.min_size))
        return _scaled([tuple(int(v) for v in b) for b in boxes], back, gray.shape)  # type: ignore[misc]


class DlibDetector:
    """dlib's HOG frontal-face detector (``dlib.get_frontal_face_detector``).

    Args:
        work_width: detect on a copy at most this wide (``None``: full size).
        upsample: times dlib doubles the image first; finds faces down to about 40 px instead of
            80 px of the shrunk copy, four times slower per step.

    Raises:
        DeepferError: dlib is not installed.
    """

    name = "dlib"
    framing = FRAMINGS["dlib"]

    def __init__(self, work_width: int | None = 320, upsample: int = 0) -> None:
        try:
            import dlib
        except ImportError:
            raise DeepferError("the dlib detector needs dlib: pip install 'deepfer[dlib]' "
                               "(installs the prebuilt dlib-bin)") from None
        self._detector = dlib.get_frontal_face_detector()
        self.work_width = work_width
        self.upsample = upsample

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """Faces in a uint8 (H, W) image, largest first."""
        small, back = _shrink(gray, self.work_width)
        h, w = small.shape
        boxes = []
        for r in self._detector(np.ascontiguousarray(small), self.upsample):
            # dlib boxes may poke out of the image; clip them.
            x0, y0 = max(r.left(), 0), max(r.top(), 0)
            x1, y1 = min(r.right() + 1, w), min(r.bottom() + 1, h)
            if x1 > x0 and y1 > y0:
                boxes.append((x0, y0, x1 - x0, y1 - y0))
        return _scaled(boxes, back, gray.shape)


DETECTORS: dict[str, Callable[..., FaceDetector]] = {"haar": HaarDetector, "dlib": DlibDetector}


def list_detectors() -> list[str]:
    """Names accepted by :func:`create_detector`."""
    return sorted(DETECTORS)


def create_detector(name: str = "haar", **options: Any) -> FaceDetector:
    """Build a detector by name with its options.

    Args:
        name: ``haar`` or ``dlib`` (see :func:`list_detectors`).
        options: the detector's keyword arguments (``work_width``, ``min_size``, ...).

    Returns:
        The detector.

    Raises:
        DeepferError: an unknown name, or a detector whose package is missing.

    Example:
        >>> create_detector("haar", work_width=None).framing
        Framing(scale=1.03, dx=0.0, dy=0.0)
    """
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise DeepferError(f"unknown face detector {name!r}; choose one of {', '.join(list_detectors())}") from None
    return factory(**options)

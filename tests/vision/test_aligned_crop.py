"""Crops for a model that takes landmark-aligned faces: a detection with five landmarks is warped onto
the template (its dots land on the template's pixels), uncrop undoes that same warp, and a detection
without landmarks, or with implausible ones, is cropped exactly as for any other model."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from vision_helpers import noise

from deepfer.vision import (
    FRAMINGS,
    Detection,
    Framing,
    crop_face,
    crop_faces,
    face_transform,
    uncrop,
)
from deepfer.vision.align import TEMPLATE


def _face(centre: tuple[float, float], eye_gap: float, angle: float) -> np.ndarray:
    """Five landmarks (eyes, nose, mouth corners) of a face laid on the template's proportions,
    eyes ``eye_gap`` px apart, turned by ``angle`` degrees about ``centre``: (5, 2) pixels."""
    t = TEMPLATE
    mouth = t[2]
    unit = np.array([t[0], t[1], (t[0] + t[1]) / 2 + [0.0, 0.2], mouth - [0.1, 0.0], mouth + [0.1, 0.0]])
    pts = (unit - 0.5) * eye_gap / (t[1, 0] - t[0, 0])
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return pts @ rot.T + centre


def _dots(shape: tuple[int, int], points: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 picture with a Gaussian dot on each point (sub-pixel centres)."""
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    img = np.zeros(shape)
    for x, y in points:
        img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return (255 * img.clip(0, 1)).astype(np.uint8)


def _blobs(img: np.ndarray) -> np.ndarray:
    """Intensity-weighted centres (x, y) of the bright blobs of ``img``, sorted by y then x."""
    f = img.astype(np.float64)
    n, labels = cv2.connectedComponents((f > 0.3 * f.max()).astype(np.uint8))
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    centres = [((f * xs)[labels == k].sum() / f[labels == k].sum(), (f * ys)[labels == k].sum() / f[labels == k].sum())
               for k in range(1, n)]
    return np.array(sorted(centres, key=lambda c: (round(c[1]), c[0])))


# (eye gap in px, angle, crop size): faces smaller than the crop (a plain warp), and larger (the warp
# at the face's scale, then the area resize); tilted both ways.
CASES = [(40.0, 0.0, 96), (36.0, 25.0, 96), (120.0, -30.0, 96), (150.0, 12.0, 48)]


@pytest.mark.parametrize(("gap", "angle", "size"), CASES)
def test_an_aligned_crop_puts_the_eyes_and_mouth_on_the_template(gap: float, angle: float, size: int) -> None:
    marks = _face((200.0, 170.0), gap, angle)
    mouth = (marks[3] + marks[4]) / 2
    img = _dots((340, 400), np.array([marks[0], marks[1], mouth]), sigma=gap / 20)
    det = Detection((120, 90, 160, 160), 0.9, marks)
    crop = crop_face(img, det, FRAMINGS["yunet"], size, align=True)
    assert crop.shape == (size, size)
    found = _blobs(crop)
    want = TEMPLATE * size - 0.5  # OpenCV pixel centres
    want = want[np.lexsort((want[:, 0], np.round(want[:, 1])))]  # the order of _blobs
    assert found.shape == (3, 2)
    np.testing.assert_allclose(found, want, atol=0.35)
    # The framing crop of the same detection would not put them there.
    framed = _blobs(crop_face(img, det, FRAMINGS["yunet"], size))
    assert framed.shape != want.shape or np.abs(framed - want).max() > 2


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize(("gap", "angle", "size"), CASES[1:3])
def test_uncrop_of_an_aligned_crop_lands_the_map_where_the_face_was(gap: float, angle: float, size: int,
                                                                    scale: float) -> None:
    marks = _face((200.0, 170.0), gap, angle)
    det = Detection((120, 90, 160, 160), 0.9, marks)
    m, aligned = face_transform(det, FRAMINGS["yunet"], size, align=True)
    assert aligned
    # A map on the crop: one blob off the centre (on the left eye's template place).
    u = TEMPLATE[0] * size - 0.5
    face_map = _dots((size, size), u[None], sigma=size / 24).astype(np.float32) / 255
    shape = (round(340 * scale), round(400 * scale))
    placed = uncrop(face_map, det, FRAMINGS["yunet"], shape, scale, align=True)
    # It lies on the left eye of the picture (the inverse of the crop's warp) ...
    (centre,) = _blobs(placed)
    np.testing.assert_allclose(centre, (marks[0] + 0.5) * scale - 0.5, atol=0.5)
    # ... and warping the placed map forward by the crop's own map gives the face map back.
    if scale == 1.0:
        again = cv2.warpAffine(placed, m, (size, size), flags=cv2.INTER_LINEAR)
        np.testing.assert_allclose(again, face_map, atol=0.06)
    # Unaligned, the same map would land elsewhere.
    (other,) = _blobs(uncrop(face_map, det, FRAMINGS["yunet"], shape, scale))
    assert np.hypot(*(other - centre)) > 3


@pytest.mark.parametrize("det", [
    Detection((40, 30, 90, 90)),  # Haar's and dlib's: no landmarks
    Detection((40, 30, 90, 90), landmarks=((70.0, 60.0), (100.0, 62.0))),  # eyes only
    # five landmarks, the mouth above the eyes: no plausible similarity
    Detection((40, 30, 90, 90), 0.9, ((70.0, 80.0), (100.0, 80.0), (85.0, 70.0), (75.0, 40.0), (95.0, 40.0))),
])
def test_without_usable_landmarks_the_crop_and_uncrop_are_those_of_any_model(det: Detection) -> None:
    img = noise((200, 220), seed=5)
    framing = FRAMINGS["haar"]
    assert not face_transform(det, framing, 48, align=True)[1]
    np.testing.assert_array_equal(crop_face(img, det, framing, 48, align=True), crop_face(img, det, framing, 48))
    np.testing.assert_array_equal(crop_faces(img, [det, det], framing, 48, align=True),
                                  crop_faces(img, [det, det], framing, 48))
    face_map = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    np.testing.assert_array_equal(uncrop(face_map, det, framing, (100, 110), 0.5, align=True),
                                  uncrop(face_map, det, framing, (100, 110), 0.5))


def test_a_haar_crop_is_the_framed_slice_resized_as_before() -> None:
    # The fallback is today's crop to the pixel: the framed square, sliced, then the dataset resize.
    img = noise((200, 220), seed=6)
    det = Detection((50, 40, 96, 96))
    side = round(96 * 1.03)
    x0, y0 = round(50 + 48 - side / 2), round(40 + 48 - side / 2)
    want = cv2.resize(img[y0 : y0 + side, x0 : x0 + side], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(crop_face(img, det, FRAMINGS["haar"], 48, align=True), want)


def test_face_transform_of_the_framing_is_the_crop_then_the_resize() -> None:
    det = Detection((40, 30, 60, 60))
    m, aligned = face_transform(det, Framing(1.0), 30)
    assert not aligned
    # The square's corners (pixel edges) go to the crop's edges: x = -0.5 and 29.5 in pixel centres.
    np.testing.assert_allclose(m @ [39.5, 29.5, 1.0], [-0.5, -0.5])
    np.testing.assert_allclose(m @ [99.5, 89.5, 1.0], [29.5, 29.5])

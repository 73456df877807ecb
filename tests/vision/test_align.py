"""Landmark alignment: the similarity fit, the plausibility gate, the three points from each
landmark scheme, and faces warped onto the template."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from deepfer.vision.align import TEMPLATE, align_faces, aligned_transform, alignment, points_from_68, \
    points_from_detection, similarity
from deepfer.vision.geometry import Detection


def _rotation(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = math.radians(angle)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), shift[0]],
                     [scale * math.sin(a), scale * math.cos(a), shift[1]]])


def test_similarity_recovers_a_rotation_scale_and_shift() -> None:
    src = np.array([[10.0, 12.0], [30.0, 11.0], [21.0, 35.0], [5.0, 40.0]])
    m = _rotation(17.0, 1.3, (4.0, -2.0))
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(similarity(src, dst), m, atol=1e-9)


def test_similarity_never_reflects() -> None:
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mirrored = src * [-1.0, 1.0]
    m = similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0  # a rotation, not the mirror that would fit exactly


def test_alignment_maps_the_points_onto_the_template() -> None:
    size = 48
    template_px = TEMPLATE * size - 0.5
    m_face = _rotation(-20.0, 0.8, (7.0, 3.0))  # where a tilted, smaller face's points are
    pts = template_px @ m_face[:, :2].T + m_face[:, 2]
    m = alignment(pts, size)
    assert m is not None
    np.testing.assert_allclose(pts @ m[:, :2].T + m[:, 2], template_px, atol=1e-9)


@pytest.mark.parametrize("angle, scale, refused", [(60.0, 1.0, True), (-50.0, 2.0, True), (30.0, 1.0, False),
                                                   (0.0, 0.2, False), (0.0, 5.0, False)])
def test_a_rotation_over_45_degrees_is_refused_any_size_is_not(angle: float, scale: float, refused: bool) -> None:
    size = 48
    m_face = _rotation(angle, scale, (100.0, 50.0))  # a face of any size anywhere in a photo
    pts = (TEMPLATE * size - 0.5) @ m_face[:, :2].T + m_face[:, 2]
    assert (alignment(pts, size) is None) == refused


def test_points_a_similarity_cannot_fit_are_refused_and_nan_is_missing() -> None:
    size = 48
    pts = TEMPLATE * size - 0.5
    pts[2] = pts[0] + [0.0, 1.0]  # the mouth next to an eye: no similarity brings that to the template
    assert alignment(pts, size) is None
    assert alignment(np.full((3, 2), np.nan), size) is None


def test_points_from_68_take_eye_means_and_the_mouth_corners_middle() -> None:
    p = np.zeros((1, 68, 2))
    p[0, 36:42] = [0.3, 0.4]
    p[0, 42:48] = [0.7, 0.4]
    p[0, 48], p[0, 54] = [0.4, 0.8], [0.6, 0.76]
    np.testing.assert_allclose(points_from_68(p)[0], [[0.3, 0.4], [0.7, 0.4], [0.5, 0.78]])
    # A scheme that names the eyes the other way round gives the same, image-left eye first.
    p[0, 36:42], p[0, 42:48] = [0.7, 0.4], [0.3, 0.4]
    np.testing.assert_allclose(points_from_68(p)[0], [[0.3, 0.4], [0.7, 0.4], [0.5, 0.78]])


def test_points_from_a_detection_need_the_mouth_corners() -> None:
    assert points_from_detection(Detection((0, 0, 50, 50))) is None
    assert points_from_detection(Detection((0, 0, 50, 50), landmarks=[(15, 20), (35, 20)])) is None
    det = Detection((0, 0, 50, 50), landmarks=[(35, 20), (15, 20), (25, 28), (18, 38), (32, 40)])
    np.testing.assert_allclose(points_from_detection(det), [[15, 20], [35, 20], [25, 39]])
    m = aligned_transform(det, 48)
    assert m is not None
    np.testing.assert_allclose(np.array([[15, 20], [35, 20], [25, 39]]) @ m[:, :2].T + m[:, 2],
                               TEMPLATE * 48 - 0.5, atol=0.6)


def test_align_faces_moves_marks_onto_the_template_and_keeps_the_rest() -> None:
    size = 48
    m_face = _rotation(12.0, 0.9, (4.0, -3.0))
    pts_px = (TEMPLATE * size - 0.5) @ m_face[:, :2].T + m_face[:, 2]
    face = np.zeros((size, size), np.uint8)
    for x, y in pts_px:
        cv2.circle(face, (round(x), round(y)), 2, 255, -1)
    faces = np.stack([face, face])
    points = np.stack([(pts_px + 0.5) / size, np.full((3, 2), np.nan)]).astype(np.float32)
    out, done = align_faces(faces, points)
    assert done.tolist() == [True, False]
    np.testing.assert_array_equal(out[1], face)  # no points: the face as it was (fixed-block fallback)
    for x, y in TEMPLATE * size - 0.5:  # each mark now sits on its template point
        assert out[0, round(y), round(x)] > 200
    assert out[0].astype(int).sum() == pytest.approx(face.astype(int).sum(), rel=0.25)

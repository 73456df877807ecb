"""A dataset aligned for a model that asks (prior-attention): points from the cache, the
mild-correction rule for faces dlib's detector missed, the fallback and its rates. dlib is not
needed: the points are stubbed or cached."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from deepfer.data import alignment
from deepfer.data.faces import FaceData
from deepfer.vision.align import TEMPLATE

SIZE = 48


def _points(angle: float, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The template's points moved by a rotation about the face's centre, as fractions."""
    a = math.radians(angle)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return ((TEMPLATE - 0.5) @ rot.T + 0.5 + shift).astype(np.float32)


def _data(points: np.ndarray) -> FaceData:
    faces = []
    for pts in points:  # a dot on each point, so alignment is visible in the pixels
        face = np.zeros((SIZE, SIZE), np.uint8)
        for x, y in pts * SIZE - 0.5:
            cv2.circle(face, (round(x), round(y)), 2, 255, -1)
        faces.append(face)
    n = len(points)
    return FaceData.from_lists("fixture", faces, [0] * n, [f"s{i}" for i in range(n)], ["Training"] * n,
                               [f"f{i}.png" for i in range(n)])


@pytest.fixture()
def stub_points(monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    monkeypatch.setattr(alignment, "face_points", lambda data, use_cache=True: (found["points"], found["detected"]))
    return found


def test_detected_faces_align_missed_ones_only_when_mild(stub_points: dict[str, np.ndarray]) -> None:
    points = np.stack([_points(20.0), _points(20.0), _points(4.0, 1.05), _points(0.0, 1.0, (0.2, 0.0))])
    stub_points.update(points=points, detected=np.array([True, False, False, False]))
    data = _data(points)
    out = alignment.aligned(data)
    # Face 0: detected, 20 degrees corrected; face 1: missed and 20 degrees is not mild: kept as it was;
    # face 2: missed but mild: aligned; face 3: missed, shifted by a fifth of the face: kept.
    np.testing.assert_array_equal(out.images[1], data.images[1])
    np.testing.assert_array_equal(out.images[3], data.images[3])
    for i in (0, 2):
        assert not np.array_equal(out.images[i], data.images[i])
        for x, y in TEMPLATE * SIZE - 0.5:
            assert out.images[i][round(y), round(x)] > 200
    report = out.meta["alignment"]
    assert report["faces"] == 4 and report["detected"] == 1 and report["aligned"] == 2
    assert report["fallback_rate"] == 0.5 and report["fallback_when_missed"] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(out.labels, data.labels)
    np.testing.assert_array_equal(out.hashes, data.hashes)  # duplicates and splits are found on the originals


def test_for_model_leaves_unaligned_models_alone(stub_points: dict[str, np.ndarray]) -> None:
    data = _data(_points(0.0)[None])
    assert alignment.for_model(data, "none") is data
    with pytest.raises(ValueError, match="unknown alignment"):
        alignment.for_model(data, "eyes")
    stub_points.update(points=_points(20.0)[None], detected=np.array([True]))
    once = alignment.for_model(data, "landmarks")
    assert alignment.for_model(once, "landmarks") is once  # never aligned twice
    with pytest.raises(ValueError, match="aligned on landmarks"):
        alignment.for_model(once, "none")


def test_points_come_from_the_cache_without_dlib(cache_root: object, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(np.stack([_points(10.0), _points(0.0)]))
    calls = []

    class FakeLandmarker:  # stands in for dlib; counts how often it is asked
        def __call__(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            calls.append(len(faces))
            p = np.zeros((len(faces), 68, 2), np.float32)
            p[:, 36:42], p[:, 42:48] = TEMPLATE[0], TEMPLATE[1]
            p[:, 48], p[:, 54] = TEMPLATE[2] - [0.1, 0.0], TEMPLATE[2] + [0.1, 0.0]
            return p, np.ones(len(faces), bool)

    import deepfer.vision.landmarks as lm

    monkeypatch.setattr(lm, "Landmarker", FakeLandmarker)
    first = alignment.face_points(data)
    second = alignment.face_points(data)
    assert calls == [2]  # computed once, then read from the cache
    np.testing.assert_allclose(first[0], second[0])
    np.testing.assert_allclose(first[0][0], TEMPLATE, atol=1e-6)
    assert second[1].tolist() == [True, True]

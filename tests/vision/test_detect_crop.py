"""Face detection on the bundled photo, and the crop geometry (framing, borders, eye alignment)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.errors import DeepferError
from deepfer.vision.crop import (
    FRAMINGS,
    Framing,
    crop_face,
    crop_faces,
    crop_square,
    whole_image,
)
from deepfer.vision.detect import HaarDetector, list_detectors
from deepfer.vision.detector_spec import create_detector
from deepfer.vision.geometry import Detection
from deepfer.vision.pictures import read_image, resize

# Eileen Collins' face in the 512x512 astronaut photo, measured once by eye and by both detectors.
FACE = (174, 64, 98, 98)


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def test_haar_finds_the_one_face_in_the_bundled_photo(astronaut: Path) -> None:
    gray = read_image(astronaut).gray
    dets = HaarDetector().detect(gray)
    assert len(dets) == 1
    assert iou(dets[0].box, FACE) > 0.8


def test_boxes_map_back_from_the_shrunk_copy(astronaut: Path) -> None:
    gray = read_image(astronaut).gray
    big = cv2.resize(gray, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    dets = HaarDetector(work_width=320).detect(big)
    assert len(dets) == 1
    assert iou(dets[0].box, tuple(2 * v for v in FACE)) > 0.7


def test_no_face_in_noise_or_flat_images() -> None:
    det = HaarDetector()
    assert det.detect(np.full((480, 640), 128, np.uint8)) == []
    assert det.detect(np.zeros((20, 20), np.uint8)) == []  # smaller than the smallest face


def test_dlib_detector(astronaut: Path) -> None:
    pytest.importorskip("dlib")
    dets = create_detector("dlib").detect(read_image(astronaut).gray)
    assert len(dets) == 1
    assert iou(dets[0].box, FACE) > 0.5


def test_unknown_detector_lists_the_known_ones() -> None:
    assert list_detectors() == ["dlib", "haar", "yunet"]
    with pytest.raises(DeepferError, match="auto, dlib, haar, yunet"):
        create_detector("yolo")


def test_framing_geometry() -> None:
    assert crop_square((10, 20, 100, 100), Framing(1.0)) == (60.0, 70.0, 100.0)
    cx, cy, side = crop_square((0, 0, 100, 100), Framing(1.5, dx=0.1, dy=-0.1))
    assert (cx, cy, side) == pytest.approx((60.0, 40.0, 150.0))
    assert FRAMINGS["haar"].scale == pytest.approx(1.03)


def test_crop_equals_slice_and_the_readers_resize_inside_the_image() -> None:
    gray = np.random.default_rng(0).integers(0, 256, (200, 300), dtype=np.uint8)
    crop = crop_face(gray, Detection((50, 40, 96, 96)), Framing(1.0), 48)
    np.testing.assert_array_equal(crop, resize(gray[40:136, 50:146], 48))


def test_crop_past_the_border_repeats_edge_pixels() -> None:
    gray = np.zeros((100, 100), np.uint8)
    gray[:, 0] = 200  # a bright left column
    crop = crop_face(gray, Detection((-20, 10, 40, 40)), Framing(1.0), 40)
    assert crop.shape == (40, 40)
    assert (crop[:, :20] == 200).all() and (crop[:, 21:] == 0).all()


def test_eye_landmarks_level_a_tilted_face() -> None:
    gray = np.zeros((200, 200), np.uint8)
    # Two "eyes" on a 30-degree line through the centre.
    left, right = (70.0, 83.0), (130.0, 117.6)
    for x, y in (left, right):
        cv2.circle(gray, (round(x), round(y)), 6, 255, -1)
    crop = crop_face(gray, Detection((50, 50, 100, 100), landmarks=(left, right)), Framing(1.0), 100)
    ys, xs = np.nonzero(crop > 128)
    lhs, rhs = ys[xs < 50].mean(), ys[xs >= 50].mean()
    assert abs(lhs - rhs) < 1.5  # level after alignment
    assert abs(lhs - 50) < 2.0


def test_crop_faces_and_whole_image_shapes() -> None:
    gray = np.random.default_rng(1).integers(0, 256, (64, 80), dtype=np.uint8)
    assert crop_faces(gray, [], FRAMINGS["haar"], 48).shape == (0, 48, 48)
    out = crop_faces(gray, [Detection((0, 0, 30, 30)), Detection((30, 20, 40, 40))], FRAMINGS["haar"], 48)
    assert out.shape == (2, 48, 48) and out.dtype == np.uint8
    np.testing.assert_array_equal(whole_image(gray, 48)[0], resize(gray, 48))

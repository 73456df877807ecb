"""Crop, then uncrop: a map computed on a face crop lands back exactly where the crop came from."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from vision_helpers import noise

from deepfer.vision import FRAMINGS, Detection, Framing, crop_face, crop_square, crop_transform, uncrop


def _square(det: Detection, framing: Framing) -> tuple[int, int, int]:
    cx, cy, side = crop_square(det.box, framing)
    side = max(1, round(side))
    return round(cx - side / 2), round(cy - side / 2), side


@pytest.mark.parametrize("box", [(40, 30, 60, 60), (0, 0, 50, 70), (150, 100, 60, 60), (-20, 170, 50, 50)])
@pytest.mark.parametrize("framing", [FRAMINGS["haar"], FRAMINGS["dlib"], Framing(1.3, dx=0.1)])
def test_uncrop_of_an_unresized_crop_gives_back_the_image(box: tuple[int, int, int, int],
                                                          framing: Framing) -> None:
    img = noise((200, 220), seed=3)
    det = Detection(box)
    x0, y0, side = _square(det, framing)
    crop = crop_face(img, det, framing, side)  # size == side: no resampling either way
    placed = uncrop(crop.astype(np.float32), det, framing, img.shape)
    assert placed.shape == img.shape and placed.dtype == np.float32
    inside = np.zeros(img.shape, bool)
    inside[max(y0, 0) : max(y0 + side, 0), max(x0, 0) : max(x0 + side, 0)] = True
    np.testing.assert_array_equal(placed[inside], img[inside].astype(np.float32))
    assert (placed[~inside] == 0).all()


def test_crop_transform_maps_the_square_onto_the_crop() -> None:
    det = Detection((40, 30, 60, 60))
    m, side = crop_transform(det, FRAMINGS["haar"])
    x0, y0, side2 = _square(det, FRAMINGS["haar"])
    assert side == side2 == 62
    np.testing.assert_allclose(m @ [x0, y0, 1.0], [0.0, 0.0])
    np.testing.assert_allclose(m @ [x0 + side, y0 + side, 1.0], [side, side])


def test_uncrop_with_eyes_undoes_the_rotation() -> None:
    # A bright dot off the eye line; the crop is rotated to level the eyes, the uncrop must put the
    # dot back where it was in the photo.
    img = np.zeros((200, 200), np.uint8)
    left, right = (70.0, 83.0), (130.0, 117.6)  # a 30-degree tilt
    cv2.circle(img, (120, 140), 5, 255, -1)
    det = Detection((50, 50, 100, 100), landmarks=(left, right))
    x0, y0, side = _square(det, Framing(1.0))
    crop = crop_face(img, det, Framing(1.0), 48).astype(np.float32) / 255
    ys, xs = np.nonzero(crop > 0.5)
    k = 48 / side
    moved = np.hypot(xs.mean() + 0.5 - k * (120.5 - x0), ys.mean() + 0.5 - k * (140.5 - y0))
    assert moved > 5  # the crop did rotate the dot away from its unrotated place
    placed = uncrop(crop, det, Framing(1.0), img.shape)
    ys, xs = np.nonzero(placed > 0.5)
    assert abs(xs.mean() - 120) < 1.0 and abs(ys.mean() - 140) < 1.0


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_uncrop_of_ones_covers_the_crop_square_at_any_scale(scale: float) -> None:
    det = Detection((60, 40, 80, 80))
    x0, y0, side = _square(det, FRAMINGS["haar"])
    shape = (round(240 * scale), round(320 * scale))
    placed = uncrop(np.ones((48, 48), np.float32), det, FRAMINGS["haar"], shape, scale)
    ys, xs = np.nonzero(placed > 0.5)
    assert xs.min() == pytest.approx(x0 * scale, abs=1) and xs.max() + 1 == pytest.approx((x0 + side) * scale, abs=1)
    assert ys.min() == pytest.approx(y0 * scale, abs=1) and ys.max() + 1 == pytest.approx((y0 + side) * scale, abs=1)

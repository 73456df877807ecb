"""Colouring and blending heatmaps, and the PNG figure writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deepfer.explain import blend, colorize, save_panels
from deepfer.explain.overlay import Panel, stretch


def test_blend_keeps_the_face_where_nothing_matters() -> None:
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    heat = np.zeros((48, 48), np.float32)
    heat[:8, :8] = 1.0
    out = blend(face, heat, alpha=0.5)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[8:, 8:], np.repeat(face[8:, 8:, None], 3, 2))
    red = colorize(np.ones((1, 1)))[0, 0]
    assert red[0] > 100 and red[2] < 50  # jet's top is red
    expected = (0.5 * face[:8, :8, None] + 0.5 * red + 0.5).astype(np.uint8)
    assert np.abs(out[:8, :8].astype(int) - expected).max() <= 1


def test_stretch_ignores_a_few_extreme_pixels() -> None:
    m = np.full((10, 10), 0.01, np.float32)
    m[0, 0] = 1.0
    assert stretch(m, q=95).mean() > 0.95
    assert stretch(np.zeros((4, 4))).max() == 0


def test_save_panels_writes_one_png(tmp_path: Path) -> None:
    face = np.zeros((48, 48), np.uint8)
    path = save_panels([Panel(face, "a"), Panel(blend(face, np.eye(48)), "b", lambda ax: ax.plot([0, 47], [0, 47]))],
                       tmp_path / "sub" / "fig.png", title="t", colorbar=True)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 1.5 * im.height

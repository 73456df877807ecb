"""The maps mean something: on a model trained where only the upper-left 16x16 block carries the
label, every method puts the most importance in that block, with and without the spatial
transformer in front."""

from __future__ import annotations

import numpy as np
import pytest
from explain_helpers import accuracy, inside_outside

from deepfer.explain import explain

METHODS = ["occlusion", "saliency", "gradcam"]


def _tile_means(heatmaps: np.ndarray, tile: int = 16) -> np.ndarray:
    """Mean importance of each tile x tile block, over all faces: (3, 3) for 48x48 maps."""
    m = heatmaps.mean(0)
    h, w = m.shape
    return m.reshape(h // tile, tile, w // tile, tile).mean((1, 3))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("stn", [False, True], ids=["plain", "stn"])
def test_informative_block_gets_the_highest_importance(method: str, stn: bool, request: pytest.FixtureRequest,
                                                       region_data) -> None:
    model = request.getfixturevalue("region_model_stn" if stn else "region_model")
    faces, labels = region_data
    assert accuracy(model, faces, labels) >= 0.95  # the model did learn the block
    # Patches of 8 at stride 8 keep occlusion to 36 forward passes per face; the block is 2 x 2 patches.
    maps = explain(model, faces, method, patch=8, stride=8).heatmaps
    inside, outside = inside_outside(maps)
    assert inside > 1.5 * outside, (inside, outside)
    tiles = _tile_means(maps)
    assert np.unravel_index(tiles.argmax(), tiles.shape) == (0, 0), tiles.round(3)


def test_occlusion_of_the_other_class_is_negative_in_the_block(region_model, region_data) -> None:
    """Explaining the class a face is *not*: blanking the whole block (one 16 px patch) makes that
    class more likely (the model falls back towards 50/50), so the raw probability drop is negative
    there and ~0 elsewhere."""
    faces, labels = region_data
    result = explain(region_model, faces[:16], "occlusion", target=1 - labels[:16], patch=16, stride=16)
    mask = np.zeros((48, 48), bool)
    mask[:16, :16] = True
    inside, outside = result.raw[:, mask].mean(), result.raw[:, ~mask].mean()
    assert inside < -0.05 and abs(outside) < 0.02, (inside, outside)
    assert (result.targets != result.predictions).all()

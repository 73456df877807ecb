"""The spatial transformer's view: the identity at initialisation, a known zoom, and the error for
models without a transformer."""

from __future__ import annotations

import numpy as np
import pytest
from explain_helpers import zoom_model

from deepfer.errors import ModelError
from deepfer.explain import stn_view
from deepfer.explain.stn_view import _affine_from_grid, describe_theta
from deepfer.models import create_model, list_models


def _faces(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


@pytest.mark.parametrize("name", list_models())
def test_fresh_transformer_is_the_identity(name: str) -> None:
    faces = _faces()
    model = create_model(name)
    if model.stn is None:  # e.g. prior-attention, whose fixed face blocks are its attention
        pytest.skip(f"{name} has no spatial transformer by default")
    view = stn_view(model, faces)
    np.testing.assert_allclose(view.theta, np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1)), atol=1e-6)
    assert np.abs(view.warped.astype(int) - faces).max() <= 1  # rounding only
    centres = np.arange(48) + 0.5
    np.testing.assert_allclose(view.grid[0, :, :, 0], np.tile(centres, (48, 1)), atol=1e-4)
    np.testing.assert_allclose(view.grid[0, :, :, 1], np.tile(centres[:, None], (1, 48)), atol=1e-4)
    assert describe_theta(view.theta[0], 48) == "zoom 1.00x, rot +0 deg, shift (+0.0, +0.0) px"


def test_zoom_on_the_upper_left_quadrant() -> None:
    faces = np.zeros((1, 48, 48), np.uint8)
    faces[0, :24, :24] = 200  # the quadrant the transformer looks at
    view = stn_view(zoom_model(), faces)
    assert view.grid[..., 0].min() >= 0 and view.grid[..., 0].max() <= 24
    assert view.grid[..., 1].min() >= 0 and view.grid[..., 1].max() <= 24
    assert (view.warped[0, 2:-2, 2:-2] >= 195).all()  # the view is all quadrant
    assert describe_theta(view.theta[0], 48).startswith("zoom 2.00x, rot +0 deg, shift (-12.0, -12.0)")
    a, t = _affine_from_grid(view.grid[0])
    np.testing.assert_allclose(np.c_[a, t], view.theta[0], atol=1e-5)


def test_model_without_transformer_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="model deep-emotion has no spatial transformer"):
        stn_view(create_model("deep-emotion", use_stn=False), _faces())

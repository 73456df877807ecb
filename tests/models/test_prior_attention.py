"""The prior-attention model: which pixels each branch sees, the face canvas Grad-CAM reads, and
its options. The common surface is tested for every registered model in test_models.py."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from deepfer.errors import ModelError
from deepfer.models import create_model
from deepfer.models.prior_attention import block_boxes

UPPER, LOWER = (8, 26, 2, 46), (26, 46, 10, 38)  # the default blocks at 48x48, in pixels


pytestmark = pytest.mark.usefixtures("one_thread")


def _faces(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("prior-attention", **kw).eval()


def test_default_blocks_in_pixels_are_symmetric() -> None:
    model = _model()
    assert model.boxes == [UPPER, LOWER]
    for _, _, left, right in model.boxes:  # a mirrored face's blocks are the mirrored blocks
        assert left == 48 - right


def test_block_boxes_round_to_even_pixels_and_validate() -> None:
    assert block_boxes(48, [(0.0, 1.0, 0.0, 1.0)]) == [(0, 48, 0, 48)]
    assert block_boxes(64, [(0.15, 0.55, 0.05, 0.95)]) == [(10, 36, 4, 60)]
    with pytest.raises(ModelError, match="top < bottom"):
        block_boxes(48, [(0.6, 0.5, 0.0, 1.0)])
    with pytest.raises(ModelError, match="under 4 pixels"):
        block_boxes(48, [(0.5, 0.52, 0.0, 1.0)])
    with pytest.raises(ModelError, match="top, bottom, left, right"):
        block_boxes(48, [(0.1, 0.5)])


def test_native_crops_are_the_blocks_pixels() -> None:
    model = _model(crop_size=None)
    x = _faces(2)
    upper, lower = model.crops(x)
    torch.testing.assert_close(upper, x[:, :, 8:26, 2:46])
    torch.testing.assert_close(lower, x[:, :, 26:46, 10:38])
    assert [c.shape[2:] for c in _model().crops(x)] == [(32, 32), (32, 32)]  # the project's 32x32


@pytest.mark.parametrize("crop_size", [32, None])
def test_pixels_outside_the_blocks_do_not_matter(crop_size: int | None) -> None:
    model = _model(crop_size=crop_size)
    x = _faces(2)
    y = x.clone()
    y[:, :, :8] = 5.0  # forehead
    y[:, :, 26:, :10] = -5.0  # lower-left cheek and jaw, beside the mouth block
    with torch.no_grad():
        torch.testing.assert_close(model(y), model(x))
        y[:, :, 30, 20] += 5.0  # inside the mouth block
        assert not torch.allclose(model(y), model(x))


def test_face_branch_sees_the_whole_face() -> None:
    model = _model(face_branch=True)
    assert len(model.branches) == 3 and model.boxes[2] == (0, 48, 0, 48)
    x = _faces(2)
    y = x.clone()
    y[:, :, :8] = 5.0
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 192, 24, 24)
        assert not torch.allclose(model(y), model(x))


@pytest.mark.parametrize("crop_size", [32, None])
def test_canvas_puts_each_branch_at_its_block(crop_size: int | None) -> None:
    model = _model(crop_size=crop_size)
    with torch.no_grad():
        canvas = model.forward_features(_faces(2))  # (2, 128, 24, 24)
    assert canvas.shape == (2, 128, 24, 24)
    for k, (y0, y1, x0, x1) in enumerate([(4, 13, 1, 23), (13, 23, 5, 19)]):
        own = canvas[:, 64 * k : 64 * (k + 1)]
        inside = torch.zeros(24, 24, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert own[:, :, ~inside].abs().max() == 0  # zero outside the branch's block
        assert own[:, :, inside].abs().amax() > 0
    if crop_size is None:  # no resampling: the canvas holds the branch's map exactly
        upper = model.branches[0](model.crops(_faces(2))[0])
        torch.testing.assert_close(canvas[:, :64, 4:13, 1:23], upper.detach())


def test_gradcam_lies_on_the_blocks() -> None:
    from deepfer.explain.gradients import gradcam

    model = _model(crop_size=None)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    exp = gradcam(model, faces)
    assert exp.info["resolution"] == [24, 24]
    assert exp.raw.shape == (3, 48, 48)
    # Canvas rows 0-3 are empty (forehead): pixels up to row 6 interpolate between empty cells.
    assert np.abs(exp.raw[:, :7]).max() == 0


def test_options_are_validated() -> None:
    with pytest.raises(ModelError, match="crop_size"):
        create_model("prior-attention", crop_size=31)
    with pytest.raises(ModelError, match="widths"):
        create_model("prior-attention", widths=[])
    with pytest.raises(ModelError, match="top < bottom"):
        create_model("prior-attention", upper=[0.5, 0.2, 0.0, 1.0])


def test_stn_option_warps_before_cropping() -> None:
    model = _model(use_stn=True)
    assert model.stn is not None
    x = _faces(2)
    with torch.no_grad():  # identity at init: the same output as the same weights without it
        plain = _model(use_stn=False)
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("stn.")})
        torch.testing.assert_close(model(x), plain(x), atol=1e-5, rtol=1e-5)

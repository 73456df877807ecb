"""The prior-attention model: which pixels each branch sees, the face canvas Grad-CAM reads, the
face branch's equivalence with deepfer's pooling, the two fusions, and its options. The common
surface is tested for every registered model in test_models.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfer.errors import ModelError
from deepfer.models import create_model
from deepfer.models.prior_attention import block_boxes

UPPER, LOWER = (4, 24, 4, 44), (28, 48, 8, 40)  # the default blocks at 48x48, in pixels
UPPER_CELLS, LOWER_CELLS = (1, 6, 1, 11), (7, 12, 2, 10)  # the same on the 12x12 canvas
SMALL = {"block_widths": [4, 4, 8, 8, 8, 8, 16], "face_widths": [4, 4, 8, 8, 8, 8, 32], "head_hidden": 16}

pytestmark = pytest.mark.usefixtures("one_thread")


def _faces(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("prior-attention", **{**SMALL, **kw}).eval()


def test_default_blocks_cells_and_channels() -> None:
    model = create_model("prior-attention")
    assert model.boxes == [UPPER, LOWER, (0, 48, 0, 48)]
    for _, _, left, right in model.boxes:  # a mirrored face's blocks are the mirrored blocks
        assert left == 48 - right
    assert model.branches_info == [("upper", slice(0, 256), UPPER_CELLS), ("lower", slice(256, 512), LOWER_CELLS),
                                   ("face", slice(512, 1024), (0, 12, 0, 12))]
    assert model.config.extra["align"] == "landmarks" and model.config.dropout == 0.3
    assert sum(p.numel() for p in model.parameters()) == 2_188_215  # what the measured runs trained


def test_block_boxes_move_edges_out_to_4_px() -> None:
    assert block_boxes(48, [(0.0, 1.0, 0.0, 1.0)]) == [(0, 48, 0, 48)]
    # 6 px -> 4 (out), 25 -> 28 (out), 3.998 and 44.002 snap to 4 and 44.
    assert block_boxes(48, [(0.125, 25 / 48, 0.0833, 0.9167)]) == [(4, 28, 4, 44)]
    assert block_boxes(64, [(0.15, 0.55, 0.05, 0.95)]) == [(8, 36, 0, 64)]  # 9.6, 35.2, 3.2, 60.8 px
    assert block_boxes(48, [(0.5, 0.501, 0.99, 1.0)]) == [(24, 28, 44, 48)]  # at least one cell, inside the face
    with pytest.raises(ModelError, match="top < bottom"):
        block_boxes(48, [(0.6, 0.5, 0.0, 1.0)])
    with pytest.raises(ModelError, match="top, bottom, left, right"):
        block_boxes(48, [(0.1, 0.5)])


def test_crops_are_the_blocks_pixels() -> None:
    x = _faces(2)
    upper, lower, face = _model().crops(x)
    torch.testing.assert_close(upper, x[:, :, 4:24, 4:44])
    torch.testing.assert_close(lower, x[:, :, 28:48, 8:40])
    torch.testing.assert_close(face, x)


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_without_face_branch_only_the_blocks_matter(fusion: str) -> None:
    model = _model(face_branch=False, fusion=fusion)
    x = _faces(2)
    y = x.clone()
    y[:, :, :4] = 5.0  # forehead
    y[:, :, 24:28] = -5.0  # between the blocks (nose)
    y[:, :, :, :4] = 3.0  # left edge of the face
    y[:, :, 28:, :8] = -3.0  # lower-left cheek and jaw, beside the mouth block
    with torch.no_grad():
        torch.testing.assert_close(model(y), model(x))
        y[:, :, 30, 20] += 5.0  # inside the mouth block
        assert not torch.allclose(model(y), model(x))
        y = x.clone()
        y[:, :, 10, 10] += 5.0  # inside the eyes-and-brows block
        assert not torch.allclose(model(y), model(x))


def test_face_branch_sees_the_whole_face() -> None:
    model = _model()
    x = _faces(2)
    y = x.clone()
    y[:, :, :4] = 5.0
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 16 + 16 + 32, 12, 12)
        assert not torch.allclose(model(y), model(x))


def test_canvas_puts_each_branch_at_its_box() -> None:
    model = _model()
    x = _faces(2)
    with torch.no_grad():
        canvas = model.forward_features(x)  # (2, 64, 12, 12)
        maps = [trunk(block) for trunk, block in zip(model.branches.values(), model.crops(x), strict=True)]
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 3, 5), (16, 3, 4), (32, 6, 6)]  # pools round up
    for (name, ch, (y0, y1, x0, x1)), m in zip(model.branches_info, maps, strict=True):
        own = canvas[:, ch]
        inside = torch.zeros(12, 12, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert (own[:, :, ~inside] == 0).all() and (own[:, :, inside] != 0).any(), name  # zero outside its box
        expected = (F.interpolate(m, scale_factor=2.0, mode="nearest") if name == "face"
                    else F.interpolate(m, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False))
        torch.testing.assert_close(own[:, :, y0:y1, x0:x1], expected)


def test_face_branch_pools_exactly_like_deepfer() -> None:
    """With deepfer's trunk weights, the face branch's vector is deepfer's globally pooled map."""
    model = create_model("prior-attention").eval()
    torch.manual_seed(1)
    base = create_model("deepfer", use_stn=False).eval()
    stages = {f"stage{i + 1}": str(i) for i in range(4)}
    model.branches["face"].load_state_dict(
        {stages[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v
         for k, v in base.state_dict().items() if k.startswith("stage")}
    )
    x = _faces(3)
    with torch.no_grad():
        face = model.branch_vectors(model.forward_features(x))[2]  # (3, 512)
        torch.testing.assert_close(face, base.forward_features(x).mean((2, 3)), rtol=1e-5, atol=1e-6)


def test_branch_vectors_are_box_averages() -> None:
    model = _model()
    x = _faces(2)
    with torch.no_grad():
        feats = model.forward_features(x)  # zero outside each branch's box
        vectors = model.branch_vectors(feats)
    assert [v.shape for v in vectors] == [(2, 16), (2, 16), (2, 32)]
    for (_, ch, (y0, y1, x0, x1)), v in zip(model.branches_info, vectors, strict=True):
        torch.testing.assert_close(v, feats[:, ch, y0:y1, x0:x1].mean((2, 3)))
    # Grad-CAM's channel weight (the gradient's mean over the canvas) is d/d vector / box area.
    feats.requires_grad_(True)
    (grad,) = torch.autograd.grad(model.branch_vectors(feats)[0].sum(), feats)
    torch.testing.assert_close(grad.mean((2, 3))[:, :16], torch.full((2, 16), 1 / 50))  # upper: 5 x 10 cells
    assert grad[:, 16:].abs().max() == 0


def test_attention_fusion_weights_the_branches() -> None:
    model = _model(fusion="attention")
    x = _faces(4)
    with torch.no_grad():
        weights = model.branch_weights(x)
        logits = model(x)
    assert weights.shape == (4, 3)
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert (weights > 0).all() and logits.shape == (4, 7)
    # The logits are the fc of the weighted sum of the projected branch vectors.
    vectors = model.branch_vectors(model.forward_features(x))
    h = torch.stack([p(v).relu() for p, v in zip(model.proj, vectors, strict=True)], 1)
    with torch.no_grad():
        torch.testing.assert_close(model.fc((weights[:, :, None] * h).sum(1)), logits)
    assert len(model.fc_weights()) == 3 + 2 + 1  # projections, scorer, classifier
    with pytest.raises(ModelError, match="branch_weights needs fusion 'attention'"):
        _model().branch_weights(x)


def test_concat_fusion_reads_all_branches() -> None:
    model = _model()
    assert model.fc1.in_features == 16 + 16 + 32 and model.fc_weights() == [model.fc1.weight, model.fc2.weight]
    assert _model(face_branch=False).fc1.in_features == 32


def test_gradcam_lies_on_the_blocks() -> None:
    from deepfer.explain.gradients import gradcam

    model = _model(face_branch=False)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    exp = gradcam(model, faces)
    assert exp.info["resolution"] == [12, 12]
    assert exp.raw.shape == (3, 48, 48)
    # Canvas row 0 and column 0 are empty; cells are centred at 2, 6, ... px: pixels 0-1 take cell 0.
    assert np.abs(exp.raw[:, :2]).max() == 0 and np.abs(exp.raw[:, :, :2]).max() == 0
    assert np.abs(exp.raw).max() > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"align": "dlib"}, "align must be one of landmarks, none"),
        ({"fusion": "sum"}, "fusion must be one of concat, attention"),
        ({"block_widths": [8, 8]}, "block_widths must be 7 positive ints"),
        ({"face_widths": [8, 8, 8, 8, 8, 8, 0]}, "face_widths must be 7 positive ints"),
        ({"upper": [0.5, 0.2, 0.0, 1.0]}, "top < bottom"),
        ({"lower": [0.6, 0.9, 0.1, 0.7]}, "lower block spans pixels 4-36 of 48, not left-right symmetric"),
        ({"face_branch": "yes"}, "face_branch must be true or false"),
        ({"head_hidden": 0}, "head_hidden must be >= 1"),
        ({"input_size": 44}, "input_size must be a multiple of 8"),
    ],
)
def test_bad_options_raise_model_error(options: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        create_model("prior-attention", **options)


def test_stn_option_warps_before_cropping() -> None:
    model = _model(use_stn=True)
    assert model.stn is not None
    x = _faces(2)
    with torch.no_grad():  # identity at init: the same output as the same weights without it
        plain = _model(use_stn=False)
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("stn.")})
        torch.testing.assert_close(model(x), plain(x), atol=1e-5, rtol=1e-5)

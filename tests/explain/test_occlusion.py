"""Occlusion maps: patch geometry, exact values on a case computed by hand, batching, the flip map,
the blank value, and no side effects on the model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from deepfer.errors import DataError
from deepfer.explain import blank_value, occlusion_map
from deepfer.explain.occlusion import default_patch, patch_positions
from deepfer.models import create_model, list_models


def _faces(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


@pytest.mark.parametrize(("patch", "stride"), [(8, 4), (12, 6), (6, 6), (5, 3), (48, 1)])
def test_patches_cover_every_pixel(patch: int, stride: int) -> None:
    pos = patch_positions(48, patch, stride)
    covered = np.zeros(48, int)
    for p in pos:
        covered[p : p + patch] += 1
    assert covered.min() >= 1 and pos[0] == 0 and pos[-1] == 48 - patch
    assert all(b - a <= stride for a, b in itertools.pairwise(pos))


def test_default_patch_is_a_sixth_of_the_face() -> None:
    assert default_patch(48) == (8, 4)
    assert default_patch(96) == (16, 8)


@pytest.mark.parametrize("name", list_models())
def test_shapes_and_ranges_for_every_model(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    result = occlusion_map(model, _faces(2), patch=12, stride=12)
    assert result.heatmaps.shape == result.raw.shape == result.flips.shape == (2, 48, 48)
    assert result.heatmaps.min() >= 0 and np.isclose(result.heatmaps.max(), 1.0)
    assert 0 <= result.flips.min() and result.flips.max() <= 1
    assert result.probs.shape == (2, 7) and result.info["patches"] == 16
    np.testing.assert_array_equal(result.targets, result.predictions)


def test_one_patch_over_the_whole_face_is_the_drop_to_a_blank_face() -> None:
    torch.manual_seed(0)
    model = create_model("deep-emotion").eval()
    faces = _faces(2)
    result = occlusion_map(model, faces, patch=48, stride=1, fill=0)
    with torch.no_grad():
        x = (torch.from_numpy(faces).float()[:, None] / 255 - 0.5) / 0.25
        p = model(x).softmax(1)
        p_blank = model(torch.full_like(x, blank_value(model.config, 0))).softmax(1)
    t = p.argmax(1)
    expected = (p.gather(1, t[:, None]) - p_blank.gather(1, t[:, None]))[:, 0]
    np.testing.assert_allclose(result.raw, expected[:, None, None].expand(2, 48, 48).numpy(), atol=1e-6)
    flipped = (p_blank.argmax(1) != t).float()
    np.testing.assert_array_equal(result.flips, flipped[:, None, None].expand(2, 48, 48).numpy())


def test_batch_size_does_not_change_the_result() -> None:
    torch.manual_seed(1)
    model = create_model("deep-emotion").eval()
    faces = _faces(3)
    a = occlusion_map(model, faces, patch=8, stride=8, batch_size=1024)
    b = occlusion_map(model, faces, patch=8, stride=8, batch_size=7)  # pairs split across faces
    np.testing.assert_allclose(a.raw, b.raw, atol=1e-6)
    np.testing.assert_array_equal(a.flips, b.flips)
    single = occlusion_map(model, faces[1], patch=8, stride=8)  # one (H, W) face
    np.testing.assert_allclose(single.raw[0], a.raw[1], atol=1e-6)


def test_flip_map_marks_where_the_prediction_changes(region_model, region_data) -> None:
    faces, _ = region_data
    result = occlusion_map(region_model, faces[:12], patch=16, stride=16)
    # Only the patch over the block can change the class; it does for some faces.
    assert result.flips[:, 16:, :].max() == 0 and result.flips[:, :, 16:].max() == 0
    assert set(np.unique(result.flips[:, :16, :16])) <= {0.0, 1.0}


def test_blank_value() -> None:
    config = create_model("deep-emotion").config
    assert blank_value(config) == 0.0  # the model's mean grey is 0 in its input
    assert blank_value(config, 0) == pytest.approx(-0.5 / 0.25)
    assert blank_value(config, 255) == pytest.approx(0.5 / 0.25)
    with pytest.raises(DataError, match="grey level"):
        blank_value(config, 300)
    with pytest.raises(DataError, match="'mean'"):
        blank_value(config, "gray")


def test_bad_input_says_what_was_expected() -> None:
    model = create_model("deep-emotion")
    with pytest.raises(DataError, match=r"expected faces of shape \(N, 48, 48\).*got \(2, 32, 32\)"):
        occlusion_map(model, np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(DataError, match="patch must be"):
        occlusion_map(model, _faces(1), patch=60)
    with pytest.raises(DataError, match="one target class or one per face"):
        occlusion_map(model, _faces(2), target=[1, 2, 3])


def test_model_state_is_left_alone() -> None:
    model = create_model("deep-emotion").train()
    faces = np.asarray(_faces(1), np.float32)  # a float array must not be normalised in place
    before = faces.copy()
    occlusion_map(model, faces, patch=16, stride=16)
    assert model.training
    np.testing.assert_array_equal(faces, before)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())

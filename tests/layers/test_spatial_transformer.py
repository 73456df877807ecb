"""Tests for the spatial transformer: the warp's geometry and the localization net's set-up."""

from __future__ import annotations


import pytest
import torch

from deepfer.layers import SpatialTransformer, stn_warp

IDENTITY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


pytestmark = pytest.mark.usefixtures("one_thread")


def _identity(batch: int) -> torch.Tensor:
    return IDENTITY.expand(batch, 2, 3).clone()


def test_identity_theta_returns_input() -> None:
    x = torch.rand(3, 2, 20, 24, generator=torch.Generator().manual_seed(0))
    out = stn_warp(x, _identity(3))
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [1, 3])
def test_translation_moves_content_left(k: int) -> None:
    # theta maps output to input coordinates: a +tx reads k pixels to the right, so the content
    # moves k pixels to the left and zeros come in from the right edge.
    w = 16
    x = torch.zeros(1, 1, 8, w)
    x[..., 10] = 1.0  # a bright column at x = 10
    theta = _identity(1)
    theta[0, 0, 2] = 2.0 * k / w  # one pixel is 2 / W in normalised coordinates
    out = stn_warp(x, theta)
    cols = out[0, 0].sum(dim=0)
    assert int(cols.argmax()) == 10 - k
    torch.testing.assert_close(out[..., : w - k], x[..., k:], atol=1e-5, rtol=0)
    assert torch.count_nonzero(out[..., w - k :]) == 0


def test_vertical_translation_moves_content_up() -> None:
    x = torch.zeros(1, 1, 10, 10)
    x[0, 0, 6, 4] = 1.0
    theta = _identity(1)
    theta[0, 1, 2] = 2.0 * 2 / 10  # two pixels down in input space
    out = stn_warp(x, theta)
    assert torch.nonzero(out[0, 0] > 0.99).tolist() == [[4, 4]]


@pytest.mark.parametrize(
    ("x_shape", "theta_shape"),
    [
        ((1, 8, 8), (1, 2, 3)),  # x without a channel axis
        ((2, 1, 8, 8), (2, 3, 3)),  # a 3x3 homography instead of a 2x3 affine
        ((2, 1, 8, 8), (3, 2, 3)),  # batch sizes differ
        ((2, 1, 8, 8), (6,)),  # flat theta
    ],
)
def test_bad_shapes_raise(x_shape: tuple[int, ...], theta_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected .* got"):
        stn_warp(torch.zeros(x_shape), torch.zeros(theta_shape))


def test_theta_dtype_follows_x() -> None:
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(stn_warp(x, _identity(2)), x, atol=1e-6, rtol=0)


def test_module_flatten_size_matches_reference_net() -> None:
    # 48 -> conv7 42 -> pool 21 -> conv5 17 -> pool 8: 10 x 8 x 8 = 640, as in Deep-Emotion.
    stn = SpatialTransformer(in_chans=1, input_size=48)
    assert stn.fc_loc[0].in_features == 640


def test_module_starts_at_identity_for_any_input() -> None:
    stn = SpatialTransformer(
        in_chans=3, input_size=(32, 40), channels=(4, 6, 8), kernel_sizes=(3, 3, 3), hidden=16
    )
    x = torch.randn(4, 3, 32, 40)
    torch.testing.assert_close(stn.theta(x), _identity(4))
    out = stn(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_module_rejects_other_input_sizes() -> None:
    stn = SpatialTransformer(in_chans=1, input_size=48)
    expected = r"expected input of shape \(B, 1, 48, 48\), got \(2, 1, 40, 40\)"
    with pytest.raises(ValueError, match=expected):
        stn(torch.zeros(2, 1, 40, 40))


def test_module_rejects_impossible_configs() -> None:
    with pytest.raises(ValueError, match="too small"):
        SpatialTransformer(in_chans=1, input_size=8)
    with pytest.raises(ValueError, match="one kernel size per"):
        SpatialTransformer(channels=(8, 10), kernel_sizes=(7,))


def test_module_gradients_reach_last_localization_layer() -> None:
    stn = SpatialTransformer(in_chans=1, input_size=24, kernel_sizes=(3, 3))
    x = torch.randn(2, 1, 24, 24)
    # A loss that depends on where pixels land, so theta gets a gradient.
    (stn(x) * torch.linspace(-1, 1, 24)).sum().backward()
    last = stn.fc_loc[-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0
    assert last.bias.grad is not None and last.bias.grad.abs().sum() > 0

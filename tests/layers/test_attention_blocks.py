"""The attention blocks of deepfer.layers: shapes, gates in [0, 1] and what they multiply, the
non-local block's identity at initialisation, and gradients."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfer.layers import GridAttention, NonLocalBlock, RegionAttention, SqueezeExcite, cell_pool

GATED = {
    "se": lambda c: SqueezeExcite(c),
    "grid": lambda c: GridAttention(c, grid=3),
    "region": lambda c: RegionAttention(c, regions=3),
}
BLOCKS = {**GATED, "nonlocal": lambda c: NonLocalBlock(c), "nonlocal-sub": lambda c: NonLocalBlock(c, sub_sample=True)}


pytestmark = pytest.mark.usefixtures("one_thread")


def _x(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("hw", [(6, 6), (12, 12), (24, 24), (8, 10)])
def test_shape_is_kept(name: str, hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    block = BLOCKS[name](16)
    x = _x(3, 16, *hw)
    assert block(x).shape == x.shape
    assert block(x.contiguous(memory_format=torch.channels_last)).shape == x.shape


@pytest.mark.parametrize("name", BLOCKS)
def test_wrong_channels_say_what_was_expected(name: str) -> None:
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 16, H, W\), got \(2, 8, 6, 6\)"):
        BLOCKS[name](16)(torch.zeros(2, 8, 6, 6))


@pytest.mark.parametrize("name", GATED)
@pytest.mark.parametrize("scale", [0.1, 100.0])
def test_gates_are_in_unit_interval(name: str, scale: float) -> None:
    torch.manual_seed(1)
    block = GATED[name](32)
    gate = block.gate(_x(4, 32, 12, 12, scale=scale))
    assert gate.min() >= 0.0 and gate.max() <= 1.0


@pytest.mark.parametrize("name", GATED)
def test_output_is_input_times_upsampled_gate(name: str) -> None:
    torch.manual_seed(2)
    block = GATED[name](8)
    x = _x(2, 8, 12, 12)
    gate = block.gate(x)
    cells = gate.shape[-1]
    up = gate.repeat_interleave(12 // cells, 2).repeat_interleave(12 // cells, 3)  # each cell's pixels
    torch.testing.assert_close(block(x), x * up)


def test_squeeze_excite_matches_its_formula() -> None:
    torch.manual_seed(3)
    se = SqueezeExcite(32, reduction=16, min_hidden=4)
    assert se.fc1.out_channels == 4
    x = _x(2, 32, 5, 5)
    pooled = x.mean((2, 3))  # (B, C)
    hidden = F.relu(pooled @ se.fc1.weight[:, :, 0, 0].T + se.fc1.bias)
    gate = torch.sigmoid(hidden @ se.fc2.weight[:, :, 0, 0].T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_grid_cells_are_gated_independently() -> None:
    # Changing one cell's content changes that cell's gates only.
    torch.manual_seed(4)
    gwa = GridAttention(8, grid=3)
    x = _x(1, 8, 12, 12)
    y = x.clone()
    y[:, :, :4, :4] += 3.0  # cell (0, 0)
    g, h = gwa.gate(x), gwa.gate(y)
    changed = (g - h).abs().amax(1)[0] > 1e-6  # (3, 3)
    assert changed.tolist() == [[True, False, False], [False, False, False], [False, False, False]]


def test_region_weight_is_alpha_times_beta_per_region() -> None:
    torch.manual_seed(5)
    ran = RegionAttention(8, regions=2)
    x = _x(2, 8, 6, 6)
    f = F.adaptive_avg_pool2d(x, 2)  # (B, C, 2, 2)
    alpha = torch.sigmoid(torch.einsum("bchw,c->bhw", f, ran.alpha.weight[0, :, 0, 0]) + ran.alpha.bias)
    f_m = (alpha[:, None] * f).sum((2, 3)) / alpha.sum((1, 2))[:, None]  # (B, C)
    w_b = ran.beta.weight[0, :, 0, 0]
    beta = torch.sigmoid(torch.einsum("bchw,c->bhw", f, w_b[:8]) + (f_m @ w_b[8:])[:, None, None] + ran.beta.bias)
    torch.testing.assert_close(ran.gate(x)[:, 0], alpha * beta)
    assert ran.gate(x).shape == (2, 1, 2, 2)


def test_nonlocal_is_identity_at_init() -> None:
    block = NonLocalBlock(16)
    x = _x(2, 16, 12, 12)
    assert torch.equal(block(x), x)


def test_nonlocal_matches_its_formula_once_trained() -> None:
    torch.manual_seed(6)
    block = NonLocalBlock(8, inter_channels=4)
    nn.init.normal_(block.out.weight, std=0.5)
    x = _x(2, 8, 5, 5)
    attn = block.affinity(x)  # (B, 25, 25)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 25))
    v = block.g(x).flatten(2).transpose(1, 2)  # (B, 25, 4)
    y = (attn @ v).transpose(1, 2).reshape(2, 4, 5, 5)
    torch.testing.assert_close(block(x), x + block.out(y), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(block(x), x)


def test_nonlocal_sub_sample_uses_a_quarter_of_the_keys() -> None:
    block = NonLocalBlock(8, sub_sample=True)
    assert block.affinity(_x(1, 8, 12, 12)).shape == (1, 144, 36)


@pytest.mark.parametrize("name", GATED)
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(7)
    block = GATED[name](16)
    x = _x(2, 16, 12, 12).requires_grad_(True)
    (block(x) * _x(2, 16, 12, 12, seed=1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_nonlocal_gradients_open_up_after_the_first_step() -> None:
    # At init only the zero output projection gets a gradient (it blocks the rest); one step
    # later the embeddings learn too.
    torch.manual_seed(8)
    block = NonLocalBlock(8)
    x, target = _x(2, 8, 6, 6), _x(2, 8, 6, 6, seed=1)
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    for step in range(2):
        opt.zero_grad()
        F.mse_loss(block(x), target).backward()
        assert block.out.weight.grad.abs().sum() > 0
        theta_moves = block.theta.weight.grad is not None and block.theta.weight.grad.abs().sum() > 0
        assert theta_moves == (step == 1)
        opt.step()


@pytest.mark.parametrize("hw", [(6, 6), (9, 22), (10, 14), (7, 5), (24, 24)])
@pytest.mark.parametrize("size", [1, 3, 4, (2, 5)])
def test_cell_pool_equals_adaptive_pooling(hw: tuple[int, int], size: int | tuple[int, int]) -> None:
    x = _x(2, 3, *hw)
    torch.testing.assert_close(cell_pool(x, size), F.adaptive_avg_pool2d(x, size))

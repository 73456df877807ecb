"""DeepFER-L: its VGG-style trunk (about 4.7M parameters), the spatial
transformer in front, and the attention blocks where ``deepfer`` puts them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepfer.errors import ModelError
from deepfer.layers import GridAttention, NonLocalBlock, RegionAttention, SpatialTransformer, SqueezeExcite
from deepfer.models import DeepFERLarge, create_model

KINDS = {"se": SqueezeExcite, "grid": GridAttention, "region": RegionAttention, "nonlocal": NonLocalBlock}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_trunk_is_the_calibration_network() -> None:
    model = create_model("deepfer-l", use_stn=False)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 8
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4  # one per stage, the last in the head
    assert model.drop.p == 0.3 and model.fc.in_features == 512
    n_params = sum(p.numel() for p in model.parameters())
    assert 4_650_000 <= n_params <= 4_750_000, n_params  # about 4.7M parameters (the module docstring)
    assert isinstance(create_model("deepfer-l").stn, SpatialTransformer)


def test_pools_take_48_to_3() -> None:
    model = create_model("deepfer-l").eval()
    x = torch.randn(2, 1, 48, 48)
    seen = []
    hooks = [getattr(model, f"stage{i}").register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
             for i in (1, 2, 3, 4)]
    with torch.no_grad():
        features = model.forward_features(x)
        assert model.pool(features).shape == (2, 512, 3, 3)
    for h in hooks:
        h.remove()
    assert seen == [(2, 64, 24, 24), (2, 128, 12, 12), (2, 256, 6, 6), (2, 512, 6, 6)]


@pytest.mark.parametrize("kind", KINDS)
def test_attention_blocks_end_the_documented_stages(kind: str) -> None:
    torch.manual_seed(0)
    model = create_model("deepfer-l", attention=kind).eval()
    stages = [i for i in (1, 2, 3, 4) if isinstance(getattr(model, f"stage{i}")[-1], KINDS[kind])]
    assert stages == ([2, 3] if kind == "nonlocal" else [1, 2, 3, 4])
    plain = set(create_model("deepfer-l").state_dict())
    assert plain <= set(model.state_dict())  # a block only adds keys
    with torch.no_grad():
        assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ModelError, match="widths must be 4 positive ints"):
        create_model("deepfer-l", widths=[64, 128, 256])
    with pytest.raises(ModelError, match="unknown attention 'cbam'"):
        create_model("deepfer-l", attention="cbam")
    with pytest.raises(ModelError, match="too small"):
        create_model("deepfer-l", input_size=8, use_stn=False)
    assert type(create_model("deepfer-l", widths=[8, 16, 32, 64])) is DeepFERLarge

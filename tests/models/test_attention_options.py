"""DeepFER's ``attention`` option: where the blocks go, the common surface with each block, and
checkpoints saved before the option existed."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from deepfer.errors import ModelError
from deepfer.layers import GridAttention, NonLocalBlock, RegionAttention, SqueezeExcite
from deepfer.models import DeepFERNet, create_model
from deepfer.models.checkpoint import Checkpoint

KINDS = {"se": SqueezeExcite, "grid": GridAttention, "region": RegionAttention, "nonlocal": NonLocalBlock}


pytestmark = pytest.mark.usefixtures("one_thread")


def _faces(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def test_default_is_none_and_adds_no_module() -> None:
    assert DeepFERNet.default_config.extra["attention"] == "none"
    model = create_model("deepfer")
    assert not any(isinstance(m, tuple(KINDS.values())) for m in model.modules())
    plain = {k for k in model.state_dict() if not k.startswith("stn.")}
    # The plain architecture's keys: 7 conv + 7 BN blocks + 2 FCs.
    assert sum(k.endswith("running_mean") for k in plain) == 7
    assert {k.split(".")[0] for k in plain} == {"stage1", "stage2", "stage3", "stage4", "fc1", "fc2"}


@pytest.mark.parametrize("kind", KINDS)
def test_blocks_end_the_documented_stages(kind: str) -> None:
    model = create_model("deepfer", attention=kind)
    stages = [i for i in (1, 2, 3, 4) if isinstance(getattr(model, f"stage{i}")[-1], KINDS[kind])]
    assert stages == ([2, 3] if kind == "nonlocal" else [1, 2, 3, 4])
    assert sum(isinstance(m, KINDS[kind]) for m in model.modules()) == len(stages)


@pytest.mark.parametrize("kind", KINDS)
def test_surface_holds_with_each_block(kind: str) -> None:
    torch.manual_seed(0)
    model = create_model("deepfer", attention=kind).eval()
    x = _faces(2)
    seen: list[torch.Tensor] = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    handle.remove()
    assert features.shape == (2, 512, 6, 6) and logits.shape == (2, 7)
    torch.testing.assert_close(seen[0], features)  # Grad-CAM reads the map the head consumes
    torch.testing.assert_close(model.forward_head(features), logits)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_the_blocks(kind: str) -> None:
    torch.manual_seed(0)
    model = create_model("deepfer", attention=kind).train()
    nn.functional.cross_entropy(model(_faces(4)), torch.tensor([0, 1, 2, 3])).backward()
    for block in (m for m in model.modules() if isinstance(m, KINDS[kind])):
        grads = [p.grad for p in block.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_nonlocal_model_starts_as_the_plain_model() -> None:
    # Non-local blocks are the identity at init: the plain model's weights give the same logits.
    torch.manual_seed(0)
    plain = create_model("deepfer").eval()
    nonlocal_ = create_model("deepfer", attention="nonlocal").eval()
    missing, unexpected = nonlocal_.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in missing} == {"stage2.7", "stage3.7"}  # the blocks
    x = _faces(3)
    with torch.no_grad():
        torch.testing.assert_close(nonlocal_(x), plain(x))


def test_checkpoint_without_the_option_still_loads() -> None:
    torch.manual_seed(0)
    model = create_model("deepfer").eval()
    ckpt = Checkpoint.from_model(model, [f"c{i}" for i in range(7)]).to_dict()
    del ckpt["model"]["extra"]["attention"]  # as written before the option existed
    rebuilt = Checkpoint.from_dict(ckpt).build()
    assert rebuilt.config.extra["attention"] == "none"
    x = _faces(2)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_unknown_attention_is_rejected() -> None:
    with pytest.raises(ModelError, match="unknown attention 'cbam'.*se"):
        create_model("deepfer", attention="cbam")

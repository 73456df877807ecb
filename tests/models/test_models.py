"""Tests every registered model for the common surface (shapes, train/eval behaviour, STN,
config round-trip) and that it can learn; a new model is covered by registering it."""

from __future__ import annotations


import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from deepfer.errors import ModelError
from deepfer.layers import SpatialTransformer
from deepfer.models import ModelConfig, create_model, list_models, model_config

MODELS = list_models()


pytestmark = pytest.mark.usefixtures("one_thread")


def _smooth_batch(batch: int, config: ModelConfig, seed: int = 0) -> torch.Tensor:
    """Low-frequency normalised images: bilinear resampling of them is nearly exact."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, config.in_chans, 6, 6, generator=g)
    x = nn.functional.interpolate(coarse, size=config.input_size, mode="bicubic",
                                  align_corners=False).clamp(0, 1)
    return (x - config.mean) / config.std  # (B, C, H, W)


def _model(name: str, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **kwargs)


def test_registry_names() -> None:
    assert {"deep-emotion", "deepfer"} <= set(MODELS)


def test_registry_module_is_what_the_package_exports() -> None:
    import deepfer.models
    from deepfer.models import pretrained, registry

    for name in ("ModelConfig", "register_model", "list_models", "model_config", "complete_config", "check_input"):
        assert getattr(deepfer.models, name) is getattr(registry, name)
    # create_model is the pretrained registry's: the architecture's, with shipped weights on request.
    assert deepfer.models.create_model is pretrained.create_model
    assert registry.list_models() == MODELS and {"deep-emotion", "deepfer", "prior-attention"} <= set(MODELS)
    assert type(registry.create_model("prior-attention")) is deepfer.models.PriorAttentionNet
    assert MODELS == sorted(MODELS)


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnet'; available: .*deep-emotion"):
        create_model("resnet")
    with pytest.raises(ModelError, match="available"):
        model_config("resnet")


@pytest.mark.parametrize("name", MODELS)
def test_unknown_option_is_rejected(name: str) -> None:
    with pytest.raises(ModelError, match="unknown option.*widht"):
        create_model(name, widht=[1, 2])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch", [1, 5])
def test_output_shape(name: str, batch: int) -> None:
    model = _model(name).eval()
    x = _smooth_batch(batch, model.config)
    with torch.no_grad():
        assert model(x).shape == (batch, 7)


@pytest.mark.parametrize("name", MODELS)
def test_num_classes_override(name: str) -> None:
    model = _model(name, num_classes=8).eval()
    assert model.config.num_classes == 8
    with torch.no_grad():
        assert model(_smooth_batch(2, model.config)).shape == (2, 8)


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_train_uses_dropout(name: str) -> None:
    model = _model(name)
    assert model.config.dropout > 0
    x = _smooth_batch(4, model.config)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x)), "dropout should be active in train()"
        model.eval()
        # The public Deep-Emotion code kept dropout on here (F.dropout without `training`).
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_stn_is_identity_at_init(name: str) -> None:
    model = _model(name).eval()
    if model.stn is None:
        pytest.skip(f"{name} has no spatial transformer")
    assert isinstance(model.stn, SpatialTransformer)
    x = _smooth_batch(3, model.config)
    with torch.no_grad():
        theta = model.stn.theta(x)
        warped = model.stn(x)
    torch.testing.assert_close(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3))
    torch.testing.assert_close(warped, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_localization_net(name: str) -> None:
    model = _model(name).train()
    if model.stn is None:
        pytest.skip(f"{name} has no spatial transformer")
    x = _smooth_batch(4, model.config)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    # At init only the last localization layer can move (its zero weight blocks the gradient to
    # the earlier ones); a gradient there proves the STN is in the forward path.
    last = model.stn.fc_loc[-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0
    assert last.bias.grad is not None and last.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_model_without_stn(name: str) -> None:
    model = _model(name, use_stn=False).eval()
    assert model.stn is None
    assert not any(isinstance(m, SpatialTransformer) for m in model.modules())
    with torch.no_grad():
        assert model(_smooth_batch(2, model.config)).shape == (2, 7)


@pytest.mark.parametrize("name", MODELS)
def test_features_head_and_cam_layer_agree(name: str) -> None:
    model = _model(name).eval()
    x = _smooth_batch(2, model.config)
    seen: list[torch.Tensor] = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    try:
        with torch.no_grad():
            features = model.forward_features(x)
            logits = model(x)
    finally:
        handle.remove()
    assert features.ndim == 4 and features.shape[0] == 2
    # Grad-CAM reads cam_layer's output: it must be exactly the feature map the head consumes.
    assert len(seen) == 2
    torch.testing.assert_close(seen[0], features)
    torch.testing.assert_close(model.forward_head(features), logits)


@pytest.mark.parametrize("name", MODELS)
def test_grad_cam_hooks_work_on_cam_layer(name: str) -> None:
    # What explain/ does: grab cam_layer's output and its gradient w.r.t. one class score.
    model = _model(name).eval()
    x = _smooth_batch(2, model.config)
    acts: list[torch.Tensor] = []
    grads: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        acts.append(output)
        output.register_hook(grads.append)

    handles = [
        model.cam_layer.register_forward_hook(keep),
        # Full backward hooks fail on in-place ops at a module's boundary; make sure there is none.
        model.cam_layer.register_full_backward_hook(lambda m, gi, go: None),
    ]
    try:
        model(x)[:, 3].sum().backward()
    finally:
        for h in handles:
            h.remove()
    assert grads[0].shape == acts[0].shape and grads[0].abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_fc_weights_are_linear_weights(name: str) -> None:
    model = _model(name)
    weights = model.fc_weights()
    assert weights
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    assert all(id(w) in linear_weights for w in weights)
    if model.stn is not None:  # the penalty is on the classifier, not on the localization net
        stn_ids = {id(p) for p in model.stn.parameters()}
        assert not any(id(w) in stn_ids for w in weights)
    penalty = sum((w**2).sum() for w in weights)
    assert penalty.requires_grad and penalty > 0


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trips_through_json(name: str) -> None:
    model = _model(name, num_classes=5, dropout=0.25)
    config = model.config
    assert isinstance(config, ModelConfig)
    assert config == model_config(name, num_classes=5, dropout=0.25)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_classes = 3  # type: ignore[misc]
    as_dict = json.loads(json.dumps(dataclasses.asdict(config)))
    rebuilt = create_model(**as_dict)
    assert rebuilt.config == config
    rebuilt.load_state_dict(model.state_dict())  # strict: same architecture, same keys


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_shape_raises(name: str) -> None:
    model = _model(name).eval()
    size = model.config.input_size
    with pytest.raises(ValueError, match="expected input of shape"):
        model(torch.zeros(2, 3, size, size))


def test_config_validation() -> None:
    with pytest.raises(ModelError, match="dropout"):
        ModelConfig(name="deepfer", dropout=1.5)
    with pytest.raises(ModelError, match="num_classes"):
        create_model("deep-emotion", num_classes=1)
    with pytest.raises(ModelError, match="widths"):
        create_model("deepfer", widths=[8, 8])


def test_deep_emotion_matches_reference_sizes() -> None:
    model = _model("deep-emotion")
    n_params = sum(p.numel() for p in model.parameters())
    # 66,877 with BatchNorm; the public re-implementation reports about 67k.
    assert 60_000 <= n_params <= 75_000, n_params
    assert model.fc1.in_features == 810  # 10 x 9 x 9 for a 48x48 input (paper)
    assert model.stn.fc_loc[0].in_features == 640  # 10 x 8 x 8 with 7x7 and 5x5 kernels
    with torch.no_grad():
        assert model.forward_features(_smooth_batch(1, model.config)).shape == (1, 10, 9, 9)


def test_deepfer_has_seven_convs() -> None:
    model = _model("deepfer", use_stn=False)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 7 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 7
    n_params = sum(p.numel() for p in create_model("deepfer").parameters())
    assert 500_000 <= n_params <= 3_000_000, n_params


@pytest.mark.parametrize("name", MODELS)
def test_overfits_a_tiny_batch(name: str) -> None:
    model = _model(name, dropout=0.0).train()
    x = _smooth_batch(16, model.config, seed=1)
    y = torch.arange(16) % 4
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first, fitted = math.inf, False
    for _ in range(60):
        optimizer.zero_grad()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        if first == math.inf:
            first = loss.item()
        # Stop once it has memorised the batch, not merely nudged the loss.
        fitted = loss.item() < 0.5 * first and bool((logits.argmax(1) == y).all())
        if fitted:
            break
        loss.backward()
        optimizer.step()
    right = int((logits.argmax(1) == y).sum())
    assert fitted, f"loss {first:.3f} -> {loss.item():.3f}, {right}/16 right after 60 steps"

"""Saliency and Grad-CAM: equal to the same quantities computed by hand through the model API,
warped back through the spatial transformer, and free of side effects (mode, grads, no_grad)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from explain_helpers import zoom_model

from deepfer.explain import gradcam, saliency
from deepfer.explain.gradients import cam_centres, invert_theta, upsample_cam
from deepfer.models import create_model, list_models


def _faces(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def _x(faces: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(faces).float()[:, None] / 255 - 0.5) / 0.25


@pytest.mark.parametrize("name", list_models())
def test_gradcam_equals_the_hand_computation(name: str) -> None:
    """Without a spatial transformer, cam_layer's output is forward_features': recompute Grad-CAM
    from forward_features / forward_head and compare."""
    torch.manual_seed(0)
    model = create_model(name, use_stn=False).eval()
    faces = _faces(3)
    result = gradcam(model, faces, batch_size=2)
    feats = model.forward_features(_x(faces)).detach().requires_grad_(True)
    logits = model.forward_head(feats)
    t = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), feats)
    cam = (g.mean((2, 3), keepdim=True) * feats).sum(1).relu().detach().numpy()  # (B, h, w)
    # Cell centres on the face: Deep-Emotion's unpadded convs put its 9 cells at 8, 12, ..., 40;
    # DeepFER's (and DeepFER-L's) padded ones tile the face (4, 12, ..., 44); prior-attention's
    # quarter-resolution face canvas tiles it in 4 px cells (2, 6, ..., 46). Beyond the outer
    # centres: the edge value.
    first, step = {"deep-emotion": (8.0, 4.0), "deepfer": (4.0, 8.0), "deepfer-l": (4.0, 8.0),
                   "prior-attention": (2.0, 4.0)}[name]
    assert cam_centres(model.config, cam.shape[1:]) == (first, step)
    centres, pixels = first + step * np.arange(cam.shape[1]), np.arange(48) + 0.5
    rows = np.stack([[np.interp(pixels, centres, r) for r in c] for c in cam])  # (B, h, 48)
    expected = np.stack([np.stack([np.interp(pixels, centres, col) for col in r.T], 1) for r in rows])
    np.testing.assert_allclose(result.raw, expected, rtol=1e-4, atol=1e-7)
    assert result.info["resolution"] == list(feats.shape[2:])
    np.testing.assert_array_equal(result.targets, t.numpy())


@pytest.mark.parametrize("name", list_models())
def test_saliency_equals_the_hand_computation(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    faces = _faces(2)
    result = saliency(model, faces, target=[1, 5])
    for i, t in enumerate([1, 5]):
        # The same batch as saliency's: a batch of one may take other conv kernels, whose rounding
        # can flip a max-pool's near-tie and move a gradient (seen on prior-attention's blocks).
        x = _x(faces).requires_grad_(True)
        model(x)[i, t].backward()
        np.testing.assert_allclose(result.raw[i], x.grad.abs()[i, 0].numpy(), rtol=1e-4, atol=1e-8)
    assert result.heatmaps.max() == pytest.approx(1.0)


def test_upsampling_equals_interpolate_when_cells_tile_the_face() -> None:
    cam = torch.rand(2, 1, 6, 6)
    expected = F.interpolate(cam, size=(48, 48), mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsample_cam(cam, (4.0, 8.0), (48, 48)), expected, atol=1e-6, rtol=0)


def test_invert_theta_round_trip() -> None:
    theta = torch.tensor([[[0.8, 0.2, 0.1], [-0.1, 0.9, -0.3]], [[0.5, 0.0, -0.5], [0.0, 0.5, -0.5]]])
    inv = invert_theta(theta)
    pts = torch.tensor([[0.3, -0.2, 1.0], [-0.7, 0.4, 1.0]]).T  # (3, 2) homogeneous points
    for i in range(2):
        there = theta[i] @ pts
        back = inv[i] @ torch.cat([there, torch.ones(1, 2)])
        torch.testing.assert_close(back, pts[:2], atol=1e-5, rtol=0)


def test_stn_maps_land_on_the_input_face() -> None:
    """The transformer looks only at the upper-left quadrant, so nothing else can matter: Grad-CAM
    (computed on the warped face, then warped back) and saliency are zero outside it."""
    model = zoom_model()
    faces = _faces(4)
    cam = gradcam(model, faces).raw
    sal = saliency(model, faces).raw
    assert cam[:, :24, :24].max() > 0
    assert np.abs(cam[:, 26:, :]).max() == 0 and np.abs(cam[:, :, 26:]).max() == 0
    assert np.abs(sal[:, 25:, :]).max() == 0 and np.abs(sal[:, :, 25:]).max() == 0


def test_no_side_effects() -> None:
    torch.manual_seed(0)
    model = create_model("deep-emotion").train()
    model.fc1.weight.requires_grad_(False)
    faces = _faces(2)
    with torch.inference_mode():  # callers inside inference mode still get gradients maps
        a = gradcam(model, faces)
    with torch.no_grad():
        b = saliency(model, faces)
    assert model.training  # the mode is restored...
    assert a.raw.max() > 0 and b.raw.max() > 0  # ...dropout was off while explaining:
    np.testing.assert_allclose(gradcam(model, faces).raw, a.raw, rtol=1e-5, atol=1e-8)
    assert all(p.grad is None for p in model.parameters())
    assert not model.fc1.weight.requires_grad and model.fc2.weight.requires_grad
    assert not model.cam_layer._forward_hooks  # the hook is removed

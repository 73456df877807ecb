"""Per-branch Grad-CAM for a model with ``branches_info`` (prior-attention's eyes, mouth and face
blocks): each branch's map uses its own channels and gradients, is zero outside its box, and comes
beside the whole map in explain_picture, deepfer explain's panels and the server's methods. The
stand-in is DeepFER (a (B, 512, 6, 6) cam_layer) with two branches declared on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepfer.errors import DeepferError
from deepfer.explain import explain, explain_picture, gradcam
from deepfer.explain.gradients import cam_centres, upsample_cam
from deepfer.explain.figures import face_panels
from deepfer.explain.methods import branch_methods, with_branches
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.vision import FRAMINGS, Detection, Picture, crop_face, face_transform

UPPER = (0, 3, 0, 6)  # top, bottom, left, right in cells of the 6 x 6 canvas
LOWER = (3, 6, 1, 5)


def _branched(branches: list) -> nn.Module:
    torch.manual_seed(0)
    net = create_model("deepfer").eval()
    net.branches_info = branches
    return net


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return _branched([("upper", slice(0, 256), UPPER), ("lower", slice(256, 512), LOWER)])


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)


def _manual(net: nn.Module, faces: np.ndarray, channels: slice, box: tuple[int, int, int, int]) -> np.ndarray:
    """The branch's Grad-CAM at cell resolution, by hand: its channels, gradients averaged over its box."""
    from deepfer.explain.base import prepare

    store: list[torch.Tensor] = []
    handle = net.cam_layer.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        x = prepare(faces, net.config).requires_grad_(True)
        logits = net(x)
        t = logits.argmax(1)
        (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), store[-1])
    finally:
        handle.remove()
    y0, y1, x0, x1 = box
    a, g = store[-1][:, channels, y0:y1, x0:x1].detach(), grad[:, channels, y0:y1, x0:x1]
    return (g.mean((2, 3), keepdim=True) * a).sum(1).relu().numpy()  # (N, y1 - y0, x1 - x0)


@pytest.mark.parametrize(("name", "channels", "box"), [("upper", slice(0, 256), UPPER),
                                                        ("lower", slice(256, 512), LOWER)])
def test_a_branch_map_is_its_own_grad_cam_and_zero_outside_its_box(net: nn.Module, faces: np.ndarray, name: str,
                                                                   channels: slice, box: tuple) -> None:
    res = gradcam(net, faces, branch=name)
    assert res.method == f"gradcam:{name}" and res.info["branch"] == name and res.info["box"] == list(box)
    y0, y1, x0, x1 = box
    inside = np.zeros((48, 48), bool)
    inside[8 * y0 : 8 * y1, 8 * x0 : 8 * x1] = True  # DeepFER's cells tile the face in 8 px squares
    assert (res.raw[:, ~inside] == 0).all()
    assert (res.raw[:, inside].reshape(len(faces), -1).max(1) > 0).all()
    # Inside, the map is the hand-made cell map, upsampled over the box.
    cells = _manual(net, faces, channels, box)
    np.testing.assert_allclose(res.raw[:, 8 * y0 + 4 :: 8, 8 * x0 + 4 :: 8][:, : y1 - y0, : x1 - x0],
                               _sample(cells, box), rtol=1e-4, atol=1e-6)


def _sample(cells: np.ndarray, box: tuple) -> np.ndarray:
    """The box's cell map upsampled like gradcam does, read at pixel 8 * i + 4 (just past the centre)."""
    y0, y1, x0, x1 = box
    t = torch.nn.functional.pad(torch.as_tensor(cells)[:, None], (x0, 6 - x1, y0, 6 - y1), mode="replicate")
    up = upsample_cam(t, cam_centres(create_model("deepfer").config, (6, 6)), (48, 48))[:, 0].numpy()
    return up[:, 8 * y0 + 4 :: 8, 8 * x0 + 4 :: 8][:, : y1 - y0, : x1 - x0]


def test_one_branch_over_everything_is_the_plain_grad_cam(faces: np.ndarray) -> None:
    whole = _branched([("face", slice(0, 512), (0, 6, 0, 6))])
    np.testing.assert_allclose(gradcam(whole, faces, branch="face").raw, gradcam(whole, faces).raw, atol=1e-6)


def test_branch_methods_are_named_and_unknown_ones_refused(net: nn.Module, faces: np.ndarray) -> None:
    assert branch_methods(net) == ["gradcam:upper", "gradcam:lower"]
    assert branch_methods(create_model("deepfer")) == []
    np.testing.assert_array_equal(explain(net, faces, "gradcam:lower", patch=8).raw,
                                  gradcam(net, faces, branch="lower").raw)
    with pytest.raises(DeepferError, match="upper, lower"):
        explain(net, faces, "gradcam:eyes")
    with pytest.raises(DeepferError, match="no branches"):
        gradcam(create_model("deepfer"), faces, branch="upper")
    assert with_branches(["saliency"], branch_methods(net)) == ["saliency"]


def test_explain_picture_gives_each_block_map_beside_the_whole_one(net: nn.Module) -> None:
    gray = np.random.default_rng(2).integers(0, 256, (60, 50), dtype=np.uint8)
    (face,) = explain_picture(net, FER7, Picture(gray), None, ["gradcam", "saliency"])
    assert list(face.heatmaps) == ["gradcam", "gradcam:upper", "gradcam:lower", "saliency"]
    ref = gradcam(net, face.crop[None], branch="upper")
    np.testing.assert_allclose(face.heatmaps["gradcam:upper"], ref.heatmaps[0], atol=1e-6)
    assert (face.heatmaps["gradcam:upper"][24:] == 0).all() and (face.heatmaps["gradcam:lower"][:24] == 0).all()
    titles = [p.title for p in face_panels(face, ["gradcam", "saliency"])]
    assert titles[1:4] == ["Grad-CAM", "Grad-CAM, upper block", "Grad-CAM, lower block"]
    (plain,) = explain_picture(net, FER7, Picture(gray), None, ["gradcam"], branches=False)
    assert list(plain.heatmaps) == ["gradcam"]


def test_explain_picture_aligns_for_a_model_that_asks() -> None:
    # Five landmarks on a noise picture: the crop explained is the aligned crop.
    gray = np.random.default_rng(3).integers(0, 256, (200, 200), dtype=np.uint8)
    marks = ((82.0, 90.0), (118.0, 90.0), (100.0, 105.0), (90.0, 127.0), (110.0, 127.0))
    det = Detection((60, 55, 80, 90), 0.9, marks)

    class OneFace:
        name = "fake"
        framing = FRAMINGS["yunet"]

        def detect(self, _gray: np.ndarray) -> list[Detection]:
            return [det]

    net = create_model("deep-emotion").eval()
    net.config.extra["align"] = "landmarks"
    (face,) = explain_picture(net, FER7, Picture(gray), OneFace(), ["saliency"])
    assert face.aligned and face_transform(det, OneFace.framing, 48, align=True)[1]
    np.testing.assert_array_equal(face.crop, crop_face(gray, det, OneFace.framing, 48, align=True))
    net.config.extra.pop("align")
    (plain,) = explain_picture(net, FER7, Picture(gray), OneFace(), ["saliency"])
    assert not plain.aligned
    np.testing.assert_array_equal(plain.crop, crop_face(gray, det, OneFace.framing, 48))

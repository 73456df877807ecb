"""Gradient maps: vanilla saliency (Simonyan et al., 2013, https://arxiv.org/abs/1312.6034) and
Grad-CAM (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391) on ``model.cam_layer``.

Written with a forward hook and :func:`torch.autograd.grad` rather than a package: captum installs
beside torch 2.13 but pytorch-grad-cam needs torchvision, and the two methods are a few lines each.
Only the input's and the hooked activation's gradients are computed, so parameters' ``.grad`` and
``requires_grad`` are never touched.

With a spatial transformer in front, ``cam_layer`` sees the *warped* face; the Grad-CAM map is
warped back with the inverse of the predicted affine transform, so it lies on the input face (the
parts of the face the transformer does not sample get 0: they cannot influence the output).

A model made of branches (``prior-attention``: an eyes-and-brows block, a mouth block, the whole
face) says where each branch lies in ``cam_layer``'s output with ``branches_info``, a list of
``(name, channel slice, (top, bottom, left, right) box in cells)``. ``gradcam(..., branch=name)``
is then Grad-CAM on that branch alone: its channels, weighted by their own gradients averaged over
its own box, so the map says what that block saw and is zero outside the block.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfer.errors import DataError, ModelError
from deepfer.explain.base import Explanation, eval_mode, normalize_maps, prepare, resolve_targets, unwrap

__all__ = ["branch_names", "cam_centres", "gradcam", "invert_theta", "saliency", "upsample_cam"]


def saliency(
    model: nn.Module,
    faces: np.ndarray | Tensor,
    target: int | Sequence[int] | np.ndarray | None = None,
    batch_size: int = 256,
) -> Explanation:
    """Vanilla saliency: ``max_c |d logit_target / d x_c|`` per pixel.

    Args:
        model: a deepfer model (evaluated in eval mode; its mode is restored afterwards).
        faces: uint8 faces (N, H, W) at the model's input size, or one face (H, W).
        target: class(es) to explain: ``None`` for each face's predicted class, an int, or one per face.
        batch_size: faces per forward/backward pass.

    Returns:
        An :class:`~deepfer.explain.base.Explanation` (``raw``: the gradient magnitudes).

    Example:
        >>> from deepfer.models import create_model
        >>> faces = np.zeros((1, 48, 48), np.uint8)
        >>> saliency(create_model("deep-emotion"), faces).heatmaps.shape
        (1, 48, 48)
    """
    net = unwrap(model)
    x = prepare(faces, net.config)
    per_face = _per_face(target, len(x))
    maps, probs, targets = [], [], []
    with eval_mode(net), torch.inference_mode(False), torch.enable_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].clone().requires_grad_(True)
            logits = net(xb)  # (B, K)
            t = resolve_targets(None if per_face is None else per_face[start : start + len(xb)], logits.detach())
            # Faces are independent in eval mode, so the gradient of the sum is each face's own.
            (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), xb)
            maps.append(grad.abs().amax(1))  # (B, H, W)
            probs.append(logits.detach().softmax(1))
            targets.append(t)
    return _result("saliency", maps, probs, targets, x, net, {})


def gradcam(
    model: nn.Module,
    faces: np.ndarray | Tensor,
    target: int | Sequence[int] | np.ndarray | None = None,
    batch_size: int = 256,
    branch: str | None = None,
) -> Explanation:
    """Grad-CAM on ``model.cam_layer``: ``ReLU(sum_k mean(d logit / d A_k) * A_k)``, bilinearly
    upsampled to the input size with each cell at the centre of its receptive field
    (:func:`cam_centres`) and, behind a spatial transformer, warped back onto the input.

    Args:
        model: a deepfer model (evaluated in eval mode; its mode is restored afterwards).
        faces: uint8 faces (N, H, W) at the model's input size, or one face (H, W).
        target: class(es) to explain: ``None`` for each face's predicted class, an int, or one per face.
        batch_size: faces per forward/backward pass.
        branch: for a model with ``branches_info``, the map of this branch alone (its channels,
            their gradients averaged over its box; zero outside the box's cells), method
            ``gradcam:<branch>``.

    Returns:
        An :class:`~deepfer.explain.base.Explanation` (``raw``: the upsampled class map;
        ``info["resolution"]``: the side of the conv map, e.g. 9 for Deep-Emotion, 6 for DeepFER;
        with ``branch``, ``info["branch"]`` and ``info["box"]``, its cells).

    Raises:
        ModelError: ``branch`` is not one of the model's branches.
    """
    net = unwrap(model)
    part = _branch(net, branch) if branch is not None else None
    x = prepare(faces, net.config)
    per_face = _per_face(target, len(x))
    h, w = x.shape[2:]
    store: list[Tensor] = []
    handle = net.cam_layer.register_forward_hook(lambda _m, _i, out: store.append(out))
    maps, probs, targets = [], [], []
    resolution: tuple[int, ...] = ()
    try:
        with eval_mode(net), torch.inference_mode(False), torch.enable_grad():
            for start in range(0, len(x), batch_size):
                store.clear()
                # An input that needs grad keeps the graph alive even when all parameters are frozen.
                xb = x[start : start + batch_size].clone().requires_grad_(True)
                logits = net(xb)
                acts = store[-1]  # (B, C, h, w)
                t = resolve_targets(None if per_face is None else per_face[start : start + len(xb)],
                                    logits.detach())
                (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), acts)
                resolution = tuple(acts.shape[2:])
                centres = cam_centres(net.config, resolution)
                if part is None:
                    weights = grad.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
                    cam = (weights * acts).sum(1, keepdim=True).relu().detach()  # (B, 1, h, w)
                    cam = upsample_cam(cam, centres, (h, w))  # (B, 1, H, W)
                else:
                    cam = _branch_cam(acts.detach(), grad, part[1], part[2], centres, (h, w))
                if net.stn is not None:
                    with torch.no_grad():
                        theta = net.stn.theta(xb.detach())  # (B, 2, 3), output -> input
                    grid = F.affine_grid(invert_theta(theta), list(cam.shape), align_corners=False)
                    cam = F.grid_sample(cam, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
                maps.append(cam[:, 0])
                probs.append(logits.detach().softmax(1))
                targets.append(t)
    finally:
        handle.remove()
        store.clear()
    info: dict[str, Any] = {"resolution": list(resolution)}
    if part is not None:
        info.update(branch=part[0], box=list(part[2]))
    return _result("gradcam" if part is None else f"gradcam:{part[0]}", maps, probs, targets, x, net, info)


def branch_names(model: nn.Module) -> list[str]:
    """The names of a model's branches (``branches_info``, see the module docstring), in order;
    empty for a model without branches."""
    return [str(info[0]) for info in getattr(unwrap(model), "branches_info", None) or ()]


def _branch(net: nn.Module, name: str) -> tuple[str, slice, tuple[int, int, int, int]]:
    for info in getattr(net, "branches_info", None) or ():
        if info[0] == name:
            return str(info[0]), info[1], tuple(int(v) for v in info[2])  # type: ignore[return-value]
    names = branch_names(net)
    raise ModelError(f"{net.config.name}: no branch {name!r} to explain; "
                     + (f"its branches are {', '.join(names)}" if names else "it has no branches"))


def _branch_cam(acts: Tensor, grad: Tensor, channels: slice, box: tuple[int, int, int, int],
                centres: tuple[float, float], size: tuple[int, int]) -> Tensor:
    """One branch's Grad-CAM ``(B, 1, H, W)``: its channels and box of the (B, C, h, w) canvas,
    upsampled over the box's pixels only (the box's edge cells reach to the box's edge rather
    than fading towards the empty cells beside it) and zero outside."""
    y0, y1, x0, x1 = box
    a, g = acts[:, channels, y0:y1, x0:x1], grad[:, channels, y0:y1, x0:x1]
    cam = (g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True).relu()  # (B, 1, y1 - y0, x1 - x0)
    h, w = acts.shape[2:]
    cam = F.pad(cam, (x0, w - x1, y0, h - y1), mode="replicate")  # (B, 1, h, w)
    cam = upsample_cam(cam, centres, size)  # (B, 1, H, W)
    # The pixels whose centres fall in the box's cells (cell i spans first + step * (i -+ 0.5)); a
    # box on the canvas's edge reaches the face's edge, as the whole map's edge cells do.
    first, step = centres

    def inside(n: int, lo: int, hi: int, cells: int) -> Tensor:
        p = torch.arange(n) + 0.5
        low = first + step * (lo - 0.5) if lo > 0 else -math.inf
        high = first + step * (hi - 0.5) if hi < cells else math.inf
        return (p >= low) & (p < high)

    mask = inside(size[0], y0, y1, h)[:, None] & inside(size[1], x0, x1, w)[None, :]
    return cam * mask.to(cam.dtype)


def cam_centres(config: Any, resolution: tuple[int, ...]) -> tuple[float, float]:
    """``(first, step)``: cell ``i`` of ``cam_layer``'s map is centred on input coordinate
    ``first + step * i`` (pixels, 0 = the first pixel's outer edge), the same along both axes.

    Padded conv stacks tile the input (DeepFER: 6 cells of 8 px, centres 4, 12, ...). Unpadded ones
    do not: Deep-Emotion's 9 x 9 cells sit 4 px apart, centred on 8 ... 40, not 2.7 ... 45.3, and
    stretching the map over the whole face would move the mouth's evidence towards the chin. The
    step is measured once per architecture as the input shift that moves the map by exactly one
    cell on a fresh copy of the model (its spatial transformer is the identity); the map is
    centred on the face. Without such a shift (receptive fields wider than the face, as with
    padding) the map is taken to tile the input.
    """
    key = (json.dumps(dataclasses.asdict(config), sort_keys=True, default=str), tuple(resolution))
    if key not in _CENTRES:
        _CENTRES[key] = _measure_centres(config, resolution)
    return _CENTRES[key]


_CENTRES: dict[tuple[str, tuple[int, ...]], tuple[float, float]] = {}


def _measure_centres(config: Any, resolution: tuple[int, ...]) -> tuple[float, float]:
    from deepfer.models import create_model

    size, cells = config.input_size, resolution[-1]
    tiled = (size / cells / 2, size / cells)
    if cells < 3:
        return tiled
    options = dataclasses.asdict(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = create_model(options.pop("name"), **options).eval()
        x = torch.randn(1, config.in_chans, size, size)
    store: list[Tensor] = []
    handle = probe.cam_layer.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        with torch.inference_mode():
            probe(x)
            base = store[-1]
            mid = cells // 2
            for step in range(1, math.ceil(size / cells) + 1):  # a stride above the tiling step cannot fit
                store.clear()
                probe(torch.roll(x, step, dims=3))
                # Interior cells only: the roll wraps pixels round the far edge.
                if torch.allclose(store[-1][..., mid], base[..., mid - 1], rtol=1e-4, atol=1e-5):
                    return size / 2 - step * (cells - 1) / 2, float(step)
    finally:
        handle.remove()
    return tiled


def upsample_cam(cam: Tensor, centres: tuple[float, float], size: tuple[int, int]) -> Tensor:
    """Bilinear resampling of (B, 1, h, w) cell values centred at ``first + step * i`` onto the
    pixel centres of a (H, W) input; pixels beyond the outer cell centres take the edge cell's
    value (like ``F.interpolate``, which this equals when the cells tile the input)."""
    first, step = centres
    h, w = cam.shape[2:]
    ys = ((torch.arange(size[0]) + 0.5 - first) / step) / max(h - 1, 1) * 2 - 1  # cell index -> [-1, 1]
    xs = ((torch.arange(size[1]) + 0.5 - first) / step) / max(w - 1, 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).to(cam.dtype)  # (H, W, 2) as (x, y)
    grid = grid.expand(len(cam), -1, -1, -1)
    return F.grid_sample(cam, grid, mode="bilinear", padding_mode="border", align_corners=True)


def invert_theta(theta: Tensor) -> Tensor:
    """The inverse of affine transforms (B, 2, 3) in ``affine_grid``'s normalised coordinates.

    ``theta`` maps output to input points (``q = A p + b``); the inverse maps input to output
    (``p = A^-1 (q - b)``). A (near-)singular ``A`` falls back to the pseudo-inverse.
    """
    a, b = theta[:, :, :2].double(), theta[:, :, 2:].double()
    a_inv = torch.linalg.pinv(a)  # (B, 2, 2)
    return torch.cat([a_inv, -a_inv @ b], 2).to(theta.dtype)


def _per_face(target: int | Sequence[int] | np.ndarray | None, n: int) -> np.ndarray | None:
    """``None`` (explain the predicted classes) or int64 (N,) target classes."""
    if target is None:
        return None
    t = np.asarray(target, dtype=np.int64).reshape(-1)
    if t.size == 1:
        return np.full(n, int(t[0]), np.int64)
    if t.size != n:
        raise DataError(f"expected one target class or one per face ({n}), got {t.size}")
    return t


def _result(method: str, maps: list[Tensor], probs: list[Tensor], targets: list[Tensor], x: Tensor,
            net: nn.Module, info: dict) -> Explanation:
    h, w = x.shape[2:]
    k = net.config.num_classes
    raw = torch.cat(maps) if maps else torch.zeros(0, h, w)
    return Explanation(
        method=method,
        heatmaps=normalize_maps(raw),
        raw=raw.numpy().astype(np.float32),
        targets=(torch.cat(targets) if targets else torch.zeros(0, dtype=torch.int64)).numpy(),
        probs=(torch.cat(probs) if probs else torch.zeros(0, k)).numpy().astype(np.float32),
        info=info,
    )

"""Occlusion sensitivity (Zeiler & Fergus, 2014, https://arxiv.org/abs/1311.2901), the map
Deep-Emotion draws: slide an N x N blank patch over the face and record how much the probability of
the explained class drops, and where the predicted class changes.

All occluded copies of all faces are one stream of (face, patch) pairs run through the model in
large batches, so a 48x48 face (121 patches of 8 x 8 at stride 4) costs one batched forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from deepfer.errors import DataError
from deepfer.explain.base import (
    Explanation,
    Fill,
    blank_value,
    eval_mode,
    normalize_maps,
    prepare,
    resolve_targets,
    unwrap,
)

__all__ = ["default_patch", "occlusion_map", "patch_positions"]


def default_patch(input_size: int) -> tuple[int, int]:
    """Patch side and stride for a face of ``input_size``: a sixth of the face (8 px of 48,
    about an eye), moved by half a patch."""
    patch = max(1, round(input_size / 6))
    return patch, max(1, patch // 2)


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top (or left) offsets of the patches along one side; the last patch always touches the
    far border, so every pixel is covered."""
    if not 1 <= patch <= size or stride < 1:
        raise DataError(f"occlusion patch must be 1..{size} px and stride >= 1, got patch {patch}, stride {stride}")
    pos = list(range(0, size - patch + 1, stride))
    if pos[-1] != size - patch:
        pos.append(size - patch)
    return pos


def _masks(h: int, w: int, patch: int, stride: int) -> Tensor:
    """bool (P, H, W): one True square per patch position, row-major."""
    ys, xs = patch_positions(h, patch, stride), patch_positions(w, patch, stride)
    masks = torch.zeros(len(ys) * len(xs), h, w, dtype=torch.bool)
    for i, (y, x) in enumerate((y, x) for y in ys for x in xs):
        masks[i, y : y + patch, x : x + patch] = True
    return masks


def _spread(scores: Tensor, masks: Tensor) -> Tensor:
    """Each patch's score spread over the pixels it covers, averaged by coverage: (N, P) -> (N, H, W)."""
    cover = masks.flatten(1).float()  # (P, H*W)
    return (scores @ cover / cover.sum(0)).view(len(scores), *masks.shape[1:])


def occlusion_map(
    model: nn.Module,
    faces: np.ndarray | Tensor,
    patch: int | None = None,
    stride: int | None = None,
    target: int | Sequence[int] | np.ndarray | None = None,
    fill: Fill = "mean",
    batch_size: int = 128,
) -> Explanation:
    """Occlusion maps of uint8 faces for any deepfer model.

    A pixel's value is the mean, over the patches that cover it, of the drop in the target class's
    probability when that patch is blanked; its ``flips`` value is the fraction of those patches
    whose blanking changed the predicted class.

    Args:
        model: a deepfer model (evaluated in eval mode; its mode is restored afterwards).
        faces: uint8 faces (N, H, W) at the model's input size, or one face (H, W).
        patch: side of the blank square in pixels (default: :func:`default_patch`).
        stride: step between patch positions (default: half the patch).
        target: class(es) to explain: ``None`` for each face's predicted class, an int for all
            faces, or one per face.
        fill: what a blanked pixel becomes: ``"mean"`` (the model's mean grey, 0 in its normalised
            input) or a grey level 0..255 (0: a black patch).
        batch_size: occluded copies per forward pass (128 keeps activations in cache: faster on
            a CPU than 1024).

    Returns:
        An :class:`~deepfer.explain.base.Explanation` with ``raw`` = probability drop (may be
        negative where blanking helps the class) and ``flips``.

    Shape:
        - faces: :math:`(N, H, W)`
        - heatmaps, raw, flips: :math:`(N, H, W)`

    Example:
        >>> from deepfer.models import create_model
        >>> model = create_model("deep-emotion")
        >>> faces = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
        >>> occlusion_map(model, faces).heatmaps.shape
        (2, 48, 48)
    """
    net = unwrap(model)
    config = net.config
    x = prepare(faces, config)  # (N, C, H, W)
    n, _, h, w = x.shape
    patch = patch if patch is not None else default_patch(min(h, w))[0]
    stride = stride if stride is not None else max(1, patch // 2)
    masks = _masks(h, w, patch, stride)  # (P, H, W)
    p_count = len(masks)
    blank = blank_value(config, fill)
    batch_size = max(1, int(batch_size))

    with eval_mode(net), torch.inference_mode():
        chunks = [net(x[i : i + batch_size]).softmax(1) for i in range(0, n, batch_size)]
        probs = torch.cat(chunks) if chunks else torch.zeros(0, config.num_classes)
        targets = resolve_targets(target, probs)
        base = probs.gather(1, targets[:, None])[:, 0]  # (N,)
        predicted = probs.argmax(1)
        drop = torch.empty(n * p_count)
        flipped = torch.empty(n * p_count)
        # One flat stream of (face, patch) pairs: pair k is face k // P under patch k % P.
        for start in range(0, n * p_count, batch_size):
            k = torch.arange(start, min(start + batch_size, n * p_count))
            f, p = k // p_count, k % p_count
            xo = torch.where(masks[p][:, None], blank, x[f])  # (b, C, H, W)
            po = net(xo).softmax(1)  # (b, K)
            drop[k] = base[f] - po.gather(1, targets[f][:, None])[:, 0]
            flipped[k] = (po.argmax(1) != predicted[f]).float()

    raw = _spread(drop.view(n, p_count), masks)
    flips = _spread(flipped.view(n, p_count), masks)
    return Explanation(
        method="occlusion",
        heatmaps=normalize_maps(raw),
        raw=raw.numpy().astype(np.float32),
        targets=targets.numpy(),
        probs=probs.numpy().astype(np.float32),
        flips=flips.numpy().astype(np.float32),
        info={"patch": patch, "stride": stride, "fill": fill, "patches": p_count},
    )

"""Erasing attention consistency (EAC; Zhang, Wang, Ling & Deng, "Learn From All: Erasing
Attention Consistency for Noisy Label Facial Expression Recognition", ECCV 2022,
https://arxiv.org/abs/2207.10299), for training on noisy labels (FER2013, FER+).

The paper: each training face is randomly erased, its mirror image is erased independently, the
cross-entropy is taken on the first view only, and a loss ``lambda * MSE(M(x1), flip(M(x2)))``
keeps the two views' class activation maps ``M`` consistent; a network that memorises a noisy
label through a few features cannot keep its attention consistent when those are erased.

Adaptation, stated honestly: EAC's maps are CAMs, ``M_k = sum_c w_kc F_c`` for a head that is
global pooling plus one linear layer. Our heads are MLPs (Deep-Emotion flattens the map, DeepFER
pools then uses two FC layers, prior-attention pools each block), so exact CAMs do not exist.
The attention map is instead activation-based (Zagoruyko & Komodakis, "Paying more attention to
attention", ICLR 2017, https://arxiv.org/abs/1612.03928): ``A = mean_c F_c^2`` of the map
``forward_features`` returns (``cam_layer``'s output), normalised to unit L2 norm per face, and
the loss is ``||A(x1) - flip(A(x2))||^2`` averaged over the batch, i.e. ``2 - 2 cos``, in
``[0, 4]``. This is one map where EAC has one per class, and the normalisation removes the
trivial way to lower the loss (shrinking the features). Both views go through the model as one
batch (one forward, so DistributedDataParallel's hooks see it; batch-norm statistics cover both
views, where the paper makes two passes). Erasing follows the paper's torchvision defaults:
probability 0.5 per face, 2-25% of the area, aspect 0.3-3.3, filled with 0 (the normalised mean
grey).
"""

from __future__ import annotations

from collections.abc import Callable

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ErasingAttentionConsistency", "attention_map", "flip_consistency"]


def attention_map(features: Tensor) -> Tensor:
    """Activation-based attention: ``mean_c F_c^2`` per position, unit L2 norm per face.

    Shape:
        - features: :math:`(B, C, H, W)`
        - output: :math:`(B, H W)`
    """
    if features.ndim != 4:
        raise ValueError(f"attention_map: expected features of shape (B, C, H, W), got {tuple(features.shape)}")
    return F.normalize(features.float().pow(2).mean(1).flatten(1), dim=1)


def flip_consistency(features: Tensor, features_flipped: Tensor) -> Tensor:
    """``mean_b ||A(features) - flip(A(features_flipped))||^2``: 0 when the second map is the first
    one's mirror image (up to scale), at most 4.

    Args:
        features: maps of the erased faces, (B, C, H, W).
        features_flipped: maps of their mirrored (and independently erased) faces, same shape.
    """
    if features.shape != features_flipped.shape:
        raise ValueError(f"flip_consistency: feature shapes differ: {tuple(features.shape)} vs "
                         f"{tuple(features_flipped.shape)}")
    a = attention_map(features)
    b = attention_map(features_flipped.flip(3))
    return (a - b).pow(2).sum(1).mean()


class ErasingAttentionConsistency(nn.Module):
    """One EAC training step's forward: two erased views, CE on the first, consistency on both.

    Args:
        weight: lambda, the weight of the consistency loss.
        scale: range of the erased share of the face.
        ratio: range of the erased box's aspect ratio.
        p: probability that a face is erased.

    Example:
        >>> from deepfer.models import create_model
        >>> eac = ErasingAttentionConsistency(weight=1.0)
        >>> model = create_model("deep-emotion")
        >>> x, y = torch.randn(4, 1, 48, 48), torch.tensor([0, 1, 2, 3])
        >>> logits, loss, consistency = eac(model, x, y, lambda lg, t: F.cross_entropy(lg, t))
        >>> logits.shape, loss.ndim, bool(consistency >= 0)
        (torch.Size([4, 7]), 0, True)
    """

    def __init__(self, weight: float, scale: tuple[float, float] = (0.02, 0.25),
                 ratio: tuple[float, float] = (0.3, 3.3), p: float = 0.5) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"ErasingAttentionConsistency: weight must be >= 0, got {weight}")
        self.weight = weight
        self.erase = K.RandomErasing(scale=scale, ratio=ratio, value=0.0, p=p)

    def views(self, x: Tensor) -> Tensor:
        """The erased faces and their independently erased mirror images, (2B, C, H, W)."""
        return torch.cat([self.erase(x), self.erase(x.flip(3))]).contiguous(memory_format=torch.channels_last)

    def forward(self, model: nn.Module, x: Tensor, target: Tensor,
                loss_fn: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Logits of the first view (B, K), the total loss, and the consistency term alone.

        ``model`` may be wrapped in DistributedDataParallel; the features are read from the
        wrapped model's ``cam_layer`` (which returns what ``forward_features`` returns).
        """
        base = getattr(model, "module", model)
        store: list[Tensor] = []
        handle = base.cam_layer.register_forward_hook(lambda _m, _i, out: store.append(out))
        try:
            logits = model(self.views(x))  # (2B, K)
        finally:
            handle.remove()
        n = len(x)
        features = store[-1]  # (2B, C, h, w)
        consistency = flip_consistency(features[:n], features[n:])
        return logits[:n], loss_fn(logits[:n], target) + self.weight * consistency, consistency.detach()

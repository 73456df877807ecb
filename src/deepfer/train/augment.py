"""Batched on-tensor augmentation with kornia: policies ``none``, ``basic`` and ``strong``."""

from __future__ import annotations

import kornia.augmentation as K
from torch import Tensor, nn


def build_augmentation(policy: str, size: int) -> nn.Module:
    """An nn.Module that augments a float batch (B, C, H, W) in [0, 1] (identity for ``none``).

    ``flip``: horizontal flip only (for small networks that under-fit).
    ``basic``: horizontal flip and a small affine (rotation 10 deg, shift 10%, scale 0.9-1.1).
    ``strong``: ``basic`` plus random resized crops, brightness/contrast jitter and random
    erasing (which also regularises the attention: no single region is always visible).
    """
    if policy == "none":
        return nn.Identity()
    if policy == "flip":
        return nn.Sequential(K.RandomHorizontalFlip())
    ops: list[nn.Module] = [
        K.RandomHorizontalFlip(),
        K.RandomAffine(degrees=10.0, translate=(0.1, 0.1), scale=(0.9, 1.1), p=0.8),
    ]
    if policy == "strong":
        ops = [
            K.RandomHorizontalFlip(),
            K.RandomResizedCrop((size, size), scale=(0.75, 1.0), ratio=(0.9, 1.1), p=0.5),
            K.RandomAffine(degrees=15.0, translate=(0.1, 0.1), scale=(0.85, 1.15), p=0.8),
            K.ColorJiggle(brightness=0.25, contrast=0.25, p=0.5),
            K.RandomErasing(scale=(0.02, 0.15), ratio=(0.3, 3.3), p=0.5),
        ]
    elif policy != "basic":
        raise ValueError(f"unknown augmentation policy {policy!r}; expected none, flip, basic or strong")
    return nn.Sequential(*ops)


class Augment(nn.Module):
    """Augmentation that only acts in training mode, on a float batch in [0, 1]."""

    def __init__(self, policy: str, size: int) -> None:
        super().__init__()
        self.policy = policy
        self.ops = build_augmentation(policy, size)

    def forward(self, x: Tensor) -> Tensor:
        return self.ops(x) if self.training and self.policy != "none" else x

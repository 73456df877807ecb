"""Batched on-tensor augmentation with kornia: policies ``none``, ``flip``, ``basic``, ``strong``
and ``wild`` (the conditions photos and videos have after detection; ``wild_ops.py``)."""

from __future__ import annotations

import kornia.augmentation as K
from torch import Tensor, nn

from deepfer.train.wild_ops import GrayJPEG, LowResolution, RandomExposure, RandomOccluder

POLICIES = ("none", "flip", "basic", "strong", "wild")


def build_augmentation(policy: str, size: int) -> nn.Module:
    """An nn.Module that augments a float batch (B, C, H, W) in [0, 1] (identity for ``none``).

    ``flip``: horizontal flip only (for small networks that under-fit).
    ``basic``: horizontal flip and a small affine (rotation 10 deg, shift 10%, scale 0.9-1.1).
    ``strong``: ``basic`` plus random resized crops, brightness/contrast jitter and random
    erasing (which also regularises the attention: no single region is always visible).
    ``wild``: what a detected face in a photo or video meets, each with its own probability:
    the detector's box jitter and the roll left after YuNet's levelling (benchmarks/roll_reading.py:
    a 30-degree tilt reads as about 24), faces of 16-32 px scaled up, a quarter of the light to
    over-exposure and gamma, occluders (hand-like patch, eye bar, glasses), blur (Gaussian and
    motion), sensor noise and JPEG compression, applied in that order (geometry, scene, camera).
    The strengths follow ``benchmarks/WILD_VALIDATION.md`` (each condition alone on FER2013
    PublicTest): blur and low resolution cost the most there (sigma 1.8: -33 points, 16 px: -28),
    so they are sampled up to sigma 2.2 (in an 11-px kernel, which a sigma that large needs: a 5-px
    one cuts it to about 1) and down to 12 px, each on a quarter of the faces.
    """
    if policy == "none":
        return nn.Identity()
    if policy == "flip":
        return nn.Sequential(K.RandomHorizontalFlip())
    if policy == "wild":
        return nn.Sequential(
            K.RandomHorizontalFlip(),
            K.RandomAffine(degrees=25.0, translate=(0.08, 0.08), scale=(0.85, 1.2), p=0.8),
            LowResolution(size, smallest=12, largest=32, p=0.25),
            RandomOccluder(p=0.25),
            RandomExposure(gain=(0.25, 1.6), gamma=(0.6, 2.2), p=0.4),
            K.RandomGaussianBlur((11, 11), sigma=(0.3, 2.2), p=0.25),
            K.RandomMotionBlur(kernel_size=(3, 7), angle=90.0, direction=(-1.0, 1.0), p=0.1),
            K.RandomGaussianNoise(std=0.03, p=0.2),
            GrayJPEG(quality=(25.0, 90.0), p=0.2),
        )
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
        raise ValueError(f"unknown augmentation policy {policy!r}; expected one of {', '.join(POLICIES)}")
    return nn.Sequential(*ops)


class Augment(nn.Module):
    """Augmentation that only acts in training mode, on a float batch in [0, 1]."""

    def __init__(self, policy: str, size: int) -> None:
        super().__init__()
        self.policy = policy
        self.ops = build_augmentation(policy, size)

    def forward(self, x: Tensor) -> Tensor:
        return self.ops(x) if self.training and self.policy != "none" else x

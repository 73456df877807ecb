"""Batch-level mixup (Zhang et al., ICLR 2018, https://arxiv.org/abs/1710.09412) and CutMix (Yun
et al., ICCV 2019, https://arxiv.org/abs/1905.04899): pairs of faces are blended (mixup) or a box
of one is pasted into the other (CutMix), and their targets are mixed in the same proportion.

kornia does the mixing: ``RandomMixUpV2`` blends the images, ``RandomCutMixV2`` pastes the box, and
their class output (row, partner row, share) is the label bookkeeping, which we apply to (B, K)
target rows (passing row numbers as kornia's "labels"), so one-hot, label-smoothed, FER+ vote and
distillation targets all mix the same way. The sampling stays the recipe's, and is handed to
kornia as ``params``, because kornia's own draws mean something else:

- mixup: kornia draws a uniform lambda per face; the recipe's ``mixup`` alpha means one
  ``lam ~ Beta(alpha, alpha)`` for the whole batch (the paper, timm).
- CutMix: kornia draws a box per face, placed wholly inside the image; the recipe's ``cutmix``
  alpha means one box for the batch, of area ``1 - lam`` with ``lam ~ Beta(alpha, alpha)``,
  centred at a uniform point and clipped at the border (the paper's reference code), so the
  pasted share is smaller near the border and the targets follow the pasted share.
- kornia's two classes report opposite shares (mixup: the partner's; CutMix with
  ``use_correct_lambda``: the face's own); ``_mix_rows`` reads each one the way it is meant.

Targets come out as distributions (B, K), which the training loss already takes (the FER+ vote
distributions use the same soft-target cross-entropy). Random numbers come from torch's global
CPU generator, whose state the checkpoints save, so ``--resume`` stays exact. The batch gate given
to kornia is a CPU tensor so that deciding to mix never waits for the GPU; kornia's CutMix pastes
through a boolean mask, which does wait for the GPU once per CutMix batch (mixup does not).
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BatchMixer", "Mixed", "cutmix", "cutmix_box", "mixup", "soft_targets"]


@dataclass(frozen=True)
class Mixed:
    """A mixed batch: images, soft targets, and how they were made (for logging and tests).

    ``lam`` is the share of each image's own content (for CutMix, the share of pixels outside the
    pasted box); ``perm[i]`` is the partner of image ``i``; ``mode`` is ``mixup``, ``cutmix`` or
    ``none``.
    """

    images: Tensor
    targets: Tensor
    lam: float
    perm: Tensor
    mode: str


def soft_targets(target: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """Class indices (B,) -> one-hot rows with label smoothing; distributions (B, K) pass through.

    Smoothing matches ``F.cross_entropy(label_smoothing=...)``: ``(1 - eps) * onehot + eps / K``.
    """
    if target.ndim == 2:
        return target.float()
    onehot = F.one_hot(target, num_classes).float()
    return onehot * (1.0 - smoothing) + smoothing / num_classes


_MIXUP = K.RandomMixUpV2(data_keys=["input", "class"])
_CUTMIX = K.RandomCutMixV2(data_keys=["input", "class"], use_correct_lambda=True)


def _gate(n: int) -> Tensor:
    """kornia's batch gate, all on, on the CPU (a gate on the GPU would be read back each call)."""
    return torch.ones(n, dtype=torch.bool)


def _mix_rows(targets: Tensor, book: Tensor, own_share: bool) -> Tensor:
    """Apply kornia's class output ``book`` (B, 3): (row, partner row, share) to (B, K) targets.

    ``own_share`` says whose share the third column is: the face's own (CutMix with
    ``use_correct_lambda``) or its partner's (mixup).
    """
    own, partner = book[:, 0].long(), book[:, 1].long()
    share = book[:, 2:].to(targets.dtype)  # (B, 1)
    if own_share:
        return share * targets[own] + (1.0 - share) * targets[partner]
    return (1.0 - share) * targets[own] + share * targets[partner]


def mixup(images: Tensor, targets: Tensor, lam: float, perm: Tensor) -> tuple[Tensor, Tensor]:
    """``lam * x + (1 - lam) * x[perm]`` for images and (B, K) targets alike (kornia's
    ``RandomMixUpV2`` with this ``lam`` and pairing).

    Example:
        >>> x, y = torch.ones(2, 1, 4, 4), torch.eye(2)
        >>> mixed, t = mixup(x * torch.tensor([0.0, 1.0]).view(2, 1, 1, 1), y, 0.75, torch.tensor([1, 0]))
        >>> mixed[:, 0, 0, 0].tolist(), t.tolist()
        ([0.25, 0.75], [[0.75, 0.25], [0.25, 0.75]])
    """
    n, device = len(images), images.device
    params = {"batch_prob": _gate(n), "mixup_pairs": perm.to(device),
              "mixup_lambdas": torch.full((n,), 1.0 - lam, device=device)}  # kornia's lambda: the partner's share
    mixed, book = _MIXUP(images, torch.arange(n, device=device), params=params)
    return mixed, _mix_rows(targets, book, own_share=False)


def cutmix_box(height: int, width: int, lam: float,
               generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """A box ``(top, bottom, left, right)`` covering about ``1 - lam`` of the image, centred at a
    uniform random point and clipped to the image (so it may cover less)."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
    return top, bottom, left, right


def cutmix(images: Tensor, targets: Tensor, box: tuple[int, int, int, int],
           perm: Tensor) -> tuple[Tensor, Tensor, float]:
    """Paste ``images[perm]``'s ``box`` into ``images``; targets mix by the pixels each keeps
    (kornia's ``RandomCutMixV2`` with this box for every face).

    Returns the images, the targets and the actual ``lam`` (share of pixels outside the box).
    """
    top, bottom, left, right = box
    n, device = len(images), images.device
    h, w = images.shape[2:]
    # kornia's boxes are (x, y) corners, clockwise from top-left, inclusive: an empty box
    # (right == left) has its right edge left of its left one and covers nothing.
    corners = torch.tensor([[left, top], [right - 1, top], [right - 1, bottom - 1], [left, bottom - 1]],
                           dtype=torch.float32, device=device)
    params = {"batch_prob": _gate(n), "mix_pairs": perm.to(device).view(1, n),
              "crop_src": corners.expand(1, n, 4, 2), "image_shape": torch.tensor([h, w], device=device)}
    mixed, book = _CUTMIX(images, torch.arange(n, device=device), params=params)  # book: (1, B, 3)
    lam = 1.0 - (bottom - top) * (right - left) / (h * w)
    return mixed, _mix_rows(targets, book[0], own_share=True), lam


class BatchMixer:
    """Mixup and/or CutMix on whole batches, as selected by the training recipe.

    With both alphas set, each mixed batch uses one of the two, chosen with equal odds (as timm's
    ``Mixup`` does). ``prob`` is the chance that a batch is mixed at all; unmixed batches still
    get (smoothed) one-hot targets, so the loss sees one target format.

    Args:
        num_classes: K, the width of the targets.
        mixup_alpha: ``Beta(alpha, alpha)`` for the mixup weight; 0 = no mixup.
        cutmix_alpha: ``Beta(alpha, alpha)`` for the CutMix box area; 0 = no CutMix.
        prob: probability of mixing a batch.
        smoothing: label smoothing of hard targets before mixing.

    Example:
        >>> mixer = BatchMixer(7, mixup_alpha=0.2)
        >>> out = mixer(torch.rand(8, 1, 48, 48), torch.randint(0, 7, (8,)))
        >>> out.targets.shape, torch.allclose(out.targets.sum(1), torch.ones(8))
        (torch.Size([8, 7]), True)
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 prob: float = 1.0, smoothing: float = 0.0) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0 or not 0.0 <= prob <= 1.0:
            raise ValueError(f"BatchMixer: alphas must be >= 0 and prob in [0, 1], got mixup {mixup_alpha}, "
                             f"cutmix {cutmix_alpha}, prob {prob}")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.smoothing = smoothing

    @property
    def active(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def __call__(self, images: Tensor, target: Tensor) -> Mixed:
        targets = soft_targets(target, self.num_classes, self.smoothing).to(images.device)
        identity = torch.arange(len(images), device=images.device)
        if not self.active or float(torch.rand(())) >= self.prob:
            return Mixed(images, targets, 1.0, identity, "none")
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or float(torch.rand(())) < 0.5)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(len(images)).to(images.device)
        if use_cutmix:
            box = cutmix_box(images.shape[2], images.shape[3], lam)
            mixed, mixed_targets, lam = cutmix(images, targets, box, perm)
            return Mixed(mixed, mixed_targets, lam, perm, "cutmix")
        mixed, mixed_targets = mixup(images, targets, lam, perm)
        return Mixed(mixed, mixed_targets, lam, perm, "mixup")

"""One optimisation step of a training recipe, as the loop and the benchmarks run it: the
optimiser, the loss, batch preparation (uint8 faces -> augmented, normalised, channels-last) and
:class:`TrainStep`, which chains preparation, mixing (``mix.py``), erasing attention consistency
(``eac.py``), forward, backward and the optimiser's update.

On a GPU the step does no host work that waits for the device: the faces arrive as uint8 on the
device, the loss and the count of correct predictions come back as device tensors for the caller to
add up (read once an epoch), augmentation and mixing parameters are drawn on the CPU and applied on
the device, and the forward pass runs under bf16 autocast (``precision``), which halves activation
memory and runs the convolutions on the tensor cores' bf16 path. bf16 keeps float32's exponent
range, so no loss scaling is needed. One exception: kornia's CutMix pastes through a boolean mask,
one wait per CutMix batch. On the CPU the default is float32, and the arithmetic is exactly what it
was before the step was made public.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfer.errors import DeepferError
from deepfer.train.augment import Augment
from deepfer.train.config import TrainConfig
from deepfer.train.eac import ErasingAttentionConsistency
from deepfer.train.mix import BatchMixer

__all__ = ["StepOutput", "TrainStep", "autocast_dtype", "loss_fn", "make_optimizer", "prepare_batch", "set_lr"]


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The recipe's optimiser (``sgd`` is Nesterov SGD) over all of ``model``'s parameters."""
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (the schedules are applied per step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def loss_fn(logits: Tensor, target: Tensor, cfg: TrainConfig, model: nn.Module) -> Tensor:
    """Cross-entropy (label-smoothed for class indices (B,), soft-target for distributions (B, K):
    FER+ votes, mixed or distilled targets) plus the papers' ``fc_l2 * ||W_fc||^2``.

    ``model`` may be wrapped in DistributedDataParallel; its ``fc_weights()`` are read through it.
    """
    if target.ndim == 2:  # vote distribution (FER+): soft-target cross-entropy
        loss = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    else:
        loss = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
    if cfg.fc_l2:
        base = getattr(model, "module", model)
        loss = loss + cfg.fc_l2 * sum((w * w).sum() for w in base.fc_weights())
    return loss


def prepare_batch(images: Tensor, augment: nn.Module, config: Any, device: torch.device) -> Tensor:
    """uint8 faces (B, 1, H, W) -> augmented, normalised, channels-last float batch on ``device``."""
    x = images.to(device).float().div_(255.0)
    x = augment(x).sub_(config.mean).div_(config.std)
    return x.contiguous(memory_format=torch.channels_last)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a recipe's ``precision`` on ``device``, or None for float32.

    ``auto`` is bf16 on CUDA and float32 elsewhere (CPU bf16 autocast is slower than float32 on
    most CPUs, and the CPU recipes' numbers were measured in float32).

    Raises:
        DeepferError: for ``bfloat16`` on a CUDA device that cannot compute in bf16.
    """
    if precision == "float32" or (precision == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        if precision == "bfloat16":
            raise DeepferError(f"precision: bfloat16 asked for, but {torch.cuda.get_device_name(device)} has no bf16")
        return None
    return torch.bfloat16


@dataclass(frozen=True)
class StepOutput:
    """What one step reports, as device tensors (reading them waits for the device)."""

    loss: Tensor  # () the batch's mean loss, detached
    correct: Tensor  # () int64: faces whose top class is the (top) target class
    size: int  # faces in the batch


@dataclass
class TrainStep:
    """One optimisation step of a recipe, from uint8 faces to updated weights.

    Args:
        cfg: the recipe (loss options, mixing, EAC, precision).
        model: the network in training mode, possibly wrapped in DistributedDataParallel.
        optimizer: over the model's parameters (:func:`make_optimizer`).
        augment: the recipe's augmentation (:class:`~deepfer.train.augment.Augment`).
        mixer: mixup / CutMix (:class:`~deepfer.train.mix.BatchMixer`); inactive when off.
        eac: erasing attention consistency, or None.
        device: where the batch is put and the model lives.
        precision: autocast dtype, or None for float32 (:func:`autocast_dtype`).

    Example:
        >>> from deepfer.models import create_model
        >>> cfg = TrainConfig(model="deep-emotion", augment="none")
        >>> step = TrainStep.build(cfg, create_model("deep-emotion"), num_classes=7)
        >>> faces, labels = torch.zeros(4, 1, 48, 48, dtype=torch.uint8), torch.tensor([0, 1, 2, 3])
        >>> out = step(faces, labels)
        >>> out.loss.ndim, out.size
        (0, 4)
    """

    cfg: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    augment: nn.Module
    mixer: BatchMixer
    eac: ErasingAttentionConsistency | None
    device: torch.device
    precision: torch.dtype | None = None

    @classmethod
    def build(cls, cfg: TrainConfig, model: nn.Module, num_classes: int, device: torch.device | None = None,
              wrapped: nn.Module | None = None) -> TrainStep:
        """The step of recipe ``cfg`` for ``model`` (already on ``device``).

        Args:
            cfg: the recipe.
            model: the bare network (its ``config`` gives the input size).
            num_classes: the width of the targets (mixing makes one-hot rows this wide).
            device: defaults to the model's.
            wrapped: the model as the step should call it (DistributedDataParallel), if not ``model``.
        """
        device = device or next(model.parameters()).device
        # The order matches the loop's history: the optimiser is made after the augmentation, mixer
        # and EAC modules (none of which draws random numbers when built). The augmentation stays
        # off the device on purpose: kornia then draws its parameters with torch's CPU generator
        # (the stream checkpoints save) and its host-side branches on them (ColorJiggle's
        # ``.any()``, ``.tolist()``) read CPU tensors; moved to the GPU, each would wait for it.
        augment = Augment(cfg.augment, model.config.input_size)
        mixer = BatchMixer(num_classes, cfg.mixup, cfg.cutmix, cfg.mix_prob, cfg.label_smoothing)
        eac = ErasingAttentionConsistency(cfg.eac) if cfg.eac else None
        optimizer = make_optimizer(cfg, model)
        return cls(cfg, wrapped if wrapped is not None else model, optimizer, augment, mixer, eac, device,
                   autocast_dtype(cfg.precision, device))

    def train(self) -> None:
        """Put the model and the augmentation in training mode (validation leaves them in eval)."""
        self.model.train()
        self.augment.train()

    def __call__(self, images: Tensor, targets: Tensor) -> StepOutput:
        """Prepare, mix and learn from one batch: ``images`` uint8 (B, 1, H, W), ``targets`` class
        indices (B,) or distributions (B, K), both ideally already on the device."""
        x = prepare_batch(images, self.augment, getattr(self.model, "module", self.model).config, self.device)
        y = targets.to(self.device)
        if self.mixer.active:  # soft (B, K) targets from here on
            mixed = self.mixer(x, y)
            x, y = mixed.images.contiguous(memory_format=torch.channels_last), mixed.targets
        return self.update(x, y)

    def update(self, x: Tensor, y: Tensor) -> StepOutput:
        """Forward (with EAC when on), loss, backward and the optimiser's update on a prepared batch:
        alone, on a fixed batch, it is the model-only bound of the training speed."""
        with self._autocast():
            if self.eac is not None:
                logits, loss, _ = self.eac(self.model, x, y, lambda lg, t: loss_fn(lg, t, self.cfg, self.model))
            else:
                logits = self.model(x)
                loss = loss_fn(logits, y, self.cfg, self.model)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        hard = y.argmax(1) if y.ndim == 2 else y
        return StepOutput(loss.detach(), (logits.argmax(1) == hard).sum(), len(x))

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision)

"""Turn uint8 face crops into class probabilities with any deepfer model: the one place where
the preprocessing of a checkpoint is applied, and its calibration, shared by evaluation, inference
and explanation.

A model built from a checkpoint (:meth:`deepfer.models.checkpoint.Checkpoint.build`) carries the
checkpoint's calibration as ``model.calibration`` (as timm models carry ``pretrained_cfg``):
probabilities are ``softmax(logits / temperature)`` unless ``calibrated=False``. A temperature
does not change which class scores highest, only how sure the scores say the model is. With flip
TTA the temperature is applied to the average of the two views' probabilities (``p ∝ mean^(1/T)``),
so TTA's top class is the uncalibrated TTA's too and every accuracy stays as it was.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def to_input(images: Tensor, config: Any) -> Tensor:
    """uint8 faces (B, H, W) or (B, 1, H, W) -> the normalised float batch the model expects.

    ``config`` is the model's ModelConfig (``mean``, ``std``).
    """
    if images.ndim == 3:
        images = images.unsqueeze(1)
    x = images.float().div_(255.0)
    return x.sub_(config.mean).div_(config.std)


def temperature_of(model: nn.Module) -> float:
    """The temperature the model's probabilities are computed with: its checkpoint's calibration
    (``model.calibration``, set by ``Checkpoint.build``), or 1.0 for a model without one."""
    calibration = getattr(getattr(model, "module", model), "calibration", None)
    return 1.0 if calibration is None else float(calibration.temperature)


@torch.inference_mode()
def predict_logits(model: nn.Module, images: np.ndarray | Tensor, batch_size: int = 512) -> np.ndarray:
    """The model's logits (N, num_classes) float32 for uint8 faces (N, H, W): what a temperature is
    fitted on (:mod:`deepfer.train.calibrate`).

    Args:
        model: a deepfer model; it is put in eval mode.
        images: uint8 array or tensor (N, H, W).
        batch_size: faces per forward pass.
    """
    model.eval()
    config = getattr(model, "module", model).config
    device = next(model.parameters()).device
    faces = torch.as_tensor(images)
    out = [model(_batch(faces[start : start + batch_size], config, device)).float().cpu()
           for start in range(0, len(faces), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, config.num_classes), np.float32)


TTA_MODES = ("none", "photos", "all")
# Mirror-image averaging (deepfer.inference.Recognizer's ``tta``) is off by default: on the default
# weights it gains -0.4 points on the cross-dataset conditions at 1.07x the end-to-end time of a
# photo (benchmarks/TTA.md; the rule is >= 0.5 points at <= 1.15x). ``photos`` mirrors photos but not
# video frames (a frame's detection is shared by four frames, its classification is not).
TTA = "none"


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    images: np.ndarray | Tensor,
    batch_size: int = 512,
    tta: bool = False,
    calibrated: bool = True,
) -> np.ndarray:
    """Softmax probabilities (N, num_classes) for uint8 faces (N, H, W) at the model's size.

    Args:
        model: a deepfer model; it is put in eval mode (dropout off, batch-norm statistics
            frozen), the mistake that cost the public Deep-Emotion code 15 points.
        images: uint8 array or tensor (N, H, W).
        batch_size: faces per forward pass.
        tta: average the predictions of each face and its mirror image (then calibrate the average).
        calibrated: divide the logits by the model's temperature (:func:`temperature_of`) before
            the softmax; ``False`` gives the plain softmax.
    """
    model.eval()
    config = getattr(model, "module", model).config
    device = next(model.parameters()).device
    scale = 1.0 / temperature_of(model) if calibrated else 1.0
    faces = torch.as_tensor(images)
    out = []
    for start in range(0, len(faces), batch_size):
        x = _batch(faces[start : start + batch_size], config, device)
        logits = model(x)
        if not tta:
            p = (logits * scale).softmax(1) if scale != 1.0 else logits.softmax(1)
        elif scale == 1.0:
            p = 0.5 * (logits.softmax(1) + model(x.flip(3)).softmax(1))
        else:
            p = temper_mean(torch.stack([logits.log_softmax(1), model(x.flip(3)).log_softmax(1)]), scale)
        out.append(p.float().cpu())
    if not out:
        return np.zeros((0, config.num_classes), np.float32)
    return torch.cat(out).numpy()


def temper_mean(log_probs: Tensor, scale: float) -> Tensor:
    """``softmax(scale * log(mean_v p_v))``: views' log-probabilities (V, B, C) averaged in probability,
    then tempered (``scale = 1 / T``); the mean's top class is kept. Log-space throughout, so a class
    whose probability underflows in one view is still right."""
    log_mean = torch.logsumexp(log_probs.float(), 0) - math.log(log_probs.shape[0])  # (B, C)
    return (log_mean * scale).softmax(1)


def _batch(faces: Tensor, config: Any, device: torch.device) -> Tensor:
    return to_input(faces, config).to(device).contiguous(memory_format=torch.channels_last)

"""Turn uint8 face crops into class probabilities with any deepfer model: the one place where
the preprocessing of a checkpoint is applied, shared by evaluation, inference and explanation."""

from __future__ import annotations

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


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    images: np.ndarray | Tensor,
    batch_size: int = 512,
    tta: bool = False,
) -> np.ndarray:
    """Softmax probabilities (N, num_classes) for uint8 faces (N, H, W) at the model's size.

    Args:
        model: a deepfer model; it is put in eval mode (dropout off, batch-norm statistics
            frozen), the mistake that cost the public Deep-Emotion code 15 points.
        images: uint8 array or tensor (N, H, W).
        batch_size: faces per forward pass.
        tta: average the predictions of each face and its mirror image.
    """
    model.eval()
    config = getattr(model, "module", model).config
    device = next(model.parameters()).device
    faces = torch.as_tensor(images)
    out = []
    for start in range(0, len(faces), batch_size):
        x = to_input(faces[start : start + batch_size], config).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        p = model(x).softmax(1)
        if tta:
            p = 0.5 * (p + model(x.flip(3)).softmax(1))
        out.append(p.float().cpu())
    if not out:
        return np.zeros((0, config.num_classes), np.float32)
    return torch.cat(out).numpy()

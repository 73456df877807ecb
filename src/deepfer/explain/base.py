"""What every explanation method shares: the result type, the model's preprocessing, the "blank"
pixel value, per-face normalisation, target classes and an eval-mode guard.

Everything here reads only the common model surface (``config``, ``forward``), so no method needs a
per-model case.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deepfer.errors import DataError, ModelError
from deepfer.labels import FER7
from deepfer.models.predict import to_input

__all__ = ["Explanation", "Fill", "blank_value", "eval_mode", "load_explainable", "normalize_maps",
           "prepare", "resolve_targets", "unwrap"]

# ``"mean"``: the model's mean grey (``config.mean * 255``, 127.5 for the shipped models), which is
# exactly 0 in the normalised input: Deep-Emotion's "zero patch" applied where the network sees it.
# A number is a grey level 0..255 (0: black).
Fill = str | float


@dataclass(frozen=True)
class Explanation:
    """Importance maps of a batch of faces for one method.

    Attributes:
        method: ``occlusion``, ``saliency`` or ``gradcam``.
        heatmaps: float32 (N, H, W), each face's map with negatives clipped and scaled so that its
            maximum is 1 (0: no evidence for the target class; all zeros if nothing was found).
        raw: float32 (N, H, W), the unscaled map (occlusion: drop of the target's probability;
            saliency: max over channels of |d logit / d pixel|; Grad-CAM: the ReLU'd class map).
        targets: int64 (N,), the class each map explains (the predicted class by default).
        probs: float32 (N, num_classes), the softmax of the intact faces.
        flips: occlusion only: float32 (N, H, W), the fraction of the patches covering each pixel
            whose occlusion changed the predicted class (Deep-Emotion's "where the prediction
            changes"); ``None`` for the other methods.
        info: the method's settings (patch, stride, fill, ...).
    """

    method: str
    heatmaps: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    probs: np.ndarray
    flips: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.heatmaps)

    @property
    def predictions(self) -> np.ndarray:
        """int64 (N,): the predicted class of each intact face."""
        return self.probs.argmax(1)


def unwrap(model: nn.Module) -> nn.Module:
    """The deepfer model inside a DistributedDataParallel wrapper (or ``model`` itself)."""
    net = getattr(model, "module", model)
    if not hasattr(net, "config") or not hasattr(net, "cam_layer"):
        raise ModelError(f"{type(net).__name__} is not a deepfer model (no `config` / `cam_layer`)")
    return net


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate with dropout off and batch-norm statistics frozen, then restore the model's mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def prepare(faces: np.ndarray | Tensor, config: Any) -> Tensor:
    """uint8 faces (N, H, W) or one face (H, W) -> the normalised float batch (N, C, H, W).

    The same preprocessing as evaluation and inference (:func:`deepfer.models.predict.to_input`).
    """
    t = torch.as_tensor(np.asarray(faces) if not isinstance(faces, Tensor) else faces)
    if t.ndim == 2:
        t = t[None]
    size = (config.input_size, config.input_size)
    if t.ndim != 3 or tuple(t.shape[1:]) != size:
        raise DataError(f"{config.name}: expected faces of shape (N, {size[0]}, {size[1]}) or "
                        f"({size[0]}, {size[1]}), got {tuple(t.shape)}")
    # A private float copy: to_input normalises in place, and must not touch the caller's array.
    x = to_input(t.to(torch.float32, copy=True), config)  # (N, 1, H, W)
    if config.in_chans != 1:
        x = x.expand(-1, config.in_chans, -1, -1).contiguous()
    return x


def blank_value(config: Any, fill: Fill = "mean") -> float:
    """The normalised value that stands for a removed pixel (see :data:`Fill`)."""
    if fill == "mean":
        return 0.0
    if isinstance(fill, str):
        raise DataError(f"fill must be 'mean' or a grey level 0..255, got {fill!r}")
    level = float(fill)
    if not 0.0 <= level <= 255.0:
        raise DataError(f"fill must be a grey level 0..255, got {fill}")
    return (level / 255.0 - config.mean) / config.std


def normalize_maps(maps: np.ndarray | Tensor) -> np.ndarray:
    """Clip negatives and scale each (H, W) map of a (N, H, W) stack to a maximum of 1."""
    m = torch.as_tensor(maps, dtype=torch.float32).clamp(min=0)
    peak = m.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
    return (m / peak).numpy().astype(np.float32)


def resolve_targets(target: int | Sequence[int] | np.ndarray | Tensor | None, probs: Tensor) -> Tensor:
    """int64 (N,) classes to explain: the predicted ones for ``None``, else ``target`` (one class for
    all faces or one per face)."""
    n, k = probs.shape
    if target is None:
        return probs.argmax(1)
    t = torch.as_tensor(np.asarray(target), dtype=torch.int64).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise DataError(f"expected one target class or one per face ({n}), got {t.numel()}")
    if n and (int(t.min()) < 0 or int(t.max()) >= k):
        raise DataError(f"target classes must be in 0..{k - 1}, got {t.tolist()}")
    return t.clone()


def load_explainable(model: str | Path | nn.Module | None = None,
                     labels: Sequence[str] | None = None) -> tuple[nn.Module, list[str]]:
    """A deepfer model in eval mode and its class names.

    ``model`` is shipped weights' name, a checkpoint file, ``None`` for the shipped default, or a
    model object (whose names are ``labels`` or the first ``num_classes`` of FER2013's).
    """
    if isinstance(model, nn.Module):
        net = unwrap(model)
        names = list(labels) if labels is not None else list(FER7[: net.config.num_classes])
    else:
        from deepfer.models.pretrained import load_pretrained

        net, ckpt = load_pretrained(model)
        names = list(labels) if labels is not None else list(ckpt.labels)
    if len(names) != net.config.num_classes:
        raise ModelError(f"{net.config.name}: {len(names)} label names for {net.config.num_classes} outputs")
    return net.eval(), names

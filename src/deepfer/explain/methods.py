"""The heatmap methods by name, so the CLI, the per-emotion maps and the deletion curves treat them
alike: ``explain(model, faces, "gradcam")``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from deepfer.errors import DeepferError
from deepfer.explain.base import Explanation
from deepfer.explain.gradients import gradcam, saliency
from deepfer.explain.occlusion import occlusion_map

__all__ = ["HEATMAP_METHODS", "METHODS", "explain"]

HEATMAP_METHODS: dict[str, Callable[..., Explanation]] = {
    "occlusion": occlusion_map,
    "saliency": saliency,
    "gradcam": gradcam,
}
# Every name ``deepfer explain --method`` accepts; ``stn`` is a view, not a heatmap.
METHODS: tuple[str, ...] = (*HEATMAP_METHODS, "stn")

_OCCLUSION_ONLY = ("patch", "stride", "fill")


def explain(model: nn.Module, faces: np.ndarray | Tensor, method: str,
            target: int | Sequence[int] | np.ndarray | None = None, **options: Any) -> Explanation:
    """Heatmaps of ``faces`` by the named method (``occlusion``, ``saliency`` or ``gradcam``).

    ``options`` go to the method; the occlusion-only ones (``patch``, ``stride``, ``fill``) are
    dropped for the gradient methods, so one set of options serves every method.
    """
    fn = HEATMAP_METHODS.get(method)
    if fn is None:
        hint = " (the spatial transformer's view has no heatmap: use stn_view)" if method == "stn" else ""
        raise DeepferError(f"unknown heatmap method {method!r}; choose one of {', '.join(HEATMAP_METHODS)}{hint}")
    if method != "occlusion":
        options = {k: v for k, v in options.items() if k not in _OCCLUSION_ONLY}
    return fn(model, faces, target=target, **options)

"""The heatmap methods by name, so the CLI, the per-emotion maps and the deletion curves treat them
alike: ``explain(model, faces, "gradcam")``. A model with branches (``branches_info``) also has one
Grad-CAM per branch, ``gradcam:<branch>`` (e.g. ``gradcam:upper``): :func:`branch_methods` names
them, and :func:`with_branches` puts them after ``gradcam`` in a list of methods."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from deepfer.errors import DeepferError
from deepfer.explain.base import Explanation
from deepfer.explain.gradients import branch_names, gradcam, saliency
from deepfer.explain.occlusion import occlusion_map

__all__ = ["HEATMAP_METHODS", "METHODS", "branch_methods", "explain", "is_heatmap", "with_branches"]

HEATMAP_METHODS: dict[str, Callable[..., Explanation]] = {
    "occlusion": occlusion_map,
    "saliency": saliency,
    "gradcam": gradcam,
}
# Every name ``deepfer explain --method`` accepts; ``stn`` is a view, not a heatmap.
METHODS: tuple[str, ...] = (*HEATMAP_METHODS, "stn")

_OCCLUSION_ONLY = ("patch", "stride", "fill")
_BRANCH = "gradcam:"  # the prefix of a branch's Grad-CAM


def branch_methods(model: nn.Module) -> list[str]:
    """``gradcam:<branch>`` for each of a model's branches (``branches_info``); empty without."""
    return [_BRANCH + name for name in branch_names(model)]


def with_branches(methods: Sequence[str], branches: Sequence[str]) -> list[str]:
    """``methods`` (duplicates dropped) with the per-branch Grad-CAMs ``branches`` (from
    :func:`branch_methods`) right after ``gradcam``, those not already there; unchanged without
    ``gradcam``.

    Example:
        >>> with_branches(["occlusion", "gradcam"], ["gradcam:upper", "gradcam:lower"])
        ['occlusion', 'gradcam', 'gradcam:upper', 'gradcam:lower']
    """
    out = list(dict.fromkeys(methods))
    if "gradcam" in out:
        i = out.index("gradcam") + 1
        out[i:i] = [m for m in branches if m not in out]
    return out


def is_heatmap(method: str) -> bool:
    """Whether :func:`explain` draws ``method`` as a heatmap (``occlusion``, ``saliency``,
    ``gradcam``, ``gradcam:<branch>``)."""
    return method in HEATMAP_METHODS or (method.startswith(_BRANCH) and len(method) > len(_BRANCH))


def explain(model: nn.Module, faces: np.ndarray | Tensor, method: str,
            target: int | Sequence[int] | np.ndarray | None = None, **options: Any) -> Explanation:
    """Heatmaps of ``faces`` by the named method (``occlusion``, ``saliency``, ``gradcam`` or, for a
    model with branches, ``gradcam:<branch>``).

    ``options`` go to the method; the occlusion-only ones (``patch``, ``stride``, ``fill``) are
    dropped for the gradient methods, so one set of options serves every method.

    Raises:
        DeepferError: an unknown method, or a branch the model does not have.
    """
    if is_heatmap(method) and method not in HEATMAP_METHODS:
        options = {k: v for k, v in options.items() if k not in _OCCLUSION_ONLY}
        return gradcam(model, faces, target=target, branch=method[len(_BRANCH):], **options)
    fn = HEATMAP_METHODS.get(method)
    if fn is None:
        hint = " (the spatial transformer's view has no heatmap: use stn_view)" if method == "stn" else ""
        raise DeepferError(f"unknown heatmap method {method!r}; choose one of {', '.join(HEATMAP_METHODS)}{hint}")
    if method != "occlusion":
        options = {k: v for k, v in options.items() if k not in _OCCLUSION_ONLY}
    return fn(model, faces, target=target, **options)

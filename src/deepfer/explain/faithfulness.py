"""Deletion curves (Petsiuk et al., RISE, 2018, https://arxiv.org/abs/1806.07421): blank the pixels a
map calls most important first and watch accuracy fall. A map that finds what the model really
uses makes accuracy fall fastest, so the area under the curve measures faithfulness (lower =
more faithful), and a random pixel order is the baseline every method must beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deepfer.errors import DeepferError
from deepfer.explain.base import Fill, blank_value, eval_mode, prepare, unwrap
from deepfer.explain.methods import explain

__all__ = ["FRACTIONS", "DeletionCurve", "area_under", "compare_deletion", "deletion_curve", "deletion_ranks"]

FRACTIONS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))  # 0, 5, ..., 50 % removed


@dataclass(frozen=True)
class DeletionCurve:
    """Accuracy as the most important pixels are blanked first.

    Attributes:
        method: the map's method (``random`` for the baseline).
        fractions: float (F,), fraction of each face's pixels blanked.
        accuracy: float (F,), accuracy against the true labels.
        agreement: float (F,), fraction of faces whose predicted class is unchanged.
        auc: area under ``accuracy`` divided by the fractions' range (the mean accuracy over the
            curve, in accuracy units); lower = the map finds what the model uses.
    """

    method: str
    fractions: np.ndarray
    accuracy: np.ndarray
    agreement: np.ndarray
    auc: float

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "auc": round(self.auc, 5),
                "fractions": [round(float(f), 4) for f in self.fractions],
                "accuracy": [round(float(a), 5) for a in self.accuracy],
                "agreement": [round(float(a), 5) for a in self.agreement]}


def area_under(fractions: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> float:
    """Trapezoidal area under ``values`` over ``fractions``, divided by the fractions' range."""
    f, v = np.asarray(fractions, np.float64), np.asarray(values, np.float64)
    if len(f) < 2 or f[-1] <= f[0]:
        raise DeepferError(f"need at least two increasing fractions, got {f.tolist()}")
    return float(np.sum((v[1:] + v[:-1]) * np.diff(f)) / 2 / (f[-1] - f[0]))


def deletion_ranks(heatmaps: np.ndarray, seed: int = 0) -> np.ndarray:
    """int64 (N, H, W): each pixel's rank in deletion order (0 = most important, removed first).

    Ties (flat regions of occlusion or Grad-CAM maps) are broken in a seeded random order, so a
    map that says nothing is scored like the random baseline rather than like a raster scan.
    """
    maps = np.asarray(heatmaps, np.float64)
    n = len(maps)
    flat = maps.reshape(n, -1)
    noise = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((noise, -flat), axis=-1)  # primary key: importance, descending
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None].repeat(n, 0), axis=-1)
    return ranks.reshape(maps.shape)


def deletion_curve(
    model: nn.Module,
    faces: np.ndarray | Tensor,
    labels: np.ndarray,
    heatmaps: np.ndarray,
    method: str = "",
    fractions: Sequence[float] = FRACTIONS,
    fill: Fill = "mean",
    batch_size: int = 512,
    seed: int = 0,
) -> DeletionCurve:
    """Accuracy of ``model`` on ``faces`` with the top ``f`` of each face's pixels (by ``heatmaps``)
    set to the blank value, for each ``f`` in ``fractions``.

    Args:
        model: a deepfer model.
        faces: uint8 (N, H, W) faces at the model's input size.
        labels: int (N,) true classes, indices into the model's outputs.
        heatmaps: (N, H, W) importance maps (any scale; only the order matters).
        method: a name for the curve.
        fractions: increasing fractions of pixels to blank, from 0 (the intact faces).
        fill: blank value: ``"mean"`` (the model's mean grey) or a grey level 0..255.
        batch_size: faces per forward pass.
        seed: tie-breaking seed.

    Returns:
        A :class:`DeletionCurve`.
    """
    net = unwrap(model)
    x = prepare(faces, net.config)  # (N, C, H, W)
    n, _, h, w = x.shape
    labels_t = torch.as_tensor(np.asarray(labels, np.int64))
    if heatmaps.shape != (n, h, w) or len(labels_t) != n:
        raise DeepferError(f"expected {n} labels and heatmaps of shape {(n, h, w)}, got {len(labels_t)} and "
                           f"{heatmaps.shape}")
    ranks = torch.as_tensor(deletion_ranks(heatmaps, seed))[:, None]  # (N, 1, H, W)
    blank = blank_value(net.config, fill)
    acc, agree, reference = [], [], None
    with eval_mode(net), torch.inference_mode():
        for f in fractions:
            k = round(float(f) * h * w)
            preds = []
            for s in range(0, n, batch_size):
                xb = torch.where(ranks[s : s + batch_size] < k, blank, x[s : s + batch_size])
                preds.append(net(xb).argmax(1))
            pred = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)
            reference = pred if reference is None else reference
            acc.append(float((pred == labels_t).float().mean()) if n else float("nan"))
            agree.append(float((pred == reference).float().mean()) if n else float("nan"))
    fr = np.asarray(fractions, np.float64)
    return DeletionCurve(method, fr, np.asarray(acc), np.asarray(agree), area_under(fr, acc))


def compare_deletion(
    model: nn.Module,
    faces: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[str] = ("occlusion", "saliency", "gradcam"),
    fractions: Sequence[float] = FRACTIONS,
    fill: Fill = "mean",
    seed: int = 0,
    **options: Any,
) -> dict[str, DeletionCurve]:
    """Deletion curves of each method's maps (explaining each face's predicted class) and of a
    random pixel order (``"random"``), on the same faces with the same blank value.

    ``options`` go to the methods (``patch``, ``stride``, ``batch_size``); occlusion blanks its
    patches with the same ``fill`` as the deletion.
    """
    curves: dict[str, DeletionCurve] = {}
    for m in methods:
        maps = explain(model, faces, m, fill=fill, **options).heatmaps
        curves[m] = deletion_curve(model, faces, labels, maps, m, fractions, fill, seed=seed)
    rng = np.random.default_rng(seed + 1)
    random_maps = rng.random((len(faces), *np.shape(faces)[1:]))
    curves["random"] = deletion_curve(model, faces, labels, random_maps, "random", fractions, fill, seed=seed)
    return curves

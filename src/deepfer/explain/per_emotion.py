"""Per-emotion region maps, Deep-Emotion's summary figure: for each class, the mean importance map
over the correctly classified test faces of that class, drawn over the class's mean face.

Each face's map is first scaled to a maximum of 1 (:func:`~deepfer.explain.base.normalize_maps`), so
every face weighs the same in its class's mean.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from deepfer.errors import DeepferError, ParameterError
from deepfer.explain.base import load_explainable, unwrap
from deepfer.explain.methods import HEATMAP_METHODS, explain
from deepfer.explain.overlay import Panel, blend, save_panels
from deepfer.labels import map_to_model
from deepfer.models.predict import predict_proba

log = logging.getLogger(__name__)

__all__ = ["EmotionMaps", "per_emotion_maps", "per_emotion_report", "plot_per_emotion"]


@dataclass(frozen=True)
class EmotionMaps:
    """Mean maps per class.

    Attributes:
        method: the heatmap method.
        classes: class names, in the model's order.
        maps: float32 (K, H, W), mean normalised map of each class (zeros for a class without
            correctly classified faces).
        mean_faces: float32 (K, H, W), mean grey level of the same faces.
        counts: int64 (K,), faces averaged per class (after the cap).
        correct: int64 (K,), correctly classified faces per class (before the cap).
        totals: int64 (K,), faces per class.
        flips: occlusion only: float32 (K, H, W), mean fraction of patches flipping the prediction.
    """

    method: str
    classes: list[str]
    maps: np.ndarray
    mean_faces: np.ndarray
    counts: np.ndarray
    correct: np.ndarray
    totals: np.ndarray
    flips: np.ndarray | None = None

    def save_npz(self, path: str | Path) -> Path:
        """The raw arrays (``maps``, ``mean_faces``, ``counts``, ``correct``, ``totals``, ``classes``,
        ``flips`` for occlusion) as an ``.npz``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {"maps": self.maps, "mean_faces": self.mean_faces, "counts": self.counts,
                                  "correct": self.correct, "totals": self.totals,
                                  "classes": np.asarray(self.classes), "method": np.asarray(self.method)}
        if self.flips is not None:
            arrays["flips"] = self.flips
        np.savez_compressed(path, **arrays)
        return path


def per_emotion_maps(
    model: nn.Module,
    faces: np.ndarray,
    labels: np.ndarray,
    method: str = "occlusion",
    classes: Sequence[str] | None = None,
    max_per_class: int | None = 200,
    seed: int = 0,
    **options: Any,
) -> EmotionMaps:
    """Average the maps of the correctly classified faces of each class.

    Args:
        model: a deepfer model.
        faces: uint8 (N, H, W) faces at the model's input size.
        labels: int (N,) true classes, indices into the model's outputs.
        method: ``occlusion``, ``saliency`` or ``gradcam``.
        classes: class names (default: ``class0``, ``class1``, ...).
        max_per_class: explain at most this many faces per class (a seeded random sample);
            ``None`` for all.
        seed: seed of that sample.
        **options: passed to the method (``patch``, ``stride``, ``fill``, ``batch_size``).

    Returns:
        An :class:`EmotionMaps`; each class's maps explain that class.
    """
    net = unwrap(model)
    k = net.config.num_classes
    names = list(classes) if classes is not None else [f"class{i}" for i in range(k)]
    labels = np.asarray(labels, np.int64)
    if len(labels) != len(faces):
        raise DeepferError(f"{len(labels)} labels for {len(faces)} faces")
    if method not in HEATMAP_METHODS:
        raise DeepferError(f"per-emotion maps need a heatmap method ({', '.join(HEATMAP_METHODS)}), got {method!r}")
    pred = predict_proba(net, faces).argmax(1) if len(faces) else np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    chosen, correct, totals = [], np.zeros(k, np.int64), np.zeros(k, np.int64)
    for c in range(k):
        idx = np.flatnonzero((labels == c) & (pred == c))
        totals[c], correct[c] = int((labels == c).sum()), len(idx)
        if max_per_class is not None and len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, max_per_class, replace=False))
        chosen.append(idx)
    every = np.concatenate(chosen)
    h, w = faces.shape[1:]
    result = explain(net, faces[every], method, target=labels[every], **options) if len(every) else None
    maps = np.zeros((k, h, w), np.float32)
    mean_faces = np.zeros((k, h, w), np.float32)
    flips = np.zeros((k, h, w), np.float32) if method == "occlusion" else None
    counts = np.array([len(i) for i in chosen], np.int64)
    start = 0
    for c, idx in enumerate(chosen):
        if len(idx) and result is not None:
            part = slice(start, start + len(idx))
            maps[c] = result.heatmaps[part].mean(0)
            mean_faces[c] = faces[idx].astype(np.float32).mean(0)
            if flips is not None and result.flips is not None:
                flips[c] = result.flips[part].mean(0)
        start += len(idx)
    return EmotionMaps(method, names, maps, mean_faces, counts, correct, totals, flips)


def plot_per_emotion(result: EmotionMaps, path: str | Path, title: str = "") -> Path:
    """One row of panels, one per class: its mean map (scaled to its own maximum) over its mean face."""
    panels = []
    for c, name in enumerate(result.classes):
        if result.counts[c] == 0:
            panels.append(Panel(np.full(result.maps.shape[1:], 255, np.uint8), f"{name}\n(no correct faces)"))
            continue
        m = result.maps[c]
        face = np.clip(result.mean_faces[c] + 0.5, 0, 255).astype(np.uint8)
        panels.append(Panel(blend(face, m / max(float(m.max()), 1e-12), alpha=0.6),
                            f"{name}\nn={result.counts[c]} of {result.correct[c]} correct"))
    return save_panels(panels, path, title=title, colorbar=True, panel_inches=1.9)


def per_emotion_report(
    dataset: str,
    data: str | Path,
    protocol: str,
    out: str | Path,
    model: str | Path | nn.Module | None = None,
    method: str = "occlusion",
    part: str = "test",
    fold: int | None = None,
    max_per_class: int | None = 200,
    seed: int = 0,
    dataset_options: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Per-emotion maps on a protocol's split: writes ``per_emotion_<method>.png``, ``.npz`` and
    ``.json`` under ``out`` and returns the JSON summary.

    Args:
        dataset, data, protocol: as for ``deepfer evaluate`` (``seed`` is also the protocol's seed).
        out: folder for the outputs.
        model: shipped weights name, checkpoint, ``None`` (shipped default) or a model.
        method: ``occlusion``, ``saliency`` or ``gradcam``.
        part: ``test`` (default), ``val`` or ``train``.
        fold: the fold of a k-fold protocol (the one the checkpoint was trained on); required there.
        max_per_class: cap on faces explained per class.
        dataset_options: reader options (``size``, FER+ ``labels``).
        **options: passed to the method.
    """
    from deepfer.data import load_dataset, split

    net, names = load_explainable(model)
    options_ds = {"size": net.config.input_size, **(dataset_options or {})}
    faces_data = load_dataset(dataset, data, **options_ds)
    sp = split(faces_data, protocol, seed)
    if sp.is_kfold and fold is None:
        raise ParameterError("fold", f"{dataset}/{protocol} has {len(sp.folds)} folds: pass fold I, the fold the "
                             "checkpoint was trained on (its test faces are the only unseen ones)")
    fold = 0 if fold is None else fold
    if not 0 <= fold < len(sp.folds):
        raise DeepferError(f"{dataset}/{protocol}: fold {fold} out of range 0..{len(sp.folds) - 1}")
    chosen_fold = sp.folds[fold]
    index = chosen_fold.parts().get(part)
    if index is None:
        raise DeepferError(f"unknown split {part!r}: choose train, val or test")
    y = map_to_model(faces_data.labels[index], names, image_size=faces_data.image_size,
                     input_size=net.config.input_size, where="the model")
    known = y >= 0
    if not known.all():
        log.warning("%d faces have classes the model does not predict; skipped", int((~known).sum()))
    index, labels = index[known], y[known]
    result = per_emotion_maps(net, faces_data.images[index], labels, method, names, max_per_class, seed, **options)

    out = Path(out)
    stem = f"per_emotion_{method}"
    where = f"{dataset}/{protocol} {part}" + (f" {chosen_fold.name}" if sp.is_kfold else "")
    png = plot_per_emotion(result, out / f"{stem}.png",
                           title=f"{method} maps averaged over correctly classified faces, {where} "
                                 f"({net.config.name}); each panel scaled to its own maximum")
    npz = result.save_npz(out / f"{stem}.npz")
    summary = {
        "dataset": dataset, "protocol": protocol, "split": part, "fold": chosen_fold.name,
        "model": net.config.name, "method": method, "max_per_class": max_per_class, "seed": seed,
        "options": {k: v for k, v in options.items() if v is not None},
        "classes": {n: {"faces": int(result.totals[c]), "correct": int(result.correct[c]),
                        "averaged": int(result.counts[c])} for c, n in enumerate(result.classes)},
        "png": str(png), "npz": str(npz), "warnings": list(sp.warnings),
    }
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2))
    return summary

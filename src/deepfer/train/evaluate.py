"""Evaluate checkpoints on a dataset under a protocol: metrics, confusion matrix, JSON report.

k-fold and leave-one-out protocols take one checkpoint per fold (a run folder with
``fold<i>/best.pt``) and report the mean and standard deviation over folds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from deepfer.classify import predict_proba
from deepfer.data import FaceData, load_dataset, split
from deepfer.errors import DeepferError, ModelError
from deepfer.labels import EMOTION_INDEX
from deepfer.models.checkpoint import load_model
from deepfer.train.metrics import classification_report, plot_confusion
from deepfer.weights import ensemble_members, resolve

log = logging.getLogger(__name__)


def resolve_weights(weights: list[str], n_folds: int) -> list[list[Path]]:
    """For each fold, the checkpoint(s) to average. A folder stands for its ``best.pt`` or its
    ``fold<i>/best.pt``; a name that is no file or folder is a shipped weights name
    (``deepfer_ferplus``) or a shipped ensemble (its members); several are an ensemble (their
    probabilities are averaged; a checkpoint listed twice weighs twice)."""
    per_fold: list[list[Path]] = [[] for _ in range(n_folds)]
    weights = [m for w in weights for m in (ensemble_members(w) or [w])]  # a shipped ensemble: its members
    for w in weights:
        p = Path(w)
        if not p.exists() and p.suffix != ".pt":
            p = resolve(w)  # a shipped name; an unknown one is an error that lists the shipped names
        if p.is_dir():
            fold_ckpts = sorted(p.glob("fold*/best.pt"), key=lambda q: int(q.parent.name[4:]))
            if fold_ckpts:
                if len(fold_ckpts) != n_folds:
                    raise ModelError(f"{p}: {len(fold_ckpts)} fold checkpoints, the protocol has {n_folds} folds")
                for i, c in enumerate(fold_ckpts):
                    per_fold[i].append(c)
                continue
            p = p / "best.pt"
        if not p.is_file():
            raise ModelError(f"{p}: no such checkpoint")
        if n_folds > 1:
            raise ModelError(f"{p}: a {n_folds}-fold protocol needs a run folder with fold<i>/best.pt")
        per_fold[0].append(p)
    return per_fold


def ensemble_proba(paths: list[Path], images: np.ndarray, tta: bool) -> tuple[np.ndarray, list[str]]:
    """Average the probabilities of several checkpoints with the same label names."""
    total, labels = None, None
    for p in paths:
        model, ckpt = load_model(p)
        if labels is not None and ckpt["labels"] != labels:
            raise ModelError(f"{p}: labels {ckpt['labels']} differ from {labels}: cannot ensemble")
        labels = ckpt["labels"]
        probs = predict_proba(model, images, tta=tta)
        total = probs if total is None else total + probs
    assert total is not None and labels is not None
    return total / len(paths), labels


def evaluate_indices(paths: list[Path], data: FaceData, index: np.ndarray, tta: bool) -> dict[str, Any]:
    """Metrics of the (ensembled) checkpoints on ``data[index]``."""
    _, ckpt = load_model(paths[0])
    labels = ckpt["labels"]
    size = ckpt["preprocess"]["size"]
    if data.image_size != (size, size):
        raise DeepferError(f"{paths[0]} expects {size}x{size} faces, the data is {data.image_size}: pass --size {size}")
    model_index = {EMOTION_INDEX[name]: i for i, name in enumerate(labels)}
    known = np.array([int(c) in model_index for c in data.labels[index]], bool)
    if not known.all():
        log.warning("%d test images have classes the model does not predict; they are skipped", int((~known).sum()))
    index = index[known]
    probs, _ = ensemble_proba(paths, data.images[index], tta)
    y_true = np.array([model_index[int(c)] for c in data.labels[index]], np.int64)
    report = classification_report(y_true, probs.argmax(1), labels)
    report["skipped_unknown_class"] = int((~known).sum())
    return report


def evaluate(
    weights: list[str],
    dataset: str,
    data_path: str,
    protocol: str,
    part: str = "test",
    tta: bool = False,
    seed: int = 0,
    out: str | None = None,
    dataset_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate on the ``part`` split (``test`` by default) of every fold of ``protocol``.

    Returns a report with top-level ``accuracy`` (mean over folds for k-fold protocols),
    ``accuracy_std``, the weighted / unweighted precision and recall, per-fold reports and the
    protocol's leak warnings. Writes ``report.json`` and ``confusion.png`` under ``out``.
    """
    options = dict(dataset_options or {})
    data = load_dataset(dataset, data_path, **options)
    sp = split(data, protocol, seed)
    per_fold = resolve_weights(weights, len(sp.folds))
    folds = []
    for fold, paths in zip(sp.folds, per_fold):
        index = fold.parts().get(part)
        if index is None:
            raise DeepferError(f"unknown split {part!r}: choose train, val or test")
        rep = evaluate_indices(paths, data, index, tta)
        rep["fold"] = fold.name
        rep["weights"] = [str(p) for p in paths]
        folds.append(rep)
    keys = ["accuracy", "weighted_precision", "weighted_recall", "unweighted_precision", "unweighted_recall",
            "unweighted_f1"]
    report: dict[str, Any] = {
        "dataset": dataset,
        "data": data_path,
        "protocol": protocol,
        "split": part,
        "tta": "hflip" if tta else None,
        "n_folds": len(folds),
        "warnings": sp.warnings,
        "subject_independent": not any("subject" in w or "random" in w for w in sp.warnings),
    }
    for k in keys:
        vals = np.array([f[k] for f in folds])
        report[k] = float(vals.mean())
        if len(folds) > 1:
            report[f"{k}_std"] = float(vals.std(ddof=1))
    if len(folds) == 1:
        report.update({k: folds[0][k] for k in ("n", "per_class", "classes", "confusion_matrix")})
    else:
        report["confusion_matrix"] = np.sum([f["confusion_matrix"] for f in folds], axis=0).tolist()
        report["classes"] = folds[0]["classes"]
    report["folds"] = folds
    if out:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        (o / "report.json").write_text(json.dumps(report, indent=2))
        title = f"{dataset}/{protocol} {part}: accuracy {report['accuracy']:.4f}"
        plot_confusion(report["confusion_matrix"], report["classes"], o / "confusion.png", title)
    return report

"""Evaluate checkpoints on a dataset under a protocol: metrics, calibration (expected calibration
error and NLL, with the checkpoints' temperatures and without), confusion matrix, reliability
diagram, JSON report.

k-fold and leave-one-out protocols take one checkpoint per fold (a run folder with
``fold<i>/best.pt``) and report the mean and standard deviation over folds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from deepfer.data import FaceData, load_dataset, split
from deepfer.data.alignment import for_model
from deepfer.errors import DeepferError, ModelError
from deepfer.labels import map_to_model
from deepfer.models.classifier import alignment_of, build_classifier
from deepfer.train.metrics import calibration_report, classification_report, plot_confusion, plot_reliability
from deepfer.models.pretrained import resolve

log = logging.getLogger(__name__)


def resolve_weights(weights: list[str], n_folds: int) -> list[list[Path]]:
    """For each fold, the checkpoint(s) to average. A folder stands for its ``best.pt`` or its
    ``fold<i>/best.pt``; a name that is no file or folder is a shipped weights name
    (``deepfer_ferplus``); several are an ensemble (their
    probabilities are averaged; a checkpoint listed twice weighs twice)."""
    per_fold: list[list[Path]] = [[] for _ in range(n_folds)]
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


def evaluate_indices(paths: list[Path], data: FaceData, index: np.ndarray, tta: bool,
                     compare_uncalibrated: bool = True) -> dict[str, Any]:
    """Metrics of the checkpoints on ``data[index]``: one model, or the weighted ensemble of several
    (the classifier that ``deepfer predict`` uses; a checkpoint listed twice weighs twice).

    The probabilities are the calibrated ones ``deepfer predict`` gives. ``ece`` / ``nll`` are
    theirs, ``ece_uncalibrated`` / ``nll_uncalibrated`` those of the plain softmax (a second pass
    when ``compare_uncalibrated`` and some checkpoint has a temperature; the same numbers when none
    has), ``temperature`` each member's, ``reliability`` the bins of both.
    """
    if not paths:
        raise ModelError("no checkpoint to evaluate")
    clf = build_classifier(paths, batch_size=512, tta=tta)
    y = map_to_model(data.labels[index], clf.labels, image_size=data.image_size, input_size=clf.size,
                     where=str(paths[0]), hint=f"pass --size {clf.size}")
    known = y >= 0
    if not known.all():
        log.warning("%d test images have classes the model does not predict; they are skipped", int((~known).sum()))
    faces, y = for_model(data, alignment_of(clf)).images[index[known]], y[known]
    probs = clf.predict_proba(faces)
    report = classification_report(y, probs.argmax(1), clf.labels)
    report["skipped_unknown_class"] = int((~known).sum())
    temperatures = [float(getattr(m, "temperature", 1.0)) for m in getattr(clf, "members", [clf])]
    after = calibration_report(probs, y)
    before = after
    if compare_uncalibrated and any(t != 1.0 for t in temperatures):
        raw = build_classifier(paths, batch_size=512, tta=tta, calibrated=False)
        before = calibration_report(raw.predict_proba(faces), y)
    report.update(temperature=temperatures, ece=after["ece"], nll=after["nll"],
                  ece_uncalibrated=before["ece"], nll_uncalibrated=before["nll"],
                  reliability={"calibrated": after["bins"], "uncalibrated": before["bins"]})
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
    compare_uncalibrated: bool = True,
) -> dict[str, Any]:
    """Evaluate on the ``part`` split (``test`` by default) of every fold of ``protocol``.

    Returns a report with top-level ``accuracy`` (mean over folds for k-fold protocols),
    ``accuracy_std``, the weighted / unweighted precision and recall, the expected calibration
    error and NLL with and without the checkpoints' temperatures (``ece``, ``ece_uncalibrated``, ...;
    ``compare_uncalibrated=False`` skips the second pass and repeats the calibrated numbers),
    per-fold reports and the protocol's leak warnings. Writes ``report.json``, ``confusion.png``
    and ``reliability.png`` under ``out``.
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
        rep = evaluate_indices(paths, data, index, tta, compare_uncalibrated)
        rep["fold"] = fold.name
        rep["weights"] = [str(p) for p in paths]
        folds.append(rep)
    keys = ["accuracy", "weighted_precision", "weighted_recall", "unweighted_precision", "unweighted_recall",
            "unweighted_f1", "ece", "ece_uncalibrated", "nll", "nll_uncalibrated"]
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
    report["temperature"] = folds[0]["temperature"] if len(folds) == 1 else [f["temperature"] for f in folds]
    if len(folds) == 1:
        report.update({k: folds[0][k] for k in ("n", "per_class", "classes", "confusion_matrix", "reliability")})
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
        if len(folds) == 1:
            curves = {"calibrated": {"bins": report["reliability"]["calibrated"], "ece": report["ece"]}}
            if report["ece_uncalibrated"] != report["ece"]:
                curves = {"uncalibrated": {"bins": report["reliability"]["uncalibrated"],
                                           "ece": report["ece_uncalibrated"]}, **curves}
            plot_reliability(curves, o / "reliability.png", f"{dataset}/{protocol} {part}: reliability")
    return report

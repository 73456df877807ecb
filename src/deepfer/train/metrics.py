"""Classification metrics (scikit-learn), calibration metrics (expected calibration error,
negative log-likelihood, reliability bins) and their figures (confusion matrix, reliability diagram).

Expected calibration error follows Guo et al. 2017 (https://arxiv.org/abs/1706.04599): the top
score of each face is binned into 15 equal-width bins of (0, 1], and the gaps between each bin's
mean score and its accuracy are averaged, weighted by the bin's share of faces. 15 bins is their
choice; with 3,589 test faces a bin that matters holds hundreds of faces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

ECE_BINS = 15  # Guo et al.'s bin count


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, weighted and unweighted (macro) averages and
    the confusion matrix (rows = true class)."""
    labels = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    wp, wr, wf, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
    present = [i for i in labels if s[i] > 0]  # macro over classes that occur in the test data
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "weighted_precision": float(wp),
        "weighted_recall": float(wr),
        "weighted_f1": float(wf),
        "unweighted_precision": float(mp),
        "unweighted_recall": float(mr),
        "unweighted_f1": float(mf),
        "per_class": {
            names[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i in labels
        },
        "classes": list(names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def plot_confusion(matrix: list[list[int]], names: list[str], path: str | Path, title: str = "") -> None:
    """Write a row-normalised confusion-matrix PNG with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names), 0.8 + 0.7 * len(names)), dpi=120)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    _save(fig, ax, path, title)


def format_report(report: dict[str, Any]) -> str:
    """The text ``deepfer evaluate`` prints for an evaluation report."""
    lines: list[str] = []
    std = f" +- {report['accuracy_std']:.4f} over {report['n_folds']} folds" if "accuracy_std" in report else ""
    lines.append(f"{report['dataset']}/{report['protocol']} {report['split']}: accuracy {report['accuracy']:.4f}{std}"
                 + (" (TTA: hflip)" if report["tta"] else ""))
    lines.append(f"weighted precision {report['weighted_precision']:.4f}, weighted recall {report['weighted_recall']:.4f}, "
                 f"unweighted precision {report['unweighted_precision']:.4f}, unweighted recall {report['unweighted_recall']:.4f}")
    if "ece" in report:
        # One temperature per member; k-fold reports hold one such list per fold.
        flat = [t for entry in report.get("temperature", []) for t in (entry if isinstance(entry, list) else [entry])]
        if any(t != 1.0 for t in flat):
            shown = ", ".join(f"{t:.3g}" for t in dict.fromkeys(flat))
            lines.append(f"calibration: expected calibration error ({ECE_BINS} bins, top score) {report['ece']:.4f} with "
                         f"temperature {shown} ({report['ece_uncalibrated']:.4f} without); NLL {report['nll']:.4f} "
                         f"({report['nll_uncalibrated']:.4f} without)")
        else:
            lines.append(f"calibration: expected calibration error ({ECE_BINS} bins, top score) {report['ece']:.4f}; "
                         f"NLL {report['nll']:.4f} (not calibrated: temperature 1)")
    for name, m in report.get("per_class", {}).items():
        lines.append(f"  {name:<9} precision {m['precision']:.3f} recall {m['recall']:.3f} f1 {m['f1']:.3f} n={m['support']}")
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)



def reliability_bins(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per bin of the top score (``bins`` equal-width bins of (0, 1]): the number of faces, their
    mean top score and their accuracy (0 for an empty bin), what a reliability diagram draws.

    Args:
        probs: probabilities (N, C).
        y_true: true class indices (N,).
        bins: number of bins.

    Returns:
        ``{"edges": bins + 1 floats, "count": ..., "confidence": ..., "accuracy": ...}``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    conf, pred = probs.max(1), probs.argmax(1)
    right = (pred == np.asarray(y_true)).astype(np.float64)
    # Bin m holds scores in (m / bins, (m + 1) / bins]; a score of exactly 0 cannot be a top score.
    index = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, np.bincount(index, conf, bins) / count, 0.0)
        accuracy = np.where(count > 0, np.bincount(index, right, bins) / count, 0.0)
    return {"edges": np.linspace(0, 1, bins + 1).tolist(), "count": count.astype(int).tolist(),
            "confidence": mean_conf.tolist(), "accuracy": accuracy.tolist()}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error: ``sum_m |B_m| / N * |accuracy(B_m) - confidence(B_m)|``
    over ``bins`` equal-width bins of the top score (0 is perfectly calibrated; 0.0 for no faces)."""
    r = reliability_bins(probs, y_true, bins)
    count = np.asarray(r["count"], dtype=np.float64)
    if count.sum() == 0:
        return 0.0
    gap = np.abs(np.asarray(r["accuracy"]) - np.asarray(r["confidence"]))
    return float((count * gap).sum() / count.sum())


def negative_log_likelihood(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean ``-log p(true class)``, with probabilities floored at 1e-12 (a zero would be infinite)."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return 0.0
    return float(-np.log(np.maximum(probs[np.arange(len(probs)), np.asarray(y_true)], 1e-12)).mean())


def ece_noise_floor(probs: np.ndarray, bins: int = ECE_BINS, draws: int = 200, seed: int = 0) -> dict[str, float]:
    """The expected calibration error a perfectly calibrated model with these scores would still show
    on this many faces: labels are drawn from ``probs`` themselves ``draws`` times and the ECE of
    each draw taken. Binning a finite sample makes ECE positive even without miscalibration, so
    an ECE inside this range cannot be told from perfect calibration.

    Returns:
        ``{"mean", "p5", "p95"}`` of the simulated ECEs.
    """
    probs = np.asarray(probs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    cum = np.cumsum(probs / probs.sum(1, keepdims=True), 1)
    sims = [expected_calibration_error(probs, (rng.random(len(probs))[:, None] > cum).sum(1).clip(0, probs.shape[1] - 1),
                                       bins) for _ in range(draws)]
    return {"mean": float(np.mean(sims)), "p5": float(np.percentile(sims, 5)), "p95": float(np.percentile(sims, 95))}


def calibration_report(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """``{"ece", "nll", "mean_confidence", "accuracy", "bins": reliability_bins(...)}`` of probabilities."""
    probs = np.asarray(probs)
    return {"ece": expected_calibration_error(probs, y_true, bins), "nll": negative_log_likelihood(probs, y_true),
            "mean_confidence": float(probs.max(1).mean()) if len(probs) else 0.0,
            "accuracy": float((probs.argmax(1) == y_true).mean()) if len(probs) else 0.0,
            "bins": reliability_bins(probs, y_true, bins)}


def plot_reliability(curves: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Write a reliability diagram PNG: accuracy against mean top score per bin, one line per entry of
    ``curves`` (label -> a :func:`calibration_report`), the diagonal being perfect calibration, and
    the share of faces per bin underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.6), dpi=120, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    for i, (label, rep) in enumerate(curves.items()):
        b = rep["bins"]
        count = np.asarray(b["count"])
        keep = count > 0
        conf, acc = np.asarray(b["confidence"])[keep], np.asarray(b["accuracy"])[keep]
        ax.plot(conf, acc, marker="o", ms=3.5, lw=1.5, label=f"{label} (ECE {rep['ece']:.4f})")
        edges = np.asarray(b["edges"])
        width = (edges[1] - edges[0]) / (len(curves) + 1)
        hist.bar(edges[:-1] + (i + 0.5) * width, count / max(count.sum(), 1), width=width, align="edge", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, loc="upper left")
    hist.set_xlabel("top score (mean per bin)")
    hist.set_ylabel("share of faces")
    _save(fig, ax, path, title)


def _save(fig: Any, ax: Any, path: str | Path, title: str) -> None:
    """Title, tight layout, write (making the folder), close: how every figure here ends."""
    import matplotlib.pyplot as plt

    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)

"""Classification metrics (scikit-learn) and the confusion-matrix figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


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
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def format_report(report: dict[str, Any]) -> str:
    """The text ``deepfer evaluate`` prints for an evaluation report."""
    lines: list[str] = []
    std = f" +- {report['accuracy_std']:.4f} over {report['n_folds']} folds" if "accuracy_std" in report else ""
    lines.append(f"{report['dataset']}/{report['protocol']} {report['split']}: accuracy {report['accuracy']:.4f}{std}"
                 + (" (TTA: hflip)" if report["tta"] else ""))
    lines.append(f"weighted precision {report['weighted_precision']:.4f}, weighted recall {report['weighted_recall']:.4f}, "
                 f"unweighted precision {report['unweighted_precision']:.4f}, unweighted recall {report['unweighted_recall']:.4f}")
    for name, m in report.get("per_class", {}).items():
        lines.append(f"  {name:<9} precision {m['precision']:.3f} recall {m['recall']:.3f} f1 {m['f1']:.3f} n={m['support']}")
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)

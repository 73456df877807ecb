"""Training curves: the per-epoch ``log.csv`` that ``deepfer train`` writes, read back and drawn
(train and validation accuracy per epoch, the selected epoch marked), for model cards and the
results table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfer.errors import DeepferError

COLUMNS = ("epoch", "train_acc", "val_acc")


def read_log(path: str | Path) -> pd.DataFrame:
    """One run's ``log.csv`` (a line per finished epoch).

    Raises:
        DeepferError: the file is missing, is not CSV, or lacks the epoch / accuracy columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepferError(f"{path}: no such training log")
    try:
        log = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DeepferError(f"{path}: not a training log ({' '.join(str(exc).split())})") from None
    missing = [c for c in COLUMNS if c not in log.columns]
    if missing:
        raise DeepferError(f"{path}: training log without column(s) {', '.join(missing)}")
    if log.empty:
        raise DeepferError(f"{path}: training log has no epochs")
    return log


def plot_curves(logs: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> None:
    """Write a PNG of train (dashed) and validation (solid) accuracy per epoch for each named log
    (one per fold of a k-fold run), with the epoch selected on validation marked by a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    many = len(logs) > 1
    for i, (name, log) in enumerate(logs.items()):
        color = f"C{i % 10}"
        label = name if many and i < 10 else None
        ax.plot(log["epoch"], 100 * log["train_acc"], "--", color=color, lw=0.9, alpha=0.7)
        ax.plot(log["epoch"], 100 * log["val_acc"], "-", color=color, lw=1.2, label=label)
        best = log["val_acc"].idxmax()
        ax.plot(log["epoch"][best], 100 * log["val_acc"][best], "o", color=color, ms=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title((title + "\n" if title else "") + "dashed: train (augmented), solid: validation, dot: selected",
                 fontsize=8)
    if many:
        ax.legend(fontsize=6, ncol=5)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)

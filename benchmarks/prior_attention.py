"""Does prior attention help, and where? benchmarks/PRIOR_ATTENTION.md (+ .json)

    python benchmarks/prior_attention.py [--data ../shared/data] [--runs runs]

Reads the prior-attention runs that exist (`make ablation`'s `runs/ablation/fer2013_prior-attention*/seed*`,
the full-budget `runs/prior-attention_fer2013`) and, on FER2013's PrivateTest (the epoch was
selected on PublicTest by training; the test split is only scored here):

1. Per-class recall of each run against its comparator: the ablation's base runs
   (`runs/ablation/fer2013_base/seed*`, same budget) where they exist here, otherwise the shipped
   `deepfer_fer2013` (full budget: 40 epochs), named as such.
2. Branch knock-out: each branch's features replaced by their mean over 4,000 training faces (seed 0),
   so the head sees an average face there; the per-class recall each branch's loss costs. The
   source's claim to test: the mouth decides happiness, the eyes and brows surprise.
3. Training curves from each run's `log.csv` (training accuracy: did the under-fitting go?).
4. CK+48, subject-10fold (`runs/prior-attention_ckplus-10fold`, every fold): accuracy over the ten
   test folds, each scored with its own fold's checkpoint, and per-class recall.

Nothing is selected here: every number is a measurement of a run already chosen by its recipe.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfer.data import load_dataset, split
from deepfer.data.alignment import for_model
from deepfer.labels import map_to_model
from deepfer.models.checkpoint import Checkpoint
from deepfer.models.predict import to_input
from deepfer.train.evaluate import evaluate, evaluate_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _machine module
from _machine import cpu_name, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FER = "fer2013/fer2013_images.tar.gz"
CKPLUS = "ckplus/CK+48"


def runs_of(root: Path) -> dict[str, list[Path]]:
    """Recipe name -> its runs' best.pt, for the prior-attention runs present."""
    out: dict[str, list[Path]] = {}
    for best in sorted(root.glob("ablation/fer2013_prior-attention*/seed*/best.pt")):
        out.setdefault(best.parent.parent.name, []).append(best)
    full = root / "prior-attention_fer2013" / "best.pt"
    if full.exists():
        out["prior-attention_fer2013"] = [full]
    return out


def comparator(root: Path, recipe: str) -> tuple[str, list[Path | str]]:
    """What a recipe's per-class recall is set against (see the module docstring)."""
    base = sorted(root.glob("ablation/fer2013_base/seed*/best.pt"))
    if recipe.startswith("fer2013_") and base:
        return "fer2013_base (same budget, runs here)", list(base)
    return "deepfer_fer2013 (shipped; full budget, 40 epochs)", ["deepfer_fer2013"]


@torch.inference_mode()
def knockout(best: Path, data: Any, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Per-class recall with each branch's features set to their training mean (see above)."""
    ckpt = Checkpoint.load(best)
    net = ckpt.build().eval()
    faces = for_model(data, ckpt.preprocess.align).images  # `data` is aligned already for these runs
    y = map_to_model(data.labels[test], ckpt.labels)
    known = y >= 0
    sample = np.sort(np.random.default_rng(0).choice(train, min(4000, len(train)), replace=False))

    def features(index: np.ndarray) -> torch.Tensor:
        return torch.cat([net.forward_features(to_input(torch.from_numpy(faces[index[i : i + 512]]), net.config))
                          for i in range(0, len(index), 512)])

    mean = features(sample).mean(0)  # (C, h, w): the average canvas
    feats = features(test[known])
    y = y[known]

    def recall(f: torch.Tensor) -> np.ndarray:
        pred = net.forward_head(f).argmax(1).numpy()
        return np.array([(pred[y == c] == c).mean() if (y == c).any() else np.nan for c in range(len(ckpt.labels))])

    full = recall(feats)
    out: dict[str, Any] = {"labels": list(ckpt.labels), "all": full.tolist(), "accuracy": float((net.forward_head(feats).argmax(1).numpy() == y).mean())}
    for name, ch, _ in net.branches_info:
        knocked = feats.clone()
        knocked[:, ch] = mean[ch]
        r = recall(knocked)
        pred = net.forward_head(knocked).argmax(1).numpy()
        out[name] = {"recall": r.tolist(), "drop": (full - r).tolist(), "accuracy": float((pred == y).mean())}
    return out


def curves(best: Path) -> list[dict[str, float]]:
    log = best.parent / "log.csv"
    if not log.exists():
        return []
    with log.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _shown(path: str) -> str:
    """A run's path as the reader would type it: relative to the repository where it lies inside."""
    p = Path(path)
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else path


def write_markdown(results: dict[str, Any], meta: dict[str, Any], out: Path) -> None:
    lines = ["# Prior attention: does it help, and where?", "",
             "Generated by `python benchmarks/prior_attention.py`; do not edit by hand. FER2013 PrivateTest "
             "(official protocol: trained on Training, the epoch selected on PublicTest), recall in %. "
             f"{meta['cpu']}, {meta['date']}.", ""]
    for recipe, r in results["recipes"].items():
        labels = r["labels"]
        lines += [f"## `{recipe}` ({len(r['runs'])} run(s))", "",
                  f"Accuracy {100 * np.mean(r['accuracy']):.2f}% (runs: {', '.join(f'{100 * a:.2f}' for a in r['accuracy'])}); "
                  f"comparator {r['comparator']}: {100 * np.mean(r['comparator_accuracy']):.2f}%.", "",
                  "Per-class recall (mean over runs):", "",
                  "| | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels),
                  "| prior attention | " + " | ".join(f"{100 * v:.1f}" for v in r["recall"]) + " |",
                  "| comparator | " + " | ".join(f"{100 * v:.1f}" for v in r["comparator_recall"]) + " |",
                  "| difference | " + " | ".join(f"{100 * (a - b):+.1f}" for a, b in zip(r["recall"], r["comparator_recall"])) + " |",
                  "", "Branch knock-out (each branch's features set to their training mean; recall lost, points; "
                  "accuracy without the branch):", "",
                  "| branch knocked out | accuracy | " + " | ".join(labels) + " |", "| --- | --- |" + " --- |" * len(labels)]
        for name, k in r["knockout"].items():
            lines.append(f"| {name} | {100 * k['accuracy']:.2f} | " + " | ".join(f"{-100 * v:+.1f}" for v in k["drop"]) + " |")
        for run, rows in r["curves"].items():
            if rows:
                last = rows[-1]
                best = max(rows, key=lambda row: row.get("val_acc", 0))
                lines += ["", f"Training curve of `{run}`: training accuracy "
                          + ", ".join(f"{100 * row.get('train_acc', float('nan')):.1f}" for row in rows)
                          + f" (epochs 1-{int(last.get('epoch', len(rows)))}); PublicTest accuracy "
                          + ", ".join(f"{100 * row.get('val_acc', float('nan')):.1f}" for row in rows)
                          + f"; selected epoch {int(best.get('epoch', 0))}."]
        lines.append("")
    if "ckplus" in results:
        ck = results["ckplus"]
        lines += ["## CK+48, subject-10fold (no person on both sides of a fold)", "",
                  f"`{_shown(ck['run'])}`: {100 * ck['accuracy']:.2f} ± {100 * ck['accuracy_std']:.2f}% over the ten test folds "
                  f"(folds: {', '.join(f'{100 * a:.1f}' for a in ck['folds'])}). Per-class recall, mean over the folds "
                  "that hold the class:", "",
                  "| " + " | ".join(ck["recall"]) + " |", "|" + " --- |" * len(ck["recall"]),
                  "| " + " | ".join(f"{100 * v:.1f}" for v in ck["recall"].values()) + " |", ""]
    out.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--out", default=str(HERE / "PRIOR_ATTENTION.md"))
    args = ap.parse_args()
    root = Path(args.runs)
    found = runs_of(root)
    if not found:
        sys.exit(f"prior_attention: no prior-attention runs under {root} (make ablation, or train "
                 "configs/ablation/fer2013_prior-attention.yaml)")
    data = load_dataset("fer2013", str(Path(args.data) / FER))
    fold = split(data, "official", 0).folds[0]
    aligned = for_model(data, "landmarks")  # once, for every prior-attention run
    results: dict[str, Any] = {"recipes": {}}
    for recipe, bests in found.items():
        reports = [evaluate_indices([b], aligned, fold.test, tta=False, compare_uncalibrated=False) for b in bests]
        labels = list(reports[0]["per_class"])
        label, comp = comparator(root, recipe)
        # A shipped name or a checkpoint path: both are what build_classifier takes.
        comp_reports = [evaluate_indices([c], data, fold.test, tta=False, compare_uncalibrated=False) for c in comp]
        results["recipes"][recipe] = {
            "runs": [str(b) for b in bests], "labels": labels,
            "accuracy": [r["accuracy"] for r in reports],
            "recall": np.mean([[r["per_class"][c]["recall"] for c in labels] for r in reports], 0).tolist(),
            "comparator": label, "comparator_runs": [str(c) for c in comp],
            "comparator_accuracy": [r["accuracy"] for r in comp_reports],
            "comparator_recall": np.mean([[r["per_class"][c]["recall"] for c in labels] for r in comp_reports], 0).tolist(),
            "knockout": _mean_knockout([knockout(b, aligned, fold.train, fold.test) for b in bests]),
            "curves": {str(b.parent.relative_to(root)): curves(b) for b in bests},
        }
        print(f"{recipe}: done", file=sys.stderr)
    ck = root / "prior-attention_ckplus-10fold"
    if len(list(ck.glob("fold*/best.pt"))) == 10:
        rep = evaluate([str(ck)], "ckplus", str(Path(args.data) / CKPLUS), "subject-10fold", "test",
                       out=str(ck / "eval"), compare_uncalibrated=False)
        results["ckplus"] = {"run": str(ck), "accuracy": rep["accuracy"], "accuracy_std": rep["accuracy_std"],
                             "folds": [f["accuracy"] for f in rep["folds"]],
                             "recall": {c: float(np.mean([f["per_class"][c]["recall"] for f in rep["folds"]
                                                          if f["per_class"][c]["support"]]))
                                        for c in rep["folds"][0]["per_class"]}}
    meta = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d")}
    write_report(args.out, meta, results, write_markdown)


def _mean_knockout(runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = [k for k in runs[0] if k not in ("labels", "all", "accuracy")]
    return {n: {"drop": np.mean([r[n]["drop"] for r in runs], 0).tolist(),
                "accuracy": float(np.mean([r[n]["accuracy"] for r in runs]))} for n in names}


if __name__ == "__main__":
    main()

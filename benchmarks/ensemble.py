"""Choose ensembles on validation and test them once: benchmarks/ENSEMBLE.md (+ ENSEMBLE.json).

    python benchmarks/ensemble.py [--data ../shared/data] [--runs runs] [--max-size 6] [--render]

For each dataset (FER2013 official protocol; FER+ official splits, majority-vote labels) the
candidates are the shipped weights trained on it plus every finished single-split run under
``--runs`` (``runs/**/best.pt``: the FER2013 recipes, their warm restarts, the ensemble members of
``make members``, the ablation's runs), except those matching ``--exclude`` (by default FER2013's
15-epoch ablation runs).
Greedy forward selection with replacement (deepfer.train.ensemble) picks the members on the
validation split only (FER2013 PublicTest, FER+ FER2013Valid); the test split is then used once,
with and without flip TTA. The cost in speed is measured too: each member's single-face latency
(batch 1, 2 threads, median of 100 calls), so the table states what the accuracy costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfer.data import load_dataset, split
from deepfer.data.alignment import for_model
from deepfer.labels import map_to_model
from deepfer.models.classifier import TorchClassifier, alignment_of, weighted_mean
from deepfer.train.ensemble import greedy_selection, weights_of
from deepfer.train.metrics import classification_report
from deepfer.models.pretrained import _shipped, load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _machine module
from _machine import cpu_name, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATASETS = {
    "fer2013": ("fer2013/fer2013_images.tar.gz", {}, "FER2013, official protocol: select on PublicTest, test on PrivateTest"),
    "ferplus": ("ferplus", {"labels": "majority"},
                "FER+, official splits, majority-vote labels: select on FER2013Valid, test on FER2013Test"),
}
METRICS = ["accuracy", "weighted_precision", "weighted_recall", "unweighted_precision", "unweighted_recall"]


def candidates(dataset: str, runs: Path, exclude: Sequence[str] = ()) -> dict[str, Path]:
    """Shipped weights and finished runs trained on ``dataset`` with one split (name -> file); runs
    whose folder under ``runs`` matches a pattern of ``exclude`` (``fnmatch``) are left out."""
    found: dict[str, Path] = {}
    for name, p in _shipped().items():
        if p.is_file() and load_checkpoint(p).info.get("dataset") == dataset:
            found[name] = p
    for p in sorted(runs.glob("**/best.pt")):
        info = load_checkpoint(p).info
        if info.get("dataset") != dataset or p.parent.name.startswith("fold"):
            continue
        name = str(p.parent.relative_to(runs))
        if any(fnmatch(name, pat) for pat in exclude):
            continue
        if name in found or not (p.parent / "summary.json").is_file():
            continue  # shipped already, or still training (fit writes summary.json when it ends)
        found[name] = p
    return found


def latency_ms(path: Path, size: int, calls: int = 100) -> float:
    """Median single-face latency of one model (batch 1), in ms."""
    clf = TorchClassifier.from_checkpoint(load_checkpoint(path), batch_size=512)
    face = np.random.default_rng(0).integers(0, 256, (1, size, size), dtype=np.uint8)
    for _ in range(10):
        clf.predict_proba(face)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        clf.predict_proba(face)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def run_dataset(dataset: str, data_root: Path, runs: Path, max_size: int,
                exclude: Sequence[str] = ()) -> dict[str, Any] | None:
    rel, options, protocol_text = DATASETS[dataset]
    cands = candidates(dataset, runs, exclude)
    if not cands:
        print(f"{dataset}: no candidates (no shipped weights or finished runs)", file=sys.stderr)
        return None
    data = load_dataset(dataset, str(data_root / rel), **options)
    fold = split(data, "official", 0).folds[0]
    names, probs, labels = list(cands), {}, None
    for name in names:
        ckpt = load_checkpoint(cands[name])
        if labels is None:
            labels = list(ckpt.labels)
        elif list(ckpt.labels) != labels:
            print(f"{name}: labels {list(ckpt.labels)} differ from {labels}; left out", file=sys.stderr)
            continue
        # The classifiers `deepfer predict` and `deepfer evaluate` use, with and without flip TTA.
        model = ckpt.build()
        clf = {tta: TorchClassifier(model, labels, batch_size=512, tta=tta) for tta in (False, True)}
        faces = for_model(data, alignment_of(clf[False])).images  # landmark-aligned for a model that takes them
        probs[name] = {"val": {False: clf[False].predict_proba(faces[fold.val])},  # selection: no TTA
                       "test": {tta: clf[tta].predict_proba(faces[fold.test]) for tta in (False, True)}}
        print(f"{dataset}: {name} scored", file=sys.stderr)
    names = list(probs)
    if labels is None:
        print(f"{dataset}: no candidate could be scored", file=sys.stderr)
        return None
    y = {part: map_to_model(data.labels[idx], labels) for part, idx in (("val", fold.val), ("test", fold.test))}

    def report(w: np.ndarray, part: str, tta: bool) -> dict[str, Any]:
        # Averaged as EnsembleClassifier averages (the members' probabilities are computed once, above).
        mean = weighted_mean([probs[n][part][tta] for n in names], w)
        return classification_report(y[part], mean.argmax(1), labels)

    singles = []
    for i, n in enumerate(names):
        one = np.eye(len(names))[i]
        singles.append({"name": n, "val": report(one, "val", False)["accuracy"],
                        "test": report(one, "test", False)["accuracy"], "test_tta": report(one, "test", True)["accuracy"]})
    chosen = greedy_selection([probs[n]["val"][False] for n in names], y["val"], max_size)
    w = weights_of(chosen, len(names))
    members = [n for n, wi in zip(names, w) if wi > 0]
    size = load_checkpoint(cands[members[0]]).preprocess.size
    lat = {n: latency_ms(cands[n], size) for n in members}
    best_single = max(singles, key=lambda s: s["val"])
    return {
        "dataset": dataset,
        "protocol": protocol_text,
        "candidates": singles,
        "selection_order": [names[i] for i in chosen],
        "weights": {n: float(wi) for n, wi in zip(names, w) if wi > 0},
        "val": report(w, "val", False),
        "test": report(w, "test", False),
        "test_tta": report(w, "test", True),
        "best_single_on_val": best_single,
        "latency_ms": lat,
        "ensemble_latency_ms": float(sum(lat.values())),
        "single_latency_ms": latency_ms(cands[best_single["name"]], size),
    }


def write_markdown(results: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
    lines = [
        "# Ensembles chosen on validation",
        "",
        "Generated by `python benchmarks/ensemble.py`; do not edit by hand. Members are chosen by greedy",
        "forward selection with replacement (Caruana et al. 2004) on the validation split only; a member",
        "is added only while it raises validation accuracy. The test split is used once, at the end.",
        "Probabilities are averaged with the weights shown. Latency: one face (batch 1), "
        f"{meta['threads']} threads, median of 100 calls, {meta['cpu']}.",
    ]
    if meta.get("exclude"):
        lines += ["", "Candidates: the shipped weights and the finished runs under `runs/`, except run folders matching "
                  + ", ".join(f"`{p}`" for p in meta["exclude"]) + " (`--exclude`)."]
    for r in results:
        lines += ["", f"## {r['protocol']}", "", "| candidate | val acc | test acc | test acc + flip TTA |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| `{s['name']}` | {pct(s['val'])} | {pct(s['test'])} | {pct(s['test_tta'])} |" for s in r["candidates"]]
        members = ", ".join(f"`{n}` × {w:.2f}" for n, w in r["weights"].items())
        b = r["best_single_on_val"]
        lines += [
            "",
            f"Chosen ({len(r['selection_order'])} picks): {members}.",
            "",
            "| model | val acc | test acc | + flip TTA | weighted P / R | unweighted P / R | latency per face |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            f"| best single on val (`{b['name']}`) | {pct(b['val'])} | {pct(b['test'])} | {pct(b['test_tta'])} | | | "
            f"{r['single_latency_ms']:.2f} ms |",
            f"| ensemble | {pct(r['val']['accuracy'])} | {pct(r['test']['accuracy'])} | {pct(r['test_tta']['accuracy'])} | "
            f"{pct(r['test']['weighted_precision'])} / {pct(r['test']['weighted_recall'])} | "
            f"{pct(r['test']['unweighted_precision'])} / {pct(r['test']['unweighted_recall'])} | "
            f"{r['ensemble_latency_ms']:.2f} ms |",
        ]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--max-size", type=int, default=6)
    ap.add_argument("--exclude", nargs="*", default=["ablation*/fer2013_*"],
                    help="run folders (under --runs) that are not candidates; by default FER2013's 15-epoch "
                         "ablation runs (27 models, all below the 40-epoch members on validation), whose "
                         "evaluation would take 15 minutes on a 2-core CPU; `--exclude` alone keeps them all")
    ap.add_argument("--out", default=str(HERE / "ENSEMBLE.md"))
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the markdown from the JSON beside it (no evaluation)")
    args = ap.parse_args()
    if args.render:
        saved = json.loads(Path(args.out).with_suffix(".json").read_text())
        write_markdown(saved["results"], saved["meta"], Path(args.out))
        print(f"wrote {args.out} from {Path(args.out).with_suffix('.json')}")
        return
    torch.set_num_threads(2)
    results = [r for d in args.datasets
               if (r := run_dataset(d, Path(args.data), Path(args.runs), args.max_size, args.exclude))]
    meta = {"exclude": args.exclude, "threads": 2, "cpu": cpu_name(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    write_report(args.out, meta, results, write_markdown)


if __name__ == "__main__":
    main()

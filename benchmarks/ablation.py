"""Evaluate the ablation runs and regenerate benchmarks/ABLATION.md (+ ABLATION.json): every recipe
in configs/ablation/ against its dataset's base recipe, same protocol and budget.

    python benchmarks/ablation.py [--configs configs/ablation] [--runs runs/ablation] [--bench]

A recipe NAME is trained into runs/ablation/NAME/seed<S>/ (``make ablation`` does it for seeds 0
and 1). Each run's best.pt was selected on the validation split during training; here it is
tested once on the test split (FER2013: PrivateTest). FER+ runs are all tested on the majority-vote
labels, whatever labels they were trained on. Rows are mean ± std over the seeds found, plus the
ensemble of those seeds (probabilities averaged, as ``deepfer evaluate --weights A B``).
Recipes without a finished run are listed as such; nothing is filled in by hand.

``--bench`` also measures each recipe's training step (augmentation, mixing, EAC, forward,
backward, AdamW step) on random faces: batch 128, one thread, a few steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfer.models import create_model
from deepfer.train.config import TrainConfig, load_config
from deepfer.train.evaluate import evaluate
from deepfer.train.step import TrainStep
from deepfer.models.pretrained import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _machine module
from _machine import cpu_name  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METRICS = ["accuracy", "weighted_precision", "weighted_recall", "unweighted_precision", "unweighted_recall"]
IGNORED = {"out", "seed", "threads", "eval_batch_size"}  # options that do not define a variant
PROTOCOLS = {
    "fer2013": "FER2013, official protocol: train on Training, select the epoch on PublicTest, test on PrivateTest",
    "ferplus": "FER+, official splits: train FER2013Train, select on FER2013Valid, test on FER2013Test "
               "(majority-vote labels)",
}


@dataclass(frozen=True)
class Variant:
    name: str
    cfg: TrainConfig
    base: str

    @property
    def is_base(self) -> bool:
        return self.name == self.base


def _flat(cfg: TrainConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.to_dict().items():
        if key in IGNORED:
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def changes(cfg: TrainConfig, base: TrainConfig) -> str:
    """What a recipe changes against its base, read from the two files."""
    a, b = _flat(cfg), _flat(base)
    diff = [f"{k}: {a.get(k, '-')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(diff) if diff else "(base)"


def load_variants(folder: Path) -> list[Variant]:
    variants = []
    for path in sorted(folder.glob("*.yaml")):
        cfg = load_config(path)
        variants.append(Variant(path.stem, cfg, f"{cfg.dataset}_base"))
    names = {v.name for v in variants}
    missing = sorted({v.base for v in variants} - names)
    if missing:
        raise SystemExit(f"{folder}: no base recipe {', '.join(missing)}.yaml for its dataset")
    return sorted(variants, key=lambda v: (v.cfg.dataset, not v.is_base, v.name))


def _data_path(cfg: TrainConfig) -> str:
    p = Path(cfg.data)
    return str(p if p.is_absolute() else ROOT / p)


def _eval_options(cfg: TrainConfig) -> dict[str, Any]:
    options = dict(cfg.dataset_options)
    if cfg.dataset == "ferplus":
        options["labels"] = "majority"  # one test set for majority- and soft-label training
    return options


def _log(run: Path) -> tuple[int, float | None]:
    """Epochs logged and mean training images/s of a run folder."""
    path = run / "log.csv"
    if not path.is_file():
        return 0, None
    rows = list(csv.DictReader(path.open()))
    speeds = [float(r["images_per_s"]) for r in rows if r.get("images_per_s")]
    return len(rows), (float(np.mean(speeds)) if speeds else None)


def fingerprint(path: Path) -> str:
    """Size and modification time of a checkpoint: a rewritten best.pt gets a new one."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _cached(previous: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Earlier evaluations from ABLATION.json, by run folder: reused while the checkpoint is unchanged."""
    cache = {s["run"]: s for r in previous.get("rows", []) for s in r.get("seeds", []) if "fingerprint" in s}
    cache.update({f"ensemble:{r['variant']}": {"fingerprints": r["ensemble_fingerprints"], "ensemble": r["ensemble"]}
                  for r in previous.get("rows", []) if "ensemble_fingerprints" in r})
    return cache


def assess(v: Variant, runs_root: Path, cache: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per-seed test metrics, their mean and std, and the seeds' ensemble, for one recipe. ``cache``
    (see ``_cached``) holds earlier evaluations; a seed whose best.pt is unchanged is not run again."""
    cache = cache or {}
    row: dict[str, Any] = {"variant": v.name, "dataset": v.cfg.dataset, "base": v.base, "epochs": v.cfg.epochs,
                           "seeds": [], "status": "not trained yet"}
    run_dirs = sorted(p for p in (runs_root / v.name).glob("seed*") if (p / "best.pt").is_file())
    for run in run_dirs:
        epochs, speed = _log(run)
        fp = fingerprint(run / "best.pt")
        hit = cache.get(str(run))
        if hit is not None and hit["fingerprint"] == fp:
            row["seeds"].append({**hit, "epochs_run": epochs, "train_images_per_s": speed})
            continue
        ckpt = load_checkpoint(run / "best.pt")
        info = ckpt.info
        seed = int(info["train_config"]["seed"])
        rep = evaluate([str(run / "best.pt")], v.cfg.dataset, _data_path(v.cfg), v.cfg.protocol, "test",
                       seed=seed, dataset_options=_eval_options(v.cfg))
        # Validation accuracy on the same labels as the test (FER+: majority votes), so that the variant
        # chosen on validation is chosen on one yardstick whatever labels it trained on.
        val_rep = evaluate([str(run / "best.pt")], v.cfg.dataset, _data_path(v.cfg), v.cfg.protocol, "val",
                       seed=seed, dataset_options=_eval_options(v.cfg))
        model = ckpt.build()
        seed_row = {"seed": seed, "run": str(run), "fingerprint": fp, "epochs_run": epochs,
                    "best_epoch": info["best_epoch"], "val_accuracy": val_rep["accuracy"],
                    "val_accuracy_as_trained": info["val_accuracy"],
                    "train_images_per_s": speed, "params": sum(p.numel() for p in model.parameters()),
                    # Checkpoints from before the field was written were all trained on this project's CPU.
                    "device": info.get("device", "cpu"),
                    "stored_as": info.get("stored_as") or info.get("stored_dtype", "float32"),
                    **{k: rep[k] for k in METRICS}}
        row["seeds"].append(seed_row)
    if not run_dirs:
        return row
    finished = sum(s["epochs_run"] >= v.cfg.epochs for s in row["seeds"])
    row["status"] = "done" if finished == len(row["seeds"]) else (
        "in training: " + ", ".join(f"seed {s['seed']} {s['epochs_run']}/{v.cfg.epochs} epochs" for s in row["seeds"]
                                    if s["epochs_run"] < v.cfg.epochs))
    for k in METRICS + ["val_accuracy"]:
        vals = np.array([s[k] for s in row["seeds"]], float)
        row[k] = float(vals.mean())
        if len(vals) > 1:
            row[f"{k}_std"] = float(vals.std(ddof=1))
    row["params"] = row["seeds"][0]["params"]
    row["device"] = " + ".join(dict.fromkeys(s["device"] for s in row["seeds"]))
    speeds = [s["train_images_per_s"] for s in row["seeds"] if s["train_images_per_s"]]
    row["train_images_per_s"] = float(np.mean(speeds)) if speeds else None
    fps = [s["fingerprint"] for s in row["seeds"]]
    if len(run_dirs) > 1 and cache.get(f"ensemble:{v.name}", {}).get("fingerprints") == fps:
        row["ensemble"] = cache[f"ensemble:{v.name}"]["ensemble"]
    elif len(run_dirs) > 1:
        rep = evaluate([str(r / "best.pt") for r in run_dirs], v.cfg.dataset, _data_path(v.cfg), v.cfg.protocol,
                       "test", seed=row["seeds"][0]["seed"], dataset_options=_eval_options(v.cfg))
        row["ensemble"] = {k: rep[k] for k in METRICS}
    if "ensemble" in row:
        row["ensemble_fingerprints"] = fps
    return row


def _same_recipe(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a recipe is the one a row was measured with: equal on every option the row recorded
    (options added to TrainConfig since then, such as ``minutes`` or ``precision``, take defaults that
    do not change the recipe)."""
    return all(new.get(k) == value for k, value in old.items())


def bench(cfg: TrainConfig, batch: int = 128, steps: int = 5, threads: int = 1) -> dict[str, Any]:
    """Training images/s of one recipe's full step on random 48x48 faces (7 classes)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(cfg.model, num_classes=7, **cfg.model_options).to(memory_format=torch.channels_last)
    step = TrainStep.build(cfg, model, num_classes=7, device=torch.device("cpu"))  # the loop's own step
    step.train()
    faces = torch.randint(0, 256, (batch, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (batch,))
    for _ in range(2):  # warm-up: allocator, oneDNN kernels
        step(faces, labels)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step(faces, labels)
        times.append(time.perf_counter() - t)
    # The median step: on a shared CPU a step that another job interrupted says nothing about the recipe.
    return {"params": sum(p.numel() for p in model.parameters()),
            "train_images_per_s": round(batch / float(np.median(times)), 1),
            "batch_size": batch, "steps": steps, "threads": threads}


def pct(x: float | None, std: float | None = None) -> str:
    if x is None:
        return ""
    return f"{100 * x:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One dataset's rows: the variant with the best validation accuracy (never the test split)
    against the base, or None before the base and a variant are both trained."""
    base = next((r for r in rows if r["variant"] == r["base"] and "accuracy" in r), None)
    done = [r for r in rows if r["variant"] != r["base"] and "accuracy" in r]
    if base is None or not done:
        return None
    best = max(done, key=lambda r: r["val_accuracy"])
    stds = [r.get("accuracy_std") for r in (best, base)]
    gap = best["accuracy"] - base["accuracy"]
    return {"variant": best["variant"], "val": best["val_accuracy"], "base_val": base["val_accuracy"],
            "test": best["accuracy"], "base_test": base["accuracy"], "beats": gap > 0,
            "test_std": stds[0], "base_test_std": stds[1],
            # A gap under the larger of the two seed spreads is not a difference one can rely on.
            "within_noise": None if None in stds else abs(gap) < max(stds),
            "trained": len(done), "variants": len(rows) - 1}


def verdict_line(v: dict[str, Any]) -> str:
    line = (f"Best variant on validation: `{v['variant']}` (val {pct(v['val'])} vs base {pct(v['base_val'])}); "
            f"on test {pct(v['test'], v.get('test_std'))} vs base {pct(v['base_test'], v.get('base_test_std'))}: "
            f"{'beats' if v['beats'] else 'does not beat'} the base ({v['trained']} of {v['variants']} variants "
            "trained).")
    if v.get("within_noise") is None:
        return line + " One seed: no spread to judge the gap by."
    if v["within_noise"]:
        return line + " The gap is smaller than the seeds' spread (std): within noise, not a reliable difference."
    return line


def render(rows: list[dict[str, Any]], variants: dict[str, Variant], speed: dict[str, Any]) -> str:
    budget = " / ".join(str(e) for e in sorted({v.cfg.epochs for v in variants.values()}))
    lines = [
        "# Ablation: attention blocks, prior attention, augmentation, noisy-label training",
        "",
        "Generated by `make ablation` (`python benchmarks/ablation.py`) from the runs under",
        "`runs/ablation/`; do not edit by hand. Each recipe in `configs/ablation/` changes one thing against",
        f"its dataset's base recipe (same model otherwise, same budget: {budget} epochs, same protocol). The epoch",
        "was selected on the validation split; the test split was used once, here. Metrics in % on the",
        "test split: mean ± std over seeds (n = number of seeds); 'ensemble' rows average the seeds'",
        "probabilities. Unweighted = macro average over classes. Val acc: the selected epoch on the",
        "validation split, scored on the test's labels (FER+: majority votes, also for runs trained on the",
        "vote distribution), the yardstick for choosing the best variant. Trained on: the device that trained",
        "the runs, with the training images/s logged (mean over epochs): `cpu` is this project's shared",
        "2-core CPU (2 threads, or 1 each where two runs trained side by side; other jobs may have run beside",
        "it); runs trained on a GPU ran eight at a time",
        "(`make ablation ABLATION_JOBS=8`), so their speed is a share of the GPU. Recipe, budget and protocol",
        "do not depend on the device.",
        "",
    ]
    if any(s.get("stored_as", "float32") != "float32" for r in rows for s in r.get("seeds", [])):
        lines += ["Runs trained on the GPU machine came back as float16 copies of their best.pt (the precision the",
                  "package ships weights in) and were evaluated here, on the CPU, by this script.", ""]
    by_base = {r["variant"]: r for r in rows}
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        lines += [f"## {PROTOCOLS.get(dataset, dataset)}", "",
                  "| recipe | changes vs base | n | accuracy | Δ acc vs base | weighted P | weighted R | "
                  "unweighted P | unweighted R | val acc | params | trained on (img/s) | status |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in (r for r in rows if r["dataset"] == dataset):
            v = variants[r["variant"]]
            change = changes(v.cfg, variants[v.base].cfg) if not v.is_base else "(base)"
            head = f"| `{r['variant']}` | {change} |"
            if "accuracy" not in r:
                lines.append(f"{head} 0 | | | | | | | | | | {r['status']} |")
                continue
            base = by_base.get(v.base, {})
            delta = "" if v.is_base or "accuracy" not in base else f"{100 * (r['accuracy'] - base['accuracy']):+.2f}"
            cells = [pct(r[k], r.get(f"{k}_std")) for k in METRICS]
            img_s = f"{r['device']} ({r['train_images_per_s']:,.0f})" if r.get("train_images_per_s") else r["device"]
            lines.append(f"{head} {len(r['seeds'])} | {cells[0]} | {delta} | {' | '.join(cells[1:])} | "
                         f"{pct(r['val_accuracy'], r.get('val_accuracy_std'))} | {r['params']:,} | {img_s} | "
                         f"{r['status']} |")
            if "ensemble" in r:
                e = r["ensemble"]
                delta = "" if "accuracy" not in base else f"{100 * (e['accuracy'] - base['accuracy']):+.2f}"
                lines.append(f"| `{r['variant']}` ensemble | {len(r['seeds'])} seeds averaged | {len(r['seeds'])} | "
                             f"{pct(e['accuracy'])} | {delta} | {' | '.join(pct(e[k]) for k in METRICS[1:])} | "
                             f"| | | |")
        lines.append("")
        if (v := verdict([r for r in rows if r["dataset"] == dataset])) is not None:
            lines += [verdict_line(v), ""]
    if speed:
        meta = speed.get("meta", {})
        lines += ["## Training speed of each recipe (benchmark, not a run)", "",
                  f"`python benchmarks/ablation.py --bench`: the full training step (augmentation, mixing, EAC, "
                  f"forward, backward, AdamW) on random faces, batch {meta.get('batch_size')}, "
                  f"{meta.get('threads')} thread, median of {meta.get('steps')} timed steps, on {meta.get('cpu', '?')} "
                  f"(measured {meta.get('date', '?')}; other jobs may have shared the CPU).", "",
                  "| recipe | params | train img/s |", "| --- | --- | --- |"]
        stale = []
        for name, s in speed.get("recipes", {}).items():
            v = variants.get(name)
            now = v and sum(p.numel() for p in create_model(v.cfg.model, num_classes=7, **v.cfg.model_options).parameters())
            if now and now != s["params"]:  # the recipe's model changed since it was measured
                stale.append(name)
                continue
            lines.append(f"| `{name}` | {s['params']:,} | {s['train_images_per_s']:.0f} |")
        if stale:
            lines += ["", f"Left out, measured for an earlier model of the recipe (rerun `--bench`): "
                      f"{', '.join(f'`{n}`' for n in stale)}; `benchmarks/PRIOR_ATTENTION_SPEED.md` has "
                      "prior attention's current cost."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=str(ROOT / "configs" / "ablation"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "ablation"))
    ap.add_argument("--out", default=str(HERE / "ABLATION.md"))
    ap.add_argument("--bench", action="store_true", help="measure each recipe's training step (a few minutes)")
    ap.add_argument("--bench-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="threads for evaluation")
    ap.add_argument("--fresh", action="store_true", help="evaluate every run again, even unchanged checkpoints")
    args = ap.parse_args()
    variants = load_variants(Path(args.configs))
    out_json = Path(args.out).with_suffix(".json")
    previous = json.loads(out_json.read_text()) if out_json.is_file() else {}
    speed = previous.get("bench", {})
    if args.bench:
        speed = {"meta": {"batch_size": 128, "threads": 1, "steps": args.bench_steps, "torch": str(torch.__version__),
                          "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d")},
                 "recipes": {}}
        for v in variants:
            speed["recipes"][v.name] = bench(v.cfg, steps=args.bench_steps)
            print(f"bench {v.name:<28} {speed['recipes'][v.name]}", flush=True)
    torch.set_num_threads(args.threads)
    cache = {} if args.fresh else _cached(previous)
    before = {r["variant"]: r for r in previous.get("rows", [])}
    rows = []
    for v in variants:
        row = assess(v, Path(args.runs), cache)
        # Runs trained elsewhere (a GPU machine) and not copied here keep their measured row, as long
        # as the recipe is the one they were trained with.
        old = before.get(v.name)
        recipe = previous.get("recipes", {}).get(v.name)
        if not row["seeds"] and old and old.get("seeds") and recipe is not None and _same_recipe(recipe, v.cfg.to_dict()):
            row = old
        rows.append(row)
        print(f"{v.name:<28} {rows[-1]['status']}", flush=True)
    named = {v.name: v for v in variants}
    text = render(rows, named, speed)
    Path(args.out).write_text(text)
    out_json.write_text(json.dumps({"rows": rows, "bench": speed,
                                    "recipes": {v.name: v.cfg.to_dict() for v in variants}}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()

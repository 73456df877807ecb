"""Train a plan of teacher runs side by side on one GPU within a time budget, then pack what comes
back: float16 checkpoints, every run's probabilities on its train / validation / test faces, logs.

    python scripts/gpu_teachers.py --plan configs/teachers/plan-fer2013.yaml --pack $OUT [--minutes 5]
        [--runs runs/teachers] [--jobs N] [--data fer2013=PATH] [--only NAME ...]

What it does, in order:

1. Reads the plan (``minutes:`` and ``runs:``, each a recipe and its seeds; a run is named
   ``<recipe>-s<seed>``) and decodes each dataset once, so the runs start from deepfer's cache
   instead of decoding the same archive side by side.
2. Starts every run (``--jobs`` at a time, default all) as its own ``deepfer train --minutes M
   --resume`` process: one-cycle over the time budget, the faces in GPU memory, bf16 autocast.
   The runs share the GPU; each gets ``cores / jobs`` CPU threads. A run that already has its
   ``summary.json`` is not trained again, and a killed run resumes where its last epoch ended.
3. For each finished run: its ``best.pt`` (the epoch chosen on validation) as a float16
   checkpoint, and its softmax probabilities on the fold's faces, computed on the GPU: train
   (flip-averaged, what distillation uses), validation and test (plain and flip-averaged), so
   ensembles are chosen on validation without running the teachers again.
4. Packs into ``--pack``: ``manifest.json`` (per run: recipe, seed, epochs, images/s, peak GPU
   memory, validation and test accuracy, which file holds its weights), ``teachers.tar.gz``
   (probabilities, logs, recipes, the manifest) and ``weights-<k>.tar`` parts of float16
   checkpoints, best validation accuracy first, within the limits of what a device session
   brings back (``--max-files`` files of at most ``--part-mib`` MiB, ``--total-mib`` in all);
   checkpoints that do not fit are named in the manifest as left behind (their probabilities are
   packed all the same).

A GPU session, step by step (measured here: the repository's tracked files are 18.3 MB and
FER2013's archive 45.6 MB, under the 64 MiB a device call carries; FER+'s archive, 62.4 MB, does
not fit beside the repository, so FER+ teachers need its faces carried in two calls or a smaller
copy). kornia is not installed on that machine: carry its wheel (1.9 MB, ``pip download --no-deps
kornia==0.9.0`` for Python 3.12); its Rust companion kornia_rs (5.3 MB, used only by kornia.io)
does not fit, and a stub module stands in for it::

    mkdir -p .gpu && cp ../shared/data/fer2013/fer2013_images.tar.gz .gpu/ && cp kornia-0.9.0-*.whl .gpu/
    # device run, carry [".gpu"], timeout ~ 9 min for --minutes 5:
    pip install -q --no-deps --target /tmp/site .gpu/kornia-*.whl && mkdir -p /tmp/site/kornia_rs &&
    echo 'io = None' > /tmp/site/kornia_rs/__init__.py && export PYTHONPATH=/tmp/site:$PWD/src &&
    python3 scripts/gpu_teachers.py --plan configs/teachers/plan-fer2013.yaml --data fer2013=.gpu/fer2013_images.tar.gz \
        --pack $OUT --minutes 5

The command ends about two minutes after the budget (decoding, the test pass, probabilities,
packing). On the CPU the same script runs with a tiny budget (the test suite does it on a
generated dataset).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shlex
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from deepfer.data import load_dataset, split
from deepfer.errors import DeepferError
from deepfer.labels import map_to_model
from deepfer.models.checkpoint import Checkpoint
from deepfer.models.predict import predict_proba
from deepfer.train.config import TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
log = logging.getLogger("gpu_teachers")


@dataclass(frozen=True)
class Run:
    name: str
    recipe: Path
    cfg: TrainConfig
    out: Path


def read_plan(path: Path, runs_root: Path, minutes: float | None, data: dict[str, str], only: list[str]) -> list[Run]:
    """The plan's runs, each with its recipe resolved: seed, time budget, data path and folder."""
    try:
        plan = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeepferError(f"{path}: cannot read the plan ({exc})") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("runs"), list):
        raise DeepferError(f"{path}: a plan holds `runs:`, a list of {{recipe: FILE, seeds: [..]}}")
    budget = minutes if minutes is not None else plan.get("minutes")
    if not budget or budget <= 0:
        raise DeepferError(f"{path}: no time budget: set `minutes:` in the plan or pass --minutes")
    runs = []
    for i, entry in enumerate(plan["runs"]):
        if not isinstance(entry, dict) or "recipe" not in entry:
            raise DeepferError(f"{path}: runs[{i}] needs a `recipe:` file")
        recipe = Path(entry["recipe"])
        recipe = recipe if recipe.is_absolute() else (ROOT / recipe if (ROOT / recipe).is_file() else path.parent / recipe)
        for seed in entry.get("seeds", [0]):
            name = f"{recipe.stem}-s{seed}"
            if only and name not in only:
                continue
            base = load_config(recipe)
            data_path = data.get(base.dataset) or str(_resolve(base.data))
            cfg = load_config(recipe, seed=int(seed), minutes=float(budget), data=data_path,
                              out=str(runs_root / name))
            runs.append(Run(name, recipe, cfg, runs_root / name))
    if not runs:
        raise DeepferError(f"{path}: no runs to train" + (f" among {only}" if only else ""))
    return runs


def _resolve(data: str) -> Path:
    p = Path(data)
    return p if p.is_absolute() else ROOT / p


def decode_once(runs: list[Run]) -> None:
    """Decode each dataset the runs read into deepfer's cache, once, before they start."""
    seen = set()
    for run in runs:
        key = (run.cfg.dataset, run.cfg.data, json.dumps(run.cfg.dataset_options, sort_keys=True))
        if key not in seen:
            seen.add(key)
            t = time.time()
            data = load_dataset(run.cfg.dataset, run.cfg.data, **run.cfg.dataset_options)
            log.info("%s: %d faces decoded in %.0f s", run.cfg.dataset, len(data), time.time() - t)


def train_all(runs: list[Run], jobs: int, threads: int) -> dict[str, int]:
    """Train the runs as separate processes, ``jobs`` at a time; returns each run's exit status."""
    pending = [r for r in runs if not (r.out / "summary.json").is_file()]
    status = {r.name: 0 for r in runs if r not in pending}
    active: dict[str, subprocess.Popen[bytes]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    while pending or active:
        while pending and len(active) < jobs:
            run = pending.pop(0)
            run.out.mkdir(parents=True, exist_ok=True)
            recipe = run.out / "recipe.yaml"
            recipe.write_text(yaml.safe_dump({**run.cfg.to_dict(), "threads": threads}, sort_keys=False))
            cmd = [sys.executable, "-m", "deepfer.cli", "-v", "train", "--config", str(recipe), "--resume"]
            with (run.out.parent / f"{run.name}.log").open("ab") as out:
                active[run.name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
            log.info("started %s: %s", run.name, shlex.join(cmd))
        time.sleep(1.0)
        for name, proc in list(active.items()):
            if proc.poll() is not None:
                status[name] = proc.returncode
                del active[name]
                log.info("%s finished (exit %d)", name, proc.returncode)
    return status


def probabilities(run: Run, device: torch.device) -> dict[str, np.ndarray]:
    """The run's best.pt on its fold's faces: train (flip-averaged), val and test (plain and
    flip-averaged), with each face's class in the model's output order (-1: a class it lacks)."""
    ckpt = Checkpoint.load(run.out / "best.pt")
    model = ckpt.build().to(device).to(memory_format=torch.channels_last)
    data = load_dataset(run.cfg.dataset, run.cfg.data, **run.cfg.dataset_options)
    sp = split(data, run.cfg.protocol, run.cfg.seed)
    if len(sp.folds) != 1:
        raise DeepferError(f"{run.recipe}: teachers use single-fold protocols; {run.cfg.protocol} has {len(sp.folds)}")
    out: dict[str, np.ndarray] = {"classes": np.array(ckpt.labels)}
    for part, index in sp.folds[0].parts().items():
        if not len(index):
            continue
        faces = torch.from_numpy(data.images[index]).to(device)
        out[f"labels_{part}"] = map_to_model(data.labels[index], ckpt.labels)
        out[f"{part}_tta"] = predict_proba(model, faces, run.cfg.eval_batch_size, tta=True).astype(np.float16)
        if part != "train":
            out[part] = predict_proba(model, faces, run.cfg.eval_batch_size).astype(np.float16)
    return out


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())


def summarise(run: Run, status: int, probs: dict[str, np.ndarray] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"name": run.name, "recipe": str(run.recipe.relative_to(ROOT) if run.recipe.is_relative_to(ROOT)
                                                          else run.recipe),
                           "seed": run.cfg.seed, "model": run.cfg.model, "dataset": run.cfg.dataset,
                           "minutes": run.cfg.minutes, "exit_status": status}
    log_path = run.out / "log.csv"
    if log_path.is_file():
        rows = list(csv.DictReader(log_path.open()))
        row["epochs_run"] = len(rows)
        row["train_images_per_s"] = float(np.mean([float(r["images_per_s"]) for r in rows])) if rows else None
        if rows and "gpu_memory_gb" in rows[-1]:
            row["gpu_memory_gb"] = float(rows[-1]["gpu_memory_gb"])
        row["epoch_minutes"] = sum(float(r["seconds"]) for r in rows) / 60  # training + validation passes
    if (run.out / "last.pt").is_file():
        loop = Checkpoint.load(run.out / "last.pt").training.loop
        row["budget_minutes_spent"] = loop.get("budget_spent", 0.0) / 60  # also checkpoint writes
    if (run.out / "best.pt").is_file():
        best = Checkpoint.load(run.out / "best.pt")
        row.update(best_epoch=best.info.get("best_epoch"), val_accuracy=best.info.get("val_accuracy"),
                   device=best.info.get("device"),
                   params=sum(v.numel() for k, v in best.state_dict.items() if v.is_floating_point()
                              and "running_" not in k))
    if probs is not None:
        for part in ("val", "test"):
            if part in probs:
                row[f"{part}_accuracy"] = _accuracy(probs[part], probs[f"labels_{part}"])
                row[f"{part}_accuracy_tta"] = _accuracy(probs[f"{part}_tta"], probs[f"labels_{part}"])
    return row


def pack(runs: list[Run], rows: list[dict[str, Any]], dest: Path, max_files: int, part_mib: float,
         total_mib: float, command: str) -> dict[str, Any]:
    """Write manifest.json, teachers.tar.gz and weights-<k>.tar parts into ``dest`` (see the module doc)."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = runs[0].out.parent / "_pack"
    staging.mkdir(exist_ok=True)
    by_name = {r.name: r for r in runs}
    manifest: dict[str, Any] = {"command": command, "device": _device_name(), "torch": str(torch.__version__),
                                "date": time.strftime("%Y-%m-%d %H:%M"), "runs": rows}
    # Weights, best validation accuracy first (never chosen on test), one tar per part.
    halves: list[tuple[dict[str, Any], Path]] = []
    for row in sorted(rows, key=lambda r: -(r.get("val_accuracy") or -1.0)):
        best = by_name[row["name"]].out / "best.pt"
        if best.is_file():
            path = staging / f"{row['name']}.pt"
            Checkpoint.load(best).for_inference(half=True).save(path)
            halves.append((row, path))
    parts: list[list[Path]] = []  # the weights-<k>.tar files, each a list of checkpoints
    sizes: list[int] = []
    for row, path in halves:
        size = path.stat().st_size + 2048  # with its tar header and padding
        if sum(sizes) + size > total_mib * MiB or size > part_mib * MiB:
            row["weights"] = f"left behind: {size / MiB:.1f} MiB does not fit in the pack"
            continue
        if not parts or sizes[-1] + size > part_mib * MiB:
            if len(parts) + 3 > max_files:  # a new part, besides manifest.json and teachers.tar.gz
                row["weights"] = "left behind: no file left in the pack"
                continue
            parts.append([])
            sizes.append(0)
        parts[-1].append(path)
        sizes[-1] += size
        row["weights"] = f"weights-{len(parts)}.tar"
    for k, files in enumerate(parts, 1):
        with tarfile.open(dest / f"weights-{k}.tar", "w") as tf:
            for f in files:
                tf.add(f, arcname=f.name)
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    with tarfile.open(dest / "teachers.tar.gz", "w:gz") as tf:
        tf.add(staging / "manifest.json", arcname="manifest.json")
        for run in runs:
            for name in ("probs.npz", "log.csv", "summary.json", "recipe.yaml"):
                if (run.out / name).is_file():
                    tf.add(run.out / name, arcname=f"{run.name}/{name}")
            train_log = run.out.parent / f"{run.name}.log"
            if train_log.is_file():
                tf.add(train_log, arcname=f"{run.name}/train.log")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = (dest / "teachers.tar.gz").stat().st_size
    if size > part_mib * MiB:  # the probabilities grow with the runs: about 0.9 MB a FER2013 run
        log.error("teachers.tar.gz is %.1f MiB, over the %.1f MiB a file may have: split the plan", size / MiB, part_mib)
    return manifest


def _device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", required=True, help="YAML: minutes and runs (recipe + seeds)")
    ap.add_argument("--pack", required=True, help="folder for what comes back ($OUT on the device machine)")
    ap.add_argument("--minutes", type=float, help="each run's training budget (overrides the plan's)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "teachers"), help="run folders")
    ap.add_argument("--jobs", type=int, help="runs at a time (default: all)")
    ap.add_argument("--data", nargs="*", default=[], metavar="DATASET=PATH", help="where each dataset is")
    ap.add_argument("--only", nargs="*", default=[], metavar="NAME", help="train only these runs of the plan")
    ap.add_argument("--max-files", type=int, default=8)
    ap.add_argument("--part-mib", type=float, default=15.5)
    ap.add_argument("--total-mib", type=float, default=63.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        data = dict(item.split("=", 1) for item in args.data)
    except ValueError:
        ap.error("--data takes DATASET=PATH")
    runs = read_plan(Path(args.plan), Path(args.runs), args.minutes, data, args.only)
    jobs = args.jobs or len(runs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    decode_once(runs)
    status = train_all(runs, jobs, threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for run in runs:
        probs = None
        if (run.out / "best.pt").is_file():
            probs = probabilities(run, device)
            np.savez(run.out / "probs.npz", **probs)
        rows.append(summarise(run, status.get(run.name, -1), probs))
        log.info("%s", json.dumps(rows[-1]))
    command = " ".join(["python scripts/gpu_teachers.py", shlex.join(sys.argv[1:])])
    manifest = pack(runs, rows, Path(args.pack), args.max_files, args.part_mib, args.total_mib, command)
    failed = [r["name"] for r in manifest["runs"] if r["exit_status"] != 0]
    if failed:
        log.error("runs that failed: %s (see their .log)", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

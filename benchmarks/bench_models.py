"""The cost of each architecture on this CPU, side by side: parameters, training images/s (the
model-only bound: forward + backward + SGD step on a batch in memory, channels_last) and inference
with onnxruntime, one face at a time (ms per face, batch 1, the way ``deepfer predict`` classifies
a photo's face) and in batches of 256 (faces/s). Writes MODELS_SPEED.md and MODELS_SPEED.json.

    python benchmarks/bench_models.py [--models deepfer deepfer-l deepfer-l:widths=48,96,192,384] [--rounds 15]

A model is a registered name, optionally with architecture options after a colon
(``deepfer-l:widths=48,96,192,384``, ``deepfer:attention=se``; several joined by ``;``).

The batch-1 timings alternate between the models round by round (back to back), so a busy
shared machine slows them alike; each round is the median of ``--calls`` calls, and the report
gives the median round of both the wall time and the process CPU time per call. The ratio to the
first model is taken on CPU time: on a machine whose cores other processes keep busy, wall times
of a few ms swing 2-5x from round to round (measured here at a load average of 9 on 2 cores),
CPU time is what those processes do not inflate. Speed does not depend on the weights: freshly
initialised models are exported.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `deepfer predict` does; before torch loads

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfer.inference.export import export_onnx_bytes
from deepfer.inference.onnx_backend import OnnxClassifier
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _machine module
from _machine import cpu_name, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent


def parse_model(spec: str) -> tuple[str, dict[str, Any]]:
    """``"deepfer-l:widths=48,96,192,384"`` -> ``("deepfer-l", {"widths": [48, 96, 192, 384]})``."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        options[key] = [int(v) for v in value.split(",")] if "," in value else value
    return name, options


def train_images_per_s(spec: str, batch: int, steps: int) -> float:
    """Best-of-``steps`` training throughput (after 2 warm-up steps): the least disturbed step on
    a shared machine."""
    torch.manual_seed(0)
    name, options = parse_model(spec)
    model = create_model(name, **options).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return batch / min(times)


def median_ms(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds of ``calls`` calls of ``fn``."""
    wall, cpu = [], []
    for _ in range(calls):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def bench(names: list[str], threads: int, rounds: int, calls: int, train_steps: int) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    clfs, rows = {}, []
    for name in names:
        torch.manual_seed(0)
        model = create_model(parse_model(name)[0], **parse_model(name)[1]).eval()
        clfs[name] = OnnxClassifier(export_onnx_bytes(model, Checkpoint.from_model(model, list(FER7))),
                                    threads=threads)
        rows.append({"model": name, "parameters": sum(p.numel() for p in model.parameters())})
    one = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    many = np.random.default_rng(1).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    for clf in clfs.values():  # warm-up: session arenas, kernels
        for _ in range(20):
            clf.predict_proba(one)
        clf.predict_proba(many)
    batch1: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    batch256: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):  # back to back: each round times every model once
        for name, clf in clfs.items():
            batch1[name].append(median_ms(lambda c=clf: c.predict_proba(one), calls))
            batch256[name].append(median_ms(lambda c=clf: c.predict_proba(many), 1)[0])
    base_wall = statistics.median(w for w, _ in batch1[names[0]])
    base_cpu = statistics.median(c for _, c in batch1[names[0]])
    for row in rows:
        name = row["model"]
        wall = statistics.median(w for w, _ in batch1[name])
        cpu = statistics.median(c for _, c in batch1[name])
        row.update(onnx_ms_per_face_batch1=round(wall, 3), onnx_cpu_ms_per_face_batch1=round(cpu, 3),
                   onnx_batch1_rounds_wall_cpu=[[round(w, 3), round(c, 3)] for w, c in batch1[name]],
                   ratio_to_first=round(cpu / base_cpu, 2), wall_ratio_to_first=round(wall / base_wall, 2),
                   onnx_faces_per_s_batch256=round(256_000 / statistics.median(batch256[name]), 1),
                   train_images_per_s=round(train_images_per_s(name, 128, train_steps), 1))
    return rows


def write_markdown(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    first = rows[0]["model"]
    lines = ["# Model speed", "", f"Written by `{meta['command']}` on {meta['cpu']} ({meta['threads']} threads, "
             f"1-min load average {meta['load_average_1min_at_end']} at the end, torch {meta['torch']}). "
             "Training: forward + backward + SGD step, batch 128, best of "
             f"{meta['train_steps']} steps. Inference: onnxruntime, uint8 faces in; batch 1 is the median of "
             f"{meta['rounds']} rounds (each the median of {meta['calls']} calls), the models alternating; "
             f"the ratio to `{first}` is of CPU time (wall times on this shared machine swing from round to round: "
             "the JSON has every round).", "",
             f"| model | parameters | train images/s | CPU ms per face (batch 1) | x `{first}` | wall ms (batch 1) | "
             "faces/s (batch 256) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['model']}` | {r['parameters']:,} | {r['train_images_per_s']:.0f} | "
                     f"{r['onnx_cpu_ms_per_face_batch1']:.2f} | {r['ratio_to_first']:.2f} | "
                     f"{r['onnx_ms_per_face_batch1']:.2f} | {r['onnx_faces_per_s_batch256']:.0f} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["deepfer", "deepfer-l"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--train-steps", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "MODELS_SPEED.md"))
    args = ap.parse_args()
    rows = bench(args.models, args.threads, args.rounds, args.calls, args.train_steps)
    meta = {"command": "python benchmarks/bench_models.py " + " ".join(sys.argv[1:]), "cpu": cpu_name(),
            "threads": args.threads, "rounds": args.rounds, "calls": args.calls, "train_steps": args.train_steps,
            "torch": str(torch.__version__), "load_average_1min_at_end": round(os.getloadavg()[0], 2)}
    write_report(args.out, meta, rows, write_markdown)
    for r in rows:
        print(f"{r['model']:<12} {r['parameters']:>10,} params  train {r['train_images_per_s']:7.1f} img/s  "
              f"onnx batch 1 {r['onnx_cpu_ms_per_face_batch1']:6.2f} CPU ms (x{r['ratio_to_first']:.2f}), "
              f"{r['onnx_ms_per_face_batch1']:6.2f} wall ms  "
              f"batch 256 {r['onnx_faces_per_s_batch256']:8.1f} faces/s")


if __name__ == "__main__":
    main()

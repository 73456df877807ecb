"""Training throughput: the loop's full step (uint8 batch gathered from the faces held where the
model is -> kornia augmentation -> normalisation -> forward + backward + Adam step, through
:class:`deepfer.train.step.TrainStep`) against the model-only bound (forward + backward + step on
one fixed float batch already on the device, the same ``TrainStep.update``).

On the CPU it writes train_speed.json / .md (float32, the recipes' CPU setting); on a GPU
train_speed_gpu.json / .md (bf16 autocast and channels_last, as ``deepfer train`` runs there;
the device is synchronised before the clock is read, and the step itself never waits for it).

    python benchmarks/bench_train.py [--device auto|cpu|cuda] [--threads 2] [--batch-size 128] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from deepfer.models import create_model, list_models
from deepfer.train.config import TrainConfig
from deepfer.train.step import TrainStep, prepare_batch

HERE = Path(__file__).resolve().parent


def images_per_s(step: Callable[[], object], n_steps: int, batch: int, device: torch.device) -> float:
    for _ in range(3 if device.type == "cpu" else 20):  # warm-up: allocator, oneDNN / cuDNN kernel choice
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(n_steps):
        step()
    _sync(device)
    return n_steps * batch / (time.perf_counter() - t)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(name: str, batch: int, steps: int, policy: str, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = create_model(name).to(device).to(memory_format=torch.channels_last)
    cfg = TrainConfig(model=name, optimizer="adam", lr=1e-3, fc_l2=1e-4, augment=policy)
    step = TrainStep.build(cfg, model, num_classes=7, device=device)
    step.train()
    pool = torch.randint(0, 256, (4096, 1, 48, 48), dtype=torch.uint8).to(device)
    labels = torch.randint(0, 7, (4096,)).to(device)
    fixed = prepare_batch(pool[:batch], nn.Identity(), model.config, device)

    def pipeline() -> None:
        idx = torch.randint(0, len(pool), (batch,), device=device)
        step(pool[idx], labels[idx])

    bound = images_per_s(lambda: step.update(fixed, labels[:batch]), steps, batch, device)
    full = images_per_s(pipeline, steps, batch, device)
    return {"model": name, "augment": policy, "batch_size": batch, "model_only_images_per_s": round(bound, 1),
            "pipeline_images_per_s": round(full, 1), "pipeline_cost": round(1 - full / bound, 4),
            "parameters": sum(p.numel() for p in model.parameters()),
            "precision": str(step.precision or torch.float32).replace("torch.", "")}


def render(result: dict) -> str:
    lines = ["# Training throughput", "",
             f"`{result['command']}` on {result['device']} (torch {result['torch']}, {result['threads']} CPU threads; "
             f"load average {result['load_average_1min_at_end']} at the end). Random 48x48 faces, batch "
             f"{result['results'][0]['batch_size']}, {result['steps']} timed steps after a warm-up. Model-only: "
             "forward + backward + Adam step on one fixed batch already on the device; pipeline: the training "
             "loop's step (gather uint8 faces, kornia augmentation, normalise, then the same update).", "",
             "| model | params | augment | precision | model-only img/s | pipeline img/s | pipeline cost |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["results"]:
        lines.append(f"| `{r['model']}` | {r['parameters']:,} | {r['augment']} | {r['precision']} | "
                     f"{r['model_only_images_per_s']:,.0f} | {r['pipeline_images_per_s']:,.0f} | "
                     f"{100 * r['pipeline_cost']:.1f}% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, help="timed steps (default 30 on the CPU, 200 on a GPU)")
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--out", help="JSON file (default benchmarks/train_speed.json, train_speed_gpu.json on a GPU)")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          args.device if args.device != "auto" else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the training loop sets it
    torch.set_num_threads(args.threads)
    steps = args.steps or (30 if device.type == "cpu" else 200)
    out = Path(args.out or HERE / ("train_speed.json" if device.type == "cpu" else "train_speed_gpu.json"))
    rows = []
    for m in args.models or list_models():
        for p in ("basic", "strong"):
            rows.append(bench(m, args.batch_size, steps, p, device))
            r = rows[-1]
            print(f"{r['model']:<14} {r['augment']:<7} model-only {r['model_only_images_per_s']:9.1f} img/s   "
                  f"pipeline {r['pipeline_images_per_s']:9.1f} img/s   cost {100 * r['pipeline_cost']:5.1f}%", flush=True)
    result = {"command": " ".join(["python benchmarks/bench_train.py", shlex.join(sys.argv[1:])]).strip(),
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "load_average_1min_at_end": round(os.getloadavg()[0], 2), "threads": args.threads,
              "torch": str(torch.__version__), "cpu": platform.processor() or platform.machine(), "steps": steps,
              "results": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))


if __name__ == "__main__":
    main()

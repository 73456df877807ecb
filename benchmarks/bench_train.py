"""Training throughput on this CPU: the full pipeline (uint8 batch from memory -> kornia
augmentation -> normalisation -> forward + backward + Adam step) against the model-only bound
(forward + backward + step on a float batch already in memory). Writes train_speed.json.

    python benchmarks/bench_train.py [--threads 2] [--batch-size 128] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from deepfer.models import create_model, list_models
from deepfer.train.augment import Augment
from deepfer.train.config import TrainConfig
from deepfer.train.loop import _loss, prepare_batch


def images_per_s(step, n_steps: int, batch: int) -> float:
    for _ in range(3):  # warm-up: allocator, oneDNN kernels
        step()
    t = time.perf_counter()
    for _ in range(n_steps):
        step()
    return n_steps * batch / (time.perf_counter() - t)


def bench(name: str, batch: int, steps: int, policy: str) -> dict:
    torch.manual_seed(0)
    model = create_model(name).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    cfg = TrainConfig(fc_l2=1e-4)
    pool = torch.randint(0, 256, (4096, 1, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 7, (4096,))
    augment = Augment(policy, 48).train()
    fixed = prepare_batch(pool[:batch], torch.nn.Identity(), model.config, torch.device("cpu"))

    def update(x, y):
        loss = _loss(model(x), y, cfg, model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def model_only():
        update(fixed, labels[:batch])

    def pipeline():
        idx = torch.randint(0, len(pool), (batch,))
        update(prepare_batch(pool[idx], augment, model.config, torch.device("cpu")), labels[idx])

    bound = images_per_s(model_only, steps, batch)
    full = images_per_s(pipeline, steps, batch)
    return {"model": name, "augment": policy, "batch_size": batch, "model_only_images_per_s": round(bound, 1),
            "pipeline_images_per_s": round(full, 1), "pipeline_cost": round(1 - full / bound, 4),
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).with_name("train_speed.json")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench(m, args.batch_size, args.steps, p) for m in list_models() for p in ("basic", "strong")]
    result = {"load_average_1min_at_end": round(os.getloadavg()[0], 2), "threads": args.threads, "torch": str(torch.__version__), "cpu": platform.processor() or platform.machine(),
              "results": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['model']:<14} {r['augment']:<7} model-only {r['model_only_images_per_s']:8.1f} img/s   "
              f"pipeline {r['pipeline_images_per_s']:8.1f} img/s   cost {100 * r['pipeline_cost']:5.1f}%")


if __name__ == "__main__":
    main()

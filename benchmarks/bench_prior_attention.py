"""Training cost of ``prior-attention`` against ``deepfer``, measured back to back: parameters and
training images/s (forward + backward + AdamW step on a batch in memory, channels_last, the
ablation's optimizer and batch). Writes PRIOR_ATTENTION_SPEED.md and PRIOR_ATTENTION_SPEED.json.

    python benchmarks/bench_prior_attention.py [--models deepfer prior-attention prior-attention:fusion=attention]
        [--rounds 4] [--steps 3] [--threads 2]

Models are specs as in ``bench_models.py`` (``name:key=value;key=value``; ``true``/``false`` for
flags). Each round runs ``--steps`` timed steps (after 2 warm-up steps) of every model in turn, so
load from other processes on the shared machine falls on all of them alike. A model's images/s is
its fastest step over all rounds (the least disturbed one); the ratio to the first model is taken
on process CPU time per step (its least), which other processes on the shared 2-core machine do
not inflate: wall times measured while two training runs shared it swung 1.4x-2.3x between runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep: CPU time is work done; before torch loads

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from deepfer.models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules
from _machine import cpu_name, write_report  # noqa: E402
from bench_models import parse_model  # noqa: E402

HERE = Path(__file__).resolve().parent


def _options(spec: str) -> tuple[str, dict[str, Any]]:
    name, options = parse_model(spec)
    flags = {"true": True, "false": False}
    return name, {k: flags.get(v, v) if isinstance(v, str) else v for k, v in options.items()}


class _Trainer:
    def __init__(self, spec: str, batch: int) -> None:
        torch.manual_seed(0)
        name, options = _options(spec)
        self.model = create_model(name, **options).to(memory_format=torch.channels_last).train()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=2e-3, weight_decay=0.05)
        self.x = torch.randn(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 7, (batch,))

    def step(self) -> tuple[float, float]:
        """Wall and process-CPU seconds of one training step."""
        t, c = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t, time.process_time() - c


def bench(specs: list[str], batch: int, rounds: int, steps: int) -> list[dict[str, Any]]:
    trainers = {spec: _Trainer(spec, batch) for spec in specs}
    for t in trainers.values():  # warm-up: allocator and oneDNN kernels
        t.step(), t.step()
    wall: dict[str, list[float]] = {spec: [] for spec in specs}
    cpu: dict[str, list[float]] = {spec: [] for spec in specs}
    for _ in range(rounds):
        for spec, t in trainers.items():
            for w, c in (t.step() for _ in range(steps)):
                wall[spec].append(w)
                cpu[spec].append(c)
    base = min(cpu[specs[0]])
    return [{"model": spec, "parameters": trainers[spec].params,
             "train_images_per_s": round(batch / min(wall[spec]), 1),
             "cpu_ms_per_image": round(1000 * min(cpu[spec]) / batch, 2),
             "cpu_time_x_first": round(min(cpu[spec]) / base, 2), "wall_s": wall[spec], "cpu_s": cpu[spec]}
            for spec in specs]


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    lines = [
        "# Prior-attention training speed",
        "",
        f"Written by `{meta['command']}` on {meta['cpu']} ({meta['threads']} threads, torch {meta['torch']}). "
        f"Forward + backward + AdamW step, batch {meta['batch']}, channels_last, random 48x48 faces; each model's "
        f"fastest of {meta['rounds']} rounds x {meta['steps']} steps, the models alternating round by round.",
        "",
        f"| model | parameters | train images/s (wall) | CPU ms per image | CPU time x `{rows[0]['model']}` |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| `{r['model']}` | {r['parameters']:,} | {r['train_images_per_s']:.0f} | "
              f"{r['cpu_ms_per_image']:.2f} | {r['cpu_time_x_first']:.2f} |" for r in rows]
    lines += ["", f"1-min load average at the end: {meta['load']:.2f} (the JSON has every step's wall and CPU time)."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+",
                    default=["deepfer", "prior-attention", "prior-attention:fusion=attention",
                             "prior-attention:face_branch=false",
                             "prior-attention:block_widths=16,16,32,64,128,128,256"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "PRIOR_ATTENTION_SPEED.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = bench(args.models, args.batch, args.rounds, args.steps)
    meta = {"command": "python benchmarks/bench_prior_attention.py " + " ".join(sys.argv[1:]), "cpu": cpu_name(),
            "threads": args.threads, "torch": torch.__version__, "batch": args.batch, "rounds": args.rounds,
            "steps": args.steps, "load": os.getloadavg()[0]}
    write_report(args.out, meta, rows, _markdown)


if __name__ == "__main__":
    main()

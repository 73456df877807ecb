"""How faithful is each map? Deletion curves (accuracy as the pixels a map ranks most important are
blanked first, 0..50% of each face) for occlusion, saliency and Grad-CAM against a random order, on
a seeded sample of FER2013's official test split (PrivateTest), plus the time each map takes per
48x48 face. Writes benchmarks/faithfulness.json; benchmarks/FAITHFULNESS.md reads it.

    python benchmarks/faithfulness.py [--weights deep-emotion_fer2013] [--n 500] [--fills mean 0]

``--weights`` takes a shipped weights name (default: the shipped Deep-Emotion FER2013 weights) or
a checkpoint file.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from deepfer.data import load_dataset, split
from deepfer.errors import DeepferError
from deepfer.explain import compare_deletion, explain, load_explainable
from deepfer.labels import map_to_model
from deepfer.models.pretrained import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"
METHODS = ("occlusion", "saliency", "gradcam")


def per_face_ms(model, faces: np.ndarray, method: str, repeats: int) -> dict[str, float]:
    """Median milliseconds for one face at a time, and per face in one batch of all ``faces``."""
    explain(model, faces[:1], method)  # warm-up: allocator, oneDNN kernels
    single = []
    for i in range(repeats):
        t = time.perf_counter()
        explain(model, faces[i % len(faces) : i % len(faces) + 1], method)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    explain(model, faces, method)
    batched = (time.perf_counter() - t) / len(faces)
    return {"one_face_ms": round(1000 * statistics.median(single), 2), "batched_ms_per_face": round(1000 * batched, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="deep-emotion_fer2013", help="shipped weights name or checkpoint file")
    ap.add_argument("--data", default=str(DATA), help="FER2013 (any layout deepfer reads)")
    ap.add_argument("--n", type=int, default=500, help="test faces sampled (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fills", nargs="+", default=["mean", "0"], help="blank values: 'mean' grey and/or 0..255")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "faithfulness.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    try:
        model, names = load_explainable(args.weights)
        info = load_checkpoint(args.weights).info
    except DeepferError as exc:
        print(f"faithfulness: {exc}", file=sys.stderr)
        return 2
    data = load_dataset("fer2013", args.data, size=model.config.input_size)
    test = split(data, "official").folds[0].test
    model_index = map_to_model(data.labels, names)
    test = test[model_index[test] >= 0]
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(test, min(args.n, len(test)), replace=False))
    faces = data.images[pick]
    labels = model_index[pick]

    timings = {m: per_face_ms(model, faces[:64], m, repeats=20) for m in METHODS}
    runs = []
    for fill_arg in args.fills:
        fill: str | float = fill_arg if fill_arg == "mean" else float(fill_arg)
        t = time.perf_counter()
        curves = compare_deletion(model, faces, labels, METHODS, fill=fill, seed=args.seed)
        runs.append({"fill": fill, "seconds": round(time.perf_counter() - t, 1),
                     "curves": {m: c.to_dict() for m, c in curves.items()}})
        print(f"fill {fill}: " + ", ".join(f"{m} AUC {c.auc:.4f}" for m, c in curves.items()))

    report = {
        "what": "deletion curves: accuracy as the most important pixels (by each map, explaining the predicted "
                "class) are blanked first; auc = mean accuracy over 0..50% removed, lower = more faithful",
        "weights": str(args.weights),
        "model": model.config.name,
        "checkpoint": {k: info.get(k) for k in ("dataset", "protocol", "epoch", "best_epoch", "val_accuracy")},
        "dataset": "fer2013", "protocol": "official", "split": "test (PrivateTest)",
        "faces": len(faces), "seed": args.seed, "sample": "uniform random over the test split",
        "accuracy_intact": runs[0]["curves"]["random"]["accuracy"][0] if runs else None,
        "settings": {"occlusion": "patch 8, stride 4 (121 patches), same fill as the deletion",
                     "gradcam": "model.cam_layer, bilinear upsampling, warped back through the STN",
                     "saliency": "max over channels of |d logit / d pixel|"},
        "timings_per_48x48_face": timings,
        "runs": runs,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                    "processor": platform.processor() or platform.machine()},
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"timings per face: {json.dumps(timings)}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whether mirror-image averaging (flip TTA) should be the default for photos: its accuracy gain on
the cross-dataset conditions (read from ``benchmarks/cross_dataset.json``, the default model's
``tta flip`` column against ``tta none``; FER2013 PrivateTest left out) and its cost end to end,
measured here through the path ``deepfer predict`` takes (``Recognizer.predict`` on one photo at a
time: decode, detect, crop, classify), with ``tta="none"`` and ``tta="photos"`` interleaved photo by
photo, process CPU time. The rule (the issue's): default for photos where it gains >= 0.5 points at
<= 15% more end-to-end time.

    python benchmarks/tta.py [--model deepfer_fer2013-kd] [--rounds 3]

Writes benchmarks/TTA.md and TTA.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import cpu_name  # noqa: E402
from robustness import conditions, load_samples  # noqa: E402

from deepfer.inference import Recognizer  # noqa: E402


def gain(model: str) -> tuple[float, dict[str, float]]:
    """Mean points gained by ``tta flip`` over ``tta none`` on cross_dataset.json's rows (PrivateTest
    left out), and the per-row gains."""
    data = json.loads((HERE / "cross_dataset.json").read_text())
    rows = {}
    for cond, res in data["results"].items():
        if "PrivateTest" in cond:
            continue
        none, flip = res.get(f"{model} | tta none"), res.get(f"{model} | tta flip")
        if none and flip:
            rows[cond] = 100 * (flip["accuracy"] - none["accuracy"])
    if not rows:
        raise SystemExit(f"cross_dataset.json has no 'tta none' and 'tta flip' columns for {model}: run "
                         f"python benchmarks/cross_dataset.py --models {model}")
    return sum(rows.values()) / len(rows), rows


def cost(model: str, rounds: int, n: int) -> dict[str, float]:
    """CPU ms per 640x480 one-face photo, end to end, for tta none and photos (interleaved)."""
    photos = conditions(load_samples(n // 2, 0), 0, 1)["upright"][1][:n]
    recs = {mode: Recognizer(model, tta=mode, threads=1) for mode in ("none", "photos")}
    cpu = {mode: 0.0 for mode in recs}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, ph in enumerate(photos):
            paths.append(Path(tmp) / f"{i}.jpg")
            cv2.imwrite(str(paths[-1]), ph.image)
        for rec in recs.values():  # warm-up
            rec.predict(str(paths[0]))
        for _ in range(rounds):
            for path in paths:
                for mode, rec in recs.items():
                    c = time.process_time()
                    rec.predict(str(path))
                    cpu[mode] += time.process_time() - c
    return {mode: 1000 * v / (rounds * len(paths)) for mode, v in cpu.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="deepfer_fer2013-kd")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--out", default=str(HERE / "TTA.md"))
    args = ap.parse_args()
    mean_gain, rows = gain(args.model)
    ms = cost(args.model, args.rounds, args.photos)
    ratio = ms["photos"] / ms["none"]
    default = mean_gain >= 0.5 and ratio <= 1.15
    out = Path(args.out)
    result = {"command": "python benchmarks/tta.py " + " ".join(sys.argv[1:]), "model": args.model,
              "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                          "load_average_1min": os.getloadavg()[0]},
              "gain_points": rows, "mean_gain_points": mean_gain, "cpu_ms_per_photo": ms, "ratio": ratio,
              "default_for_photos": default}
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# Flip TTA for photos", "",
             f"Written by `{result['command'].strip()}` on {cpu_name()} ({os.cpu_count()} cores, load "
             f"{result['machine']['load_average_1min']:.1f}), Python {platform.python_version()}. Model "
             f"`{args.model}`.", "",
             "Gain: accuracy of `tta flip` minus `tta none` on the rows of `benchmarks/CROSS_DATASET.md` (the same "
             "crops classified both ways; FER2013 PrivateTest left out), points:", "",
             "| row | gain |", "| --- | ---: |"]
    lines += [f"| {k} | {v:+.1f} |" for k, v in rows.items()]
    lines += [f"| **mean** | **{mean_gain:+.2f}** |", "",
              f"Cost: `Recognizer.predict` on one 640x480 one-face photo at a time (the upright faces of "
              f"`benchmarks/robustness.py`, {args.photos} JPEGs, {args.rounds} rounds, `tta` none and photos "
              "interleaved photo by photo), process CPU ms per photo, one torch thread:", "",
              "| tta | CPU ms per photo |", "| --- | ---: |",
              f"| none | {ms['none']:.1f} |", f"| photos (the face and its mirror image in one batch) | "
              f"{ms['photos']:.1f} |", "",
              f"End to end: {ratio:.3f}x. Rule: a gain >= 0.5 points at <= 1.15x. "
              + ("**Met: flip TTA is the default for photos** (`Recognizer(tta=\"photos\")`, `deepfer predict "
                 "--tta photos`); video and webcam frames are not mirrored (`--tta all` mirrors them too)."
                 if default else "**Not met: flip TTA stays off by default** (`--tta photos` or `--tta all` turn it on).")]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: gain {mean_gain:+.2f} points, cost {ratio:.3f}x, default for photos: {default}")


if __name__ == "__main__":
    main()

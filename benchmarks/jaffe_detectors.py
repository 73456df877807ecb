"""The shipped JAFFE weights evaluated on the crops of each face detector: what changing the JAFFE
reader's detector (Haar, or YuNet with eye-levelled crops) does to the numbers
in benchmarks/RESULTS.md. The weights were trained on Haar crops; the test split and everything else
stay as in ``deepfer evaluate``.

    python benchmarks/jaffe_detectors.py

Writes benchmarks/jaffe_detectors.json and benchmarks/JAFFE_DETECTORS.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
WEIGHTS = ["deepfer_jaffe-random", "deep-emotion_jaffe-random"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(SHARED / "jaffe" / "jaffe"))
    p.add_argument("--detectors", nargs="+", default=["haar", "yunet"])
    p.add_argument("--out", default=str(HERE))
    args = p.parse_args()
    from deepfer.data import load_jaffe
    from deepfer.train.evaluate import evaluate  # a benchmark, not the library, may use train

    report: dict = {"command": "python benchmarks/jaffe_detectors.py", "protocol": "random", "split": "test",
                    "results": {}}
    for det in args.detectors:
        meta = load_jaffe(args.data, detector=det).meta
        row = {"uncropped_frames": meta.get("uncropped")}
        for w in WEIGHTS:
            rep = evaluate([w], "jaffe", args.data, "random", dataset_options={"detector": det})
            row[w] = round(rep["accuracy"], 4)
            print(det, w, row[w], flush=True)
        report["results"][det] = row
    out = Path(args.out)
    (out / "jaffe_detectors.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Shipped JAFFE weights on each detector's crops", "",
             f"`{report['command']}`: `deepfer evaluate --protocol random` (the 70 test faces) with the JAFFE "
             "reader's crops made by each detector (the weights were trained on Haar crops).", "",
             "| detector | frames without a face | " + " | ".join(WEIGHTS) + " |", "|" + " --- |" * (2 + len(WEIGHTS))]
    for det, row in report["results"].items():
        lines.append(f"| {det} | {row['uncropped_frames']} | " + " | ".join(f"{100 * row[w]:.2f}%" for w in WEIGHTS)
                     + " |")
    (out / "JAFFE_DETECTORS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'JAFFE_DETECTORS.md'}")


if __name__ == "__main__":
    main()

"""End-to-end speed of the default detector against Haar, measured back to back: each photo goes
through both recognizers in turn (alternating which goes first), so that both see the same load
on a shared machine, and the ratios of the medians are what the speed targets compare.

Photos (JPEG files, decoded by ``Recognizer.predict(path)`` as ``deepfer predict`` does, onnxruntime
backend, predict's defaults):

* ``640x480, 1 face``: JAFFE frames pasted on a 640x480 canvas (bench_inference.py's photos);
* ``1280x720, 4 faces``: four JAFFE and CK+ faces of 120-160 px (robustness.py's "4 faces");
* ``1920x1080, 1 face of 32 px``: the cost of YuNet's second pass (Haar finds none of these).

    python benchmarks/detector_speed.py [--photos 60]

Writes benchmarks/detector_speed.json and benchmarks/DETECTOR_SPEED.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import robustness  # noqa: E402
from _machine import cpu_name  # noqa: E402


def photo_sets(n: int, folder: Path) -> dict[str, list[Path]]:
    from bench_inference import canvases, jaffe_photos

    _, gray, _ = jaffe_photos(robustness.SHARED / "jaffe" / "jaffe")
    sets: dict[str, list[np.ndarray]] = {"640x480, 1 face": canvases(gray[::2], seed=1)[:n]}
    samples = robustness.load_samples(2 * n, 0)
    conds = robustness.conditions(samples, 0, hd=max(1, n // 4))
    sets["1280x720, 4 faces"] = [p.image for p in conds["4 faces, 1280x720"][1]][:n]
    sets["1920x1080, 1 face of 32 px"] = [p.image for p in conds["32 px, 1920x1080"][1]][: max(4, n // 4)]
    out: dict[str, list[Path]] = {}
    for name, images in sets.items():
        paths = []
        for i, im in enumerate(images):
            path = folder / f"{name.split(',')[0]}_{i:03d}.jpg"
            cv2.imwrite(str(path), im, [cv2.IMWRITE_JPEG_QUALITY, 90])
            paths.append(path)
        out[name] = paths
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=int, default=60, help="photos per set (a quarter of it at 1920x1080)")
    p.add_argument("--detectors", nargs=2, default=["yunet", "haar"], metavar=("NEW", "OLD"))
    p.add_argument("--out", default=str(HERE))
    args = p.parse_args()
    from deepfer.inference import Recognizer

    folder = Path(tempfile.mkdtemp(prefix="deepfer-speed-"))
    sets = photo_sets(args.photos, folder)
    recs = {d: Recognizer(detector=d, backend="onnx") for d in args.detectors}
    report: dict = {"command": "python benchmarks/detector_speed.py" + (
        f" --photos {args.photos}" if args.photos != 60 else ""),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "load_average_1min_at_start": os.getloadavg()[0]},
        "sets": {}}
    for name, paths in sets.items():
        wall: dict[str, list[float]] = {d: [] for d in recs}
        cpu: dict[str, list[float]] = {d: [] for d in recs}
        faces: dict[str, int] = dict.fromkeys(recs, 0)
        for rec in recs.values():
            rec.predict(paths[0])  # warm-up
        for i, path in enumerate(paths):
            order = list(recs) if i % 2 == 0 else list(recs)[::-1]
            for d in order:
                t, c = time.perf_counter(), time.process_time()
                faces[d] += len(recs[d].predict(path))
                wall[d].append(1000 * (time.perf_counter() - t))
                cpu[d].append(1000 * (time.process_time() - c))
        row = {d: {"ms_median": round(statistics.median(wall[d]), 2),
                   "cpu_ms_median": round(statistics.median(cpu[d]), 2), "faces_found": faces[d]} for d in recs}
        new, old = args.detectors
        row["ratio_wall"] = round(row[new]["ms_median"] / row[old]["ms_median"], 2)
        row["ratio_cpu"] = round(row[new]["cpu_ms_median"] / row[old]["cpu_ms_median"], 2)
        row["photos"] = len(paths)
        report["sets"][name] = row
        print(name, row, flush=True)
    one, four = report["sets"]["640x480, 1 face"], report["sets"]["1280x720, 4 faces"]
    new = args.detectors[0]
    report["four_faces_over_one"] = {"wall": round(four[new]["ms_median"] / one[new]["ms_median"], 2),
                                     "cpu": round(four[new]["cpu_ms_median"] / one[new]["cpu_ms_median"], 2)}
    out = Path(args.out)
    (out / "detector_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    new, old = args.detectors
    lines = ["# End-to-end speed: the default detector against Haar, back to back", "",
             f"`{report['command']}`, {report['machine']['cpu']} ({report['machine']['cores']} cores, load average "
             f"{report['machine']['load_average_1min_at_start']:.1f} at the start: a shared machine), "
             "`Recognizer.predict(path)` (decode, detect, crop, classify) with the default weights on onnxruntime, "
             "each photo through both detectors in turn. Medians per photo.", "",
             f"| photos | n | {new} ms | {old} ms | {new} CPU ms | {old} CPU ms | ratio (wall) | ratio (CPU) | "
             f"faces found {new} / {old} |", "|" + " --- |" * 9]
    for name, r in report["sets"].items():
        lines.append(f"| {name} | {r['photos']} | {r[new]['ms_median']:.1f} | {r[old]['ms_median']:.1f} | "
                     f"{r[new]['cpu_ms_median']:.1f} | {r[old]['cpu_ms_median']:.1f} | {r['ratio_wall']:.2f} | "
                     f"{r['ratio_cpu']:.2f} | {r[new]['faces_found']} / {r[old]['faces_found']} |")
    f = report["four_faces_over_one"]
    lines += ["", f"{new}: 1280x720 with four faces / 640x480 with one: {f['wall']:.2f}x (wall), "
              f"{f['cpu']:.2f}x (CPU)."]
    (out / "DETECTOR_SPEED.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'DETECTOR_SPEED.md'}")


if __name__ == "__main__":
    main()

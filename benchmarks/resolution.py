"""Face detection from 640x480 to 64 Mpx: recall, false faces, CPU time and peak memory.

Protocol: real faces (the bundled photo's face and, where ../shared/data/jaffe exists, three JAFFE
frames' faces, each with a margin) are scaled to a stated box width and pasted on a textured canvas
(smoothed noise, no faces), saved as JPEG (quality 92) in a temporary folder, together with an empty
copy of each canvas (no image is kept or committed). Each (image, detector, code) runs in a fresh
subprocess: the detector is built and warmed up on a small image, then the image is read from
its file and its faces detected and cropped to 48 px (``deepfer.vision.face_crops``, what predict
does before the classifier); the CPU time of that step (process time, the mean of ``--repeat``
runs for images up to 2 Mpx) and the process's peak resident memory (``VmHWM``, the whole
process: Python, numpy, OpenCV, the detector) are recorded. A face is found where a detection's
centre lies in its box (enlarged by a quarter) and its width is within half and twice the box's;
any other detection is a false face.

"before" runs the same steps on another checkout's ``src`` (``--before-src``; the main branch:
YuNet on a 320-px-wide copy, then the full frame where that finds nothing; Haar and dlib on the
320-px copy), "after" on this one's. Costs are multiples of the 640x480 one-face photo's CPU time
with the same detector and code, in the same run.

    python benchmarks/resolution.py --before-src ../main/src   # writes RESOLUTION.md and .json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JAFFE = ROOT / ".." / "shared" / "data" / "jaffe"

# (name, width, height, face widths, empty copy too, format)
CASES: list[tuple[str, int, int, list[int], bool, str]] = [
    ("640x480, one 100 px face", 640, 480, [100], False, "jpg"),
    ("640x480, one 32 px face", 640, 480, [32], False, "jpg"),
    ("1920x1080, four 100 px faces", 1920, 1080, [100] * 4, True, "jpg"),
    ("1920x1080, four 32 px faces", 1920, 1080, [32] * 4, False, "jpg"),
    ("4000x3000, four 120 px faces", 4000, 3000, [120] * 4, True, "jpg"),
    ("4000x3000, four 200 px faces", 4000, 3000, [200] * 4, False, "jpg"),
    ("4000x3000, 100 to 1000 px faces", 4000, 3000, [100, 300, 1000], False, "jpg"),
    ("8000x6000, four 300 px faces", 8000, 6000, [300] * 4, True, "jpg"),
    ("8000x8000 16-bit PNG, no face", 8000, 8000, [], False, "png16"),
]
DETECTORS = ("yunet", "haar", "dlib")
BASELINE = CASES[0][0]


def _face_patches() -> list[np.ndarray]:
    """Grey face patches with a margin and the face's box width, from the bundled photo and JAFFE."""
    from deepfer.vision import create_detector, read_image

    det = create_detector("yunet", work_width=None, full_search=True)
    sources = [ROOT / "src" / "deepfer" / "assets" / "astronaut.png"]
    if JAFFE.is_dir():
        sources += sorted(JAFFE.rglob("*.tiff"))[5::70][:3]
    patches = []
    for path in sources:
        gray = read_image(path).gray
        d = max(det.detect(gray), key=lambda d: d.box[2])
        x, y, w, h = d.box
        m = round(0.3 * w)
        y0, x0 = max(0, y - m), max(0, x - m)
        patch = gray[y0 : y + h + m, x0 : x + w + m]
        patches.append((patch, x - x0, y - y0, w, h))
    return patches


def _canvas(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    small = rng.integers(40, 215, (max(2, h // 16), max(2, w // 16))).astype(np.uint8)
    base = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 12, (h, w)).astype(np.float32)
    return np.clip(base.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def build(folder: Path, cases: list) -> list[dict]:
    """Write each case's image (and empty copy) into ``folder``; their faces' boxes."""
    import cv2
    from PIL import Image

    patches = _face_patches()
    rng = np.random.default_rng(0)
    images = []
    for name, w, h, widths, empty, fmt in cases:
        canvas = _canvas(w, h, rng)
        blank = canvas.copy()
        boxes = []
        # Faces on a grid of cells, each face in its own cell.
        n = max(1, len(widths))
        cols = min(n, 2 if n <= 4 else 3)
        rows = -(-n // cols)
        for i, fw in enumerate(widths):
            patch, px, py, pw, ph = patches[i % len(patches)]
            f = fw / pw
            small = cv2.resize(patch, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
            cw, ch = w // cols, h // rows
            cx, cy = (i % cols) * cw, (i // cols) * ch
            x = cx + max(0, (cw - small.shape[1]) // 2)
            y = cy + max(0, (ch - small.shape[0]) // 2)
            sh, sw = min(small.shape[0], h - y), min(small.shape[1], w - x)
            canvas[y : y + sh, x : x + sw] = small[:sh, :sw]
            boxes.append([x + px * f, y + py * f, pw * f, ph * f])
        for label, pixels, faces in ((name, canvas, boxes), *([(name + " (empty)", blank, [])] if empty else [])):
            path = folder / f"{len(images):02d}.{ 'png' if fmt == 'png16' else 'jpg'}"
            if fmt == "png16":
                Image.fromarray(pixels.astype(np.uint16) * 257).save(path)
            else:
                Image.fromarray(pixels).save(path, quality=92)
            images.append({"case": label, "path": str(path), "faces": faces, "pixels": w * h})
        del canvas, blank
    return images


def _peak_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: a child's ru_maxrss starts from its
    parent's at the fork, which here holds the largest images."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(path: str, detector: str, repeat: int) -> dict:
    """In this process: detect and crop the faces of ``path``; CPU ms, peak memory, detections."""
    import deepfer
    from deepfer.vision import create_detector, face_crops, read_image

    det = create_detector(detector)
    warm = np.zeros((120, 160), np.uint8)
    det.detect(warm)
    times, reads, dets = [], [], []
    for _ in range(repeat):
        t = time.process_time()
        pic = read_image(path)
        reads.append(time.process_time() - t)
        dets, crops = face_crops(pic, det, 48)
        times.append(time.process_time() - t)
        del pic, crops
    return {"cpu_ms": 1000 * float(np.mean(times)), "read_ms": 1000 * float(np.mean(reads)), "boxes": [list(d.box) for d in dets],
            "peak_mb": _peak_mb(), "src": deepfer.__file__}


def score(faces: list[list[float]], boxes: list[list[int]]) -> tuple[int, int]:
    """(faces found, false faces)."""
    used = set()
    found = 0
    for fx, fy, fw, fh in faces:
        for i, (x, y, w, h) in enumerate(boxes):
            cx, cy = x + w / 2, y + h / 2
            if (i not in used and fx - fw / 4 <= cx <= fx + fw * 1.25 and fy - fh / 4 <= cy <= fy + fh * 1.25
                    and 0.5 * fw <= w <= 2 * fw):
                used.add(i)
                found += 1
                break
    return found, len(boxes) - len(used)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before-src", type=Path, help="the src folder of the code to compare with (main's)")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", type=int, nargs="+", help="indices into CASES (default: all)")
    ap.add_argument("--out", type=Path, default=HERE / "RESOLUTION")
    ap.add_argument("--one", nargs=3, metavar=("PATH", "DETECTOR", "REPEAT"), help=argparse.SUPPRESS)
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from the JSON")
    args = ap.parse_args()
    if args.render:
        render(args.out)
        return
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], int(args.one[2]))))
        return
    codes = {"after": ROOT / "src"}
    if args.before_src:
        codes = {"before": args.before_src.resolve(), **codes}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(ROOT / "src"))
        images = build(Path(tmp), [CASES[i] for i in args.cases] if args.cases else CASES)
        for img in images:
            for detector in args.detectors:
                for code, src in codes.items():
                    repeat = args.repeat if img["pixels"] <= 2_100_000 else 1
                    env = {**os.environ, "PYTHONPATH": str(src)}
                    out = subprocess.run([sys.executable, __file__, "--one", img["path"], detector, str(repeat)],
                                         env=env, capture_output=True, text=True, check=False)
                    if out.returncode != 0:
                        print(img["case"], detector, code, "failed:", out.stderr.strip().splitlines()[-1:], flush=True)
                        continue
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    found, false = score(img["faces"], r["boxes"])
                    row = {"case": img["case"], "detector": detector, "code": code, "faces": len(img["faces"]),
                           "found": found, "false": false, "cpu_ms": round(r["cpu_ms"], 1),
                           "read_ms": round(r["read_ms"], 1),
                           "peak_mb": round(r["peak_mb"]), "pixels": img["pixels"]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    for row in rows:
        base = [r for r in rows if r["case"] == BASELINE and r["detector"] == row["detector"] and r["code"] == row["code"]]
        row["cost"] = round(row["cpu_ms"] / base[0]["cpu_ms"], 1) if base else None
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared (load average " \
              f"{os.getloadavg()[0]:.1f} at the end)"
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
    write_md(rows, machine, args.out.with_suffix(".md"), list(codes))


def render(path: Path) -> None:
    """Rewrite the markdown from the JSON (``--render``)."""
    data = json.loads(path.with_suffix(".json").read_text())
    codes = list(dict.fromkeys(r["code"] for r in data["rows"]))
    write_md(data["rows"], data["machine"], path.with_suffix(".md"), codes)


def write_md(rows: list[dict], machine: str, path: Path, codes: list[str]) -> None:
    lines = ["# Face detection at any resolution", "",
             f"`python benchmarks/resolution.py --before-src <main's src>`, {machine}. Protocol: the docstring of "
             "`benchmarks/resolution.py` (real faces pasted on textured JPEG canvases, each case in its own process: "
             "read, detect, crop to 48 px; the classifier is not included). cost: CPU time as a multiple of the "
             "640x480 one-face photo's with the same detector and code in this run; peak: the process's peak "
             "resident memory. CPU ms (read): the whole step, and in brackets the part spent reading the file. "
             "before: the main branch's code; after: this branch's.", "",
             "after searches every face from its default range up (`deepfer.vision.pyramid`: 1/40 of the longer "
             "side, at least 32 px: 32 px at 640x480, 48 px at 1920x1080, 100 px at 4000x3000, 200 px at "
             "8000x6000); faces below it, such as the 32 px faces at 1920x1080, are searched with `--small-faces` "
             "or `--min-face`. The 640x480 photo is therefore searched at full size (before: at 320 px wide, "
             "where faces narrower than 64 px are found only when no larger face is), which raises its own "
             "cost, the unit of the cost columns: compare the CPU ms columns across codes.", ""]
    for det in sorted({r["detector"] for r in rows}, key=DETECTORS.index):
        lines += [f"## {det}", "", "| image | faces | " + " | ".join(
            f"{c} found | {c} false | {c} CPU ms (read) | {c} cost | {c} peak MB" for c in codes) + " |",
            "| --- | --- | " + " | ".join(["---"] * 5 * len(codes)) + " |"]
        for case in dict.fromkeys(r["case"] for r in rows):
            cells = []
            faces = None
            for c in codes:
                r = next((r for r in rows if r["case"] == case and r["detector"] == det and r["code"] == c), None)
                if r is None:
                    cells += ["-"] * 5
                    continue
                faces = r["faces"]
                cells += [str(r["found"]), str(r["false"]), f"{r['cpu_ms']:.0f} ({r['read_ms']:.0f})", f"{r['cost']}x", str(r["peak_mb"])]
            lines.append(f"| {case} | {faces} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Targets (after; cost against this run's 640x480 one-face photo, same detector)", ""]
    targets = (("4000x3000", 10.0), ("1920x1080", 4.0), ("8000x6000", 25.0))
    for det in sorted({r["detector"] for r in rows}, key=DETECTORS.index):
        after = [r for r in rows if r["detector"] == det and r["code"] == "after"]
        parts = []
        for prefix, limit in targets:
            sel = [r for r in after if r["case"].startswith(prefix) and "32 px" not in r["case"]]
            if not sel:
                continue
            missed = sum(r["faces"] - r["found"] for r in sel)
            false = sum(r["false"] for r in sel)
            worst = max(r["cost"] for r in sel)
            ok = missed == 0 and false == 0 and worst <= limit
            parts.append(f"{prefix}: {missed} missed, {false} false, cost up to {worst}x (<= {limit:g}x) "
                         f"{'met' if ok else 'MISSED'}")
        peak = max((r["peak_mb"] for r in after), default=0)
        parts.append(f"peak {peak} MB (<= 1024) {'met' if peak <= 1024 else 'MISSED'}")
        lines.append(f"- `{det}`: " + "; ".join(parts))
    lines.append("")
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()

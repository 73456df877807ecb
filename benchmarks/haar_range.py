"""Haar's false faces against its recall, on robustness.py's photos: the cascade's ``min_neighbors``
and its smallest face (``min_size``, pixels of the image searched) swept, detection only, through
the search pyramid's default range. Chooses nothing by itself: it writes benchmarks/HAAR_RANGE.md
for HaarDetector's defaults to be read from (``--seed 1``: other faces and canvases than the
robustness benchmark's seed 0).

    python benchmarks/haar_range.py [--per-source 15] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from robustness import conditions, load_samples, match  # noqa: E402

from deepfer.vision import Picture  # noqa: E402
from deepfer.vision.detect import HaarDetector  # noqa: E402

ROWS = ["upright", "tilt 15", "32 px, 640x480", "48 px, 640x480", "100 px, 1920x1080", "8 faces, 1920x1080",
        "dark", "no face, 640x480"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-source", type=int, default=30)
    ap.add_argument("--neighbors", type=int, nargs="+", default=[5, 8, 12])
    ap.add_argument("--min-size", type=int, nargs="+", default=[30])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "HAAR_RANGE.md"))
    args = ap.parse_args()
    conds = conditions(load_samples(args.per_source, args.seed), args.seed, 10)
    lines = ["# Haar: false faces against recall", "",
             f"`python benchmarks/haar_range.py {' '.join(sys.argv[1:])}`: robustness.py's photos (seed {args.seed}, "
             f"{args.per_source} faces per source and condition, 10 on 1920x1080), the default search range; each cell "
             "is recall / false faces per image.", ""]
    lines.append("| min_neighbors | min_size | " + " | ".join(ROWS) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in ROWS) + " |")
    for n in args.neighbors:
        for m in args.min_size:
            det = HaarDetector(min_neighbors=n, min_size=m)
            cells = []
            for row in ROWS:
                photos = conds[row][1]
                faces = found = false = 0
                for p in photos:
                    boxes = [d.box for d in det.detect(Picture(p.image).gray)]
                    hit = match(p.faces, boxes)
                    faces += len(p.faces)
                    found += sum(h is not None for h in hit)
                    false += len(boxes) - sum(h is not None for h in hit)
                cells.append(f"{found / faces:.2f} / {false / len(photos):.2f}" if faces else f"- / {false / len(photos):.2f}")
            lines.append(f"| {n} | {m} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

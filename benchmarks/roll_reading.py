"""How much of a tilted head's roll YuNet's eye landmarks read, with and without
``YuNetDetector``'s re-reading on the face turned upright: every 20th JAFFE frame (11) and the
bundled photo, turned 15, 30 and 45 degrees about the face.

    python benchmarks/roll_reading.py

Writes benchmarks/roll_reading.json (median roll read, in degrees, per angle).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
JAFFE = HERE.parents[1] / "shared" / "data" / "jaffe" / "jaffe"


def main() -> None:
    from deepfer.inference import sample_image
    from deepfer.vision import detect as detect_module
    from deepfer.vision import read_image
    from deepfer.vision.detect import YuNetDetector
    from deepfer.vision.quality import roll_yaw

    files = sorted(JAFFE.glob("*.tiff"))[::20]
    if not files:
        sys.exit(f"no JAFFE frames in {JAFFE}")
    # (image, centre of the face) pairs: JAFFE frames padded so that turning keeps the face inside.
    faces = [(cv2.copyMakeBorder(read_image(f).gray, 64, 64, 64, 64, cv2.BORDER_REPLICATE), (192.0, 210.0))
             for f in files]
    photo = [(read_image(sample_image()).gray, (223.0, 113.0))]
    det = YuNetDetector(work_width=None)
    rounds = detect_module._LEVEL_ROUNDS
    report: dict = {"command": "python benchmarks/roll_reading.py", "jaffe_frames": len(faces), "results": {}}
    for name, items in (("jaffe", faces), ("bundled photo", photo)):
        for angle in (15, 30, 45):
            row = {}
            for tag, n in (("one pass", 0), ("re-read upright", rounds)):
                detect_module._LEVEL_ROUNDS = n
                read = []
                for im, c in items:
                    m = cv2.getRotationMatrix2D(c, angle, 1.0)
                    found = det.detect(cv2.warpAffine(im, m, im.shape[::-1], borderMode=cv2.BORDER_REPLICATE))
                    if found:
                        read.append(-roll_yaw(found[0])[0])  # cv2 turns counter-clockwise: roll reads -angle
                row[tag] = round(float(np.median(read)), 1) if read else None
            detect_module._LEVEL_ROUNDS = rounds
            report["results"][f"{name}, turned {angle}"] = row
            print(name, angle, row, flush=True)
    (HERE / "roll_reading.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {HERE / 'roll_reading.json'}")


if __name__ == "__main__":
    main()

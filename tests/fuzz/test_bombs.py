"""Decode bombs: each recipe is refused before its decoder runs, in well under a second,
with one line naming the file; files just inside each limit still decode."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from fuzz_corpus import bombs, encode, gif_blocks, jpeg_scans, png_chunks, portrait, tiff_strips
from PIL import Image

from deepfer.vision.pictures import MAX_JPEG_SCANS, TooCostly, TooLarge, from_bytes, read_image

# Why each one is a bomb, as measured without the limits (benchmarks/FUZZ.md, deepfer.vision.pictures).
EXPECTED = {
    "scans.jpg": "more than 100 scans",
    "scans_server.jpg": "more than 100 scans",
    "coefficients.jpg": "MB of coefficients",
    "text_chunks.png": "chunks refused",
    "idat_chunks.png": "chunks refused",
    "header_only.png": "decompression bomb",
    "blocks.gif": "blocks in its first frame",
    "strips.tif": "strips or tiles",
    "runs.bmp": "MiB of runs",
    "pixels.qoi": "decodes this kind in Python",
}


@pytest.fixture(scope="module")
def recipes() -> dict[str, bytes]:
    return bombs()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bombs_are_refused_at_once(recipes: dict[str, bytes], tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(recipes[name])
    for decode in (lambda: from_bytes(recipes[name], name), lambda: read_image(path)):
        t0 = time.perf_counter()
        with pytest.raises(TooLarge) as err:
            decode()
        assert time.perf_counter() - t0 < 1.0  # unbounded: 98 s for the JPEG, 1.3 to 15 s for the others
        message = str(err.value)
        assert EXPECTED[name] in message and name in message and "\n" not in message
        if name != "header_only.png":  # Pillow's own guard; the others are the decode budget's
            assert isinstance(err.value, TooCostly)


def _scans(data: bytes) -> int:
    return data.count(b"\xff\xda")  # Pillow writes no APPn segment that could hold these bytes


def test_real_encoders_write_far_fewer_scans_than_the_limit() -> None:
    counts = {mode: _scans(encode(portrait().convert(mode), "JPEG", progressive=True)) for mode in ("L", "RGB", "CMYK")}
    assert counts == {"L": 6, "RGB": 10, "CMYK": 18}  # libjpeg's progressive scripts
    assert max(counts.values()) * 5 < MAX_JPEG_SCANS


@pytest.mark.parametrize("data,size", [
    (jpeg_scans(16, 16, MAX_JPEG_SCANS - 10), (16, 16)),  # a progressive JPEG just under the scan limit
    (png_chunks(4_000), (64, 64)),  # text chunks under the limit
    (gif_blocks(4_000), (4, 4)),  # empty extensions under the limit
    (tiff_strips(5_000), (4, 5_000)),  # one row per strip
], ids=["jpeg", "png", "gif", "tiff"])
def test_files_inside_the_limits_still_decode(data: bytes, size: tuple[int, int]) -> None:
    assert from_bytes(data).size == size


def test_progressive_cmyk_under_the_coefficient_budget_decodes() -> None:
    im = portrait().convert("CMYK")
    pic = from_bytes(encode(im, "JPEG", progressive=True), "cmyk.jpg")
    expected = np.asarray(Image.open(io.BytesIO(encode(im, "JPEG", progressive=True))).convert("L"))
    np.testing.assert_array_equal(pic.gray, expected)

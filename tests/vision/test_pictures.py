"""Reading user images: every format and failure mode gives pixels equal to the training reader's,
or a DataError naming the file."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from vision_helpers import noise
from PIL import Image, ImageOps

from deepfer.data.faces import decode_stored
from deepfer.errors import DataError
from deepfer.vision.pictures import (
    STRIP_PIXELS,
    TooLarge,
    from_array,
    from_bytes,
    from_pil,
    read_image,
    to_picture,
)


def _save(path: Path, im: Image.Image, **kw) -> Path:
    im.save(path, **kw)
    return path


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("RGB", "PNG"), ("RGB", "JPEG"), ("P", "PNG"),
                                      ("CMYK", "JPEG"), ("I;16", "PNG"), ("1", "PNG")])
def test_gray_pixels_equal_the_training_reader(tmp_path: Path, mode: str, fmt: str) -> None:
    rgb = Image.fromarray(noise((40, 30, 3)))
    if mode == "I;16":
        im = Image.fromarray(noise((40, 30)).astype(np.uint16) * 257)
    elif mode == "P":
        im = rgb.quantize(32)
    else:
        im = rgb.convert(mode)
    path = _save(tmp_path / f"x.{fmt.lower()}", im, format=fmt)
    pic = read_image(path, keep_color=True)
    np.testing.assert_array_equal(pic.gray, decode_stored(path.read_bytes(), str(path)))
    assert pic.gray.dtype == np.uint8 and pic.gray.shape == (40, 30)
    assert pic.color().shape == (40, 30, 3)


def test_rgba_and_transparent_palette_are_composited_over_white(tmp_path: Path) -> None:
    a = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    a[:5, :, :] = (0, 0, 0, 255)  # top half opaque black
    pic = read_image(_save(tmp_path / "a.png", Image.fromarray(a, "RGBA")), keep_color=True)
    assert (pic.gray[:5] == 0).all() and (pic.gray[5:] == 255).all()
    p = Image.fromarray(np.array([[0, 1]] * 4, np.uint8), "P")
    p.putpalette([0, 0, 0, 10, 20, 30])
    p.info["transparency"] = 0
    pic = read_image(_save(tmp_path / "p.png", p, transparency=0))
    assert (pic.gray[:, 0] == 255).all()


def test_animated_gif_uses_the_first_frame_and_says_so(tmp_path: Path, caplog) -> None:
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200, 90)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with caplog.at_level(logging.WARNING):
        pic = read_image(path)
    assert int(pic.gray.mean()) == 10
    assert "animated" in caplog.text and "first frame" in caplog.text


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    a = np.zeros((10, 20), np.uint8)
    a[0, 0] = 255  # a white pixel in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path / "rot.png", Image.fromarray(a), exif=exif)
    pic = read_image(path)
    assert pic.gray.shape == (20, 10)
    assert pic.gray[0, -1] == 255  # the stored top-left is displayed top-right


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise((64, 64, 3))).save(buf, "JPEG")
    return buf.getvalue()[:600]


@pytest.mark.parametrize("name,content,message", [
    ("empty.jpg", b"", "empty file"),
    ("garbage.jpg", b"\x00\x01not an image at all" * 20, "not an image"),
    ("notes.txt", b"hello", "not an image"),
    ("bomb.png", _png_header_only(100_000, 100_000), "too large"),
    ("truncated.jpg", _truncated_jpeg(), "cannot decode"),
])
def test_bad_files_raise_a_data_error_naming_the_file(tmp_path: Path, name: str, content: bytes,
                                                      message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_image(path)
    assert name in str(err.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="not a file"):
        read_image(tmp_path)


def test_numpy_input_is_rgb_unless_told_bgr() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert from_array(red).gray[0, 0] == 76  # 0.299 * 255
    assert from_array(red, color="bgr").gray[0, 0] == 29  # read as blue: 0.114 * 255
    rgba = np.concatenate([red, np.full((4, 4, 1), 7, np.uint8)], axis=2)
    assert from_array(rgba).gray[0, 0] == 76
    np.testing.assert_array_equal(from_array(red, keep_color=True).bgr[0, 0], [0, 0, 255])


def test_numpy_dtypes_and_ranges_agree() -> None:
    img = noise((6, 5, 3))
    ref = from_array(img).gray
    np.testing.assert_array_equal(from_array(img.astype(np.float32) / 255.0).gray, ref)
    np.testing.assert_array_equal(from_array(img.astype(np.float64)).gray, ref)
    np.testing.assert_array_equal(from_array(img.astype(np.uint16) * 257).gray, ref)
    np.testing.assert_array_equal(from_array(img.astype(np.int64)).gray, ref)
    gray = noise((6, 5))
    np.testing.assert_array_equal(from_array(gray[..., None]).gray, gray)


def test_pil_input_matches_file_input(tmp_path: Path) -> None:
    im = Image.fromarray(noise((12, 9, 3)))
    path = _save(tmp_path / "x.png", im)
    np.testing.assert_array_equal(from_pil(im).gray, read_image(path).gray)
    np.testing.assert_array_equal(to_picture(path).gray, to_picture(np.asarray(im.convert("L"))).gray)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((4,), np.uint8), "shape"),
    (np.full((4, 4), np.nan, np.float32), "NaN"),
    (np.full((4, 4), -3, np.int32), "outside 0..255"),
    (np.zeros((4, 4), bool), "dtype"),
])
def test_bad_arrays_raise(bad: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        from_array(bad)


def test_unsupported_object() -> None:
    with pytest.raises(DataError, match="expected an image path"):
        to_picture(42)  # type: ignore[arg-type]


# -- one decoder: bytes, the readers' as-stored pixels, the server's limits -----------------------------

def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_bytes_decode_like_the_file(tmp_path: Path) -> None:
    im = Image.fromarray(noise((12, 9, 3)))
    path = _save(tmp_path / "x.png", im)
    data = path.read_bytes()
    np.testing.assert_array_equal(from_bytes(data, "x.png").gray, read_image(path).gray)
    np.testing.assert_array_equal(to_picture(data, keep_color=True).bgr, read_image(path, keep_color=True).bgr)


def test_as_stored_keeps_what_the_dataset_readers_always_read(tmp_path: Path) -> None:
    a = np.zeros((10, 20, 4), np.uint8)
    a[..., 0] = 200  # red everywhere, transparent on the right half
    a[:, :10, 3] = 255
    rgba = _encoded(Image.fromarray(a, "RGBA"), "PNG")
    assert (from_bytes(rgba).gray[:, 10:] == 255).all()  # a photo: over white
    assert (from_bytes(rgba, as_stored=True).gray == 60).all()  # stored: convert('L'), alpha ignored
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _encoded(Image.fromarray(np.zeros((10, 20), np.uint8)), "PNG", exif=exif)
    assert from_bytes(rotated).gray.shape == (20, 10)
    assert from_bytes(rotated, as_stored=True).gray.shape == (10, 20)
    assert read_image(_save(tmp_path / "r.png", Image.open(io.BytesIO(rotated))), as_stored=True).gray.shape == (10, 20)


def test_limits_raise_too_large_before_decoding() -> None:
    png = _encoded(Image.new("L", (300, 20)), "PNG")
    with pytest.raises(TooLarge, match=r"up.png: image of 300x20 pixels is too large \(limit 5,000 pixels, 400 px a side\)"):
        from_bytes(png, "up.png", max_pixels=5_000, max_side=400)
    with pytest.raises(TooLarge, match="300x20"):
        from_bytes(png, max_side=200)
    assert from_bytes(png, max_pixels=6_000, max_side=300).size == (300, 20)
    with pytest.raises(TooLarge, match="decompression bomb"):
        from_bytes(_png_header_only(100_000, 100_000), "bomb.png")
    assert issubclass(TooLarge, DataError)


def test_formats_allow_only_the_named_decoder() -> None:
    png = _encoded(Image.new("L", (4, 4)), "PNG")
    assert from_bytes(png, formats=["PNG"]).size == (4, 4)
    with pytest.raises(DataError, match="^x.jpg: not a valid JPEG image$"):
        from_bytes(png, "x.jpg", formats=["JPEG"])
    big = _encoded(Image.fromarray(noise((64, 64))), "PNG")
    with pytest.raises(DataError, match=r"^cut.png: cannot decode PNG image \("):
        from_bytes(big[: len(big) // 2], "cut.png", formats=["PNG"])


def test_one_message_for_what_is_not_an_image() -> None:
    with pytest.raises(DataError) as err:
        from_bytes(b"hello, not an image", "notes.txt")
    # both what the readers said ("cannot decode image") and what predict said ("not an image")
    assert str(err.value) == "notes.txt: cannot decode image (not an image, or an unsupported image format)"
    with pytest.raises(DataError, match="^e.png: empty file$"):
        from_bytes(b"", "e.png")


# -- memory: converted in strips, turned after conversion; the same pixels as the whole-image way ------

def _reference(im: Image.Image, as_stored: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference conversion: the whole image at once, in float64."""
    if not as_stored:
        im = ImageOps.exif_transpose(im)
        if "A" in im.getbands() or "transparency" in im.info:
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    if im.mode in ("I;16", "I"):
        arr = np.asarray(im, dtype=np.float64)
        gray = np.clip(arr / (65535.0 if arr.max() > 255 else 255.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return gray, None
    bgr = None if im.mode in ("L", "1", "F") else np.asarray(im.convert("RGB"))[:, :, ::-1]
    return np.asarray(im.convert("L")), bgr


def _big(mode: str) -> Image.Image:
    """An image of more than one strip, 1300x900 (1.17 Mpx), of noise in ``mode``."""
    h, w = 900, 1300
    assert h * w > STRIP_PIXELS
    if mode == "I;16":
        return Image.fromarray(np.random.default_rng(1).integers(0, 65536, (h, w)).astype(np.uint16))
    if mode == "I":
        return Image.fromarray(np.random.default_rng(1).integers(-50, 70000, (h, w)).astype(np.int32), "I")
    if mode == "RGBA":
        return Image.fromarray(noise((h, w, 4)), "RGBA")
    rgb = Image.fromarray(noise((h, w, 3)))
    if mode == "P":
        p = rgb.quantize(40)
        p.info["transparency"] = 5
        return p
    return rgb.convert(mode)


@pytest.mark.parametrize("mode,fmt", [("I;16", "PNG"), ("I", "TIFF"), ("RGBA", "PNG"), ("P", "PNG"),
                                      ("RGB", "JPEG"), ("CMYK", "JPEG"), ("LA", "PNG")])
@pytest.mark.parametrize("as_stored", [False, True], ids=["photo", "stored"])
def test_strip_conversion_gives_the_whole_image_pixels(mode: str, fmt: str, as_stored: bool) -> None:
    kw = {"transparency": 5} if mode == "P" else {}
    data = _encoded(_big(mode), fmt, **kw)
    pic = from_bytes(data, f"x.{fmt.lower()}", keep_color=True, as_stored=as_stored)
    gray, bgr = _reference(Image.open(io.BytesIO(data)), as_stored)
    np.testing.assert_array_equal(pic.gray, gray)
    if bgr is not None:
        np.testing.assert_array_equal(pic.bgr, bgr)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_shown_as_pillow_shows_it(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    rgba = np.dstack([noise((7, 11, 3)), np.where(noise((7, 11), 3) > 60, 255, 0).astype(np.uint8)])
    for im, fmt in ((Image.fromarray(noise((7, 11, 3))), "JPEG"), (Image.fromarray(rgba, "RGBA"), "PNG")):
        data = _encoded(im, fmt, exif=exif)
        pic = from_bytes(data, keep_color=True)
        gray, bgr = _reference(Image.open(io.BytesIO(data)), as_stored=False)
        np.testing.assert_array_equal(pic.gray, gray)
        np.testing.assert_array_equal(pic.bgr, bgr)
        assert pic.gray.flags.c_contiguous and pic.bgr.flags.c_contiguous
        assert pic.size == ((7, 11) if orientation >= 5 else (11, 7))


# VmHWM, not ru_maxrss: Linux starts a child's ru_maxrss at its parent's size (it keeps the peak of
# the memory the child had before exec), so a big pytest process would hide the child's peak.
_PEAK = """
import sys
from deepfer.vision.pictures import read_image

def hwm():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))

before = hwm()
pic = read_image(sys.argv[1])
print((hwm() - before) * 1024, pic.gray.size)
"""


@pytest.mark.parametrize("name,make", [
    ("deep.tif", lambda: Image.fromarray(np.full((3000, 3000), 70000, np.int32), "I")),
    ("deep.png", lambda: Image.fromarray(np.full((3000, 3000), 4000, np.uint16))),
])
def test_deep_images_cost_a_few_bytes_a_pixel(tmp_path: Path, name: str, make) -> None:
    """Float64 copies of a whole 8000x8000 32-bit TIFF would take ~30 bytes a pixel; converted in
    strips, the peak is the decoded image (4 bytes a pixel for 32-bit, 2 for 16-bit), the uint8
    result (1) and a strip's temporaries."""
    import subprocess
    import sys

    path = tmp_path / name
    make().save(path)
    out = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True)
    grew, pixels = map(int, out.stdout.split())
    assert pixels == 9_000_000
    assert grew / pixels < 8, f"{grew / pixels:.1f} bytes a pixel"

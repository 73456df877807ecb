"""A deterministic corpus of broken and hostile inputs, generated from a seed: mutated images of
every format Pillow writes here, decode bombs, videos, multipart bodies and checkpoints. The fuzz
tests draw a small corpus from it, ``benchmarks/fuzz.py`` a large one (it imports this file by
path), so both check the same inputs.

Every image starts as the bundled public-domain portrait (a face, so the valid ones reach the
classifier); nothing here reads a dataset.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from deepfer.inference import sample_image

# -- seeds: one small image per format and mode Pillow writes here ---------------------------------


def portrait(size: tuple[int, int] = (120, 90)) -> Image.Image:
    """The bundled portrait's face and shoulders (a 4:3 crop), resized to ``size`` (RGB): the
    detector finds its face from 120x90 up."""
    photo = Image.open(sample_image()).convert("RGB")
    return photo.crop((114, 24, 114 + 220, 24 + 165)).resize(size, Image.Resampling.BILINEAR)


def encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _frames(im: Image.Image) -> list[Image.Image]:
    return [im, im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), im.rotate(10)]


def _rle8_bmp(im: Image.Image) -> bytes:
    """An 8-bit RLE BMP (Pillow reads RLE but does not write it): each row as runs."""
    p = im.convert("L")
    w, h = p.size
    a = np.asarray(p)
    runs = bytearray()
    for y in range(h - 1, -1, -1):  # bottom-up
        row = a[y]
        x = 0
        while x < w:
            n = 1
            while x + n < w and n < 255 and row[x + n] == row[x]:
                n += 1
            runs += bytes((n, row[x]))
            x += n
        runs += b"\x00\x00"
    runs += b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(runs), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(runs), 0, 0, offset) + dib + palette + bytes(runs)


@functools.cache
def seeds() -> dict[str, bytes]:
    """``name.ext`` -> a valid file: every format Pillow writes here (that needs no outside
    program), in the modes that take different code paths when read."""
    rgb = portrait()
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    gray = rgb.convert("L")
    deep = Image.fromarray((np.asarray(gray).astype(np.uint16) * 257))
    wide = Image.fromarray((np.asarray(gray).astype(np.int32) * 300), "I")
    palette = rgb.quantize(64)
    out: dict[str, bytes] = {
        "baseline.jpg": encode(rgb, "JPEG", quality=90),
        "progressive.jpg": encode(rgb, "JPEG", quality=90, progressive=True),
        "gray.jpg": encode(gray, "JPEG"),
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG", progressive=True),
        "rotated.jpg": encode(rgb, "JPEG", exif=_exif(6), subsampling=0),
        "multi.mpo": encode(rgb, "MPO", save_all=True, append_images=[rgb.rotate(5)]),
        "rgb.png": encode(rgb, "PNG"),
        "rgba.png": encode(rgba, "PNG"),
        "la.png": encode(rgba.convert("LA"), "PNG"),
        "palette.png": encode(palette, "PNG", transparency=0),
        "deep16.png": encode(deep, "PNG"),
        "bilevel.png": encode(rgb.convert("1"), "PNG"),
        "animated.png": encode(rgb, "PNG", save_all=True, append_images=_frames(rgb)[1:]),
        "palette.gif": encode(palette, "GIF"),
        "animated.gif": encode(rgb, "GIF", save_all=True, append_images=_frames(rgb)[1:], duration=40),
        "rgb.bmp": encode(rgb, "BMP"),
        "rgba.bmp": encode(rgba, "BMP"),
        "palette.bmp": encode(palette, "BMP"),
        "rle8.bmp": _rle8_bmp(rgb),
        "rgb.dib": encode(rgb, "DIB"),
        "raw.tif": encode(rgb, "TIFF"),
        "lzw.tif": encode(rgb, "TIFF", compression="tiff_lzw"),
        "deflate.tif": encode(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "jpeg.tif": encode(rgb, "TIFF", compression="jpeg"),
        "packbits.tif": encode(gray, "TIFF", compression="packbits"),
        "g4.tif": encode(rgb.convert("1"), "TIFF", compression="group4"),
        "int32.tif": encode(wide, "TIFF"),
        "float.tif": encode(gray.convert("F"), "TIFF"),
        "deep16.tif": encode(deep, "TIFF"),
        "cmyk.tif": encode(rgb.convert("CMYK"), "TIFF"),
        "pages.tif": encode(rgb, "TIFF", save_all=True, append_images=_frames(rgb)[1:]),
        "lossy.webp": encode(rgb, "WEBP", quality=80),
        "lossless.webp": encode(rgba, "WEBP", lossless=True),
        "animated.webp": encode(rgb, "WEBP", save_all=True, append_images=_frames(rgb)[1:]),
        "rgb.ppm": encode(rgb, "PPM"),
        "gray.pgm": encode(gray, "PPM"),
        "rgb.pcx": encode(rgb, "PCX"),
        "rle.tga": encode(rgba, "TGA", compression="tga_rle"),
        "rgb.sgi": encode(rgb, "SGI"),
        "rgba.qoi": encode(rgba, "QOI"),
        "rgba.dds": encode(rgba, "DDS"),
        "palette.blp": encode(palette, "BLP"),
        "rgb.im": encode(rgb, "IM"),
        "bilevel.msp": encode(rgb.convert("1"), "MSP"),
        "bilevel.xbm": encode(rgb.convert("1"), "XBM"),
        "float.spider": encode(gray.convert("F"), "SPIDER"),
        "rgb.ico": encode(rgb, "ICO"),
        "rgb.icns": encode(rgb.resize((128, 128)), "ICNS"),
        "rgb.jp2": encode(rgb, "JPEG2000"),
        "rgb.avif": encode(rgb, "AVIF", quality=60, speed=10),
        "rgb.pdf": encode(rgb, "PDF"),  # Pillow writes PDF but cannot read it: an error record
        "palette.palm": encode(palette, "PALM"),  # the same, for Palm bitmaps
        "rgb.eps": encode(rgb, "EPS"),  # read only through Ghostscript: an error record without it
    }
    return out


def valid_photo(size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG of the portrait (one face): the valid request of the server runs."""
    return encode(portrait(size), "JPEG", quality=90)


# -- mutations -------------------------------------------------------------------------------------

_INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)


def _flip(data: bytearray, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(1, 17))):
        i = int(rng.integers(len(data)))
        data[i] ^= 1 << int(rng.integers(8))


def _interesting(data: bytearray, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(len(data)))] = _INTERESTING[int(rng.integers(len(_INTERESTING)))]


def _header(data: bytearray, rng: np.random.Generator) -> None:
    """Big values written over 2- and 4-byte fields of the first 64 bytes (sizes, offsets, counts)."""
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(min(len(data), 64)))
        value = [0xFFFF, 0x7FFF, 0x8000, 0x0000, 0x1F40][int(rng.integers(5))]  # 0x1F40 = 8000
        data[i: i + 2] = struct.pack(">H" if rng.integers(2) else "<H", value)


def _truncate(data: bytearray, rng: np.random.Generator) -> None:
    del data[max(1, int(len(data) * rng.uniform(0.05, 0.95))):]


def _splice(data: bytearray, rng: np.random.Generator) -> None:
    """A slice copied elsewhere: markers, chunks and blocks duplicated or cut in two."""
    a = int(rng.integers(len(data)))
    b = min(len(data), a + int(rng.integers(1, 512)))
    data[int(rng.integers(len(data))): 0] = data[a:b]


def _repeat(data: bytearray, rng: np.random.Generator) -> None:
    """A slice repeated up to 2,000 times: many segments where the format expects a few."""
    a = int(rng.integers(len(data)))
    piece = data[a: a + int(rng.integers(2, 64))]
    data[a:a] = piece * int(rng.integers(10, 2000))


def _zero(data: bytearray, rng: np.random.Generator) -> None:
    a = int(rng.integers(len(data)))
    b = min(len(data), a + int(rng.integers(1, 256)))
    data[a:b] = bytes(b - a)


def _insert(data: bytearray, rng: np.random.Generator) -> None:
    data[int(rng.integers(len(data))): 0] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()


MUTATIONS: dict[str, Callable[[bytearray, np.random.Generator], None]] = {
    "flip": _flip, "interesting": _interesting, "header": _header, "truncate": _truncate,
    "splice": _splice, "repeat": _repeat, "zero": _zero, "insert": _insert,
}


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One or two mutations of ``data``: (their names, the bytes)."""
    out = bytearray(data)
    names = []
    for _ in range(int(rng.integers(1, 3))):
        name = list(MUTATIONS)[int(rng.integers(len(MUTATIONS)))]
        MUTATIONS[name](out, rng)
        names.append(name)
        if not out:
            out = bytearray(b"\x00")
    return "+".join(names), bytes(out)


def mutated_images(n: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``n`` mutated files, cycling through the seeds: (file name, bytes); names keep the seed's
    extension, so a folder of them is read as images."""
    rng = np.random.default_rng(seed)
    base = seeds()
    names = sorted(base)
    for i in range(n):
        name = names[i % len(names)]
        how, data = mutate(base[name], rng)
        stem, ext = name.rsplit(".", 1)
        yield f"{i:04d}_{stem}_{how}.{ext}", data


# -- decode bombs: each one a recipe for work or memory far beyond what its pixels need ------------


def jpeg_scans(width: int = 8000, height: int = 8000, scans: int = 10_000, cmyk: bool = False) -> bytes:
    """The JPEG scan bomb: a 16x16 progressive JPEG whose frame header (SOF2) claims width x height,
    followed by ``scans`` empty AC scans."""
    small = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8))
    data = bytearray(encode(small.convert("CMYK") if cmyk else small, "JPEG", progressive=True, quality=90))
    sof = data.index(b"\xff\xc2")
    struct.pack_into(">HH", data, sof + 5, height, width)
    end = data.rindex(b"\xff\xd9")
    return bytes(data[:end]) + b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x00" * scans + b"\xff\xd9"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_chunks(chunks: int = 200_000, kind: bytes = b"tEXt") -> bytes:
    """A small PNG with ``chunks`` tiny chunks before its pixels (Pillow reads each in Python)."""
    data = encode(Image.new("L", (64, 64)), "PNG")
    at = data.index(b"IDAT") - 4
    body = b"a\x00b" if kind == b"tEXt" else b""
    return data[:at] + _png_chunk(kind, body) * chunks + data[at:]


def png_header_only(width: int, height: int, depth: int = 8, color: int = 0) -> bytes:
    """A PNG header claiming width x height and no pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b""))
            + _png_chunk(b"IEND", b""))


def gif_blocks(blocks: int = 1_000_000) -> bytes:
    """A 4x4 GIF with ``blocks`` empty comment extensions before its image."""
    data = encode(Image.new("P", (4, 4)), "GIF")
    at = data.index(b"\x2c")
    return data[:at] + b"\x21\xfe\x00" * blocks + data[at:]


def tiff_strips(strips: int = 1_000_000) -> bytes:
    """An uncompressed 4-pixel-wide TIFF in ``strips`` strips of one row (Pillow builds a Python
    tile for each)."""
    entries = [(256, 4, 1, 4), (257, 4, 1, strips), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, strips, 0), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, strips, 0)]
    ifd_end = 8 + 2 + 12 * len(entries) + 4
    offsets_at, counts_at = ifd_end, ifd_end + 4 * strips
    pixels_at = counts_at + 4 * strips
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, count, value in entries:
        value = {273: offsets_at, 279: counts_at}.get(tag, value)
        out += struct.pack("<HHII", tag, kind, count, value)
    out += b"\x00" * 4
    out += np.arange(pixels_at, pixels_at + 4 * strips, 4, dtype="<u4").tobytes()
    out += np.full(strips, 4, "<u4").tobytes() + bytes(4 * strips)
    return bytes(out)


def bmp_rle(megabytes: float = 10.0) -> bytes:
    """A 4000x4000 RLE8 BMP of one-pixel runs (Pillow decodes RLE in Python)."""
    runs = b"\x01\x05" * int(megabytes * 1_000_000 / 2)
    palette = bytes(1024)
    offset = 14 + 40 + len(palette)
    dib = struct.pack("<IiiHHIIiiII", 40, 4000, 4000, 1, 8, 1, len(runs), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(runs), 0, 0, offset) + dib + palette + runs


def qoi_large(side: int = 2000) -> bytes:
    """A 4x4 QOI whose header claims side x side pixels: Pillow decodes QOI pixel by pixel in
    Python (a real 16 Mpx QOI took 73 s)."""
    data = bytearray(encode(Image.new("RGB", (4, 4), (90, 120, 150)), "QOI"))
    struct.pack_into(">II", data, 4, side, side)
    return bytes(data)


def deep_png(side: int = 8000) -> bytes:
    """A memory case: a flat 16-bit grayscale PNG, side x side (131 KB at 8000)."""
    rows = np.zeros((side, 1 + 2 * side), np.uint8)  # filter byte 0, then zeros
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _png_chunk(b"IEND", b""))


def deep_tiff(side: int = 8000) -> bytes:
    """The other memory case: a flat 32-bit TIFF, side x side, deflate-compressed."""
    return encode(Image.fromarray(np.full((side, side), 70000, np.int32), "I"), "TIFF",
                  compression="tiff_adobe_deflate")


@functools.cache
def bombs(full: bool = False) -> dict[str, bytes]:
    """``name.ext`` -> a decode bomb. Each is refused (or decoded within bounds) quickly. The
    default sizes pass every limit by a few times (for the tests); ``full`` gives the sizes
    ``benchmarks/fuzz.py`` measures and those of an upload at the server's 10 MiB cap, and adds the
    memory cases at 8000x8000 (for the benchmark)."""
    out = {
        "scans.jpg": jpeg_scans(),
        "scans_server.jpg": jpeg_scans(4800, 4800, 12_000),
        "coefficients.jpg": jpeg_scans(8000, 8000, 3, cmyk=True),
        "text_chunks.png": png_chunks(800_000 if full else 20_000),
        "idat_chunks.png": png_chunks(800_000 if full else 20_000, b"IDAT"),
        "header_only.png": png_header_only(100_000, 100_000),
        "blocks.gif": gif_blocks(3_000_000 if full else 50_000),
        "strips.tif": tiff_strips(800_000 if full else 70_000),
        "runs.bmp": bmp_rle(10.0 if full else 3.0),
        "pixels.qoi": qoi_large(),
    }
    if full:
        out["deep16.png"] = deep_png()
        out["deep32.tif"] = deep_tiff()
    return out


# -- videos ----------------------------------------------------------------------------------------


def video(path: Path, frames: int = 6, size: tuple[int, int] = (160, 120)) -> Path:
    """A small MJPG AVI of the portrait, turning a little each frame."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, size)
    base = portrait(size)
    for i in range(frames):
        writer.write(cv2.cvtColor(np.asarray(base.rotate(3 * i)), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def mutated_videos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """A valid AVI, then ``n`` damaged copies (bit flips, truncation, spliced and zeroed ranges),
    and an empty file and random bytes named like videos."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    good = video(folder / "valid.avi").read_bytes()
    paths = [folder / "valid.avi"]
    for i in range(n):
        how, data = mutate(good, rng)
        path = folder / f"v{i:03d}_{how}.avi"
        path.write_bytes(data)
        paths.append(path)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mkv").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return [*paths, folder / "empty.mp4", folder / "noise.mkv"]


# -- multipart bodies ------------------------------------------------------------------------------


def _form(parts: list[tuple[bytes, bytes]], boundary: bytes = b"fuzzb0undary") -> bytes:
    body = b""
    for headers, content in parts:
        body += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def _image_part(image: bytes, name: bytes = b"image", filename: bytes = b"face.jpg") -> tuple[bytes, bytes]:
    return (b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
            b"Content-Type: image/jpeg", image)


def multipart_bodies(image: bytes, n: int, seed: int = 0) -> Iterator[tuple[str, bytes, str]]:
    """``n`` request bodies around ``image``: (what, body, Content-Type). Hand-made malformed
    forms first, then random mutations of a valid form."""
    ok = "multipart/form-data; boundary=fuzzb0undary"
    valid = _form([_image_part(image)])
    handmade: list[tuple[str, bytes, str]] = [
        ("valid", valid, ok),
        ("raw body", image, "image/jpeg"),
        ("no boundary", valid, "multipart/form-data"),
        ("other boundary", valid, "multipart/form-data; boundary=other"),
        ("no closing boundary", valid[: valid.rindex(b"--fuzzb0undary--")], ok),
        ("empty form", b"--fuzzb0undary--\r\n", ok),
        ("empty body", b"", ok),
        ("many parts", _form([(b'Content-Disposition: form-data; name="x"', b"1")] * 40 + [_image_part(image)]), ok),
        ("field not named image", _form([_image_part(image, b"photo", b"")]), ok),
        ("path in file name", _form([_image_part(image, filename=b"../../etc/passwd\x00.jpg")]), ok),
        ("control bytes in file name", _form([_image_part(image, filename=b"a\r\nb\x1b[31m.jpg")]), ok),
        ("long header line", _form([(b"X-Long: " + b"a" * 100_000 + b"\r\n" + _image_part(image)[0], image)]), ok),
        ("two images", _form([_image_part(image), _image_part(image[:100])]), ok),
        ("truncated image", _form([_image_part(image[: len(image) // 3])]), ok),
        ("LF only", valid.replace(b"\r\n", b"\n"), ok),
        ("not an image", _form([_image_part(b"<html><script>alert(1)</script></html>")]), ok),
        ("text/plain", image, "text/plain"),
        ("json", b'{"image": "x"}', "application/json"),
        ("nested multipart", _form([(b'Content-Disposition: form-data; name="image"\r\n'
                                     b"Content-Type: multipart/mixed; boundary=inner", _form([_image_part(image)], b"inner"))]), ok),
        ("bomb in a form", _form([_image_part(jpeg_scans(4800, 4800, 12_000))]), ok),
    ]
    rng = np.random.default_rng(seed)
    for i in range(n):
        if i < len(handmade):
            yield handmade[i]
            continue
        how, body = mutate(valid, rng)
        yield f"mutated {how}", body, ok


# -- checkpoints -----------------------------------------------------------------------------------


def checkpoints(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """A valid deep-emotion checkpoint, ``n`` byte-level mutations of it, and schema mutations
    (fields removed, or replaced by values of other types) saved as valid torch files."""
    import torch

    from deepfer.labels import FER7
    from deepfer.models import create_model
    from deepfer.models.checkpoint import Checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    good = folder / "valid.pt"
    Checkpoint.from_model(create_model("deep-emotion").eval(), FER7).save(good)
    rng = np.random.default_rng(seed)
    raw = good.read_bytes()
    paths = [good]
    for i in range(n):
        how, data = mutate(raw, rng)
        path = folder / f"c{i:03d}_{how}.pt"
        path.write_bytes(data)
        paths.append(path)
    junk: list[object] = [None, "x", 3, 2.5, [], {}, [1, "a"], {"a": 1}, torch.zeros(2), True]
    base = torch.load(good, weights_only=True)
    for key in sorted(base):
        for j, value in enumerate((*junk[: 3 + int(rng.integers(3))], "missing")):
            changed = dict(base)
            if value == "missing":
                changed.pop(key)
            else:
                changed[key] = value
            path = folder / f"schema_{key}_{j}.pt"
            torch.save(changed, path)
            paths.append(path)
    return paths


# `deepfer ARGS`, then its own peak RSS (VmHWM, KiB) written to the file named first. VmHWM, not
# wait4's ru_maxrss: Linux starts a child's ru_maxrss at its parent's size (pytest's, here).
PEAK_CLI = r"""
import sys
from deepfer.cli import main
try:
    rc = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        f.write(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
sys.exit(rc)
"""


def cli_peak(args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str, float]:
    """``deepfer ARGS`` in a new process: (exit code, stderr, its own peak RSS in MiB)."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as hwm:
        proc = subprocess.run([sys.executable, "-c", PEAK_CLI, hwm.name, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, timeout=timeout)
        peak = hwm.read().strip()
    return proc.returncode, proc.stderr.decode(), int(peak) / 1024 if peak else float("nan")

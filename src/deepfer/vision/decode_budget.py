"""The decode budget: what a file may ask of a decoder, checked before its pixels are decoded (see
:mod:`deepfer.vision.pictures`, which applies it, for the reasons; ``benchmarks/fuzz.py`` measures
each case). :func:`check_structure` walks a JPEG's, PNG's, GIF's or TIFF's structure from its
bytes; :func:`check_decoder` reads what Pillow's header parse found. Both raise :class:`TooCostly`.
"""

from __future__ import annotations

import io
import mmap
import re
import struct

from PIL import Image

from deepfer.errors import DataError

__all__ = ["MAX_JPEG_COEFFICIENT_BYTES", "MAX_JPEG_SCANS", "MAX_PYTHON_DECODED_PIXELS", "MAX_RLE_BYTES",
           "MAX_TILES", "TooCostly", "TooLarge", "check_decoder", "check_structure"]

# Each scan of a JPEG is a pass over every block of the image, so the scans multiply the work.
# Encoders write few: libjpeg's (and so Pillow's) progressive script has 6 scans for grayscale, 10
# for YCbCr and 2 + 4 per component for others (18 for CMYK); mozjpeg's are 8 to 11; a baseline JPEG
# has one scan per component at most. libtiff refuses JPEG data with 100 scans or more
# (LIBTIFF_JPEG_MAX_ALLOWED_SCAN_NUMBER), which leaves a wide margin; at the cap of 64 Mpx each empty
# scan costs ~10 ms here, so 100 scans bound a file to ~1 s of scans.
MAX_JPEG_SCANS = 100
# Marker segments walked before refusing a JPEG: real files have a few dozen (APPn, DQT, DHT, SOF,
# SOS, a DHT per progressive scan; ICC profiles split into at most 255 APP2 segments).
_MAX_JPEG_SEGMENTS = 2_000
# libjpeg keeps every DCT coefficient of a progressive (multi-scan) JPEG in memory until the last
# scan: 2 bytes per sample of each component. A 64 Mpx YCbCr 4:4:4 image needs 384 MB (4:2:0:
# 192 MB); CMYK at the cap would need 512 MB, which with the decoded image (256 MB) and the
# process itself passes 1 GB.
MAX_JPEG_COEFFICIENT_BYTES = 400_000_000
# PNG chunks: Pillow writes IDAT chunks of 64 KiB, libpng of 8 KiB; a file with more than one chunk
# per KiB (and more than 4,096) is refused before Pillow reads its chunks one by one in Python.
_MAX_PNG_CHUNKS = 4_096
_PNG_BYTES_PER_CHUNK = 1_024
# GIF blocks read in Python up to the second frame: data comes in sub-blocks of 255 bytes (every
# encoder), so more than one step per 128 bytes (and more than 4,096) is a bomb: 3 million empty
# extensions in 9 MB took 4.1 s, 5 million one-byte comment blocks 4.6 s and 426 MB.
_MAX_GIF_STEPS = 4_096
_GIF_BYTES_PER_STEP = 128
# Pillow turns each TIFF strip into a Python tile when it opens the file, and decodes uncompressed
# ones one Python step each: a 12 MB TIFF of 1,000,000 strips took 15 s and 356 MB. 65,536 strips
# is ~1 s; one row per strip, the most any writer uses, is 8,000 strips for an 8000x8000 image.
MAX_TILES = 65_536
# Tags in a TIFF directory, each parsed in Python: real files have a few dozen.
_MAX_TIFF_TAGS = 4_096
# Pillow's RLE BMP decoder runs in Python, ~2 us per two-byte run: 2 MiB of runs ~ 2 s. RLE suits
# drawings and icons, whose runs are long; a photo is never stored so.
MAX_RLE_BYTES = 2 * 1024 * 1024
# The decoders Pillow implements in Python (Image.DECODERS: QOI, uncompressed DDS, BLP, MSP, SGI
# 16-bit, XPM, plain and 16-bit PPM) take ~5 us a pixel: a 16 Mpx QOI file took 73 s, a DDS 105 s.
# At most a megapixel (~5 s) is decoded so.
MAX_PYTHON_DECODED_PIXELS = 1_000_000
# Decoders that hold several copies of the image while decoding, in bytes per pixel measured with
# ru_maxrss on 16 Mpx files: WebP (Pillow's decoder is libwebp's animation decoder, which keeps
# two RGBA canvases beside Pillow's own: 15.3) and JPEG 2000 (OpenJPEG's int32 planes: 18.5). They
# get a pixel cap that keeps the decoder under ~600 MB, so a whole run stays under 1 GB.
_DECODER_BYTES_PER_PIXEL = {"WEBP": 16, "JPEG2000": 20}
_DECODER_MEMORY = 600_000_000


class TooLarge(DataError):
    """An image with more pixels (or a longer side) than allowed, or one that Pillow refuses as a
    possible decompression bomb; refused before its pixels are decoded. The server answers 413."""


class TooCostly(TooLarge):
    """An image whose decoding would take far more work or memory than its pixels need (more JPEG
    scans or PNG chunks than any encoder writes, a progressive JPEG's coefficients past the memory
    budget, too many TIFF strips, too much RLE data): a decode bomb, refused before decoding."""


def check_structure(data: bytes | mmap.mmap, where: str) -> None:
    """Refuse a JPEG or PNG whose structure promises far more work or memory than its pixels need,
    before Pillow reads it (Pillow walks a file's segments in Python). Other formats are checked
    by :func:`_check_tiles` once their header is read.

    Raises:
        TooCostly: see :data:`MAX_JPEG_SCANS`, :data:`MAX_JPEG_COEFFICIENT_BYTES`, the PNG chunk
            limit.
    """
    head = bytes(data[:8])
    if head.startswith(b"\xff\xd8\xff"):
        _check_jpeg(data, where)
    elif head == b"\x89PNG\r\n\x1a\n":
        _check_png(data, where)
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        _check_gif(data, where)
    elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff(data, where)


# The end of a JPEG's entropy-coded data: 0xFF followed by anything but a stuffed zero or a restart
# marker (RST0-7), which belong to the data.
_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xff]")
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


def _check_jpeg(data: bytes | mmap.mmap, where: str) -> None:
    """Walk a JPEG's markers as libjpeg does (segment lengths, entropy-coded data skipped to the
    next marker) up to the first image's end, counting its scans."""
    n, pos, scans, segments = len(data), 2, 0, 0
    coefficients, multi_scan = 0, False
    while pos + 4 <= n:
        if data[pos] != 0xFF:  # junk between segments: libjpeg skips to the next marker
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return
            pos = found.start()
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image: later images (MPO) are never decoded
            return
        if marker in _STANDALONE or marker == 0x00:
            pos += 2
            continue
        segments += 1
        if segments > _MAX_JPEG_SEGMENTS:
            raise TooCostly(f"{where}: JPEG with more than {_MAX_JPEG_SEGMENTS:,} marker segments refused "
                            "(a decode bomb; real files have a few dozen)")
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _SOF:
            coefficients = _jpeg_coefficient_bytes(bytes(data[pos + 4: pos + 2 + length]))
            multi_scan = marker in _PROGRESSIVE
        pos += 2 + length
        if marker == 0xDA:  # start of scan: its entropy-coded data runs to the next marker
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise TooCostly(f"{where}: JPEG with more than {MAX_JPEG_SCANS} scans refused (a decode bomb: "
                                "each scan is a pass over the whole image; encoders write at most ~20)")
            # a progressive or multi-scan image is held as coefficients until its last scan
            if (multi_scan or scans > 1) and coefficients > MAX_JPEG_COEFFICIENT_BYTES:
                raise TooCostly(f"{where}: progressive JPEG would hold {coefficients / 1e6:,.0f} MB of "
                                f"coefficients while decoding (limit {MAX_JPEG_COEFFICIENT_BYTES / 1e6:,.0f} MB)")
            found = _ENTROPY_END.search(data, pos)
            if found is None:
                return
            pos = found.start()


def _jpeg_coefficient_bytes(sof: bytes) -> int:
    """Bytes libjpeg allocates for the whole-image coefficient buffer of a frame header (SOF):
    2 bytes per sample, each component padded to whole MCUs."""
    if len(sof) < 6:
        return 0
    height, width, count = struct.unpack_from(">HHB", sof, 1)
    comps = [(sof[7 + 3 * i] >> 4, sof[7 + 3 * i] & 15) for i in range(count) if 8 + 3 * i < len(sof)]
    if not comps or not width or not height:
        return 0
    hmax, vmax = max(h for h, _ in comps) or 1, max(v for _, v in comps) or 1
    mcus_x, mcus_y = -(-width // (8 * hmax)), -(-height // (8 * vmax))
    return sum(mcus_x * h * mcus_y * v * 64 * 2 for h, v in comps)


def _check_png(data: bytes | mmap.mmap, where: str) -> None:
    limit = max(_MAX_PNG_CHUNKS, len(data) // _PNG_BYTES_PER_CHUNK)
    pos, n, chunks = 8, len(data), 0
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > limit:
            raise TooCostly(f"{where}: PNG with more than {limit:,} chunks refused (a decode bomb: encoders "
                            "write one per 8-64 KiB)")
        if kind == b"IEND":
            return
        pos += 12 + length


def _check_gif(data: bytes | mmap.mmap, where: str) -> None:
    """Walk a GIF's blocks as Pillow does (one Python step per sub-block, and per stray byte) up
    to its second frame, the furthest Pillow reads to decode the first and tell it is animated."""
    n = len(data)
    if n < 13:
        return
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # the global colour table
    start, steps, frames = pos, 0, 0

    def step() -> None:
        nonlocal steps
        steps += 1
        if steps > _MAX_GIF_STEPS and steps > (pos - start) // _GIF_BYTES_PER_STEP:
            raise TooCostly(f"{where}: GIF with more than {steps - 1:,} blocks in its first frame refused (a "
                            "decode bomb: encoders write data in 255-byte blocks)")

    def sub_blocks() -> None:
        nonlocal pos
        while pos < n and data[pos]:
            pos += 1 + data[pos]
            step()
        pos += 1

    while pos < n:
        kind = data[pos]
        if kind == 0x3B:  # trailer
            return
        if kind == 0x21:  # extension: label, then sub-blocks
            pos += 2
            sub_blocks()
        elif kind == 0x2C:  # image: descriptor, local colour table, LZW code size, sub-blocks
            frames += 1
            if frames > 1 or pos + 10 > n:
                return
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            sub_blocks()
        else:  # a stray byte: Pillow skips it and reads the next
            pos += 1
        step()


def _check_tiff(data: bytes | mmap.mmap, where: str) -> None:
    """Count the tags and strips (or tiles) of a TIFF's first directory, which Pillow turns into
    Python objects one by one when it opens the file."""
    order = "<" if data[0] == 0x49 else ">"
    big = data[2 + (order == ">")] == 0x2B  # BigTIFF: 8-byte counts and offsets
    entry, count_fmt, word = (20, "Q", "Q") if big else (12, "H", "I")
    try:
        ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        entries = struct.unpack_from(order + count_fmt, data, ifd)[0]
        if entries > _MAX_TIFF_TAGS:
            raise TooCostly(f"{where}: TIFF directory with {entries:,} tags refused (limit {_MAX_TIFF_TAGS:,}: "
                            "real files have a few dozen)")
        first = ifd + (8 if big else 2)
        for i in range(entries):
            tag, _, count = struct.unpack_from(order + "HH" + word, data, first + i * entry)
            if tag in (273, 324) and count > MAX_TILES:  # StripOffsets, TileOffsets
                raise TooCostly(f"{where}: TIFF image in {count:,} strips or tiles refused (limit {MAX_TILES:,}; "
                                "a decode bomb)")
    except struct.error:  # a truncated header: Pillow says what is wrong with it
        return


def check_decoder(im: Image.Image, where: str) -> None:
    """Refuse, from the header Pillow has read and before any pixel is decoded, what its decoder
    would take many Python steps or much memory to decode (see the limits at the top)."""
    tiles = getattr(im, "tile", None) or []
    if len(tiles) > MAX_TILES:
        raise TooCostly(f"{where}: image in {len(tiles):,} strips or tiles refused (limit {MAX_TILES:,}; a "
                        "decode bomb)")
    pixels = im.width * im.height
    codec = tiles[0][0] if tiles else None
    if codec == "bmp_rle":
        size = _bytes_after(im, tiles[0][2])
        if size > MAX_RLE_BYTES:
            raise TooCostly(f"{where}: RLE-compressed BMP with {size / 1048576:.1f} MiB of runs refused (limit "
                            f"{MAX_RLE_BYTES // 1048576} MiB: Pillow decodes RLE in Python)")
    elif codec in Image.DECODERS and pixels > MAX_PYTHON_DECODED_PIXELS:
        raise TooCostly(f"{where}: {im.format} image of {im.width}x{im.height} pixels refused (Pillow decodes "
                        f"this kind in Python; limit {MAX_PYTHON_DECODED_PIXELS:,} pixels)")
    per_pixel = _DECODER_BYTES_PER_PIXEL.get(str(im.format))
    if per_pixel and pixels * per_pixel > _DECODER_MEMORY:
        limit = _DECODER_MEMORY // per_pixel
        raise TooCostly(f"{where}: {im.format} image of {im.width}x{im.height} pixels refused (its decoder holds "
                        f"~{per_pixel} bytes a pixel; limit {limit:,} pixels)")


def _bytes_after(im: Image.Image, offset: int) -> int:
    """Bytes of the image's file from ``offset`` to its end (0 when it cannot be told)."""
    fp = getattr(im, "fp", None)
    if fp is None:
        return 0
    try:
        here = fp.tell()
        end = fp.seek(0, io.SEEK_END)
        fp.seek(here)
    except (OSError, ValueError, AttributeError):
        return 0
    return max(0, end - offset)

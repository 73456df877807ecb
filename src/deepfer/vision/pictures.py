"""Every image deepfer reads becomes a :class:`Picture` here: a file, encoded bytes, a PIL image,
a numpy array or a video frame, for the dataset readers, ``deepfer predict``, ``deepfer explain``
and the server alike. One decoder, one pixel cap, one decompression-bomb guard, one error type
(:class:`~deepfer.errors.DataError` naming the file).

The grayscale pixels are Pillow's ``convert('L')`` (16-bit images scaled to 0..255), so a face
crop read from a photo has exactly the pixels it would have in training. Photos are shown the way
a viewer shows them (EXIF orientation applied, transparency composited over white); the dataset
readers ask for the pixels ``as_stored`` (neither), which is how every dataset cache and every
published accuracy was made.

Decoding is bounded in work and memory, because a file of a few kilobytes can ask a decoder for
minutes or gigabytes (``benchmarks/fuzz.py`` measures each case below; ``benchmarks/FUZZ.md``):

- Before Pillow sees the bytes, JPEG, PNG, GIF and TIFF files have their structure walked
  (cheaply, with a cap on the walk itself): a JPEG with more than :data:`MAX_JPEG_SCANS` scans is refused (each
  scan is a pass over the whole image: a 16x16 progressive JPEG whose frame header claims
  8000x8000 followed by 10,000 empty scans takes 98 s and 566 MB unbounded), as is one whose
  progressive coefficient buffer would pass :data:`MAX_JPEG_COEFFICIENT_BYTES`; a PNG with more
  chunks than real encoders write is refused (Pillow reads each chunk in Python: 800,000 empty
  IDAT chunks in 10 MB take 5.6 s), as is a GIF with more blocks before its second frame than
  its size explains, and a TIFF with more strips (or tags) than :data:`MAX_TILES`.
- After the header is read and before any pixel is decoded: the pixel cap, Pillow's decompression
  bomb guard, at most :data:`MAX_TILES` tiles (TIFF strips, each one a Python step in Pillow), RLE
  BMP data up to :data:`MAX_RLE_BYTES` (Pillow decodes RLE in Python: 10 MB of one-pixel runs take
  9.5 s), and animation found with ``is_animated`` (one frame ahead) rather than by counting every
  frame (200,000 empty GIF frames take 1.3 s to count).
- Pixels are converted to grayscale in strips of :data:`STRIP_PIXELS`, so the temporaries of a
  conversion stay a few megabytes whatever the image's size, and EXIF orientation is applied to
  the uint8 result instead of to a full-size copy of the decoded image (float64 copies of a whole
  8000x8000 image take about 2 GB; ``benchmarks/fuzz.py`` measures every mode at the cap). Every
  step is per pixel, so strips change no pixel.

The refusals are :class:`TooCostly` (a :class:`TooLarge`: the server answers 413). The server
also decodes in a process it can end (``deepfer.serve.decoding``): these limits keep ``deepfer
predict`` fast, and the server's deadline stops whatever they miss.

Colour order of numpy input: **RGB unless ``color="bgr"``** (what ``cv2.imread`` and
``cv2.VideoCapture`` give). Float arrays may hold ``[0, 1]`` or ``[0, 255]`` values: an array
whose maximum is at most 1 is taken as ``[0, 1]``.
"""

from __future__ import annotations

import io
import logging
import mmap
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from deepfer.errors import DataError
from deepfer.files import not_a_file
from deepfer.vision.decode_budget import (
    MAX_JPEG_COEFFICIENT_BYTES,
    MAX_JPEG_SCANS,
    MAX_PYTHON_DECODED_PIXELS,
    MAX_RLE_BYTES,
    MAX_TILES,
    TooCostly,
    TooLarge,
    check_decoder,
    check_structure,
)

log = logging.getLogger(__name__)

__all__ = ["MAX_JPEG_COEFFICIENT_BYTES", "MAX_JPEG_SCANS", "MAX_PIXELS", "MAX_PYTHON_DECODED_PIXELS",
           "MAX_RLE_BYTES", "MAX_TILES", "STRIP_PIXELS", "ColorOrder", "ImageInput", "Picture", "TooCostly", "TooLarge",
           "from_array", "from_bytes", "from_pil", "read_image", "resize", "to_picture"]

# No face image needs more; the limit stops decompression bombs before their pixels are decoded.
MAX_PIXELS = 64_000_000

# Rows converted at a time: a quarter of a megapixel, so conversion temporaries stay a few MB
# (a strip of a 16-bit image is 2 MB as float64); 256 strips for an image at the cap.
STRIP_PIXELS = 1 << 18

ColorOrder = Literal["rgb", "bgr"]
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_GRAY_MODES = ("L", "1", *_SIXTEEN_BIT, "F")
_WHITE = (255, 255, 255)
_ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True)
class Picture:
    """One decoded image.

    Attributes:
        gray: uint8 (H, W), what detection, the face crops and the dataset readers read.
        bgr: uint8 (H, W, 3) colour for annotation, or ``None`` when the source is grayscale
            (or colour was not asked for).
    """

    gray: np.ndarray
    bgr: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.gray.shape[1], self.gray.shape[0]

    def color(self) -> np.ndarray:
        """uint8 (H, W, 3) BGR pixels to draw on (grayscale sources are replicated)."""
        if self.bgr is not None:
            return self.bgr.copy()
        return cv2.cvtColor(self.gray, cv2.COLOR_GRAY2BGR)


ImageInput = str | Path | bytes | Image.Image | np.ndarray | Picture


def to_picture(image: ImageInput, color: ColorOrder = "rgb", keep_color: bool = False) -> Picture:
    """Any accepted input as a :class:`Picture`.

    Args:
        image: an image file's path, its encoded bytes, a PIL image, a numpy array (see
            :func:`from_array`) or a Picture (returned as it is).
        color: channel order of a colour numpy array.
        keep_color: also keep the colour pixels (for annotation).

    Returns:
        The picture.

    Raises:
        DataError: the input cannot be read as an image.

    Example:
        >>> to_picture(np.zeros((4, 6, 3), np.uint8)).size
        (6, 4)
    """
    if isinstance(image, Picture):
        return image
    if isinstance(image, (str, Path)):
        return read_image(image, keep_color)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(image), keep_color=keep_color)
    if isinstance(image, Image.Image):
        return from_pil(image, keep_color)
    if isinstance(image, np.ndarray):
        return from_array(image, color, keep_color)
    raise DataError(f"expected an image path, image bytes, a PIL image or a numpy array, got {type(image).__name__}")


def read_image(path: str | Path, keep_color: bool = False, as_stored: bool = False) -> Picture:
    """Read an image file (any format Pillow decodes).

    EXIF orientation is applied; animated images (GIF, APNG, WebP, multi-page TIFF) give their first
    frame, with a warning; transparent images are composited over white. Images of more than
    :data:`MAX_PIXELS` pixels are refused before their pixels are decoded.

    Args:
        path: the image file.
        keep_color: also keep the colour pixels (for annotation).
        as_stored: the pixels as the file stores them: no EXIF orientation, transparency ignored
            (what the dataset readers use).

    Returns:
        The picture.

    Raises:
        DataError: the file is missing, empty, truncated, too large (:class:`TooLarge`), or not an
            image.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise DataError(f"{where}: {not_a_file(path)}")
    if path.stat().st_size == 0:
        raise DataError(f"{where}: empty file")
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            check_structure(view, where)  # the page cache, not a copy of the file
    except OSError as exc:
        raise DataError(f"{where}: cannot read file ({exc.strerror or exc})") from None
    return _open(path, where, keep_color, as_stored)


def from_bytes(data: bytes, where: str = "image", keep_color: bool = False, as_stored: bool = False,
               formats: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS,
               max_side: int | None = None) -> Picture:
    """Decode an encoded image (the content of a file, an archive member or an upload).

    Args:
        data: the encoded bytes.
        where: the file (or archive member, or upload) name, for messages.
        keep_color: also keep the colour pixels (for annotation).
        as_stored: the pixels as stored, without EXIF orientation or compositing (see
            :func:`read_image`).
        formats: the Pillow formats that alone may decode the bytes (``["JPEG"]``); ``None``: any.
        max_pixels: refuse images with more pixels than this (never more than :data:`MAX_PIXELS`).
        max_side: refuse images wider or taller than this.

    Returns:
        The picture.

    Raises:
        DataError: the bytes are empty, truncated or not an image (of ``formats``).
        TooLarge: past ``max_pixels`` or ``max_side``, or a possible decompression bomb.

    Example:
        >>> buf = io.BytesIO(); Image.new("L", (3, 2), 7).save(buf, "PNG")
        >>> from_bytes(buf.getvalue(), "x.png").gray.tolist()
        [[7, 7, 7], [7, 7, 7]]
    """
    if not data:
        raise DataError(f"{where}: empty file")
    check_structure(data, where)
    return _open(io.BytesIO(data), where, keep_color, as_stored, formats, max_pixels, max_side)


def _open(fp: str | Path | IO[bytes], where: str, keep_color: bool, as_stored: bool,
          formats: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS,
          max_side: int | None = None) -> Picture:
    what = f"{formats[0]} image" if formats is not None and len(formats) == 1 else "image"
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; a warning must stop us too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=None if formats is None else list(formats)) as im:
                return from_pil(im, keep_color, where, as_stored, max_pixels, max_side)
    except DataError:
        raise
    except UnidentifiedImageError:
        if formats is not None:
            raise DataError(f"{where}: not a valid {what}") from None
        raise DataError(f"{where}: cannot decode image (not an image, or an unsupported image format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(f"{where}: image too large, refused as a possible decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{where}: cannot decode {what} ({' '.join(str(exc).split())})") from None
    except Exception as exc:  # noqa: BLE001 - a decoder's bug on a hostile file is the file's fault
        # (fuzzing found NotImplementedError from BLP, struct.error and IndexError from others)
        log.debug("decoding %s failed", where, exc_info=True)
        raise DataError(f"{where}: cannot decode {what} ({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def from_pil(im: Image.Image, keep_color: bool = False, where: str = "image", as_stored: bool = False,
             max_pixels: int = MAX_PIXELS, max_side: int | None = None) -> Picture:
    """A :class:`Picture` from a PIL image (see :func:`read_image` for what is converted how).

    Args:
        im: the image; it is not modified.
        keep_color: also keep the colour pixels (for annotation).
        where: a name for messages.
        as_stored: no EXIF orientation, transparency ignored (see :func:`read_image`).
        max_pixels: refuse images with more pixels than this (never more than :data:`MAX_PIXELS`).
        max_side: refuse images wider or taller than this.

    Returns:
        The picture.

    Raises:
        TooLarge: past ``max_pixels`` or ``max_side``.
        TooCostly: a file whose decoding would cost far more than its pixels (see the module's
            notes).
    """
    _check_size(im.width, im.height, where, max_pixels, max_side)
    check_decoder(im, where)
    # is_animated looks one frame ahead; n_frames would walk every frame of the file.
    if getattr(im, "is_animated", False):
        log.warning("%s: animated or multi-page image; using the first frame", where)
        im.seek(0)
    im.load()  # a PNG's eXIf chunk may follow its pixels
    orientation = 1 if as_stored else im.getexif().get(_ORIENTATION, 1)
    composite = not as_stored and ("A" in im.getbands() or "transparency" in im.info)
    color = keep_color and (composite or im.mode not in _GRAY_MODES)
    gray = np.empty((im.height, im.width), np.uint8)
    bgr = np.empty((im.height, im.width, 3), np.uint8) if color else None
    sixteen = _sixteen_bit_scale(im) if im.mode in _SIXTEEN_BIT and not composite else None
    for y0, y1, strip in _strips(im):
        if composite:
            # over white, as a viewer shows a transparent image
            rgba = strip.convert("RGBA")
            strip = Image.alpha_composite(Image.new("RGBA", rgba.size, (*_WHITE, 255)), rgba).convert("RGB")
        if sixteen is not None:
            gray[y0:y1] = _scale_sixteen_bit(strip, sixteen)
        else:
            gray[y0:y1] = np.asarray(strip.convert("L"), dtype=np.uint8)
        if bgr is not None:
            bgr[y0:y1] = np.asarray(strip.convert("RGB"), dtype=np.uint8)[:, :, ::-1]
    gray = _orient(gray, orientation)
    return Picture(gray, None if bgr is None else _orient(bgr, orientation))


def _check_size(width: int, height: int, where: str, max_pixels: int, max_side: int | None) -> None:
    limit = min(max_pixels, MAX_PIXELS)
    if width * height > limit or (max_side is not None and max(width, height) > max_side):
        side = f", {max_side} px a side" if max_side is not None else ""
        raise TooLarge(f"{where}: image of {width}x{height} pixels is too large (limit {limit:,} pixels{side})")


def _strips(im: Image.Image) -> Iterator[tuple[int, int, Image.Image]]:
    """(first row, end row, the rows as an image) in bands of about :data:`STRIP_PIXELS` pixels;
    a small image is one band, itself."""
    if im.width * im.height <= STRIP_PIXELS:
        yield 0, im.height, im
        return
    rows = max(1, STRIP_PIXELS // im.width)
    for y0 in range(0, im.height, rows):
        y1 = min(im.height, y0 + rows)
        yield y0, y1, im.crop((0, y0, im.width, y1))


def _sixteen_bit_scale(im: Image.Image) -> float:
    # convert('L') would clip 16-bit values at 255: scale the range instead (8-bit data stored in a
    # 16-bit file keeps its values). getextrema runs in C, without a copy of the image.
    hi = im.getextrema()[1]
    return 65535.0 if float(hi) > 255 else 255.0  # type: ignore[arg-type]


def _scale_sixteen_bit(strip: Image.Image, scale: float) -> np.ndarray:
    # float64 and the same operations in the same order as ever, so the same pixels; one strip at
    # a time and in place, so one temporary of 8 bytes a pixel of the strip.
    arr = np.array(strip, dtype=np.float64)
    arr /= scale
    arr *= 255.0
    arr += 0.5
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(np.uint8)


def _orient(pixels: np.ndarray, orientation: object) -> np.ndarray:
    """The pixels as ``ImageOps.exif_transpose`` would show them, for an EXIF orientation 1..8
    (anything else: as stored). Grayscale conversion and compositing are per pixel, so turning the
    uint8 result gives the same pixels as turning the decoded image, without a copy of the latter."""
    flip = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.swapaxes(0, 1), 6: lambda a: a[::-1].swapaxes(0, 1),
            7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: a[:, ::-1].swapaxes(0, 1)}
    turn = flip.get(orientation) if isinstance(orientation, int) else None
    return pixels if turn is None else np.ascontiguousarray(turn(pixels))


def from_array(image: np.ndarray, color: ColorOrder = "rgb", keep_color: bool = False,
               where: str = "array") -> Picture:
    """A :class:`Picture` from a numpy image.

    Args:
        image: (H, W) grayscale, or (H, W, 3) colour, or (H, W, 4) with alpha (dropped), or
            (H, W, 1). uint8; uint16 (scaled by 1/257); float in ``[0, 1]`` (if its maximum is at
            most 1) or ``[0, 255]``; other integer types with values in 0..255.
        color: channel order of colour arrays, ``"rgb"`` (default) or ``"bgr"``.
        keep_color: also keep the colour pixels (for annotation).
        where: a name for messages.

    Returns:
        The picture.

    Raises:
        DataError: the shape or dtype is not an image's.
    """
    if color not in ("rgb", "bgr"):
        raise DataError(f"{where}: color must be 'rgb' or 'bgr', got {color!r}")
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))) or min(arr.shape[:2]) < 1:
        raise DataError(f"{where}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), "
                        f"got {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise TooLarge(f"{where}: image of {arr.shape[1]}x{arr.shape[0]} pixels is too large")
    arr = _to_uint8(arr, where)
    if arr.ndim == 2:
        return Picture(np.ascontiguousarray(arr))
    arr = arr[:, :, :3]
    bgr = arr if color == "bgr" else arr[:, :, ::-1]
    bgr = np.ascontiguousarray(bgr)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return Picture(gray, bgr if keep_color else None)


def _to_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.float32) / 257.0) + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise DataError(f"{where}: float image holds NaN or infinite values")
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(arr.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{where}: {arr.dtype} image with values outside 0..255")
        return arr.astype(np.uint8)
    raise DataError(f"{where}: unsupported image dtype {arr.dtype}")


def resize(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize a (H, W) uint8 image to (size, size): area interpolation when shrinking, bilinear
    when enlarging. Every dataset image and every face crop goes through it.

    Args:
        image: uint8 (H, W).
        size: the side wanted; ``None`` keeps the image as it is.

    Returns:
        uint8 (size, size) (the input itself when it already has that shape).

    Raises:
        DataError: ``size`` is not positive.
    """
    if size is not None and size < 1:
        raise DataError(f"image size must be a positive number of pixels, got {size}")
    if size is None or image.shape == (size, size):
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)

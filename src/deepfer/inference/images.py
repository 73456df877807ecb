"""Turn what a user hands in (an image file, a PIL image, a numpy array or a video frame) into a
:class:`Picture`: the grayscale pixels the detector and the model read, plus the colour pixels
that annotation draws on.

The grayscale conversion is the one the dataset readers use (Pillow's ``convert('L')``, 16-bit
scaled the way :func:`deepfer.data.imageio.decode_gray` scales it), so a face crop read from a file
here has exactly the pixels it would have in training.

Colour order of numpy input: **RGB unless ``color="bgr"``** (what ``cv2.imread`` and
``cv2.VideoCapture`` give). Float arrays may hold ``[0, 1]`` or ``[0, 255]`` values: an array
whose maximum is at most 1 is taken as ``[0, 1]``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfer.data.imageio import MAX_PIXELS
from deepfer.errors import DataError

log = logging.getLogger(__name__)

ColorOrder = Literal["rgb", "bgr"]
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Picture:
    """One image ready for detection.

    Attributes:
        gray: uint8 (H, W), what detection and the face crops read.
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


def read_image(path: str | Path, keep_color: bool = False) -> Picture:
    """Read an image file (any format Pillow decodes) into a :class:`Picture`.

    EXIF orientation is applied; animated images (GIF, APNG, WebP, multi-page TIFF) give their first
    frame, with a warning; transparent images are composited over white. Images of more than
    :data:`deepfer.data.imageio.MAX_PIXELS` pixels are refused before their pixels are decoded.

    Args:
        path: the image file.
        keep_color: also keep the colour pixels (for annotation).

    Returns:
        The picture.

    Raises:
        DataError: the file is missing, empty, truncated, too large, or not an image.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise DataError(f"{where}: no such file" if not path.exists() else f"{where}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{where}: empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; a warning must stop us too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return from_pil(im, keep_color, where)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{where}: not an image, or an unsupported image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: image too large, refused as a possible decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{where}: cannot decode image ({' '.join(str(exc).split())})") from None


def from_pil(im: Image.Image, keep_color: bool = False, where: str = "image") -> Picture:
    """A :class:`Picture` from a PIL image (see :func:`read_image` for what is converted how).

    Args:
        im: the image; it is not modified.
        keep_color: also keep the colour pixels (for annotation).
        where: a name for messages.

    Returns:
        The picture.
    """
    if im.width * im.height > MAX_PIXELS:
        raise DataError(f"{where}: image of {im.width}x{im.height} pixels is too large "
                        f"(limit {MAX_PIXELS:,} pixels)")
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        log.warning("%s: animated or multi-page image with %d frames; using the first", where, frames)
        im.seek(0)
    im = ImageOps.exif_transpose(im) or im
    if "A" in im.getbands() or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (*_WHITE, 255)), rgba).convert("RGB")
    gray = _pil_gray(im)
    bgr = None
    if keep_color and im.mode not in ("L", "1", *_SIXTEEN_BIT, "F"):
        bgr = np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8)[:, :, ::-1])
    return Picture(gray, bgr)


def _pil_gray(im: Image.Image) -> np.ndarray:
    # The same rule as deepfer.data.imageio.decode_gray, so files read here match training data.
    if im.mode in _SIXTEEN_BIT:
        arr = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if arr.max() > 255 else 255.0
        return np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.array(im.convert("L"), dtype=np.uint8)


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
        raise DataError(f"{where}: image of {arr.shape[1]}x{arr.shape[0]} pixels is too large")
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


def to_picture(image: str | Path | Image.Image | np.ndarray | Picture, color: ColorOrder = "rgb",
               keep_color: bool = False) -> Picture:
    """Any accepted input (file path, PIL image, numpy array, Picture) as a :class:`Picture`."""
    if isinstance(image, Picture):
        return image
    if isinstance(image, (str, Path)):
        return read_image(image, keep_color)
    if isinstance(image, Image.Image):
        return from_pil(image, keep_color)
    if isinstance(image, np.ndarray):
        return from_array(image, color, keep_color)
    raise DataError(f"expected an image path, a PIL image or a numpy array, got {type(image).__name__}")

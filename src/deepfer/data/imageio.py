"""Decoding and resizing single images the same way for every dataset reader."""

from __future__ import annotations

import hashlib
import io
import warnings

import cv2
import numpy as np
from PIL import Image

from deepfer.errors import DataError

# A 48x48 dataset never needs more; a limit stops decompression bombs in user-supplied folders.
MAX_PIXELS = 64_000_000


def decode_gray(data: bytes, where: str) -> np.ndarray:
    """Decode image bytes into a uint8 grayscale array.

    Handles palette (JAFFE), 16-bit, RGBA and CMYK images through Pillow's ``convert('L')``.

    Args:
        data: the encoded file content.
        where: the file (or archive member) name, used in the error message.

    Returns:
        uint8 array of shape (H, W).

    Raises:
        DataError: the bytes are empty, truncated or not an image.
    """
    if not data:
        raise DataError(f"{where}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise DataError(f"{where}: image of {im.width}x{im.height} is too large")
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im, dtype=np.float64)
                    scale = 65535.0 if arr.max() > 255 else 255.0
                    return np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
                return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: cannot decode image ({exc})") from None


def resize(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize a (H, W) uint8 image to (size, size); area interpolation when shrinking."""
    if size is not None and size < 1:
        raise DataError(f"image size must be a positive number of pixels, got {size}")
    if size is None or image.shape == (size, size):
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def pixel_hash(image: np.ndarray) -> int:
    """64-bit hash of an image's shape and pixels: equal pixels give equal hashes."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.asarray(image.shape, np.int32).tobytes())
    h.update(np.ascontiguousarray(image).tobytes())
    return int.from_bytes(h.digest(), "little")

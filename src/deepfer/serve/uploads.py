"""Uploads, read safely: the body is streamed with the size cap enforced while it arrives (a 50 MB
upload is refused after at most the cap, or at once when its Content-Length says so), the image is
recognised by its first bytes (never by its name or declared type), and its width and height are
checked from the header before a pixel is decoded.

Two ways to send an image: ``multipart/form-data`` with the file in a field named ``image`` (or
``file``, or the first part with a file name), or the bare bytes with ``Content-Type: image/...``
(or ``application/octet-stream``). The client's file name is only echoed back as a label: the
server never opens a path a client sends.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deepfer.errors import DataError
from deepfer.serve.errors import HTTPError, too_large, unsupported
from deepfer.serve.settings import ServeSettings
from deepfer.vision import Picture, TooLarge, from_bytes

if TYPE_CHECKING:
    from starlette.requests import Request

log = logging.getLogger(__name__)

# Multipart framing and small form fields around the image: allowed on top of the image's cap.
FORM_SLACK = 64 * 1024
MAX_PARTS = 16
# Image bytes kept in memory while a body arrives; past this they spool to a temporary file (as
# Starlette's UploadFile does), so an upload refused at the cap costs the server little memory.
SPOOL_BYTES = 1024 * 1024
_SNIFF_BYTES = 32
IMAGE_FIELDS = (b"image", b"file")

# First bytes -> the Pillow format that alone may decode the file.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)  # BITMAPCOREHEADER .. BITMAPV5HEADER


def sniff(head: bytes) -> str | None:
    """The Pillow format name of an image's first bytes (JPEG, PNG, WEBP, BMP, GIF or TIFF),
    ``None`` for anything else.

    Example:
        >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...")
        'PNG'
        >>> sniff(b"<html>") is None
        True
    """
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    # "BM" alone is two letters of text; the DIB header's size must be one that exists.
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    return None


@dataclass(frozen=True)
class Upload:
    """An image as received: its bytes, its sniffed format and the client's file name (a label
    only, without any folder part)."""

    data: bytes
    format: str
    filename: str | None = None


def _safe_name(raw: bytes | str | None) -> str | None:
    if not raw:
        return None
    name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # never a path, whatever the client sends
    name = "".join(c for c in name if c.isprintable())[:200]
    return name or None


class UploadReader:
    """Assembles one image from body chunks, refusing as soon as a limit is crossed.

    Feed it with :meth:`feed`, then call :meth:`finish` (or :meth:`close` to drop what was read).
    Nothing beyond ``max_bytes`` (plus the multipart framing allowance) is ever taken, and at most
    :data:`SPOOL_BYTES` of it is held in memory until :meth:`finish`; the rest waits in a temporary
    file that is deleted when the reader is closed.

    Args:
        content_type: the request's Content-Type header.
        max_bytes: the image's size cap.

    Raises:
        HTTPError: 415 for a content type that is neither multipart nor an image, 400 for a
            multipart type without a boundary.
    """

    def __init__(self, content_type: str, max_bytes: int) -> None:
        from python_multipart.multipart import parse_options_header

        self.max_bytes = max_bytes
        self.received = 0
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        self.head = b""  # the first bytes, for the format check
        self.size = 0
        self.format: str | None = None
        self.filename: str | None = None
        ctype, params = parse_options_header(content_type or "")
        ctype = ctype.lower()
        if ctype == b"multipart/form-data":
            boundary = params.get(b"boundary")
            if not boundary:
                raise HTTPError(400, "multipart/form-data without a boundary")
            self.max_body = max_bytes + FORM_SLACK
            self._parser = self._multipart(boundary)
        elif ctype.startswith(b"image/") or ctype == b"application/octet-stream":
            self.max_body = max_bytes
            self._parser = None
            self._taking = True
        else:
            shown = ctype.decode("latin-1") or "none"
            raise unsupported(f"unsupported Content-Type {shown!r}: send multipart/form-data with the file "
                              "in a field named 'image', or the image bytes with Content-Type image/*")

    # -- multipart ------------------------------------------------------------------------------

    def _multipart(self, boundary: bytes):  # type: ignore[no-untyped-def]
        from python_multipart.multipart import MultipartParser, parse_options_header

        self._taking = False
        self._done = False
        self._parts = 0
        field: list[bytes] = []
        value: list[bytes] = []
        headers: dict[bytes, bytes] = {}

        def on_part_begin() -> None:
            self._parts += 1
            if self._parts > MAX_PARTS:
                raise HTTPError(400, f"more than {MAX_PARTS} parts in the form")
            headers.clear()

        def on_header_field(data: bytes, start: int, end: int) -> None:
            field.append(data[start:end])

        def on_header_value(data: bytes, start: int, end: int) -> None:
            value.append(data[start:end])

        def on_header_end() -> None:
            headers[b"".join(field).lower()] = b"".join(value)
            field.clear()
            value.clear()

        def on_headers_finished() -> None:
            _, opts = parse_options_header(headers.get(b"content-disposition", b""))
            name, filename = opts.get(b"name"), opts.get(b"filename")
            self._taking = not self._done and (name in IMAGE_FIELDS or filename is not None)
            if self._taking:
                self.filename = _safe_name(filename)

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if self._taking:
                self._take(data[start:end])

        def on_part_end() -> None:
            if self._taking:
                self._taking, self._done = False, True
                self._check_format(final=True)

        callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                     "on_header_value": on_header_value, "on_header_end": on_header_end,
                     "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
                     "on_part_end": on_part_end}
        return MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    # -- both -----------------------------------------------------------------------------------

    def _take(self, data: bytes) -> None:
        if self.size + len(data) > self.max_bytes:
            raise too_large(f"image larger than the {_size(self.max_bytes)} limit")
        self._spool.write(data)
        if len(self.head) < _SNIFF_BYTES:
            self.head += bytes(data[: _SNIFF_BYTES - len(self.head)])
        self.size += len(data)
        self._check_format()

    def _check_format(self, final: bool = False) -> None:
        if self.format is None and (self.size >= _SNIFF_BYTES or final):
            if not self.size:
                raise HTTPError(400, "empty image upload")
            fmt = sniff(self.head)
            if fmt is None:
                raise unsupported(f"not a supported image: the file starts like none of {', '.join(FORMATS)}")
            self.format = fmt

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body.

        Raises:
            HTTPError: 413 past the cap, 415 once the first bytes are not an image's, 400 for a
                malformed form.
        """
        if not chunk:
            return
        self.received += len(chunk)
        if self.received > self.max_body:
            raise too_large(f"upload larger than the {_size(self.max_bytes)} limit")
        if self._parser is None:
            self._take(chunk)
            return
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise HTTPError(400, f"malformed multipart form ({exc})") from None

    def finish(self) -> Upload:
        """The image, once the whole body has been fed.

        Raises:
            HTTPError: 400 when there is no image (empty body, no image field, truncated form),
                415 when it is not an image.
        """
        if self._parser is not None:
            from python_multipart.exceptions import MultipartParseError

            try:
                self._parser.finalize()
            except MultipartParseError as exc:
                raise HTTPError(400, f"malformed multipart form ({exc})") from None
            if not self._done:
                raise HTTPError(400, "no image in the form: send the file in a field named 'image'"
                                if not self.size else "truncated multipart form")
        self._check_format(final=True)
        self._spool.seek(0)
        data = self._spool.read()
        self.close()
        return Upload(data, str(self.format), self.filename)

    def close(self) -> None:
        """Drop what was read (the temporary file, if the body spooled to one)."""
        self._spool.close()
        self.size = 0


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n / 1024:g} KiB"


async def receive_upload(request: Request, settings: ServeSettings) -> Upload:
    """Read the request's image with every limit of ``settings`` enforced while reading.

    Raises:
        HTTPError: 413 (too large: by Content-Length before anything is read, or past the cap while
            streaming), 415 (not an image), 408 (the client took longer than ``read_timeout``),
            400 (no image, malformed form, client gone).
    """
    from starlette.requests import ClientDisconnect

    reader = UploadReader(request.headers.get("content-type", ""), settings.max_upload_bytes)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, "bad Content-Length header")
        if int(declared) > reader.max_body:
            raise too_large(f"upload of {int(declared):,} bytes is larger than the "
                            f"{_size(settings.max_upload_bytes)} limit")
    try:
        async with asyncio.timeout(settings.read_timeout):
            async for chunk in request.stream():
                reader.feed(chunk)
        return reader.finish()
    except TimeoutError:
        raise HTTPError(408, f"upload not received within {settings.read_timeout:g} s") from None
    except ClientDisconnect:
        raise HTTPError(400, "client disconnected during the upload") from None
    finally:
        reader.close()


def decode(upload: Upload, settings: ServeSettings, keep_color: bool = False) -> Picture:
    """The upload's pixels as a :class:`~deepfer.vision.pictures.Picture`, decoded by the sniffed
    format's decoder only, after its width and height were checked against the limits.

    Raises:
        HTTPError: 413 for an image larger than ``max_pixels`` or ``max_side`` (or a possible
            decompression bomb).
        DataError: the bytes are not a valid image of their format (truncated, corrupt).
    """
    where = upload.filename or "upload"
    try:
        return from_bytes(upload.data, where, keep_color, formats=[upload.format],
                          max_pixels=settings.max_pixels, max_side=settings.max_side)
    except TooLarge as exc:
        raise too_large(str(exc)) from None
    except DataError:
        raise
    except Exception as exc:  # a decoder bug on one odd file is still the file's fault: 400, not 500
        log.warning("decoding an uploaded %s image failed", upload.format, exc_info=True)
        raise DataError(f"{where}: cannot decode {upload.format} image ({type(exc).__name__})") from None

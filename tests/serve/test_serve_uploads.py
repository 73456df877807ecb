"""Reading uploads without HTTP: magic-byte sniffing, the cap enforced chunk by chunk, multipart
parsing, and decoding with the dimension limits."""

from __future__ import annotations

import pytest
from PIL import Image
from serve_helpers import encode, portrait

from deepfer.errors import DataError
from deepfer.serve.errors import HTTPError
from deepfer.serve.settings import ServeSettings
from deepfer.serve.uploads import FORMATS, Upload, UploadReader, decode, sniff


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniff_knows_what_pillow_writes(fmt: str) -> None:
    im = portrait((64, 48))
    assert sniff(encode(im.convert("P") if fmt == "GIF" else im, fmt)[:32]) == fmt


@pytest.mark.parametrize("head", [b"", b"\xff\xd8", b"GIF88a", b"RIFF1234WAVE", b"BM" + bytes(30), b"II*",
                                  b"MM\x00+", b"<?xml", b"\x00\x00\x01\x00"])
def test_sniff_refuses_the_rest(head: bytes) -> None:
    assert sniff(head) is None


def _feed_all(reader: UploadReader, data: bytes, step: int = 1000) -> Upload:
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step])
    return reader.finish()


def test_raw_reader_stops_at_the_cap_without_holding_more() -> None:
    reader = UploadReader("image/jpeg", max_bytes=10_000)
    reader.feed(b"\xff\xd8\xff\xe0" + bytes(5_996))
    with pytest.raises(HTTPError) as err:
        reader.feed(bytes(4_001))  # one byte too many
    assert err.value.status == 413
    assert reader.size <= 10_000  # bytes held


def test_large_uploads_spool_to_disk_not_memory() -> None:
    """8 MiB accepted and 5 MiB refused at a 4 MiB cap: neither holds more than ~SPOOL_BYTES of
    Python memory while it arrives, and the accepted one comes back byte for byte."""
    import tracemalloc

    from deepfer.serve.uploads import SPOOL_BYTES

    chunk = 64 * 1024
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * (8 * 1024 * 1024 // 256) + b"end"
    reader = UploadReader("image/jpeg", max_bytes=10 * 1024 * 1024)
    tracemalloc.start()
    try:
        for i in range(0, len(data), chunk):
            reader.feed(data[i : i + chunk])
        _, peak = tracemalloc.get_traced_memory()
        assert peak < SPOOL_BYTES + 4 * chunk + 512 * 1024
        refused = UploadReader("image/jpeg", max_bytes=4 * 1024 * 1024)
        tracemalloc.reset_peak()
        with pytest.raises(HTTPError) as err:
            for i in range(0, 5 * 1024 * 1024, chunk):
                refused.feed(data[i : i + chunk])
        _, peak = tracemalloc.get_traced_memory()
        assert err.value.status == 413 and peak < SPOOL_BYTES + 4 * chunk + 512 * 1024
        refused.close()
    finally:
        tracemalloc.stop()
    up = reader.finish()
    assert up.data == data and up.format == "JPEG"


def test_raw_reader_refuses_a_non_image_at_its_first_bytes() -> None:
    reader = UploadReader("application/octet-stream", max_bytes=10_000)
    with pytest.raises(HTTPError) as err:
        reader.feed(b"#!/bin/sh\nrm -rf / # not an image, refused before the rest arrives")
    assert err.value.status == 415


def _form(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> tuple[str, bytes]:
    body = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + f"--{boundary}--\r\n".encode()


def test_multipart_reader_takes_the_image_field_in_any_chunking() -> None:
    png = encode(portrait((64, 48)), "PNG")
    ctype, body = _form([("note", None, b"hello"), ("image", "../x/face.png", png), ("image", "b.png", b"zz")])
    for step in (1, 7, 4096):
        up = _feed_all(UploadReader(ctype, 100_000), body, step)
        assert (up.data, up.format, up.filename) == (png, "PNG", "face.png")


def test_multipart_reader_takes_the_first_file_of_another_name() -> None:
    png = encode(portrait((64, 48)), "PNG")
    ctype, body = _form([("upload", "a.png", png)])
    assert _feed_all(UploadReader(ctype, 100_000), body).data == png


def test_multipart_limits() -> None:
    ctype, body = _form([("image", "a.jpg", b"\xff\xd8\xff" + bytes(20_000))])
    with pytest.raises(HTTPError) as err:
        _feed_all(UploadReader(ctype, 10_000), body)
    assert err.value.status == 413
    ctype, body = _form([(f"f{i}", None, b"x") for i in range(20)])
    with pytest.raises(HTTPError) as err:
        _feed_all(UploadReader(ctype, 10_000), body)
    assert err.value.status == 400 and "parts" in str(err.value)
    ctype, body = _form([("note", None, b"hello")])
    with pytest.raises(HTTPError) as err:
        _feed_all(UploadReader(ctype, 10_000), body)
    assert err.value.status == 400 and "'image'" in str(err.value)


@pytest.mark.parametrize("ctype", ["", "text/plain", "application/json", "application/x-www-form-urlencoded"])
def test_reader_refuses_other_content_types(ctype: str) -> None:
    with pytest.raises(HTTPError) as err:
        UploadReader(ctype, 1000)
    assert err.value.status == 415


def test_decode_checks_dimensions_before_pixels() -> None:
    settings = ServeSettings(max_pixels=10_000, max_side=200)
    ok = decode(Upload(encode(Image.new("RGB", (100, 80), (1, 2, 3)), "PNG"), "PNG"), settings, keep_color=True)
    assert ok.gray.shape == (80, 100) and ok.bgr is not None and ok.bgr[0, 0].tolist() == [3, 2, 1]
    for size in ((201, 10), (120, 100)):
        with pytest.raises(HTTPError) as err:
            decode(Upload(encode(Image.new("L", size), "PNG"), "PNG"), settings)
        assert err.value.status == 413


def test_decode_uses_only_the_sniffed_decoder() -> None:
    png = encode(portrait((64, 48)), "PNG")
    with pytest.raises(DataError, match="not a valid JPEG image"):
        decode(Upload(png, "JPEG", "x.jpg"), ServeSettings())

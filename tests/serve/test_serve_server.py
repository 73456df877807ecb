"""A real uvicorn server on a free port of 127.0.0.1: what only a real socket shows (loopback
binding, a 50 MB upload refused early without the server's memory growing by more than the cap,
slow uploads timed out, concurrent requests served while /healthz stays quick)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import big_upload, memory_kib, server_process, uvicorn_thread

from deepfer.serve.settings import MIB, ServeSettings

pytestmark = pytest.mark.timeout(300)

CAP = 10 * MIB  # the default --max-upload-mb


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, int]]:
    """``deepfer serve`` with its defaults, as a user starts it: (pid, port)."""
    with server_process() as (proc, port):
        yield proc.pid, port


def _post(port: int, body: bytes, ctype: str = "image/jpeg", path: str = "/v1/predict") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body, {"Content-Type": ctype})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if int(p, 16) == port and state == "0A":  # LISTEN
                found.add(addr)
    return found


def test_binds_to_loopback_by_default(server: tuple[int, int]) -> None:
    _, port = server
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else


def test_serves_concurrent_clients_and_stays_responsive(server: tuple[int, int], photo: bytes) -> None:
    _, port = server
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_post, port, photo) for _ in range(16)]
        time.sleep(0.05)
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        health = json.loads(conn.getresponse().read())
        health_s = time.perf_counter() - t0
        results = [f.result() for f in futures]
    assert health["status"] == "ok"
    assert health_s < 2.0  # the event loop is not blocked by inference (~ms; generous for busy machines)
    assert all(status == 200 for status, _ in results)
    assert all(len(r["faces"]) == 1 for _, r in results)
    assert len({json.dumps(r["faces"]) for _, r in results}) == 1  # same photo, same answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_50mb_upload_is_413_without_memory_growing_past_the_cap(server: tuple[int, int], photo: bytes,
                                                               chunked: bool) -> None:
    pid, port = server
    assert _post(port, photo)[0] == 200  # warm: what a first request allocates is not counted
    before = memory_kib(pid)
    status, body, sent = big_upload(port, 50_000_000, chunked)
    time.sleep(0.2)
    after = memory_kib(pid)
    assert status == 413, body
    assert "limit" in json.loads(body)["error"]
    assert sent < 50_000_000  # refused before the client got to the end
    if not chunked:
        assert after["VmHWM"] - before["VmHWM"] < 2 * 1024  # nothing was read
    assert (after["VmRSS"] - before["VmRSS"]) * 1024 <= CAP
    assert (after["VmHWM"] - before["VmHWM"]) * 1024 <= CAP  # the peak, during the upload
    assert _post(port, photo)[0] == 200  # and the server goes on


@pytest.fixture(scope="module")
def quick_timeout_server() -> Iterator[int]:
    """An in-process uvicorn with a 0.5 s upload timeout."""
    with uvicorn_thread(ServeSettings(backend="torch", read_timeout=0.5, intra_threads=None)) as port:
        yield port


def test_slow_upload_is_408(quick_timeout_server: int) -> None:
    with socket.create_connection(("127.0.0.1", quick_timeout_server), timeout=10) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n"
                  b"\xff\xd8\xff\xe0")
        t0 = time.perf_counter()
        answer = s.recv(4096)  # the rest of the body never comes
        waited = time.perf_counter() - t0
        while b"}" not in answer:  # the JSON body may come in a second segment
            more = s.recv(4096)
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert 0.4 < waited < 5
    assert b"not received within 0.5 s" in answer

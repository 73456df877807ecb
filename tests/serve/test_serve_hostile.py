"""Hostile uploads against a real uvicorn server: a request that times out frees its
worker at once (its decoder process is killed), ``/healthz`` counts work still running, decode bombs
are refused in milliseconds, and afterwards valid photos answer as before."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
from collections.abc import Iterator

import pytest
from serve_helpers import encode, portrait, scan_bomb, slow_png, uvicorn_thread

from deepfer.serve.settings import ServeSettings

pytestmark = pytest.mark.timeout(300)



@pytest.fixture(scope="module")
def slow() -> bytes:
    """A valid upload that takes a while to decode (serve_helpers.slow_png)."""
    return slow_png()


@pytest.fixture(scope="module")
def timeout(slow: bytes) -> float:
    """The server's request timeout: a third of the time this machine takes to decode ``slow``
    now (0.8 s idle, 2 s busy on this 2-core CPU), so the decoder is always stopped early, and a
    photo (~12x faster to answer) still has room."""
    from deepfer.serve.uploads import Upload, decode

    t0 = time.perf_counter()
    decode(Upload(slow, "PNG"), ServeSettings())
    return max(0.2, (time.perf_counter() - t0) / 3)


@pytest.fixture(scope="module")
def server(timeout: float) -> Iterator[int]:
    """uvicorn in this process, one worker, the ``timeout`` above."""
    settings = ServeSettings(backend="torch", workers=1, max_queue=4, request_timeout=timeout, intra_threads=None)
    with uvicorn_thread(settings) as port:
        yield port


def _request(port: int, method: str, path: str, body: bytes | None = None,
             ctype: str = "image/jpeg") -> tuple[int, dict, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body, {"Content-Type": ctype} if body is not None else {})
        r = conn.getresponse()
        return r.status, json.loads(r.read()), time.perf_counter() - t0
    finally:
        conn.close()


def _photo_answers(port: int, photo: bytes) -> float:
    status, body, took = _request(port, "POST", "/v1/predict", photo)
    assert status == 200 and len(body["faces"]) == 1, body
    return took


def test_a_timed_out_request_frees_its_worker_at_once(server: int, slow: bytes, timeout: float) -> None:
    photo = encode(portrait((320, 240)))
    _photo_answers(server, photo)  # warm
    quiet = min(_photo_answers(server, photo) for _ in range(3))
    killed = _request(server, "GET", "/healthz")[1]["decoders_killed"]
    status, body, took = _request(server, "POST", "/v1/predict", slow, "image/png")
    assert status == 504 and "timeout" in body["error"]
    assert took < timeout + 0.5
    # nothing is left running: the decoder was killed, not left to finish its ~2 s of work
    for _ in range(20):
        health = _request(server, "GET", "/healthz")[1]
        if health["in_progress"] == 0:
            break
        time.sleep(0.05)
    assert health["in_progress"] == 0 and health["running"] == 0
    assert health["decoders_killed"] == killed + 1 and health["decoders"] == 1
    # as available as before: the only worker answers the next photo at once
    after = _photo_answers(server, photo)
    assert after < max(timeout, 3 * quiet), (after, quiet)


def test_healthz_counts_work_still_running(server: int, slow: bytes) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_request, server, "POST", "/v1/predict", slow, "image/png")
        seen = []
        while not answer.done():
            seen.append(_request(server, "GET", "/healthz")[1])
            time.sleep(0.05)
    assert any(h["in_progress"] == 1 and h["running"] == 1 for h in seen), seen


def test_decode_bombs_are_refused_at_once_and_the_server_goes_on(server: int, timeout: float) -> None:
    photo = encode(portrait((320, 240)))
    bomb = scan_bomb()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # unbounded, two at once hold both workers ~35 s
        answers = list(pool.map(lambda _: _request(server, "POST", "/v1/predict", bomb), range(2)))
    for status, body, took in answers:
        assert status == 413 and "more than 100 scans" in body["error"]
        assert took < max(timeout, 0.5)
    _photo_answers(server, photo)
    assert _request(server, "GET", "/healthz")[1]["in_progress"] == 0

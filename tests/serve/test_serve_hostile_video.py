"""Hostile use of the video and webcam routes against ``deepfer serve`` in a child process on
loopback: a dribbled video body locks no one out, a client that leaves stops its analysis, large
frames are shrunk before they are buffered, a slow webcam frame is killed at its deadline, and the
odd cases (a session id with a newline, a 0.001 fps timelapse) answer as they should."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import encode, memory_kib, portrait, post, server_process, slow_png, write_video

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def slow() -> bytes:
    return slow_png()


@pytest.fixture(scope="module")
def timeout(slow: bytes) -> float:
    """A third of the time this machine takes to decode ``slow`` now (at least 0.2 s): the decoder is
    always stopped early (an idle machine decodes it in ~0.35 s), a small photo has room."""
    from deepfer.serve.settings import ServeSettings
    from deepfer.serve.uploads import Upload, decode

    t0 = time.perf_counter()
    decode(Upload(slow, "PNG"), ServeSettings())
    return max(0.2, (time.perf_counter() - t0) / 3)


@pytest.fixture(scope="module")
def server(timeout: float) -> Iterator[tuple[int, int]]:
    """(port, pid) of ``deepfer serve --workers 1 --timeout T --detector haar``."""
    with server_process("--workers", "1", "--timeout", f"{timeout:.2f}", "--detector", "haar",
                        "--backend", "torch") as (proc, port):
        yield port, proc.pid


def _frames(n: int, side: int = 320) -> list[np.ndarray]:
    face = np.asarray(portrait((side, side)))[:, :, ::-1].copy()
    return [np.roll(face, i, axis=1) for i in range(n)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_video(tmp_path_factory.mktemp("v") / "clip.avi", _frames(12), 10.0).read_bytes()


def test_a_session_id_ending_in_a_newline_is_refused(server: tuple[int, int]) -> None:
    port, _ = server
    photo = encode(portrait((320, 240)))
    status, body, _ = post(port, "/v1/track?session=abc%0A", photo, "image/jpeg")
    assert status == 400 and "session must be" in body["error"]
    assert post(port, "/v1/track?session=abc", photo, "image/jpeg")[0] == 200


def test_a_slow_webcam_frame_is_killed_at_its_deadline(server: tuple[int, int], slow: bytes,
                                                       timeout: float) -> None:
    port, _ = server
    photo = encode(portrait((320, 240)))
    # the worker's first frame builds its detector: warm it until a frame fits the deadline
    assert any(post(port, "/v1/track?session=warm", photo, "image/jpeg")[0] == 200 for _ in range(5))
    slow_status, slow_body, slow_took = post(port, "/v1/track?session=slow", slow, "image/png")
    assert slow_status == 504 and slow_took < timeout + 1.0, (slow_status, slow_body, slow_took)
    # the decoder was killed at the deadline, so the only worker is free for the next frame at once
    status, body, took = post(port, "/v1/track?session=quick", photo, "image/jpeg")
    assert status == 200 and len(body["faces"]) == 1, body  # 504: the worker was still decoding
    assert took < max(timeout, 1.0), took


def test_a_dribbled_video_body_locks_no_one_out(server: tuple[int, int], clip: bytes) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.sendall(b"POST /v1/video HTTP/1.1\r\nHost: t\r\nContent-Type: video/x-msvideo\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(clip) + clip[:100])
        time.sleep(0.5)  # the server is now reading the dribbled body
        status, body, _ = post(port, "/v1/video?name=other.avi", clip, "video/x-msvideo")
        assert status == 200 and body["frames"] == 12, body  # 503 "another video is being analysed"
        slow.sendall(clip[100:200])


def test_a_client_that_leaves_stops_its_analysis(server: tuple[int, int], clip: bytes, tmp_path: Path) -> None:
    port, _ = server
    long = write_video(tmp_path / "long.avi", _frames(1200, 240), 30.0).read_bytes()  # 40 s of video
    with socket.create_connection(("127.0.0.1", port), timeout=10) as gone:
        gone.sendall(b"POST /v1/video HTTP/1.1\r\nHost: t\r\nContent-Type: video/x-msvideo\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(long) + long)
        time.sleep(1.0)  # the analysis has started
    t0 = time.monotonic()
    while True:  # the lock is free once the analysis stops (it would take tens of seconds)
        status, body, _ = post(port, "/v1/video?name=next.avi", clip, "video/x-msvideo")
        if status != 503 or time.monotonic() - t0 > 60:
            break
        time.sleep(0.25)
    freed = time.monotonic() - t0
    assert status == 200, body
    assert freed < 5.0, freed


def test_large_frames_are_shrunk_before_they_are_buffered(server: tuple[int, int], tmp_path: Path) -> None:
    port, pid = server
    flat = np.full((2828, 2828, 3), 90, np.uint8)
    video = write_video(tmp_path / "big.avi", [flat] * 40, 10.0).read_bytes()
    before = memory_kib(pid)["VmRSS"]
    status, body, _ = post(port, "/v1/video?name=big.avi", video, "video/x-msvideo")
    assert status == 200 and body["frames"] == 40, body
    grown = (memory_kib(pid)["VmHWM"] - before) / 1024
    assert grown < 512, grown  # +1.4 GiB with 32 full-size colour frames buffered


def test_a_timelapse_at_0_001_fps_keeps_its_frames(server: tuple[int, int], tmp_path: Path) -> None:
    port, _ = server
    video = write_video(tmp_path / "timelapse.avi", _frames(3), 0.001).read_bytes()
    status, body, _ = post(port, "/v1/video?name=timelapse.avi", video, "video/x-msvideo")
    assert status == 200, body  # 400 "no frames could be read": int(120 * 0.001) frames is none
    assert body["frames"] == 1 and abs(body["fps"] - 0.001) < 1e-6 and body["duration"] == 1000.0, body


def test_a_rate_under_0_001_fps_is_not_believed(tmp_path: Path) -> None:
    from deepfer.inference.video import DEFAULT_FPS, fps, open_video

    cap = open_video(write_video(tmp_path / "glacial.avi", _frames(3), 1e-9))
    try:
        assert fps(cap) == DEFAULT_FPS  # 1e-9 fps: 200 frames reported as lasting 6,000 years
    finally:
        cap.release()

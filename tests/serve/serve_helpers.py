"""Helpers shared by the server tests (a module of its own: every tests/ folder has a conftest.py,
so ``from conftest import`` would be ambiguous). Every image is generated here or is the bundled
public-domain portrait; no dataset image is used."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from deepfer.inference import sample_image

ROOT = Path(__file__).resolve().parents[2]


def portrait(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """The bundled one-face portrait, 480 px high, on a grey canvas of ``size``."""
    w, h = size
    side = min(w, h)
    face = Image.open(sample_image()).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", size, (128, 128, 128))
    canvas.paste(face, ((w - side) // 2, (h - side) // 2))
    return canvas


def encode(im: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        options.setdefault("quality", 90)
    im.save(buf, fmt, **options)
    return buf.getvalue()


def blank(size: tuple[int, int] = (320, 240), fmt: str = "PNG") -> bytes:
    """A flat grey image: no face in it."""
    return encode(Image.new("RGB", size, (128, 128, 128)), fmt)


def read_png(data: bytes) -> np.ndarray:
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:16]
    return np.asarray(Image.open(io.BytesIO(data)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen[bytes] | None = None, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no server on 127.0.0.1:{port} after {seconds} s")


@contextlib.contextmanager
def server_process(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``deepfer serve`` in a subprocess on a free loopback port; stopped (SIGINT, then kill)."""
    port = free_port()
    cmd = [sys.executable, "-m", "deepfer.cli", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(port, proc)
        yield proc, port
    finally:
        proc.send_signal(2)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def uvicorn_thread(settings: object) -> Iterator[int]:
    """``create_app(settings)`` under a real uvicorn in a thread of this process; yields its port."""
    import uvicorn

    from deepfer.serve.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(port)
        yield port
    finally:
        server.should_exit = True
        thread.join(15)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def big_upload(port: int, total: int, chunked: bool, timeout: float = 30.0) -> tuple[int | None, bytes, int]:
    """POST ``total`` bytes that start like a JPEG to /v1/predict on loopback: the load test's
    sender (benchmarks/load_test.py), so the test and the benchmark check the same thing.
    Returns (status, body, bytes sent)."""
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.send_big_upload("127.0.0.1", port, total, chunked, timeout)


def slow_png(side: int = 4896) -> bytes:
    """A flat 16-bit RGBA PNG of 24 Mpx (just under the server's pixel cap), 1 MB: valid, and slow
    to decode (~2 s on this 2-core machine: 190 MB inflated, alpha composited)."""
    row = np.zeros(1 + side * 8, np.uint8)
    row[1:] = np.tile(np.array([0x80, 0, 0x40, 0, 0x20, 0, 0x9C, 0x40], np.uint8), side)
    deflate = zlib.compressobj(1)
    raw = row.tobytes()
    body = b"".join(deflate.compress(raw) for _ in range(side)) + deflate.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def scan_bomb(side: int = 4800, scans: int = 12_000) -> bytes:
    """The server's JPEG bomb: a 16x16 progressive JPEG claiming side x side, then empty scans."""
    data = bytearray(encode(portrait((16, 16)), "JPEG", progressive=True))
    sof = data.index(b"\xff\xc2")
    struct.pack_into(">HH", data, sof + 5, side, side)
    end = data.rindex(b"\xff\xd9")
    return bytes(data[:end]) + b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x00" * scans + b"\xff\xd9"


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """An MJPG ``.avi`` of BGR ``frames``. Rates under 1 fps (which OpenCV's writer refuses) are
    written into the AVI headers afterwards, as a timelapse camera writes them."""
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), max(1.0, fps), (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    if fps < 1.0:
        data = bytearray(path.read_bytes())
        vids = data.index(b"strh") + 8  # the stream header: 'vids', handler, flags, ..., scale, rate
        scale = round(1 / fps)
        struct.pack_into("<II", data, vids + 20, scale, 1)
        struct.pack_into("<I", data, data.index(b"avih") + 8, min(scale * 10**6, 2**32 - 1))
        path.write_bytes(bytes(data))
    return path


def post(port: int, path: str, body: bytes, ctype: str, timeout: float = 120.0) -> tuple[int, dict, float]:
    """POST on loopback: status, JSON body, seconds taken."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        conn.request("POST", path, body, {"Content-Type": ctype})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}"), time.perf_counter() - t0
    finally:
        conn.close()

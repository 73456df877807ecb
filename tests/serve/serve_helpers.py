"""Helpers shared by the server tests (a module of its own: every tests/ folder has a conftest.py,
so ``from conftest import`` would be ambiguous). Every image is generated here or is the bundled
public-domain portrait; no dataset image is used."""

from __future__ import annotations

import contextlib
import io
import os
import select
import socket
import subprocess
import sys
import time
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


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def big_upload(port: int, total: int, chunked: bool, timeout: float = 30.0) -> tuple[int | None, bytes, int]:
    """POST ``total`` bytes that start like a JPEG to /v1/predict over a raw socket.

    The client sends as a browser would, but looks for the server's answer between chunks (a server
    that refuses early has answered long before the body ends). Returns (status, body, bytes sent).
    """
    chunk = b"\xff\xd8\xff\xe0" + bytes(64 * 1024 - 4)
    head = "POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode())
        s.settimeout(2.0)
        while sent < total:
            if select.select([s], [], [], 0)[0]:
                break
            piece = chunk[: min(len(chunk), total - sent)]
            try:
                s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(piece)
        else:
            if chunked:
                s.sendall(b"0\r\n\r\n")
        s.settimeout(timeout)
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while True:
                more = s.recv(65536)
                if not more:
                    break
                answer += more
                if b"\r\n\r\n" in answer:
                    head_part, body = answer.split(b"\r\n\r\n", 1)
                    length = [int(line.split(b":")[1]) for line in head_part.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")]
                    if length and len(body) >= length[0]:
                        break
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else None
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    return status, body, sent

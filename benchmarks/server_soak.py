"""The server under a long run of small photos and one large photo (``python benchmarks/server_soak.py``).

Starts the real ``deepfer serve`` on 127.0.0.1 (a free port, YuNet), then:

1. memory: 50 small photos to warm up (a 320x240 crop of the bundled portrait, JPEG), the resident
   memory of the server's process tree (the server and every child: VmRSS from /proc), then
   ``--requests`` more small photos to ``/v1/predict`` one after another on one keep-alive
   connection, and the tree's memory again;
2. the event loop during a detection: a 4000x3000 (12 Mpx) textured JPEG without a face sent to
   ``/v1/predict`` from a thread while ``/healthz`` is asked every 0.1 s on its own connection; the
   latencies of the ``/healthz`` answers given while the big request was in progress; then the same
   on a second server started with ``--min-face 32`` (the whole photo searched: seconds of detection).

Writes ``benchmarks/SERVER_SOAK.md`` and ``.json``. Bounded: every request has a timeout, the loops
are counted, the server is stopped (SIGINT, then SIGKILL) at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name, write_report  # noqa: E402
from fuzz import _tree  # noqa: E402
from load_test import free_port, spawn_server  # noqa: E402

MIB = 1024 * 1024


def small_photo() -> bytes:
    """A 320x240 crop of the bundled portrait (the face and some background), JPEG quality 90."""
    from deepfer.inference import sample_image

    im = Image.open(sample_image()).convert("RGB")
    w, h = im.size
    left, top = max(0, (w - 320) // 2), max(0, min(h - 240, h // 8))
    buf = io.BytesIO()
    im.crop((left, top, left + 320, top + 240)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def textured_photo(width: int = 4000, height: int = 3000, seed: int = 0) -> bytes:
    """A ``width`` x ``height`` JPEG of smooth random texture (blobs of several sizes, no face):
    every scale of the detector's search has something to look at, and the file stays a few MB."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((height, width), np.float32)
    for cell in (8, 40, 200):
        small = rng.uniform(0, 255, (height // cell + 1, width // cell + 1)).astype(np.float32)
        acc += np.asarray(Image.fromarray(small, "F").resize((width, height), Image.Resampling.BICUBIC)) / 3
    gray = np.clip(acc, 0, 255).astype(np.uint8)
    rgb = np.stack([gray, np.roll(gray, 37, 0), np.roll(gray, 91, 1)], axis=2)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB (VmRSS summed)."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:  # exited meanwhile
            pass
    return total / 1024


def predict(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict[str, Any]]:
    conn.request("POST", "/v1/predict", body, {"Content-Type": "image/jpeg"})
    r = conn.getresponse()
    data = r.read()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, {"raw": data[:80].decode(errors="replace")}


def soak(port: int, pid: int, photo: bytes, warmup: int, requests: int) -> dict[str, Any]:
    """``warmup`` then ``requests`` small photos on one keep-alive connection; the tree's RSS between."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    statuses: dict[int, int] = {}
    faces = 0
    try:
        for _ in range(warmup):
            status, _body = predict(conn, photo)
            if status != 200:
                raise SystemExit(f"warm-up request answered {status}: {_body}")
        time.sleep(1.0)
        before = tree_rss_mib(pid)
        t0 = time.perf_counter()
        for _ in range(requests):
            status, body = predict(conn, photo)
            statuses[status] = statuses.get(status, 0) + 1
            faces += len(body.get("faces", []))
        took = time.perf_counter() - t0
        time.sleep(1.0)
        after = tree_rss_mib(pid)
    finally:
        conn.close()
    return {"warmup": warmup, "requests": requests, "statuses": {str(k): v for k, v in statuses.items()},
            "faces_per_request": round(faces / max(1, requests), 3), "seconds": round(took, 1),
            "rss_before_mib": round(before, 1), "rss_after_mib": round(after, 1),
            "growth_mib": round(after - before, 2), "processes": len(_tree(pid))}


def frozen_loop(port: int, photo: bytes, poll: float = 0.1, limit: float = 300.0) -> dict[str, Any]:
    """The big photo in a thread; ``/healthz`` every ``poll`` s while it is in progress."""
    big: dict[str, Any] = {}

    def send() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=limit)
        t0 = time.perf_counter()
        try:
            status, body = predict(conn, photo)
            big.update(status=status, faces=len(body.get("faces", [])) if status == 200 else None,
                       detail=None if status == 200 else body)
        except OSError as e:
            big.update(status=None, detail=repr(e))
        finally:
            big["seconds"] = round(time.perf_counter() - t0, 2)
            conn.close()

    thread = threading.Thread(target=send, daemon=True)
    health = http.client.HTTPConnection("127.0.0.1", port, timeout=limit)
    lat: list[float] = []
    bad = 0
    thread.start()
    deadline = time.monotonic() + limit
    try:
        while thread.is_alive() and time.monotonic() < deadline:
            t0 = time.perf_counter()
            health.request("GET", "/healthz")
            r = health.getresponse()
            r.read()
            dt = time.perf_counter() - t0
            if thread.is_alive():  # only answers given while the big photo was in progress
                lat.append(dt)
                bad += r.status != 200
            time.sleep(max(0.0, poll - dt))
    finally:
        health.close()
    thread.join(limit)
    arr = np.array(lat) if lat else np.zeros(1)
    return {"photo_bytes": len(photo), "photo_px": "4000x3000", "big_request": big,
            "healthz_answers": len(lat), "healthz_not_200": bad,
            "healthz_max_s": round(float(arr.max()), 3), "healthz_p99_s": round(float(np.percentile(arr, 99)), 3),
            "healthz_median_s": round(float(np.median(arr)), 3)}


def markdown(res: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    s, f = res["soak"], res["big_photo"]
    b = f["big_request"]
    g = res["big_photo_full_search"]["big_request"]
    lines = [
        "# The server under a long run of small photos and one large photo",
        "",
        f"`{meta['command']}` on {meta['cpu']} ({meta['cores']} cores), Python {meta['python']}, "
        f"{meta['date']}, load average {meta['load_average_at_start'][0]} at the start. {meta['note']}",
        "",
        f"Server: `deepfer serve {' '.join(meta['server_args'])}` on 127.0.0.1, detector YuNet "
        "(libfacedetection called through ctypes, `deepfer.vision.libfacedetection`). Memory is the "
        "resident memory (VmRSS) of the server process and all its children, summed.",
        "",
        "## Memory over small photos",
        "",
        f"{s['warmup']} warm-up requests, then {s['requests']:,} requests to `/v1/predict`, one after another "
        f"on one keep-alive connection, each the same 320x240 crop of the bundled portrait as JPEG "
        f"({meta['small_photo_bytes']:,} bytes, {s['faces_per_request']} faces found per request).",
        "",
        "| before (MiB) | after (MiB) | growth (MiB) | target | statuses | time (s) | processes |",
        "|---:|---:|---:|---|---|---:|---:|",
        f"| {s['rss_before_mib']} | {s['rss_after_mib']} | {s['growth_mib']} | <= 20 | "
        f"{', '.join(f'{k}: {v}' for k, v in s['statuses'].items())} | {s['seconds']} | {s['processes']} |",
        "",
        "## `/healthz` while a 12 Mpx photo is in detection",
        "",
        f"A {f['photo_px']} JPEG of smooth random texture, no face ({f['photo_bytes']:,} bytes), sent to "
        "`/v1/predict` from a thread; meanwhile `/healthz` asked every 0.1 s on a keep-alive connection. "
        "Latencies of the answers given while the big request was in progress (its own server each row):",
        "",
        "| big request | its time (s) | `/healthz` answers | max (s) | p99 (s) | median (s) | target |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| {b.get('status')} ({b.get('faces')} faces) | {b.get('seconds')} | {f['healthz_answers']} "
        f"({f['healthz_not_200']} not 200) | {f['healthz_max_s']} | {f['healthz_p99_s']} | "
        f"{f['healthz_median_s']} | max <= 0.5 |",
        f"| {g.get('status')} ({g.get('faces')} faces), `--min-face 32` | {g.get('seconds')} | "
        f"{res['big_photo_full_search']['healthz_answers']} ({res['big_photo_full_search']['healthz_not_200']} not 200) | "
        f"{res['big_photo_full_search']['healthz_max_s']} | {res['big_photo_full_search']['healthz_p99_s']} | "
        f"{res['big_photo_full_search']['healthz_median_s']} | max <= 0.5 |",
        "",
        "The first row is the server's default search (faces from 1/40 of the photo's longer side, so the "
        "photo is searched reduced); the second is a second server started with `--min-face 32`, which "
        "searches the whole photo down to 32-px faces and keeps the detector busy for seconds.",
        "",
        "The test `tests/serve/test_serve_soak.py` checks the same two things at a smaller scale.",
        "",
    ]
    path.write_text("\n".join(lines))


@contextlib.contextmanager
def running(port: int, server_args: list[str]) -> Iterator[int]:
    """``deepfer serve`` on 127.0.0.1:``port``; yields its pid; stopped (SIGINT, then SIGKILL)."""
    server = spawn_server(port, server_args)
    try:
        yield server.pid
    finally:
        server.send_signal(2)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--note", default="", help="a line on the machine's load, for the report")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "SERVER_SOAK.md"))
    args = p.parse_args(argv)
    if not 0 < args.requests <= 100_000 or not 0 <= args.warmup <= 10_000:
        raise SystemExit("--requests must be in 1..100000 and --warmup in 0..10000")
    server_args = ["--detector", "yunet", "--workers", "2", "--max-upload-mb", "40", "--timeout", "300"]
    port = free_port()
    small, big = small_photo(), textured_photo()
    load = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: say how busy
    res: dict[str, Any] = {}
    with running(port, server_args) as pid:
        res["soak"] = soak(port, pid, small, args.warmup, args.requests)
        res["big_photo"] = frozen_loop(port, big)
    port = free_port()
    with running(port, [*server_args, "--min-face", "32"]):  # the whole photo down to 32-px faces: seconds
        res["big_photo_full_search"] = frozen_loop(port, big)
    meta = {"command": shlex.join(["python", "benchmarks/server_soak.py", *(sys.argv[1:] if argv is None else argv)]),
            "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note,
            "load_average_at_start": load, "server_args": server_args, "small_photo_bytes": len(small)}
    write_report(args.out, meta, res, markdown)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

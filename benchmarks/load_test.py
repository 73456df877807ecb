"""Load test of ``deepfer serve``: N concurrent clients POST 640x480 one-face photos to
``/v1/predict`` for T seconds over loopback, and the throughput, latency percentiles and errors are
written to ``benchmarks/load_results.json``.

By default it starts the server itself (``python -m deepfer.cli serve`` on a free port of
127.0.0.1) so it can also read the server's memory and CPU time from ``/proc``, and it first checks
that a 50 MB upload is refused with 413 without the server's memory growing by more than the cap.

    python benchmarks/load_test.py                         # 16 clients, 60 s, the checks above
    python benchmarks/load_test.py --clients 4 --duration 5 --out /tmp/quick.json
    python benchmarks/load_test.py --url http://127.0.0.1:8000   # a server already running

Traffic goes to loopback only (any other address is refused), every client stops at the deadline
or after ``--max-requests`` in all, and a spawned server is stopped at the end. The photos are the
bundled public-domain portrait (``deepfer.inference.sample_image()``), each one placed, scaled,
mirrored, lit and compressed differently, so no two requests send the same bytes.

Each client is one keep-alive connection with raw HTTP/1.1 over asyncio streams: the client costs
a few percent of a core, so most of the machine is left to the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import json
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _machine module
from _machine import cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JAFFE = ROOT.parent / "shared" / "data" / "jaffe" / "jaffe"
BOUNDARY = "deepferloadtest7MA4YWxkTrZu0gW"


# -- the photos ------------------------------------------------------------------------------------

def make_photos(n: int, seed: int = 0, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """``n`` different 640x480 JPEGs, each with the bundled portrait's one face."""
    from deepfer.inference import sample_image

    rng = np.random.default_rng(seed)
    src = Image.open(sample_image()).convert("RGB")
    w, h = size
    photos = []
    for _ in range(n):
        side = int(rng.integers(int(h * 0.85), h + 1))
        im = src.resize((side, side), Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.85, 1.15)))
        grey = tuple(int(v) for v in rng.integers(60, 200, 3))
        canvas = Image.new("RGB", size, grey)
        canvas.paste(im, (int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))))
        buf = io.BytesIO()
        canvas.save(buf, "JPEG", quality=int(rng.integers(80, 93)))
        photos.append(buf.getvalue())
    return photos


def jaffe_photos(root: Path, n: int, seed: int = 0, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """``n`` JAFFE photos (256x256, one face each) pasted at random places of a mid-grey 640x480
    canvas, as ``bench_inference.py`` builds its "640x480 one-face photos"; read from the dataset
    at run time, never copied."""
    files = sorted(root.glob("*.tiff"))
    if not files:
        raise SystemExit(f"no JAFFE photos (*.tiff) in {root}")
    rng = np.random.default_rng(seed)
    w, h = size
    photos = []
    for f in [files[i] for i in rng.permutation(len(files))[:n]]:
        face = Image.open(f).convert("L")
        canvas = Image.new("L", size, 128)
        canvas.paste(face, (int(rng.integers(0, w - face.width)), int(rng.integers(0, h - face.height))))
        buf = io.BytesIO()
        canvas.save(buf, "JPEG", quality=90)
        photos.append(buf.getvalue())
    return photos


def multipart_request(host: str, port: int, path: str, photo: bytes, name: str) -> bytes:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: multipart/form-data; "
            f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


# -- the clients -----------------------------------------------------------------------------------

async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.faces: dict[str, int] = {}
        self.sent = 0


async def client(k: int, host: str, port: int, requests: list[bytes], stop_at: float, budget: list[int],
                 stats: Stats, timeout: float) -> None:
    reader = writer = None
    i = k
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        req = requests[i % len(requests)]
        i += 7
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(req)
            status, headers, body = await asyncio.wait_for(read_response(reader), timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            stats.errors[type(exc).__name__] = stats.errors.get(type(exc).__name__, 0) + 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        latency = time.perf_counter() - t0
        stats.sent += 1
        stats.statuses[str(status)] = stats.statuses.get(str(status), 0) + 1
        if status != 200:
            stats.errors[f"http_{status}"] = stats.errors.get(f"http_{status}", 0) + 1
        else:
            stats.latencies.append(latency)
            n = str(len(json.loads(body)["faces"]))
            stats.faces[n] = stats.faces.get(n, 0) + 1
        if headers.get("connection", "").lower() == "close":
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def load(host: str, port: int, clients: int, duration: float, max_requests: int, photos: list[bytes],
               timeout: float) -> tuple[Stats, float]:
    requests = [multipart_request(host, port, "/v1/predict", p, f"photo{i}.jpg") for i, p in enumerate(photos)]
    stats = Stats()
    budget = [max_requests]
    t0 = time.monotonic()
    await asyncio.gather(*(client(k, host, port, requests, t0 + duration, budget, stats, timeout)
                           for k in range(clients)))
    return stats, time.monotonic() - t0


def summarize(stats: Stats, elapsed: float) -> dict[str, object]:
    lat = np.array(stats.latencies) * 1000
    pct = {f"p{q}": round(float(np.percentile(lat, q)), 1) for q in (50, 90, 99)} if len(lat) else {}
    return {"requests_ok": len(stats.latencies), "errors": sum(stats.errors.values()),
            "errors_by_kind": stats.errors, "statuses": stats.statuses, "elapsed_s": round(elapsed, 2),
            "throughput_rps": round(len(stats.latencies) / elapsed, 1),
            "latency_ms": {**pct, "mean": round(float(lat.mean()), 1) if len(lat) else None,
                           "max": round(float(lat.max()), 1) if len(lat) else None},
            "faces_per_photo": stats.faces}


# -- the 413 check -----------------------------------------------------------------------------------

def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_big_upload(host: str, port: int, total: int, chunked: bool,
                    timeout: float = 60.0) -> tuple[int | None, bytes, int]:
    """POST ``total`` bytes that start like a JPEG to /v1/predict over a raw socket.

    With a Content-Length, a well-behaved server answers 413 before the body is sent, so the client
    sends the headers and a first chunk, then waits for the answer. Chunked (no length), the server
    must count while it reads: the client keeps sending until the server answers or closes.
    Returns (status, response body, bytes the client sent). Also used by tests/serve.
    """
    chunk = b"\xff\xd8\xff\xe0" + os.urandom(64 * 1024 - 4)
    head = f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: image/jpeg\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    sent = 0
    answer = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(head.encode())
        s.settimeout(2.0)  # a server that stopped reading makes sendall block: then read its answer
        while sent < total:
            if select.select([s], [], [], 0)[0]:  # the server has answered (or closed)
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
        try:
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
        except (ConnectionResetError, TimeoutError):
            pass
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else None
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    return status, body, sent


def big_upload(host: str, port: int, total: int, chunked: bool, timeout: float = 60.0) -> dict[str, object]:
    """:func:`send_big_upload`, timed, as a results-file record."""
    t0 = time.perf_counter()
    status, body, sent = send_big_upload(host, port, total, chunked, timeout)
    return {"status": status, "bytes_sent_by_client": sent, "seconds": round(time.perf_counter() - t0, 3),
            "body": body[:200].decode("latin-1")}


def check_413(host: str, port: int, pid: int | None, size: int, cap: int) -> dict[str, object]:
    out: dict[str, object] = {"upload_bytes": size, "cap_bytes": cap}
    for name, chunked in (("content_length", False), ("chunked", True)):
        before = rss_kib(pid) if pid else None
        res = big_upload(host, port, size, chunked)
        time.sleep(0.3)
        after = rss_kib(pid) if pid else None
        if before and after:
            res["rss_kib_before"], res["rss_kib_after"] = before["VmRSS"], after["VmRSS"]
            res["rss_growth_kib"] = after["VmRSS"] - before["VmRSS"]
            res["peak_rss_growth_kib"] = after["VmHWM"] - before["VmHWM"]
            res["growth_within_cap"] = max(res["rss_growth_kib"], res["peak_rss_growth_kib"]) * 1024 <= cap
        out[name] = res
    return out


# -- the server ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_server(port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "deepfer.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 120 s")


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


def loopback_target(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    addr = socket.gethostbyname(host)
    if not ipaddress.ip_address(addr).is_loopback:
        raise SystemExit(f"refusing to load {host} ({addr}): this test sends traffic to loopback only")
    return addr, parts.port or 80


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    p.add_argument("--max-requests", type=int, default=200_000, help="stop after this many requests in all")
    p.add_argument("--photos", type=int, default=64, help="distinct photos to cycle through")
    p.add_argument("--source", choices=["portrait", "jaffe"], default="portrait",
                   help="portrait: the bundled photo filling the frame (default); jaffe: JAFFE faces on a grey "
                   "canvas, as bench_inference.py, from --jaffe")
    p.add_argument("--jaffe", default=str(JAFFE), help="the JAFFE folder of .tiff photos")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a client waits for one answer")
    p.add_argument("--url", help="a server already running on loopback (default: start one)")
    p.add_argument("--server-args", default="", help="extra `deepfer serve` options for the started server")
    p.add_argument("--big-upload-mb", type=float, default=50.0, help="size of the 413 check's upload (0: skip)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "load_results.json"),
                   help="results file; each run is kept under its --label, other runs in the file stay")
    p.add_argument("--label", help="name of this run in the results file (default: from --source and --server-args)")
    args = p.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.max_requests < 1:
        p.error("--clients, --duration and --max-requests must be positive")

    proc = None
    if args.url:
        host, port = loopback_target(args.url)
    else:
        host, port = "127.0.0.1", free_port()
        proc = spawn_server(port, args.server_args.split())
    pid = proc.pid if proc else None
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/v1/models", timeout=10) as r:  # noqa: S310 (loopback)
            info = json.load(r)
        photos = make_photos(args.photos) if args.source == "portrait" else jaffe_photos(Path(args.jaffe), args.photos)
        result: dict[str, object] = {
            "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1min_at_start": round(os.getloadavg()[0], 2)},
            "server": {"url": f"http://{host}:{port}", "spawned": proc is not None, "model": info["model"],
                       "limits": info["limits"], "server_args": args.server_args},
            "workload": {"clients": args.clients, "duration_s": args.duration, "warmup_s": args.warmup,
                         "endpoint": "POST /v1/predict (multipart)", "photos": len(photos),
                         "photo": "640x480 JPEG, one face: " + (
                             "the bundled portrait filling the frame, varied" if args.source == "portrait"
                             else "a JAFFE photo pasted on a grey canvas"),
                         "photo_bytes_mean": int(np.mean([len(x) for x in photos]))},
        }
        if args.big_upload_mb > 0:
            result["upload_413"] = check_413(host, port, pid, int(args.big_upload_mb * 1e6),
                                             int(info["limits"]["max_upload_bytes"]))
        if args.warmup > 0:
            asyncio.run(load(host, port, args.clients, args.warmup, args.max_requests, photos, args.timeout))
        cpu0 = cpu_seconds(pid) if pid else None
        stats, elapsed = asyncio.run(load(host, port, args.clients, args.duration, args.max_requests, photos,
                                          args.timeout))
        result["results"] = summarize(stats, elapsed)
        if pid and cpu0 is not None:
            cpu = cpu_seconds(pid) - cpu0
            result["results"]["server_cpu_ms_per_request"] = round(cpu * 1000 / max(1, len(stats.latencies)), 1)
            result["results"]["server_cpu_cores_used"] = round(cpu / elapsed, 2)
        result["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    label = args.label or " ".join([args.source, *args.server_args.split()]) or "default"
    out = Path(args.out)
    runs = {}
    if out.is_file():
        try:
            runs = json.loads(out.read_text()).get("runs", {})
        except (json.JSONDecodeError, AttributeError):
            runs = {}
    runs[label] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    r = result["results"]
    print(f"{r['requests_ok']} requests in {r['elapsed_s']} s: {r['throughput_rps']} req/s, "
          f"p50 {r['latency_ms'].get('p50')} ms, p99 {r['latency_ms'].get('p99')} ms, errors {r['errors']}")
    if "upload_413" in result:
        for k in ("content_length", "chunked"):
            u = result["upload_413"][k]
            print(f"{args.big_upload_mb:g} MB upload ({k}): {u['status']}, server RSS growth "
                  f"{u.get('rss_growth_kib', '?')} KiB (peak {u.get('peak_rss_growth_kib', '?')} KiB)")
    print(f"wrote run {label!r} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The server under a long run of small photos and one large photo (``python benchmarks/server_soak.py``).

Starts the real ``deepfer serve`` on 127.0.0.1 (a free port, YuNet), then:

1. memory: 50 small photos to warm up (a 320x240 crop of the bundled portrait, JPEG), the resident
   memory of the server's process tree (the server and every child: VmRSS from /proc), then
   ``--requests`` more small photos to ``/v1/predict`` one after another on one keep-alive
   connection, and the tree's memory again;
2. the event loop during a detection: a 4000x3000 (12 Mpx) textured JPEG without a face sent to
   ``/v1/predict`` from a thread while ``/healthz`` is asked every 0.1 s on its own connection; the
   latencies of the ``/healthz`` answers given while the big request was in progress; then the same
   on a second server started with ``--min-face 32`` (the whole photo searched: seconds of detection);
3. (the ``load`` sections) the same ``/healthz`` probe while an 8000x8000 (64 Mpx) textured JPEG is
   in detection, on a server started with ``--max-megapixels 64`` and the default ``--workers`` and
   ``--timeout``; then, on a fresh server with the defaults, 4 client threads sending 6000x4000
   (24 Mpx) textured JPEGs back to back for ``--seconds`` while a fifth sends the small photo every
   0.5 s: the small photos' statuses and latencies, the big ones' statuses, the tree's peak memory
   (sampled every 0.2 s) and its memory after, and one small photo once the load has stopped.

Writes ``benchmarks/SERVER_SOAK.md`` and ``.json``; ``--only load`` runs the load sections alone and
merges their figures into the existing ``.json`` (the other sections' figures and meta are kept). Bounded: every request has a timeout, the loops
are counted, the server is stopped (SIGINT, then SIGKILL) at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name, write_report  # noqa: E402
from fuzz import _tree  # noqa: E402
from load_test import free_port, running  # noqa: E402

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


def frozen_loop(port: int, photo: bytes, poll: float = 0.1, limit: float = 300.0,
                photo_px: str = "4000x3000") -> dict[str, Any]:
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
    return {"photo_bytes": len(photo), "photo_px": photo_px, "big_request": big,
            "healthz_answers": len(lat), "healthz_not_200": bad,
            "healthz_max_s": round(float(arr.max()), 3), "healthz_p99_s": round(float(np.percentile(arr, 99)), 3),
            "healthz_median_s": round(float(np.median(arr)), 3)}


def _stats(lat: list[float]) -> dict[str, float | None]:
    if not lat:
        return {"max_s": None, "p99_s": None, "median_s": None}
    arr = np.array(lat)
    return {"max_s": round(float(arr.max()), 3), "p99_s": round(float(np.percentile(arr, 99)), 3),
            "median_s": round(float(np.median(arr)), 3)}


def _post(port: int, body: bytes, timeout: float) -> tuple[str, float]:
    """One ``/v1/predict`` on its own connection: (status or the error's class name, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        status, _body = predict(conn, body)
        return str(status), time.perf_counter() - t0
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__, time.perf_counter() - t0
    finally:
        conn.close()


def under_load(port: int, pid: int, big: bytes, small: bytes, clients: int = 4, seconds: float = 45.0,
               every: float = 0.5, timeout: float = 60.0) -> dict[str, Any]:
    """``clients`` threads sending ``big`` back to back for ``seconds`` while ``small`` is sent every
    ``every`` s (each from its own thread, so a slow answer does not delay the next); the tree's RSS
    sampled every 0.2 s. Each request has its own connection."""
    for _ in range(5):  # warm-up: the model and detector loaded in both workers
        status, _dt = _post(port, small, timeout)
        if status != "200":
            raise SystemExit(f"warm-up request answered {status}")
    time.sleep(1.0)
    before = tree_rss_mib(pid)
    big_status: dict[str, int] = {}
    big_lat: list[float] = []
    small_status: dict[str, int] = {}
    small_lat: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    end = time.monotonic() + seconds

    def sender() -> None:
        while time.monotonic() < end:
            status, dt = _post(port, big, timeout)
            with lock:
                big_status[status] = big_status.get(status, 0) + 1
                big_lat.append(dt)

    def one_small() -> None:
        status, dt = _post(port, small, timeout)
        with lock:
            small_status[status] = small_status.get(status, 0) + 1
            small_lat.append(dt)

    def ticker() -> None:  # one small photo every ``every`` s, whether or not the last was answered
        sent: list[threading.Thread] = []
        for k in range(int(seconds / every)):
            time.sleep(max(0.0, (end - seconds) + k * every - time.monotonic()))
            sent.append(threading.Thread(target=one_small, daemon=True))
            sent[-1].start()
        for t in sent:
            t.join(timeout + 5)

    peak = [before]

    def sampler() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], tree_rss_mib(pid))

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(clients)]
    threads.append(threading.Thread(target=ticker, daemon=True))
    watch = threading.Thread(target=sampler, daemon=True)
    watch.start()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 2 * timeout)
    took = time.perf_counter() - t0
    time.sleep(3.0)  # answers sent, workers idle again
    stop.set()
    watch.join(5)
    after = tree_rss_mib(pid)
    status, dt = _post(port, small, timeout)  # a 504 frees its worker: the next photo is answered
    return {"clients": clients, "seconds": seconds, "small_every_s": every, "request_timeout_client_s": timeout,
            "took_s": round(took, 1), "threads_still_running": sum(t.is_alive() for t in threads),
            "small": {"sent": len(small_lat), "statuses": small_status, **_stats(small_lat)},
            "big": {"sent": len(big_lat), "statuses": big_status, **_stats(big_lat)},
            "rss_before_mib": round(before, 1), "rss_peak_mib": round(peak[0], 1),
            "rss_after_mib": round(after, 1), "kept_mib": round(after - before, 1),
            "small_after": {"status": status, "seconds": round(dt, 3)}, "processes": len(_tree(pid))}


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) or "none"


def load_markdown(res: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lm = meta.get("load")
    if lm is None:
        return lines
    lines += ["## Large photos (the load sections)", "",
              f"`{lm['command']}` on {lm['cpu']} ({lm['cores']} cores), Python {lm['python']}, {lm['date']}, "
              f"load average {lm['load_average_at_start'][0]} at the start. {lm['note']}", ""]
    if "big_photo_64mpx" in res:
        f = res["big_photo_64mpx"]
        b = f["big_request"]
        lines += [
            "### `/healthz` while a 64 Mpx photo is in detection", "",
            f"Server: `deepfer serve {' '.join(lm['server_args_64mpx'])}` (default `--workers` and `--timeout`). "
            f"A {f['photo_px']} JPEG of smooth random texture, no face ({f['photo_bytes']:,} bytes), sent to "
            "`/v1/predict` from a thread; `/healthz` asked every 0.1 s on a keep-alive connection meanwhile "
            "(the answers given while the big request was in progress; its time includes the upload and "
            "the decoding).", "",
            "| big request | its time (s) | `/healthz` answers | max (s) | p99 (s) | median (s) | target |",
            "|---|---:|---:|---:|---:|---:|---|",
            f"| {b.get('status')} ({b.get('faces')} faces) | {b.get('seconds')} | {f['healthz_answers']} "
            f"({f['healthz_not_200']} not 200) | {f['healthz_max_s']} | {f['healthz_p99_s']} | "
            f"{f['healthz_median_s']} | max <= 0.5 |"]
        g = res.get("big_photo_64mpx_full_search")
        if g is not None:
            c = g["big_request"]
            faces = f" ({c.get('faces')} faces)" if c.get("status") == 200 else ""
            lines += [f"| {c.get('status')}{faces}, `--min-face 32` | {c.get('seconds')} | "
                      f"{g['healthz_answers']} ({g['healthz_not_200']} not 200) | {g['healthz_max_s']} | "
                      f"{g['healthz_p99_s']} | {g['healthz_median_s']} | max <= 0.5 |", "",
                      "The second row is a second server started with `--min-face 32` as well, which searches the "
                      "whole photo down to 32-px faces: longer than the default 10 s timeout, so a 504 is expected "
                      "there; the probe is about the event loop while the detector runs."]
        lines += [""]
    if "load_24mpx" in res:
        r = res["load_24mpx"]
        sm, bg = r["small"], r["big"]
        lines += [
            "### Small photos while 4 clients send 24 Mpx photos", "",
            f"Server: `deepfer serve {' '.join(lm['server_args_load'])}` (default `--workers` 2 and `--timeout` "
            f"10 s). After 5 warm-up photos, {r['clients']} client threads each send a 6000x4000 textured JPEG "
            f"without a face ({lm['big_24mpx_bytes']:,} bytes) to `/v1/predict` back to back for {r['seconds']:g} s; "
            f"a fifth client starts a 320x240 portrait crop every {r['small_every_s']} s (without waiting for "
            "the previous answer). Every request has its own "
            f"connection and a {r['request_timeout_client_s']:g} s client timeout. Memory: the tree's VmRSS "
            "before, its peak (sampled every 0.2 s) and 3 s after the last answer.", "",
            "| photos | sent | statuses | max (s) | p99 (s) | median (s) | target |",
            "|---|---:|---|---:|---:|---:|---|",
            f"| small 320x240 | {sm['sent']} | {_counts(sm['statuses'])} | {sm['max_s']} | {sm['p99_s']} | "
            f"{sm['median_s']} | all 200, p99 <= 2 |",
            f"| big 6000x4000 | {bg['sent']} | {_counts(bg['statuses'])} | {bg['max_s']} | {bg['p99_s']} | "
            f"{bg['median_s']} | 504 allowed |", "",
            "| before (MiB) | peak (MiB) | after (MiB) | kept (MiB) | a small photo after the load | processes |",
            "|---:|---:|---:|---:|---|---:|",
            f"| {r['rss_before_mib']} | {r['rss_peak_mib']} | {r['rss_after_mib']} | {r['kept_mib']} | "
            f"{r['small_after']['status']} in {r['small_after']['seconds']} s | {r['processes']} |", ""]
    return lines


def markdown(res: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    if "soak" not in res:  # the load sections alone
        path.write_text("\n".join(["# The server under large photos", "", *load_markdown(res, meta)]))
        return
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
        *load_markdown(res, meta),
    ]
    path.write_text("\n".join(lines))


def run_load(args: argparse.Namespace, small: bytes, command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The load sections: ``/healthz`` during a 64 Mpx photo, then 4 clients of 24 Mpx photos."""
    load = [round(x, 2) for x in os.getloadavg()]
    args64 = ["--detector", "yunet", "--max-upload-mb", "40", "--max-megapixels", "64"]
    args_load = ["--detector", "yunet", "--max-upload-mb", "40"]  # 24 Mpx is the default pixel cap
    res: dict[str, Any] = {}
    big64 = textured_photo(8000, 8000, seed=1)
    port = free_port()
    with running(port, args64):
        res["big_photo_64mpx"] = frozen_loop(port, big64, limit=120.0, photo_px="8000x8000")
    port = free_port()
    with running(port, [*args64, "--min-face", "32"]):  # the whole photo: longer than the default timeout
        res["big_photo_64mpx_full_search"] = frozen_loop(port, big64, limit=120.0, photo_px="8000x8000")
    del big64
    big24 = textured_photo(6000, 4000, seed=2)
    port = free_port()
    with running(port, args_load) as pid:
        res["load_24mpx"] = under_load(port, pid, big24, small, seconds=args.seconds)
    meta = {"command": command, "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note,
            "load_average_at_start": load, "server_args_64mpx": args64, "server_args_load": args_load,
            "big_24mpx_bytes": len(big24), "small_photo_bytes": len(small)}
    return res, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seconds", type=float, default=45.0, help="how long the 24 Mpx clients send (load)")
    p.add_argument("--only", choices=["load"], default=None,
                   help="load: only the large-photo sections, merged into the existing .json and .md")
    p.add_argument("--note", default="", help="a line on the machine's load, for the report")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "SERVER_SOAK.md"))
    args = p.parse_args(argv)
    if not 0 < args.requests <= 100_000 or not 0 <= args.warmup <= 10_000 or not 0 < args.seconds <= 600:
        raise SystemExit("--requests must be in 1..100000, --warmup in 0..10000 and --seconds in (0, 600]")
    command = shlex.join(["python", "benchmarks/server_soak.py", *(sys.argv[1:] if argv is None else argv)])
    small = small_photo()
    res: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if args.only == "load":
        old = Path(args.out).with_suffix(".json")
        if old.exists():  # keep the other sections' figures and how they were measured
            saved = json.loads(old.read_text())
            res, meta = saved["results"], saved["meta"]
    else:
        server_args = ["--detector", "yunet", "--workers", "2", "--max-upload-mb", "40", "--timeout", "300"]
        port = free_port()
        big = textured_photo()
        load = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: say how busy
        with running(port, server_args) as pid:
            res["soak"] = soak(port, pid, small, args.warmup, args.requests)
            res["big_photo"] = frozen_loop(port, big)
        port = free_port()
        with running(port, [*server_args, "--min-face", "32"]):  # the whole photo down to 32-px faces: seconds
            res["big_photo_full_search"] = frozen_loop(port, big)
        meta = {"command": command, "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note,
                "load_average_at_start": load, "server_args": server_args, "small_photo_bytes": len(small)}
    new, meta["load"] = run_load(args, small, command)
    res.update(new)
    write_report(args.out, meta, res, markdown)
    print(json.dumps(new, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

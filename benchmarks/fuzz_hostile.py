"""Hostile use, round two (``python benchmarks/fuzz.py --hostile``): the scenarios of compressed
dataset bombs, output failures, hostile model files and the server's video, webcam and slow-client
surfaces, each measured on real files and a real ``deepfer serve`` on loopback. Writes its section
of ``benchmarks/FUZZ.md`` (between the ``hostile`` markers) and ``benchmarks/fuzz_hostile.json``.

Every process it starts is bounded (a timeout, then SIGKILL); the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
START, END = "<!-- hostile: benchmarks/fuzz.py --hostile writes this section -->", "<!-- /hostile -->"


def cli(args: list[str], timeout: float = 300, stdout: Any = subprocess.DEVNULL) -> dict[str, Any]:
    """``deepfer ARGS`` in a fresh process: exit code, stderr facts, seconds, peak RSS MB."""
    from fuzz import PREDICT  # `deepfer ARGS` that writes its own peak RSS (VmHWM) to a file

    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as hwm, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", PREDICT, hwm.name, *args], stdout=stdout, stderr=err, cwd=ROOT)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        seconds = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
        peak = hwm.read().strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return {"exit_code": rc, "seconds": round(seconds, 1), "peak_rss_mb": round(int(peak) / 1024, 1) if peak else None,
            "tracebacks": text.count("Traceback"), "stderr_lines": len(lines),
            "wrote_lines": sum(line.startswith("wrote ") for line in lines),
            "longest_line": max((len(line) for line in lines), default=0),
            "error": next((line[:160] for line in lines if line.startswith("deepfer: error")), None)}


# -- dataset bombs ---------------------------------------------------------------------------------

def _gzip(path: Path, head: bytes, block: bytes, total: int) -> Path:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as f:
        f.write(z.compress(head))
        for _ in range(total // len(block)):
            f.write(z.compress(block))
        f.write(z.flush())
    return path


def dataset_bombs(folder: Path) -> list[dict[str, Any]]:
    header = b"emotion,pixels,Usage\n"
    row = b"3," + b" ".join([b"128"] * 2304) + b",Training\n"
    zeros = b"\0" * MIB
    recipes: list[tuple[str, str, Path]] = []
    for gib in (1, 2):
        (folder / f"line{gib}").mkdir()
        path = _gzip(folder / f"line{gib}" / "fer2013.csv.gz", header + b"3,", b"1 " * (MIB // 2), gib * 1024 * MIB)
        recipes.append((f"fer2013.csv.gz: one line inflating to {gib} GiB (issue: {7.2 if gib == 1 else 14.7} GB)",
                        "fer2013", path))
    (folder / "rows").mkdir()
    recipes.append(("fer2013.csv.gz: valid rows inflating to 1 GiB", "fer2013",
                    _gzip(folder / "rows" / "fer2013.csv.gz", header, row * 120, 1024 * MIB)))
    (folder / "fields").mkdir()
    fields = folder / "fields" / "fer2013.csv"
    fields.write_bytes(header + b"3," + b"1," * (33 * 1000 * 1000 // 2) + b"\n")
    recipes.append(("fer2013.csv: a 33 MB row of 16.5 M short fields (issue: 99 MB row, 3.1 GB)", "fer2013", fields))
    (folder / "header").mkdir()
    wide = folder / "header" / "fer2013.csv"
    wide.write_bytes(b",".join(b"c%d" % i for i in range(3_000_000)) + b"\n")
    recipes.append(("fer2013.csv: a 22 MB header (issue: a 30 MB error line)", "fer2013", wide))
    (folder / "header60k").mkdir()
    wide = folder / "header60k" / "fer2013.csv"
    wide.write_bytes(b",".join(b"c%d" % i for i in range(8000)) + b"\n")
    recipes.append(("fer2013.csv: a 60 KB header, under the line cap (its error line quotes 80 characters)",
                    "fer2013", wide))
    member = "train/happy/a.png"
    zpath = folder / "member.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(member, "w", force_zip64=True) as f:
        for _ in range(2048):
            f.write(zeros)
    recipes.append(("zip: one image member inflating to 2 GiB (issue: 4.3 GB)", "fer2013", zpath))
    tpath = folder / "member.tar.gz"
    with tarfile.open(tpath, "w:gz", compresslevel=1) as tf:
        info = tarfile.TarInfo(member)
        info.size = 2048 * MIB

        class Zeros(io.RawIOBase):
            left = info.size

            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                self.left -= n
                return n

        tf.addfile(info, io.BufferedReader(Zeros(), MIB))
    recipes.append(("tar.gz: one image member inflating to 2 GiB (issue: 2.2 GB)", "fer2013", tpath))
    out = []
    for label, dataset, path in recipes:
        print(f"  {label}", flush=True)
        r = cli(["data", "info", dataset, str(path), "--no-cache"])
        out.append({"input": label, "file_mb": round(path.stat().st_size / MIB, 2), **r})
    return out


# -- output failures -------------------------------------------------------------------------------

def _video(path: Path, frames: int = 20, side: int = 256) -> Path:
    import cv2

    from deepfer.inference import sample_image

    face = cv2.resize(cv2.imread(str(sample_image())), (side, side))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (side, side))
    for i in range(frames):
        w.write(np.roll(face, i, axis=1))
    w.release()
    return path


def output_failures(folder: Path) -> list[dict[str, Any]]:
    from deepfer.inference import sample_image

    video = _video(folder / "clip.avi")
    photo = str(sample_image())
    blocker = folder / "file"
    blocker.write_text("x")
    out = []
    with open("/dev/full", "wb") as full:
        for fmt in ("table", "json", "csv"):
            out.append({"case": f"`--format {fmt} > /dev/full`",
                        **cli(["predict", photo, "--no-progress", "--format", fmt], stdout=full)})
        out.append({"case": "`--summary` of a video `> /dev/full`", **cli(["predict", str(video), "--no-progress",
                                                                               "--summary"], stdout=full)})
    for what, args in (("--annotate (image) under a file", [photo, "--annotate", str(blocker / "out")]),
                       ("--annotate (video) under a file", [str(video), "--annotate", str(blocker / "out")]),
                       ("--timeline under a file", [str(video), "--timeline", str(blocker / "out")])):
        out.append({"case": what, **cli(["predict", *args, "--no-progress"])})
    tiny = folder / "tiny"
    tiny.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(tiny)],
                                                   capture_output=True).returncode == 0
    if mounted:
        try:
            for what, args in (("--annotate video onto a full disk (8 KiB tmpfs)", ["--annotate", str(tiny / "a.mp4")]),
                               ("--timeline onto a full disk (8 KiB tmpfs)", ["--timeline", str(tiny / "tl")])):
                r = cli(["predict", str(video), "--no-progress", *args])
                left = sorted(p.name for p in tiny.rglob("*") if p.is_file())
                out.append({"case": what, **r, "files_left": left})
                for p in sorted(tiny.rglob("*"), reverse=True):
                    p.unlink() if p.is_file() else p.rmdir()
        finally:
            subprocess.run(["umount", str(tiny)], check=False)
    return out


# -- hostile model files ---------------------------------------------------------------------------

def hostile_models(folder: Path) -> list[dict[str, Any]]:
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from deepfer.inference import sample_image
    from deepfer.labels import FER7
    from deepfer.models import create_model
    from deepfer.models.checkpoint import Checkpoint

    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
             helper.make_node("Cast", ["faces"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f", "axes"], ["r"], keepdims=0),
             helper.make_node("Unsqueeze", ["r", "one"], ["r2"]),
             helper.make_node("Mul", ["r2", "s"], ["m"]),
             helper.make_node("Tile", ["m", "reps"], ["probs"])]
    inits = [numpy_helper.from_array(np.array([30000, 30000], np.int64), "shape"),
             numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([1, 7], np.int64), "reps")]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("faces", TensorProto.UINT8, ["N", 48, 48])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7])], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {"deepfer.labels": json.dumps(list(FER7)), "deepfer.preprocess": json.dumps({"size": 48})}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    big = folder / "big.onnx"
    big.write_bytes(model.SerializeToString())
    scores = folder / "scores.onnx"
    model.graph.ClearField("node")
    model.graph.node.extend(nodes[2:5] + [helper.make_node("Tile", ["r2", "reps"], ["probs"])])
    scores.write_bytes(model.SerializeToString())
    torch.manual_seed(0)
    ok = folder / "ok.pt"
    Checkpoint.from_model(create_model("deep-emotion", num_classes=7).eval(), list(FER7)).save(ok)
    raw = torch.load(ok, weights_only=True)
    files = [(f"ONNX of {big.stat().st_size} bytes: a 30000x30000 tensor (issue: 3.6 GB per inference)", big),
             (f"ONNX of {scores.stat().st_size} bytes: outputs are pixel sums, not probabilities", scores)]
    for size in (3000, 20000):
        path = folder / f"size{size}.pt"
        torch.save({**raw, "model": {**raw["model"], "input_size": size},
                    "preprocess": {**raw["preprocess"], "size": size}}, path)
        files.append((f"checkpoint claiming input_size {size} (issue: {'2.1 GB' if size == 3000 else '74-line traceback'})", path))
    path = folder / "hidden.pt"
    torch.save({**raw, "model": {**raw["model"], "extra": {**raw["model"]["extra"], "hidden": 2_000_000}}}, path)
    files.append(("checkpoint claiming a 2,000,000-wide hidden layer (6.5 GB if built)", path))
    out = []
    for label, path in files:
        print(f"  {label}", flush=True)
        out.append({"model": label, **cli(["predict", str(sample_image()), "--model", str(path), "--no-progress"])})
    return out


# -- the server ------------------------------------------------------------------------------------

def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             timeout: float = 30) -> tuple[int, dict[str, Any], float]:
    """One request to the server on 127.0.0.1: status, JSON body (or its first 80 bytes), seconds."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body, headers or {})
        r = conn.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data), time.perf_counter() - t0
        except ValueError:
            return r.status, {"raw": data[:80].decode(errors="replace")}, time.perf_counter() - t0
    finally:
        conn.close()


def _post(port: int, path: str, body: bytes, ctype: str, timeout: float = 600) -> tuple[int, dict[str, Any], float]:
    return _request(port, "POST", path, body, {"Content-Type": ctype}, timeout)


def _get(port: int, path: str) -> tuple[int, dict[str, Any], float]:
    return _request(port, "GET", path)


def _tree_mb(pid: int, field: str) -> float:
    from fuzz import _tree

    total = 0.0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def server_checks(folder: Path) -> dict[str, Any]:
    from load_test import free_port, running
    from serve_helpers import encode, portrait, slow_png, write_video

    from deepfer.serve.protocol import HEADER_TIMEOUT

    out: dict[str, Any] = {}
    photo = encode(portrait((320, 240)))
    port = free_port()
    with running(port, ["--workers", "2", "--detector", "haar", "--backend", "torch"]) as pid:
        _post(port, "/v1/predict", photo, "image/jpeg")
        videos = []
        for side, frames in ((2828, 64), (4000, 64)):
            flat = np.full((side, side, 3), 90, np.uint8)
            videos.append((side, write_video(folder / f"flat{side}.avi", [flat] * frames, 30.0)))
        rows = []
        for side, path in videos:
            print(f"  /v1/video {side}x{side}", flush=True)
            before = _tree_mb(pid, "VmRSS")
            hwm_before = max(_hwm(p) for p in _pids(pid))
            status, body, took = _post(port, f"/v1/video?name={path.name}", path.read_bytes(), "video/x-msvideo")
            after = _tree_mb(pid, "VmRSS")
            peak = max(_hwm(p) for p in _pids(pid))
            rows.append({"video": f"{side}x{side}, {body.get('frames')} flat frames, {path.stat().st_size // 1024} KB",
                         "status": status, "seconds": round(took, 1), "rss_before_mb": round(before, 1),
                         "rss_after_mb": round(after, 1), "server_peak_mb": round(peak, 1),
                         "peak_rose_mb": round(max(0.0, peak - hwm_before), 1)})
        out["video_frames"] = rows
        clip = write_video(folder / "clip.avi", [np.asarray(portrait((320, 320)))[:, :, ::-1].copy()] * 24, 12.0).read_bytes()
        # a dribbled video body: another client's video
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"POST /v1/video HTTP/1.1\r\nHost: t\r\nContent-Type: video/x-msvideo\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(clip) + clip[:100])
            time.sleep(0.5)
            status, body, took = _post(port, "/v1/video?name=other.avi", clip, "video/x-msvideo")
        out["dribble"] = {"other_video_status": status, "seconds": round(took, 2)}
        # a client that leaves
        long = write_video(folder / "long.avi", [np.roll(np.asarray(portrait((240, 240)))[:, :, ::-1], i, 1)
                                                 for i in range(1200)], 30.0).read_bytes()
        t_full = time.perf_counter()
        full = _post(port, "/v1/video?name=long.avi", long, "video/x-msvideo")
        t_full = time.perf_counter() - t_full
        with socket.create_connection(("127.0.0.1", port), timeout=10) as gone:
            gone.sendall(b"POST /v1/video HTTP/1.1\r\nHost: t\r\nContent-Type: video/x-msvideo\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(long) + long)
            time.sleep(1.0)
        t0 = time.monotonic()
        while True:
            status, _, _ = _post(port, "/v1/video?name=next.avi", clip, "video/x-msvideo")
            if status != 503 or time.monotonic() - t0 > 120:
                break
            time.sleep(0.25)
        out["disconnect"] = {"full_analysis_s": round(t_full, 1), "full_status": full[0],
                             "lock_free_after_leaving_s": round(time.monotonic() - t0, 1), "next_status": status}
        # slow headers
        print("  slow headers", flush=True)
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            t0 = time.monotonic()
            got = b""
            for byte in b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 400:
                try:
                    s.sendall(bytes([byte]))
                    got += s.recv(4096)
                except TimeoutError:
                    pass
                except OSError:
                    break
                if got or time.monotonic() - t0 > 120:
                    break
                time.sleep(0.5)
            out["dribbled_headers"] = {"closed_after_s": round(time.monotonic() - t0, 1),
                                       "answer": got.split(b"\r\n", 1)[0].decode(errors="replace"),
                                       "header_timeout_s": HEADER_TIMEOUT}
        socks = []
        try:
            for _ in range(300):
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
                socks.append(c)
            time.sleep(0.5)
            h = _get(port, "/healthz")
            p = _post(port, "/v1/predict", photo, "image/jpeg")
            out["slow_header_connections"] = {"connections": len(socks), "healthz_status": h[0],
                                              "healthz_s": round(h[2], 3), "predict_status": p[0],
                                              "predict_s": round(p[2], 3), "predict_json": "faces" in p[1]}
        finally:
            for c in socks:
                c.close()
    # /v1/track with a short timeout and one worker, as the issue ran it
    print("  /v1/track", flush=True)
    port = free_port()
    with running(port, ["--workers", "1", "--timeout", "0.3", "--detector", "haar", "--backend", "torch"]):
        for _ in range(3):
            _post(port, "/v1/track?session=w", photo, "image/jpeg")
        slow = slow_png()
        s = _post(port, "/v1/track?session=slow", slow, "image/png")
        q = _post(port, "/v1/track?session=quick", photo, "image/jpeg")
        newline = _post(port, "/v1/track?session=abc%0A", photo, "image/jpeg")
        out["track"] = {"slow_status": s[0], "slow_s": round(s[2], 2), "next_frame_status": q[0],
                        "next_frame_s": round(q[2], 2), "session_with_newline_status": newline[0]}
    return out


def _pids(pid: int) -> list[int]:
    from fuzz import _tree

    return _tree(pid)


def _hwm(pid: int) -> float:
    from fuzz import _hwm_mb

    return _hwm_mb(pid)


# -- report ----------------------------------------------------------------------------------------

def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "")).replace("|", "/") for _, k in cols) + " |")
    return lines


def markdown(res: dict[str, Any], meta: dict[str, Any]) -> str:
    md = [START, "", "## Hostile use, round two", "",
          f"`{meta['command']}` on {meta['cpu']} ({meta['cores']} cores, shared: load {meta['load_at_start']} at the "
          f"start, {meta['load_at_end']} at the end), {meta['date']}, {meta['seconds']} s. Peak memory: each "
          "process's own VmHWM (`/proc`); the server's, the largest of its process tree.", ""]
    md += ["### Dataset bombs (`deepfer data info DATASET FILE --no-cache`, a fresh process each)", ""]
    md += _table(res["datasets"], [("input", "input"), ("file MB", "file_mb"), ("exit", "exit_code"),
                                   ("s", "seconds"), ("peak RSS MB", "peak_rss_mb"), ("tracebacks", "tracebacks"),
                                   ("stderr lines", "stderr_lines"), ("longest line", "longest_line"),
                                   ("error", "error")])
    md += ["", "### Output failures (`deepfer predict`)", ""]
    md += _table(res["outputs"], [("case", "case"), ("exit", "exit_code"), ("tracebacks", "tracebacks"),
                                  ("stderr lines", "stderr_lines"), ("wrote lines", "wrote_lines"),
                                  ("files left", "files_left"), ("error", "error")])
    md += ["", "### Hostile model files (`deepfer predict PHOTO --model FILE`)", ""]
    md += _table(res["models"], [("model", "model"), ("exit", "exit_code"), ("peak RSS MB", "peak_rss_mb"),
                                 ("tracebacks", "tracebacks"), ("stderr lines", "stderr_lines"), ("error", "error")])
    srv = res["server"]
    md += ["", "### The server (`deepfer serve --workers 2 --detector haar`, loopback)", "",
           "`/v1/video` with large flat frames (frames are shrunk to 1280 px as they are decoded):", ""]
    md += _table(srv["video_frames"], [("video", "video"), ("status", "status"), ("s", "seconds"),
                                       ("tree RSS before MB", "rss_before_mb"), ("after MB", "rss_after_mb"),
                                       ("peak of one process MB", "server_peak_mb"), ("peak rose MB", "peak_rose_mb")])
    d, g, h, s, t = srv["dribble"], srv["disconnect"], srv["dribbled_headers"], srv["slow_header_connections"], srv["track"]
    md += ["",
           f"- A client dribbling a video body: another client's video answered {d['other_video_status']} in {d['seconds']} s.",
           f"- A client that sends a 40 s video and leaves: the full analysis takes {g['full_analysis_s']} s; "
           f"the lock was free {g['lock_free_after_leaving_s']} s after it left (next video: {g['next_status']}).",
           f"- Headers dribbled a byte every 0.5 s: answered `{h['answer']}` and closed after {h['closed_after_s']} s "
           f"(header timeout {h['header_timeout_s']} s; uvicorn 0.55 alone has none).",
           f"- {s['connections']} connections holding unfinished headers: `/healthz` {s['healthz_status']} in "
           f"{s['healthz_s']} s, `/v1/predict` {s['predict_status']} (JSON: {s['predict_json']}) in {s['predict_s']} s.",
           f"- `/v1/track` with `--timeout 0.3 --workers 1`: a slow 24 Mpx PNG got {t['slow_status']} in {t['slow_s']} s, "
           f"the next frame {t['next_frame_status']} in {t['next_frame_s']} s; `session=abc%0A`: {t['session_with_newline_status']}.",
           "", END]
    return "\n".join(md) + "\n"


def run(command: str) -> int:
    import platform

    from _machine import cpu_name

    t0 = time.perf_counter()
    meta: dict[str, Any] = {"command": command, "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
                            "cores": os.cpu_count(), "python": platform.python_version(),
                            "load_at_start": round(os.getloadavg()[0], 2)}
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="deepfer-hostile-") as tmp:
        folder = Path(tmp)
        for name, fn in (("outputs", output_failures), ("models", hostile_models), ("datasets", dataset_bombs),
                         ("server", server_checks)):
            print(name, flush=True)
            (folder / name).mkdir()
            res[name] = fn(folder / name)
    meta["load_at_end"] = round(os.getloadavg()[0], 2)
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    (ROOT / "benchmarks" / "fuzz_hostile.json").write_text(json.dumps({"meta": meta, "results": res}, indent=2) + "\n")
    report = ROOT / "benchmarks" / "FUZZ.md"
    text = report.read_text() if report.exists() else ""
    section = markdown(res, meta)
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    report.write_text(text)
    print(f"wrote {report} and benchmarks/fuzz_hostile.json")
    return 0


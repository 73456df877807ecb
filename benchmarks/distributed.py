"""``deepfer predict --engine ray`` against the plain ``deepfer predict`` on the same files, on this
machine. Writes benchmarks/DISTRIBUTED.md and DISTRIBUTED.json.

Protocol: a generated corpus (tests/distributed/dist_corpus.py: photos made from the bundled
astronaut photo, 160 px wide, one face each; a video of it, 10 frames/s), the shipped default model
and detector, ``--detect-every 1``. Each configuration runs as a user runs it (the CLI in a
subprocess, wall time), on the full set and on a small one (8 photos); the difference gives the
per-record time and the fixed cost (start-up: interpreter, model, for the engine also the Ray
cluster, the actors, the manifest and the summary):

* plain: ``deepfer predict PATHS --format json``;
* engine 1 / 2 workers: ``deepfer predict PATHS --engine ray --out DIR --workers N``;
* recovery: the 2-worker photo run with one recognizer actor SIGKILLed once the first file is
  written: its extra wall time, and the time from the kill to the next file written;
* checkpoint load: ``--resume`` of the finished run (reads the ids of the committed checkpoint).

    python benchmarks/distributed.py [--images 300] [--video-seconds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "distributed"))  # the tests' generated corpus
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_name, write_report  # noqa: E402
from dist_corpus import make_images, make_video  # noqa: E402

COMMON = ["--detect-every", "1", "--no-progress", "--format", "json"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "deepfer.cli", "predict", *args]


def run(args: list[str]) -> tuple[float, str]:
    """Wall seconds and stdout of one CLI run (a failure stops the benchmark)."""
    t = time.perf_counter()
    done = subprocess.run(_cli(args), capture_output=True, text=True, env=_env(), timeout=1800)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-3000:]}")
    return wall, done.stdout


def plain(paths: list[Path]) -> tuple[float, int]:
    wall, out = run([*map(str, paths), *COMMON])
    return wall, len(out.splitlines())


def engine(paths: list[Path], out: Path, workers: int, *extra: str) -> tuple[float, dict[str, Any]]:
    wall, text = run([*map(str, paths), "--engine", "ray", "--out", str(out), "--workers", str(workers),
                      "--segment", "10s", *COMMON, *extra])
    return wall, json.loads(text.strip().splitlines()[-1])


def killed_worker(paths: list[Path], out: Path) -> dict[str, float]:
    """The 2-worker run with one recognizer actor SIGKILLed after the first file is written."""
    t = time.perf_counter()
    proc = subprocess.Popen(_cli([*map(str, paths), "--engine", "ray", "--out", str(out), "--workers", "2",
                                  *COMMON]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    while not list(out.glob("*.parquet")):
        if proc.poll() is not None:
            raise SystemExit(f"the run ended before a file was written: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    files = set(out.glob("*.parquet"))
    victim = next(p for p, cmd in _descendants(proc.pid).items() if "MapBatches(RecognizerWorker)" in cmd)
    killed = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    next_file = None
    while proc.poll() is None:
        if next_file is None and set(out.glob("*.parquet")) - files:
            next_file = time.perf_counter() - killed
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(stderr[-3000:])
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": time.perf_counter() - t, "kill_to_next_file": next_file or float("nan"),
            "missing": len(summary["missing"]), "duplicated": summary["duplicated"], "records": summary["records"]}


def _descendants(pid: int) -> dict[int, str]:
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = {}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                try:
                    found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(child)
    return found


def per_record(full: float, small: float, n_full: int, n_small: int) -> tuple[float, float]:
    """(seconds per record, fixed seconds) from two runs of n_full and n_small records."""
    per = (full - small) / (n_full - n_small)
    return per, small - per * n_small


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--video-seconds", type=float, default=40.0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("DISTRIBUTED.md")))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="deepfer-distributed-"))
    photos = tmp / "photos"
    make_images(photos, args.images)
    small = tmp / "small"
    make_images(small, 8, seed=1)
    video = make_video(tmp / "clip.avi", args.video_seconds)
    frames = round(args.video_seconds * 10)
    load: list[float] = []
    results: dict[str, Any] = {}

    def note() -> None:
        load.append(os.getloadavg()[0])

    for name, paths, n in (("images", [photos], args.images), ("frames", [video], frames)):
        note()
        results[f"plain_{name}"] = plain(paths)[0]
        for w in (1, 2):
            note()
            wall, s = engine(paths, tmp / f"e{w}_{name}", w)
            results[f"engine{w}_{name}"] = wall
            results[f"engine{w}_{name}_startup"] = s["startup"]
            assert not s["missing"] and not s["duplicated"], s
    note()
    results["plain_small"] = plain([small])[0]
    for w in (1, 2):
        note()
        results[f"engine{w}_small"] = engine([small], tmp / f"e{w}_small", w)[0]
    note()
    results["recovery"] = killed_worker([photos], tmp / "killed")
    note()
    wall, s = engine([photos], tmp / "e2_images", 2, "--resume")
    results["resume_idle"] = {"wall": wall, "checkpoint_load": s["checkpoint_load"], "processed": s["processed"]}
    note()

    derived: dict[str, Any] = {}
    for kind in ("plain", "engine1", "engine2"):
        per, fixed = per_record(results[f"{kind}_images"], results[f"{kind}_small"], args.images, 8)
        derived[kind] = {"s_per_image": per, "fixed_s": fixed, "images_per_s": 1 / per,
                         "frames_per_s": frames / (results[f"{kind}_frames"] - fixed)}
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "load_1min": [round(x, 2) for x in load], "images": args.images, "frames": frames,
            "command": "python benchmarks/distributed.py " + " ".join(sys.argv[1:])}
    write_report(args.out, meta, {"runs": results, "derived": derived}, write_markdown)


def write_markdown(res: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    r, d = res["runs"], res["derived"]
    p, e1, e2 = d["plain"], d["engine1"], d["engine2"]
    rec = r["recovery"]
    lines = [
        "# `deepfer predict --engine ray` against the plain CLI",
        "",
        f"Written by `{meta['command']}` on {meta['cpu']} ({meta['cores']} cores), Python {meta['python']}.",
        f"Corpus: {meta['images']} generated one-face photos (160 px) and a {meta['frames']}-frame video (10 frames/s,",
        "10 s segments); shipped default model and detector, `--detect-every 1`; wall time of the CLI in a subprocess.",
        "Per-record time and fixed cost come from each configuration's run on the full set and on 8 photos.",
        "",
        f"**The machine was shared** (a training run and other jobs; 1-minute load average during the runs: "
        f"{min(meta['load_1min']):.1f} to {max(meta['load_1min']):.1f} on {meta['cores']} cores). The ratios below, "
        "the 2-vs-1-worker one above all, must be measured again on an idle machine.",
        "",
        "| | plain CLI | engine, 1 worker | engine, 2 workers |",
        "| --- | ---: | ---: | ---: |",
        f"| photos/s (fixed cost excluded) | {p['images_per_s']:.2f} | {e1['images_per_s']:.2f} | {e2['images_per_s']:.2f} |",
        f"| video frames/s (fixed cost excluded) | {p['frames_per_s']:.2f} | {e1['frames_per_s']:.2f} | "
        f"{e2['frames_per_s']:.2f} |",
        f"| fixed cost, s | {p['fixed_s']:.1f} | {e1['fixed_s']:.1f} | {e2['fixed_s']:.1f} |",
        f"| of which cluster start, s | - | {r['engine1_images_startup']:.1f} | {r['engine2_images_startup']:.1f} |",
        f"| wall, {meta['images']} photos, s | {r['plain_images']:.1f} | {r['engine1_images']:.1f} | "
        f"{r['engine2_images']:.1f} |",
        f"| wall, {meta['frames']} frames, s | {r['plain_frames']:.1f} | {r['engine1_frames']:.1f} | "
        f"{r['engine2_frames']:.1f} |",
        "",
        f"- Per-photo overhead of the engine with 1 worker: {100 * (e1['s_per_image'] / p['s_per_image'] - 1):+.1f}% "
        "(target <= +10%).",
        f"- 2 workers / 1 worker: {e2['images_per_s'] / e1['images_per_s']:.2f}x on photos, "
        f"{e2['frames_per_s'] / e1['frames_per_s']:.2f}x on frames (target >= 1.4x; on a shared machine).",
        f"- A recognizer actor SIGKILLed after the first file: {rec['missing']} items missing, {rec['duplicated']} rows "
        f"duplicated, {rec['records']} records; the run took {rec['wall']:.1f} s against {r['engine2_images']:.1f} s "
        f"unharmed ({rec['wall'] - r['engine2_images']:+.1f} s), and the next file came {rec['kill_to_next_file']:.1f} s "
        "after the kill (a replacement actor starts and loads the model; the dead actor's batches run again).",
        f"- `--resume` of the finished photo run: {r['resume_idle']['processed']} items run, checkpoint read in "
        f"{r['resume_idle']['checkpoint_load']:.3f} s, {r['resume_idle']['wall']:.1f} s in all (no cluster started).",
        "",
        paper(e2["images_per_s"] / meta["cores"]),
    ]
    path.write_text("\n".join(lines) + "\n")


def paper(per_core: float) -> str:
    """The 100-node section, its rates scaled from the photo rate per core measured here (2 workers)."""
    node = 16 * per_core  # a 16-core node, one actor per core
    fleet = 100 * node
    hours = 1e8 / fleet / 3600
    return PAPER.format(per_core=per_core, node=node, fleet=fleet, hours=hours)


PAPER = """## On paper: 100 nodes, 10^8 images

Not measured; what the design does at that size, and where the time goes.

- **Manifest.** Listing 10^8 objects is the driver's first job: one `ListObjectsV2` page holds 1000
  keys, so ~10^5 requests, minutes to tens of minutes against an object store from one process.
  The manifest itself is ~100 bytes a row, ~10 GB in Parquet before compression, written as files of
  32 items (`OUT/_manifest/`): ~3 million small files. At that size the manifest should instead be
  given (a Parquet list the user already has) and written in files of ~10^5 items, each read task
  then splitting its file into 32-item blocks; listing is the one step here that does not scale out.
- **Object-store reads.** Each photo is fetched whole by the actor that runs it (a 100-200 KB JPEG:
  one GET of ~20-50 ms latency). At the {per_core:.1f} photos/s a core does here (one face, 160 px;
  a 640x480 photo costs more in detection) a 16-core node needs ~{node:.0f} GETs/s, 100 nodes
  ~{fleet:.0f}/s: S3 serves 5 500 GET/s per prefix, so keys must spread over several prefixes, and
  latency is hidden only if each actor prefetches; the present worker fetches one at a time, so the
  first change at scale is a thread pool of fetches per batch.
- **Parquet output.** One file per write task of a few blocks: ~10^6 files of ~100 rows for 10^8
  images. Too many small files for Spark or DuckDB to read well; `write_parquet(min_rows_per_file=...)`
  (or a compaction pass) to ~10^6 rows a file gives ~100 files. Rows are ~300 bytes with the
  flat table's columns: ~30 GB uncompressed, a few GB compressed.
- **Resume.** Ray Data's checkpoint holds the ids of committed files; `--resume` loads them all
  into memory (10^8 ids of ~60 bytes: ~6 GB, and the filter actor reserves that much) and filters
  every manifest block against them. Ids could be shortened to a hash (8 bytes: 0.8 GB). The
  checkpoint load is then a read of ~10^6 small Parquet files: minutes, once per resume.
- **Where the bottleneck moves.** With the recognizer at {per_core:.1f} photos/s a core, 1600 cores do
  ~{fleet:.0f} photos/s: 10^8 photos in ~{hours:.1f} hours of compute. The driver's listing (minutes to tens of minutes),
  the GET rate per prefix and the number of output files become the limits, not the model; videos
  move the bottleneck to decoding (each segment decodes from its keyframe; 60 s segments keep the
  seek waste under a few percent).
"""


if __name__ == "__main__":
    main()

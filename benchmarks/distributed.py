"""``deepfer predict --engine ray`` against the plain ``deepfer predict`` on the same files, on this
machine. Writes benchmarks/DISTRIBUTED.md and DISTRIBUTED.json.

Protocol: a generated corpus (tests/distributed/dist_corpus.py: photos made from the bundled
astronaut photo, 160 px wide, one face each; a video of it, 10 frames/s), the shipped default model
and detector, ``--detect-every 1``, one run per configuration:

* plain: ``deepfer predict PATHS --format json`` (wall time in a subprocess), and its loop
  (``Recognizer().iter_results``) timed in this process, wall and CPU, the model loaded;
* engine 1 / 2 workers: ``deepfer predict PATHS --engine ray --out DIR --workers N``: wall time,
  and from its summary the running time (first batch start to last batch end) and the actors'
  CPU time in batches;
* recovery: the 2-worker photo run with one recognizer actor SIGKILLed once the first file is
  written: items lost or repeated, and the time from the kill to the replacement actor's first batch;
* checkpoint load: ``--resume`` of the finished run (reads the ids of the committed checkpoint).

    python benchmarks/distributed.py [--images 300] [--video-seconds 40]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `deepfer predict` does; before torch loads

import argparse
import json
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
from dist_corpus import descendants, make_images, make_video  # noqa: E402

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


def killed_worker(paths: list[Path], out: Path) -> dict[str, Any]:
    """The 2-worker run with one recognizer actor SIGKILLed once the first file is written: the
    summary, and the seconds from the kill to the replacement actor's first batch."""
    t = time.perf_counter()
    proc = subprocess.Popen(_cli([*map(str, paths), "--engine", "ray", "--out", str(out), "--workers", "2",
                                  "--segment", "10s", *COMMON]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), start_new_session=True)
    while not list(out.glob("[!_]*.parquet")):
        if proc.poll() is not None:
            raise SystemExit(f"the run ended before a file was written: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    victim = next(p for p, cmd in descendants(proc.pid).items() if "MapBatches(RecognizerWorker)" in cmd)
    killed = time.time()
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(stderr[-3000:])
    s = json.loads(stdout.strip().splitlines()[-1])
    later = [v for k, v in s["first_batch"].items() if int(k) != victim and v > killed]
    return {"wall": time.perf_counter() - t, "summary": s,
            "kill_to_replacement_batch": (min(later) - killed) if later else None}


def plain_loop(paths: list[Path]) -> dict[str, float]:
    """The plain CLI's path in this process (``Recognizer().iter_results``, torch's own threads):
    wall and CPU seconds of the loop alone, the model already loaded."""
    from deepfer.inference import Recognizer

    rec = Recognizer()
    t, c = time.perf_counter(), time.process_time()
    n = sum(1 for _ in rec.iter_results(paths, detect_every=1))
    return {"records": n, "wall": time.perf_counter() - t, "cpu": time.process_time() - c}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--video-seconds", type=float, default=40.0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("DISTRIBUTED.md")))
    ap.add_argument("--render", action="store_true", help="rewrite the markdown from the JSON beside it, no runs")
    args = ap.parse_args()
    if args.render:
        saved = json.loads(Path(args.out).with_suffix(".json").read_text())
        write_markdown(saved["results"], saved["meta"], Path(args.out))
        return

    tmp = Path(tempfile.mkdtemp(prefix="deepfer-distributed-"))
    photos = tmp / "photos"
    make_images(photos, args.images)
    video = make_video(tmp / "clip.avi", args.video_seconds)
    load: list[float] = []
    runs: dict[str, Any] = {}
    for name, paths in (("images", [photos]), ("frames", [video])):
        load.append(os.getloadavg()[0])
        runs[f"plain_{name}"] = {"cli_wall": plain(paths)[0], **plain_loop(paths)}
        for w in (1, 2):
            load.append(os.getloadavg()[0])
            wall, s = engine(paths, tmp / f"e{w}_{name}", w)
            assert not s["missing"] and not s["duplicated"], s
            runs[f"engine{w}_{name}"] = {"cli_wall": wall, "records": s["records"], "busy": s["busy"],
                                         "cpu": s["worker_cpu"], "startup": s["startup"], "seconds": s["seconds"],
                                         "per_worker": list(s.get("per_worker", {}).values())}
    load.append(os.getloadavg()[0])
    runs["recovery"] = killed_worker([photos], tmp / "killed")
    load.append(os.getloadavg()[0])
    wall, s = engine([photos], tmp / "e2_images", 2, "--resume")
    runs["resume_idle"] = {"wall": wall, "checkpoint_load": s["checkpoint_load"], "processed": s["processed"]}
    load.append(os.getloadavg()[0])
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "load_1min": [round(x, 2) for x in load], "images": args.images, "frames": runs["plain_frames"]["records"],
            "command": "python benchmarks/distributed.py " + " ".join(sys.argv[1:])}
    write_report(args.out, meta, runs, write_markdown)


def write_markdown(r: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    def rate(k: str) -> float:
        return r[k]["records"] / r[k]["busy"] if "busy" in r[k] else r[k]["records"] / r[k]["wall"]

    def cpu(k: str) -> float:
        return 1000 * r[k]["cpu"] / r[k]["records"]

    rec = r["recovery"]
    summ = rec["summary"]
    e1 = {k: (r[f"engine1_{k}"]["busy"] / r[f"engine1_{k}"]["records"]) / (r[f"plain_{k}"]["wall"] / r[f"plain_{k}"]["records"]) - 1
          for k in ("images", "frames")}
    cpu1 = {k: cpu(f"engine1_{k}") / cpu(f"plain_{k}") - 1 for k in ("images", "frames")}
    shared = max(meta["load_1min"]) > meta["cores"] + 1
    lo, hi = min(meta["load_1min"]), max(meta["load_1min"])
    load_note = (f"**The machine was shared** (1-minute load average during the runs: {lo:.1f} to {hi:.1f} on "
                 f"{meta['cores']} cores, above what the runs themselves make), so the wall-clock rates and above all "
                 "the 2-vs-1-worker ratio are not this machine's capacity. CPU time per record is what other "
                 "processes inflate least." if shared else
                 f"No other job ran (1-minute load average during the runs: {lo:.1f} to {hi:.1f} on "
                 f"{meta['cores']} cores: the runs' own).")
    lines = [
        "# `deepfer predict --engine ray` against the plain CLI",
        "",
        f"Written by `{meta['command'].strip()}` on {meta['cpu']} ({meta['cores']} cores), Python {meta['python']}.",
        f"Corpus: {meta['images']} generated one-face photos (160 px) and a {meta['frames']}-frame video (10 frames/s,",
        "10 s segments); shipped default model and detector, `--detect-every 1`.",
        "",
        "- *running rate*: records (photos or frames) / seconds from the first batch's start to the last one's",
        "  end (the engine's own clock, `Summary.busy`); for the plain CLI its loop (`Recognizer().iter_results`,",
        "  the path `deepfer predict` takes) timed in-process with the model loaded. Start-up is excluded from both.",
        "- *fixed cost*: the CLI's whole wall time less its running time (interpreter, model; for the engine also",
        "  the Ray cluster, the actors loading the model, the manifest and the summary).",
        "- *CPU ms/record*: CPU time of the recognizing processes per record (the engine: its actors' batches).",
        "",
        load_note,
        "",
        "| | plain CLI | engine, 1 worker | engine, 2 workers |",
        "| --- | ---: | ---: | ---: |",
        f"| photos/s running | {rate('plain_images'):.2f} | {rate('engine1_images'):.2f} | {rate('engine2_images'):.2f} |",
        f"| video frames/s running | {rate('plain_frames'):.2f} | {rate('engine1_frames'):.2f} | "
        f"{rate('engine2_frames'):.2f} |",
        f"| CPU ms / photo | {cpu('plain_images'):.1f} | {cpu('engine1_images'):.1f} | {cpu('engine2_images'):.1f} |",
        f"| CPU ms / frame | {cpu('plain_frames'):.1f} | {cpu('engine1_frames'):.1f} | {cpu('engine2_frames'):.1f} |",
        f"| wall, {meta['images']} photos (CLI), s | {r['plain_images']['cli_wall']:.1f} | "
        f"{r['engine1_images']['cli_wall']:.1f} | {r['engine2_images']['cli_wall']:.1f} |",
        f"| wall, {meta['frames']} frames (CLI), s | {r['plain_frames']['cli_wall']:.1f} | "
        f"{r['engine1_frames']['cli_wall']:.1f} | {r['engine2_frames']['cli_wall']:.1f} |",
        f"| fixed cost (photos), s | {r['plain_images']['cli_wall'] - r['plain_images']['wall']:.1f} | "
        f"{r['engine1_images']['cli_wall'] - r['engine1_images']['busy']:.1f} | "
        f"{r['engine2_images']['cli_wall'] - r['engine2_images']['busy']:.1f} |",
        f"| of which the cluster's start, s | - | {r['engine1_images']['startup']:.1f} | "
        f"{r['engine2_images']['startup']:.1f} |",
        "",
        f"- Per-record overhead of the engine with 1 worker over the plain CLI (running time, start-up excluded): "
        f"{100 * e1['images']:+.0f}% on photos, {100 * e1['frames']:+.0f}% on frames (target <= +10%); in CPU time "
        f"{100 * cpu1['images']:+.0f}% and {100 * cpu1['frames']:+.0f}% (the actors' batches: decoding, detection, "
        "classification and the Arrow table; Ray's own processes and the Parquet write tasks are not in it)."
        + (" A negative wall-clock overhead is the load's doing (whichever process the scheduler favoured); the CPU "
           "time is the comparable figure." if min(e1.values()) < 0 else ""),
        f"- 2 workers / 1 worker, running rate: {rate('engine2_images') / rate('engine1_images'):.2f}x on photos, "
        f"{rate('engine2_frames') / rate('engine1_frames'):.2f}x on frames (target >= 1.4x"
        + ("; not meaningful on this loaded machine: re-measure idle)." if shared
           else "). One worker has the machine's cores as torch threads, two have one each.")
        + "".join(f" {k}, 2 workers: " + " and ".join(f"{int(b)} batches in {t:.1f} s ({c:.1f} CPU s)"
                                                      for b, t, c in r[f"engine2_{k}"]["per_worker"]) + "."
                  for k in ("images", "frames") if r[f"engine2_{k}"].get("per_worker")),
        f"- A recognizer actor SIGKILLed once the first file was written (2 workers, photos): "
        f"{len(summ['missing'])} items missing, {summ['duplicated']} rows duplicated, {summ['records']} records; "
        + (f"the replacement actor started its first batch {rec['kill_to_replacement_batch']:.1f} s after the kill "
           if rec["kill_to_replacement_batch"] is not None else "no replacement actor ran a batch (the other actor "
           "finished the work) ")
        + f"(a new process, torch and the model loaded again); the run took {rec['wall']:.1f} s against "
        f"{r['engine2_images']['cli_wall']:.1f} s unharmed.",
        f"- `--resume` of the finished 2-worker photo run: {r['resume_idle']['processed']} items run, checkpoint "
        f"({meta['images']} ids) read in {r['resume_idle']['checkpoint_load']:.3f} s, {r['resume_idle']['wall']:.1f} s "
        "in all (no cluster started).",
        "",
        paper(rate("engine2_images") / meta["cores"]),
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

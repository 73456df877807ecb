"""``deepfer predict --engine ray`` on a local Ray cluster, as a user runs it (the CLI in a
subprocess): a worker SIGKILLed mid-job and a driver SIGKILLed part-way then ``--resume`` lose no
item and repeat none, and the scores are the plain ``deepfer predict``'s.

Each test starts a cluster (a few seconds) and loads the recognizer in two actors; about a minute
each on a shared 2-core machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dist_corpus import descendants

pytest.importorskip("ray", reason="the distributed extra is not installed (pip install 'deepfer[distributed]')")

from deepfer.distributed import build_manifest, checkpointed_ids, read_output  # noqa: E402
from deepfer.inference import Recognizer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.distributed, pytest.mark.timeout(600)]

SRC = Path(__file__).resolve().parents[2] / "src"
ARGS = ["--segment", "1s", "--detect-every", "1", "--no-progress", "--format", "json", "--workers", "2"]


def _start(paths: list[Path], out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "deepfer.cli", "predict", *map(str, paths), "--engine", "ray", "--out", str(out),
           *ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _finish(proc: subprocess.Popen[str]) -> dict:
    stdout, stderr = proc.communicate(timeout=480)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def _wait_for(check, proc: subprocess.Popen[str], timeout: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the run ended first: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.2)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _data_files(out: Path) -> set[str]:
    return {p.name for p in out.glob("*.parquet") if not p.name.startswith("_")}


def _assert_complete(out: Path, ids: list[str]) -> pd.DataFrame:
    rows = read_output(out)
    assert sorted(set(rows["id"])) == sorted(ids)  # every item
    keys = rows[["id", "frame", "face"]].astype("string").fillna("-")
    assert not keys.duplicated().any()  # once
    return rows


def _assert_plain_scores(rows: pd.DataFrame, corpus: Path, labels: list[str]) -> None:
    """The rows' scores are those of the recognizer ``deepfer predict`` runs (its CSV's rows)."""
    ref = Recognizer().predict_table(corpus, detect_every=1)
    ref["path"] = ref["path"].astype(str)
    got = rows.astype({"path": str}).copy()
    key = ["path", "frame", "face"]
    for t in (ref, got):
        for c in ("frame", "face"):
            t[c] = t[c].astype("Int64")
    merged = ref.merge(got, on=key, suffixes=("", "_ray"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"][key]
    np.testing.assert_allclose(merged[labels].to_numpy(float), merged[[f"{k}_ray" for k in labels]].to_numpy(float),
                               atol=1e-6)


def test_killed_worker_loses_and_repeats_nothing(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    ids = [it.id for it in build_manifest([corpus], segment=1.0, detect_every=1)]
    assert len(ids) == 203  # 200 photos + 3 video segments
    proc = _start([corpus], out)
    try:
        _wait_for(lambda: bool(_data_files(out)), proc)  # the first batch is written: mid-job
        workers = {p: c for p, c in descendants(proc.pid).items() if "MapBatches(RecognizerWorker)" in c}
        assert workers, "no recognizer actor found"
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        summary = _finish(proc)
    finally:
        if proc.poll() is None:
            _kill_group(proc.pid)
    assert summary["missing"] == [] and summary["duplicated"] == 0 and summary["processed"] == 203
    rows = _assert_complete(out, ids)
    assert summary["records"] == 200 + 30 and summary["tracks"] == 3 and summary["tracks_cut"] == 3
    tracks = pd.read_parquet(out / "_tracks.parquet")
    assert tracks[["cut_before", "cut_after"]].values.tolist() == [[False, True], [True, True], [True, False]]
    labels = [c for c in rows.columns if c not in {"id", "path", "frame", "time", "segment", "face", "track", "x",
                                                      "y", "w", "h", "label", "score", "detector_score",
                                                      "face_width", "roll", "yaw", "blur", "error"}]
    _assert_plain_scores(rows, corpus, labels)


def test_killed_driver_then_resume(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    ids = [it.id for it in build_manifest([corpus], segment=1.0, detect_every=1)]
    proc = _start([corpus], out)
    try:
        _wait_for(lambda: bool(checkpointed_ids(out)), proc)  # some files committed
        cluster = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _kill_group(proc.pid)  # the cluster the driver started goes with it
    end = time.monotonic() + 30
    while any(Path(f"/proc/{p}").exists() for p in cluster) and time.monotonic() < end:
        time.sleep(0.5)
    for p in cluster:  # what outlived it (processes this test started)
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done = checkpointed_ids(out)
    assert 0 < len(done) < len(ids), "the driver was not killed part-way"
    before = _data_files(out)

    again = _finish(_start([corpus], out, "--resume"))
    assert again["resumed"] == len(done) and again["processed"] == len(ids) - len(done)
    assert again["missing"] == [] and again["duplicated"] == 0
    new = _data_files(out) - before
    ran = set(read_output_files(out, new)["id"])
    assert ran == set(ids) - done  # only the missing ids were run
    _assert_complete(out, ids)

    # Resuming a finished run runs nothing; a plain run into it is refused (nothing overwritten).
    idle = _finish(_start([corpus], out, "--resume"))
    assert idle["processed"] == 0 and idle["resumed"] == len(ids)
    refused = _start([corpus], out)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "holds results already; pass --resume" in err


def read_output_files(out: Path, names: set[str]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(out / n, columns=["id"]) for n in sorted(names)], ignore_index=True)

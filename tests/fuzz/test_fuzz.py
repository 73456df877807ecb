"""The fuzz corpus through everything a hostile user reaches: ``deepfer predict`` (in process,
``deepfer.cli.main``), the server app and checkpoint loading. Whatever the input: no traceback, one
record per input (videos: their frames, or one error), errors in one line, bounded time per file,
and the server answers 2xx/4xx (never 5xx) and is as available afterwards as before."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fuzz_corpus import bombs, checkpoints, multipart_bodies, valid_photo

from deepfer.cli import main
from deepfer.errors import DataError, DeepferError, ModelError
from deepfer.inference import sample_image
from deepfer.inference.inputs import expand
from deepfer.vision import read_image

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _one_line(message: str | None) -> bool:
    return message is None or (bool(message.strip()) and "\n" not in message and "Traceback" not in message)


def test_every_image_is_decoded_or_refused_quickly(corpus: dict[str, Path]) -> None:
    slow = {}
    for name, path in corpus.items():
        t0 = time.perf_counter()
        try:
            read_image(path)
        except DataError as exc:  # the one error a bad file may raise
            assert _one_line(str(exc)) and str(path) in str(exc), (name, str(exc))
        took = time.perf_counter() - t0
        if took > 2.0:  # a 10 s budget per file, with room for a busy machine
            slow[name] = took
    assert not slow


def test_predict_gives_one_record_per_input_and_no_traceback(corpus: dict[str, Path], videos: list[Path],
                                                              tmp_path: Path, capsys) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for path in [*corpus.values(), *videos]:
        (folder / path.name).symlink_to(path)
    photo = folder / "zz_last_photo.png"
    photo.symlink_to(sample_image())
    t0 = time.perf_counter()
    rc = main(["predict", str(folder), "--format", "json", "--no-progress"])
    took = time.perf_counter() - t0
    out, err = capsys.readouterr()
    records = _records(out)
    assert rc == 0
    assert "Traceback" not in err and "Error:" not in err.replace("deepfer: error:", "")
    by_path: dict[str, list[dict]] = {}
    for r in records:
        by_path.setdefault(Path(r["path"]).name, []).append(r)
    inputs = {Path(s.name).name for s in expand([folder])}  # what a folder holds for predict
    assert len(inputs) > 200 and "seed_rgb.png" in inputs
    assert set(by_path) == inputs  # every input has its record(s), and nothing else
    for name, rs in by_path.items():
        if name.endswith((".avi", ".mp4", ".mkv")):
            assert all(r["frame"] is not None for r in rs[:-1])  # frames, then at most one error
        else:
            assert len(rs) == 1, name
        assert all(_one_line(r["error"]) for r in rs), rs
    assert len(by_path["zz_last_photo.png"][0]["faces"]) == 1  # the run went on to the end
    assert len(by_path["valid.avi"]) == 6 and all(r["faces"] for r in by_path["valid.avi"])
    assert took / len(inputs) < 0.5  # seconds per input, model loading included


@pytest.mark.parametrize("backend", ["torch"])
def test_server_answers_every_body_with_2xx_or_4xx(corpus: dict[str, Path], backend: str) -> None:
    pytest.importorskip("fastapi", reason="the server needs the serve extra: pip install -e '.[serve]'")
    from fastapi.testclient import TestClient

    from deepfer.serve import ServeSettings, create_app

    settings = ServeSettings(backend=backend, workers=2)
    photo = valid_photo()
    statuses: dict[int, int] = {}
    bad = []
    with TestClient(create_app(settings)) as client:
        before = time.perf_counter()
        assert client.post("/v1/predict", content=photo, headers={"Content-Type": "image/jpeg"}).status_code == 200
        quiet = time.perf_counter() - before
        requests = [(f"file {name}", path.read_bytes(), "application/octet-stream") for name, path in corpus.items()]
        requests += list(multipart_bodies(photo, 60))
        for what, body, ctype in requests:
            r = client.post("/v1/predict", content=body, headers={"Content-Type": ctype})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            answer = r.json()
            if r.status_code >= 500 or (r.status_code != 200 and not _one_line(answer.get("error"))):
                bad.append((what, r.status_code, answer))
            if r.status_code == 200:
                assert isinstance(answer["faces"], list), what
        # as available as before: the valid photo answers as it did, and nothing is left running
        t0 = time.perf_counter()
        after = client.post("/v1/predict", content=photo, headers={"Content-Type": "image/jpeg"})
        assert after.status_code == 200 and len(after.json()["faces"]) == 1
        assert time.perf_counter() - t0 < max(2.0, 5 * quiet)
        health = client.get("/healthz").json()
    assert not bad
    assert set(statuses) <= {200, 400, 413, 415}, statuses
    assert statuses[413] >= len(bombs())  # every bomb refused as too costly
    assert health["in_progress"] == 0 and health["running"] == 0 and health["decoders"] == 2


def test_damaged_checkpoints_load_or_fail_in_one_line(tmp_path: Path, capsys) -> None:
    from deepfer.models.checkpoint import Checkpoint

    files = checkpoints(tmp_path, 30)
    loaded, refused = 0, 0
    for path in files:
        t0 = time.perf_counter()
        try:
            Checkpoint.load(path)
            loaded += 1
        except ModelError as exc:
            assert _one_line(str(exc)) and path.name in str(exc), (path.name, str(exc))
            refused += 1
        assert time.perf_counter() - t0 < 2.0, path.name
    assert loaded >= 1 and refused >= len(files) // 2  # the valid file loads; most damage is caught
    photo = str(sample_image())
    for path in files[1:6]:
        rc = main(["predict", photo, "--model", str(path), "--format", "json", "--no-progress"])
        _, err = capsys.readouterr()
        assert rc in (0, 2) and "Traceback" not in err
        assert rc == 0 or (err.startswith("deepfer: error:") and err.count("\n") == 1), err
    assert issubclass(ModelError, DeepferError)

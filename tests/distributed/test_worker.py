"""What each actor runs, without Ray: the same records as ``deepfer predict`` for images, video
segments read from their first frame with global frame indexes and times, errors as records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dist_corpus import make_images, make_video

from deepfer.distributed.manifest import build_manifest, to_table
from deepfer.distributed.worker import EngineSpec, RecognizerWorker, output_columns
from deepfer.inference import Recognizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def worker() -> RecognizerWorker:
    return RecognizerWorker(EngineSpec(detect_every=1, threads=1))


def test_segments_match_one_pass(tmp_path: Path, worker: RecognizerWorker) -> None:
    video = make_video(tmp_path / "clip.avi", 3.0)
    items = build_manifest([video], segment=1.0)
    assert len(items) == 3
    table = worker(to_table(items)).to_pandas()
    assert list(table.columns) == output_columns(worker.labels)
    whole = Recognizer()
    ref = whole.predict_table(video, detect_every=1)
    assert table["frame"].tolist() == ref["frame"].tolist() == list(range(30))  # global indexes, in order
    np.testing.assert_allclose(table["time"], ref["time"], atol=1e-9)
    labels = worker.labels
    np.testing.assert_allclose(table[labels].to_numpy(float), ref[labels].to_numpy(float), atol=1e-6)
    assert table["segment"].tolist() == [0] * 10 + [10] * 10 + [20] * 10
    assert table["id"].tolist() == [f"{video}#0"] * 10 + [f"{video}#10"] * 10 + [f"{video}#20"] * 10
    assert set(table["track"]) == {1}  # each segment tracks afresh: (path, segment, track) is the key


def test_images_and_errors_are_records(tmp_path: Path, worker: RecognizerWorker) -> None:
    make_images(tmp_path / "p", 3)
    (tmp_path / "p" / "00" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "bad.avi").write_bytes(b"not a video")
    items = build_manifest([tmp_path / "p", tmp_path / "bad.avi", tmp_path / "gone.png"])
    table = worker(to_table(items)).to_pandas()
    by_id = table.groupby("id", sort=False)
    assert list(by_id.groups) == [it.id for it in items]  # one record at least per item, in order
    ref = Recognizer().predict_table([it.path for it in items if it.kind == "image"])
    got = table[table["id"].isin(ref["path"])]
    np.testing.assert_allclose(got[worker.labels].to_numpy(float), ref[worker.labels].to_numpy(float), atol=1e-6)
    assert got["error"].fillna("").tolist() == ref["error"].fillna("").tolist()
    errors = table.set_index("id")["error"]
    assert "cannot open video" in errors[f"{tmp_path / 'bad.avi'}#0"]  # found when the manifest is made
    assert "no such file" in errors[str(tmp_path / "gone.png")]
    assert str(tmp_path / "p" / "00" / "broken.jpg") in errors.index


def test_segment_past_the_end_is_a_record(tmp_path: Path, worker: RecognizerWorker) -> None:
    """A container that overstates its frame count leaves an empty last segment: one error record."""
    from dataclasses import replace

    video = make_video(tmp_path / "clip.avi", 1.0)
    item = replace(build_manifest([video])[0], id=f"{video}#50", start=50, stop=None)
    rows = worker(to_table([item])).to_pandas()
    assert len(rows) == 1 and rows["error"][0] == f"{video}: no frames from frame 50"


def test_uri_inputs_are_named_by_their_uri(tmp_path: Path, worker: RecognizerWorker) -> None:
    make_images(tmp_path / "p", 2)
    local = worker(to_table(build_manifest([tmp_path / "p"]))).to_pandas()
    remote = worker(to_table(build_manifest([f"file://{tmp_path / 'p'}"]))).to_pandas()
    assert remote["path"].tolist() == [f"file://{p}" for p in local["path"]] == remote["id"].tolist()
    np.testing.assert_allclose(remote[worker.labels].to_numpy(float), local[worker.labels].to_numpy(float), atol=1e-6)

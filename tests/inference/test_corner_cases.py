"""Corner cases of ``deepfer predict``'s inputs: the same file given twice is two inputs (two
streams, two timelines, two annotated copies), and a symbolic link loop, a broken link or a FIFO is
named as what it is, not as a missing file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from infer_helpers import rolled_video

from deepfer.cli import main
from deepfer.inference.inputs import expand


@pytest.fixture
def video(tmp_path: Path, astronaut: Path) -> Path:
    return rolled_video(tmp_path / "clip.avi", astronaut, 15)


def test_the_same_video_twice_is_two_streams(capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path,
                                             checkpoint: Path) -> None:
    out = tmp_path / "tl"
    code = main(["predict", "--no-progress", "--model", str(checkpoint), str(video), str(video), "--timeline",
                 str(out), "--summary", "--format", "json"])
    stdout, _ = capsys.readouterr()
    assert code == 0
    tracks = [json.loads(line) for line in stdout.splitlines()]
    assert len(tracks) == 2 and len({t["path"] for t in tracks}) == 2  # one face per stream, not 2 tracks in one
    assert all(t["track"] == 1 for t in tracks)
    csvs = sorted(p.name for p in out.glob("*.csv"))
    assert csvs == ["clip-1.timeline.csv", "clip.timeline.csv"]
    rows = [len((out / c).read_text().splitlines()) for c in csvs]
    assert rows[0] == rows[1] == 16  # a header and 15 frames each, not one CSV of 30


def test_the_same_image_twice_is_annotated_twice(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 astronaut: Path, checkpoint: Path) -> None:
    out = tmp_path / "ann"
    assert main(["predict", "--no-progress", "--model", str(checkpoint), str(astronaut), str(astronaut),
                 "--annotate", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.rglob("*.png")) == ["astronaut-1.png", "astronaut.png"]


def test_links_and_fifos_are_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nothing.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe.mp4")
    names = ["a.jpg", "gone.jpg", "pipe.jpg", "pipe.mp4", "missing.jpg"]
    from deepfer.inference import Recognizer

    results = {Path(r.path).name: r.error for r in Recognizer(detector=None).iter_results(
        expand([str(tmp_path / n) for n in names]))}
    assert results["a.jpg"].endswith("a symbolic link loop")  # "no such file or directory"
    assert results["gone.jpg"].endswith("a broken symbolic link")
    assert results["pipe.jpg"].endswith("a FIFO (named pipe)")  # "not a file"
    assert results["pipe.mp4"].endswith("a FIFO (named pipe)")  # "no such file"
    assert results["missing.jpg"].endswith("no such file")

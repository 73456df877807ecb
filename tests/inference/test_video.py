"""Videos: every Nth frame, frames without faces, broken files, annotated output; webcams that
cannot be opened fail with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.errors import DeepferError
from deepfer.inference import Recognizer
from deepfer.inference.annotate import Annotator
from deepfer.vision import read_image
from deepfer.inference.recognizer import NO_FACE
from deepfer.inference.sources import expand, webcam


@pytest.fixture(scope="module")
def video(astronaut: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames at 256x256: frames 0-1 blank (a stream that starts without a face, which crashed
    the public Deep-Emotion demo), then the astronaut photo on frames 2, 4, 6, ... and blank ones
    between."""
    face = cv2.resize(read_image(astronaut, keep_color=True).bgr, (256, 256), interpolation=cv2.INTER_AREA)
    blank = np.full_like(face, 100)
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (256, 256))
    for i in range(12):
        writer.write(face if i >= 2 and i % 2 == 0 else blank)
    writer.release()
    return path


def test_every_nth_frame(recognizer: Recognizer, video: Path) -> None:
    results = list(recognizer.iter_results([video], every=2))
    assert [r.frame for r in results] == [0, 2, 4, 6, 8, 10]
    assert results[0].error == NO_FACE and results[0].decoded
    assert all(len(r.faces) == 1 and r.error is None for r in results[1:])
    assert all(r.path == str(video) for r in results)


def test_all_frames_and_max_frames(recognizer: Recognizer, video: Path) -> None:
    results = list(recognizer.iter_results([video]))
    assert [r.frame for r in results] == list(range(12))
    assert [bool(r.faces) for r in results] == [i >= 2 and i % 2 == 0 for i in range(12)]
    assert [r.frame for r in recognizer.iter_results([video], every=3, max_frames=2)] == [0, 3]


def test_video_dataframe(recognizer: Recognizer, video: Path) -> None:
    table = recognizer.predict(video)
    assert list(table.frame) == list(range(12))
    assert table.label.notna().sum() == 5


def test_broken_video_is_an_error_record(recognizer: Recognizer, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    [r] = list(recognizer.iter_results([bad]))
    assert "cannot open video" in r.error and not r.decoded


def test_annotated_video(recognizer: Recognizer, video: Path, tmp_path: Path) -> None:
    sources = expand([video])
    with Annotator(tmp_path / "out", sources, every=2) as ann:
        for r in recognizer.iter_results(sources, every=2, keep_pictures=True):
            ann.write(r)
    out = tmp_path / "out" / "clip.mp4"
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 6


def test_webcam_that_cannot_open(recognizer: Recognizer) -> None:
    with pytest.raises(DeepferError, match="^cannot open webcam 97$"):
        list(recognizer.iter_results([webcam(97)]))


@pytest.mark.skipif(Path("/dev/video0").exists(), reason="this machine has a webcam 0")
def test_webcam_cli_prints_one_line(checkpoint: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "deepfer.cli", "predict", "--webcam", "0", "--model",
                           str(checkpoint)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "deepfer: error: cannot open webcam 0\n"

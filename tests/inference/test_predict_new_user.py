"""What a first-time user of ``deepfer predict`` meets: full class names in the table, videos shown
with their track and time, photo CSVs without the stream-only columns, faces dropped by the
size and score thresholds named as such, annotated copies where they were asked for with a line
saying so, FFmpeg's own messages kept off stderr, and clear errors before any output."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.cli import main
from deepfer.inference.timeline import format_track_summary
from deepfer.labels import FER7
from deepfer.vision import read_image

SRC = Path(__file__).resolve().parents[2] / "src"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["predict", "--no-progress", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture(scope="module")
def clip(astronaut: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 frames at 10 fps: two blank frames, then the astronaut on frames 2-7."""
    face = cv2.resize(read_image(astronaut, keep_color=True).bgr, (256, 256), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (256, 256))
    for i in range(8):
        writer.write(face if i >= 2 else np.full_like(face, 100))
    writer.release()
    return path


def test_table_keeps_whole_class_names(capsys, checkpoint: Path, astronaut: Path) -> None:
    code, out, _ = run(capsys, str(astronaut), "--model", str(checkpoint))
    head = out.splitlines()[0].split()
    assert code == 0 and head[-7:] == list(FER7)
    records = [{"path": "v.mp4", "track": 1, "first": 0.0, "last": 1.0, "duration": 1.0, "frames": 2, "appearances": 1,
                "dominant": "surprise", "shares": {k: 1.0 if k == "surprise" else 0.0 for k in FER7}}]
    assert format_track_summary(records, list(FER7)).splitlines()[0].split()[-7:] == list(FER7)


def test_video_table_has_track_and_time_and_no_line_per_empty_frame(capsys, checkpoint: Path, clip: Path) -> None:
    code, out, _ = run(capsys, str(clip), "--model", str(checkpoint), "--detect-every", "1")
    head, *lines = out.splitlines()
    assert code == 0 and head.split()[:5] == ["path", "frame", "time", "track", "box"]
    assert "no face found" not in out and len(lines) == 6  # frames 2-7, one face each
    first = lines[0].split()
    assert first[1:4] == ["2", "0.20", "1"]  # frame 2 at 0.2 s, track 1


def test_photo_csv_has_no_stream_columns(capsys, checkpoint: Path, astronaut: Path, clip: Path) -> None:
    _, out, _ = run(capsys, str(astronaut), "--model", str(checkpoint), "--format", "csv")
    header = next(csv.reader(io.StringIO(out)))
    assert "time" not in header and "track" not in header and header[:3] == ["path", "frame", "face"]
    _, out, _ = run(capsys, str(clip), "--model", str(checkpoint), "--format", "csv")
    header = next(csv.reader(io.StringIO(out)))
    assert header[:5] == ["path", "frame", "time", "face", "track"]


@pytest.mark.parametrize("flag, value, why", [("--min-face", "1000", "no face found at least 1000 px wide"),
                                                ("--min-score", "0.999", "no face kept: 1 found, 1 scored below 0.999")])
def test_dropped_face_is_not_no_face_found(capsys, checkpoint: Path, astronaut: Path, flag: str, value: str,
                                          why: str) -> None:
    _, out, _ = run(capsys, str(astronaut), "--model", str(checkpoint), "--format", "json", flag, value)
    record = json.loads(out)
    assert record["faces"] == [] and record["error"] != "no face found"
    assert why in record["error"]


def test_predict_without_inputs_says_what_to_give(capsys) -> None:
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert "not both" not in err and "PATH" in err and "--webcam" in err


def test_missing_webcam_fails_before_the_table_header(capsys, checkpoint: Path) -> None:
    code, out, err = run(capsys, "--webcam", "97", "--model", str(checkpoint))
    assert code == 2 and out == "" and err.strip() == "deepfer: error: cannot open webcam 97"


def test_annotate_folder_into_its_own_name(capsys, checkpoint: Path, astronaut: Path, tmp_path: Path) -> None:
    x = tmp_path / "x"
    x.mkdir()
    (x / "a.png").write_bytes(astronaut.read_bytes())
    out = tmp_path / "out" / "x"
    code, _, err = run(capsys, str(x), "--model", str(checkpoint), "--annotate", f"{out}/")
    assert code == 0 and (out / "a.png").is_file() and not (out / "x").exists()
    assert f"wrote 1 annotated image to {out}" in err


def test_annotate_says_what_it_wrote(capsys, checkpoint: Path, astronaut: Path, clip: Path, tmp_path: Path) -> None:
    target = tmp_path / "demo.jpg"
    code, _, err = run(capsys, str(astronaut), "--model", str(checkpoint), "--annotate", str(target))
    assert code == 0 and target.is_file() and err.strip() == f"wrote {target}"
    movie = tmp_path / "clip.mp4"
    code, _, err = run(capsys, str(clip), "--model", str(checkpoint), "--annotate", str(movie))
    from deepfer.inference.video import mp4_codec

    fourcc, name = mp4_codec()
    assert code == 0 and f"wrote {movie} ({name}" in err
    cap = cv2.VideoCapture(str(movie))
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    cap.release()
    read_as = {"avc1": {"avc1", "h264"}, "mp4v": {"mp4v", "fmp4"}}[fourcc]  # FFmpeg names MPEG-4 Part 2 FMP4
    assert code.to_bytes(4, "little").decode().lower() in read_as


def test_mp4_codec_prefers_h264() -> None:
    from deepfer.inference.video import mp4_codec

    fourcc, name = mp4_codec()
    writer = cv2.VideoWriter(os.devnull + ".mp4", cv2.VideoWriter_fourcc(*"avc1"), 10, (64, 48))
    h264 = writer.isOpened()
    writer.release()
    assert (fourcc, name.split(" ")[0]) == (("avc1", "H.264") if h264 else ("mp4v", "MPEG-4"))


def test_ffmpeg_messages_stay_off_stderr(checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    good = tmp_path / "good.mp4"
    writer = cv2.VideoWriter(str(good), cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 96))
    for _ in range(30):
        writer.write(cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3)).astype(np.uint8), (9, 9), 0))
    writer.release()
    data = bytearray(good.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 2000):  # damage the stream's middle
        data[k] = (data[k] * 7 + 13) & 255
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    env.pop("OPENCV_LOG_LEVEL", None)
    proc = subprocess.run([sys.executable, "-m", "deepfer.cli", "predict", "--no-progress", "--format", "json",
                           "--model", str(checkpoint), str(bad)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.stdout and all(line.startswith(("deepfer:", "WARNING deepfer.")) for line in proc.stderr.splitlines()), \
        proc.stderr

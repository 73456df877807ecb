"""Videos: every Nth frame, frames without faces, broken files, annotated output; webcams that
cannot be opened fail with one clear line. A video that fails (at open, or after some frames)
costs no other record: the frames read before the failure are kept, the video gets one error
record, and the run goes on."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.cli import main
from deepfer.errors import DeepferError
from deepfer.inference import Recognizer
from deepfer.inference.annotate import Annotator
from deepfer.vision import read_image
from deepfer.inference.inputs import Source, expand, webcam
from deepfer.inference.results import NO_FACE
from deepfer.inference.video import iter_frames, open_video


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
    # detect_every=1: this video's face blinks on and off from one frame to the next, which a
    # tracker carrying boxes between detections would not follow.
    results = list(recognizer.iter_results([video], every=2, detect_every=1))
    assert [r.frame for r in results] == [0, 2, 4, 6, 8, 10]
    assert results[0].error == NO_FACE and results[0].decoded
    assert all(len(r.faces) == 1 and r.error is None for r in results[1:])
    assert all(r.path == str(video) for r in results)


def test_all_frames_and_max_frames(recognizer: Recognizer, video: Path) -> None:
    results = list(recognizer.iter_results([video], detect_every=1))
    assert [r.frame for r in results] == list(range(12))
    assert [bool(r.faces) for r in results] == [i >= 2 and i % 2 == 0 for i in range(12)]
    assert [r.frame for r in recognizer.iter_results([video], every=3, max_frames=2)] == [0, 3]


def test_video_dataframe(recognizer: Recognizer, video: Path) -> None:
    table = recognizer.predict_table(video, detect_every=1)
    assert list(table.frame) == list(range(12))
    assert table.label.notna().sum() == 5


def test_each_video_is_opened_once(recognizer: Recognizer, video: Path, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    """Decoding, timing (the tracker's frame rate) and annotating share one opening of the file."""
    import deepfer.inference.annotate
    import deepfer.inference.recognizer
    import deepfer.inference.tracking
    from deepfer.inference.annotate import Annotator
    from deepfer.inference.inputs import expand
    from deepfer.inference.video import open_video

    opened: list[str] = []
    for module in (deepfer.inference.recognizer, deepfer.inference.tracking, deepfer.inference.annotate):
        if hasattr(module, "open_video"):
            monkeypatch.setattr(module, "open_video", lambda name: opened.append(name) or open_video(name))
    sources = expand([video])
    annotator = Annotator(tmp_path / "out", sources)
    results = list(recognizer.iter_results(sources, keep_pictures=True, detect_every=1))
    for r in results:
        annotator.write(r)
    annotator.close()
    assert opened == [str(video)] and results[3].fps == pytest.approx(results[3].frame / results[3].time)
    assert (tmp_path / "out").is_dir() and any((tmp_path / "out").iterdir())


def test_broken_video_is_an_error_record(recognizer: Recognizer, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    [r] = list(recognizer.iter_results([bad]))
    assert "cannot open video" in r.error and not r.decoded


def write_mjpeg(path: Path, frames: list[np.ndarray]) -> Path:
    """An MJPG ``.avi`` of BGR or gray frames (all of one size and kind)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h), isColor=frames[0].ndim == 3)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def zero_frame(path: Path, k: int) -> None:
    """Overwrite the JPEG data of frame ``k`` of an MJPG ``.avi`` with zeros, in place (its chunk
    and the index stay valid): FFmpeg finds no JPEG in it and OpenCV's grab of that frame fails."""
    data = bytearray(path.read_bytes())
    start = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"][k]
    assert data[start - 8 : start - 4] == b"00dc"  # the test's own premise: a chunk starts there
    (size,) = struct.unpack("<I", data[start - 4 : start])
    data[start : start + size] = bytes(size)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def face_frame(astronaut: Path) -> np.ndarray:
    return cv2.resize(read_image(astronaut, keep_color=True).bgr, (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def huge_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 9000x8000 frame (72 Mpixels, over the 64-Mpixel cap); gray, which
    takes half a second where colour takes one or two."""
    return write_mjpeg(tmp_path_factory.mktemp("huge") / "huge.avi", [np.full((8000, 9000), 100, np.uint8)])


def test_corrupt_frame_raises_after_the_frames_before_it(face_frame: np.ndarray, tmp_path: Path) -> None:
    path = write_mjpeg(tmp_path / "cut.avi", [face_frame] * 6)
    zero_frame(path, 3)
    got = []
    with pytest.raises(DeepferError, match=r"cut.avi: frame 3 cannot be decoded \(corrupt stream\)"):
        for index, _ in iter_frames(open_video(path), name=str(path)):
            got.append(index)
    assert got == [0, 1, 2]
    # Without a name (a webcam) a failed read ends the stream, as before.
    assert [i for i, _ in iter_frames(open_video(path))] == [0, 1, 2]
    # Every other frame: the failed frame is one that would have been skipped.
    with pytest.raises(DeepferError, match="frame 3 cannot be decoded"):
        list(iter_frames(open_video(path), every=2, name="cut.avi"))


def test_video_failing_after_some_frames_keeps_them_and_the_next_inputs(
        recognizer: Recognizer, face_frame: np.ndarray, astronaut: Path, tmp_path: Path) -> None:
    path = write_mjpeg(tmp_path / "cut.avi", [face_frame] * 6)
    zero_frame(path, 3)
    results = list(recognizer.iter_results([astronaut, path, astronaut]))
    assert [(Path(r.path).name, r.frame) for r in results] == [
        ("astronaut.png", None), ("cut.avi", 0), ("cut.avi", 1), ("cut.avi", 2), ("cut.avi", None),
        ("astronaut.png", None)]
    assert all(len(r.faces) == 1 and r.error is None and r.decoded for r in results[:4] + results[5:])
    error = results[4]
    assert error.faces == [] and not error.decoded
    assert error.error == f"{path}: frame 3 cannot be decoded (corrupt stream); the frames after it are not read"
    # The frames before the failure are the video's frames as read from an intact copy (the scores
    # to float32 rounding: a batch of other faces beside them changes the convolutions' sums).
    intact = list(recognizer.iter_results([write_mjpeg(tmp_path / "intact.avi", [face_frame] * 6)]))
    for got, want in zip([r.faces[0] for r in results[1:4]], [r.faces[0] for r in intact[:3]], strict=True):
        assert (got.box, got.label, got.landmarks, got.track) == (want.box, want.label, want.landmarks, want.track)
        assert got.scores == pytest.approx(want.scores, abs=1e-6)
        assert got.smoothed == pytest.approx(want.smoothed, abs=1e-6)


def test_video_failing_at_open_costs_no_other_record(recognizer: Recognizer, astronaut: Path,
                                                     huge_video: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    results = list(recognizer.iter_results([astronaut, huge_video, broken, astronaut]))
    assert [(Path(r.path).name, r.frame, len(r.faces), r.decoded) for r in results] == [
        ("astronaut.png", None, 1, True), ("huge.avi", None, 0, False), ("broken.mp4", None, 0, False),
        ("astronaut.png", None, 1, True)]
    assert results[1].error == f"{huge_video}: video frames of 9000x8000 pixels are too large (limit 64,000,000 pixels)"
    assert "cannot open video" in results[2].error
    assert results[0].faces == results[3].faces


class FakeCapture:
    """A capture that yields ``frames`` and then raises ``fail`` (if given) from ``grab``, and
    states no frame size or count (as some backends do)."""

    def __init__(self, frames: list[np.ndarray], fail: Exception | None = None) -> None:
        self.frames, self.fail, self.released = list(frames), fail, False

    def get(self, prop: int) -> float:
        return 0.0

    def grab(self) -> bool:
        if not self.frames and self.fail is not None:
            raise self.fail
        return bool(self.frames)

    def retrieve(self) -> tuple[bool, np.ndarray]:
        return True, self.frames.pop(0)

    def release(self) -> None:
        self.released = True


@pytest.mark.parametrize("case", ["huge frame", "backend error"])
def test_frame_failing_ends_its_video_and_the_run_goes_on(case: str, recognizer: Recognizer, face_frame: np.ndarray,
                                                          astronaut: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame over the pixel cap from a backend that does not state the frame size (a broadcast
    view: no memory), or an exception from the backend after two frames."""
    opened: list[FakeCapture] = []

    def fake_open(path: str) -> FakeCapture:
        if case == "huge frame":
            opened.append(FakeCapture([face_frame, face_frame, np.broadcast_to(np.uint8(100), (8000, 9000, 3))]))
        else:
            opened.append(FakeCapture([face_frame, face_frame], cv2.error("boom")))
        return opened[-1]

    monkeypatch.setattr("deepfer.inference.recognizer.open_video", fake_open)
    video = Source("video", "clip.avi", Path("clip.avi"))
    results = list(recognizer.iter_results([*expand([astronaut]), video, *expand([astronaut])]))
    assert [(Path(r.path).name, r.frame, len(r.faces)) for r in results] == [
        ("astronaut.png", None, 1), ("clip.avi", 0, 1), ("clip.avi", 1, 1), ("clip.avi", None, 0),
        ("astronaut.png", None, 1)]
    assert results[3].error == {"huge frame": "clip.avi: frame 2: image of 9000x8000 pixels is too large",
                                "backend error": "clip.avi: cannot read video after frame 1 (error: boom)"}[case]
    assert not results[3].decoded and opened and all(cap.released for cap in opened)


def test_cli_json_keeps_every_record_around_a_huge_video(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                                         astronaut: Path, huge_video: Path, tmp_path: Path) -> None:
    """A photo, a 9000x8000 video and another photo in one folder."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.png").write_bytes(astronaut.read_bytes())
    (folder / "b.avi").write_bytes(huge_video.read_bytes())
    (folder / "c.png").write_bytes(astronaut.read_bytes())
    code = main(["predict", "--no-progress", str(folder), "--model", str(checkpoint), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["a.png", "b.avi", "c.png"]
    assert [len(r["faces"]) for r in records] == [1, 0, 1]
    assert records[1]["error"].endswith("b.avi: video frames of 9000x8000 pixels are too large (limit 64,000,000 pixels)")
    assert records[0]["error"] is None and records[2]["error"] is None


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

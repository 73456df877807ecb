"""Timelines and summaries: the per-track summary's arithmetic, the timeline CSV written as frames
come (an interrupted run keeps them), the picture's layout, the summary formats, and the
DataFrames of Recognizer.track."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deepfer.cli import main
from deepfer.inference.results import Face, Result, rows
from deepfer.inference.timeline import (
    MAX_ROWS,
    TimelineWriter,
    TrackSummary,
    format_track_summary,
    summarize,
    track_table,
    write_summary,
)
from deepfer.vision import Picture

LABELS = ["happy", "sad", "neutral"]


def face(track: int, smoothed_label: str, box: tuple[int, int, int, int] = (10, 10, 40, 40)) -> Face:
    smoothed = {k: (0.8 if k == smoothed_label else 0.1) for k in LABELS}
    return Face(box, {"happy": 0.5, "sad": 0.3, "neutral": 0.2}, "happy", track=track, smoothed=smoothed)


def add(summary: TrackSummary, f: Face, time: float) -> None:
    """Count a face through its row of the flat table, as predict and the server do."""
    for row in rows(Result("v.mp4", 0, [f], time=time), LABELS):
        summary.add(row)


def frames(path: str, n: int, fps: float = 10.0, tracks: tuple[int, ...] = (1,),
           label: str = "happy") -> list[Result]:
    pic = Picture(np.full((120, 160), 90, np.uint8), np.full((120, 160, 3), 90, np.uint8))
    return [Result(path, f, [face(t, label, (10 + 60 * i, 20, 40, 40)) for i, t in enumerate(tracks)], picture=pic,
                   time=f / fps) for f in range(n)]


def test_summary_counts_shares_and_dominant() -> None:
    s = TrackSummary(LABELS, "v.mp4")
    for i, label in enumerate(["sad", "sad", "happy", "sad"]):
        add(s, face(4, label), 1.0 + i * 0.5)
    add(s, face(9, "neutral"), 0.5)
    add(s, Face((0, 0, 1, 1), {"happy": 1.0, "sad": 0.0, "neutral": 0.0}, "happy"), 0.2)  # untracked: ignored
    nine, four = s.records()  # in order of appearance
    assert four == {"path": "v.mp4", "track": 4, "first": 1.0, "last": 2.5, "duration": 1.5, "frames": 4,
                    "dominant": "sad", "shares": {"happy": 0.25, "sad": 0.75, "neutral": 0.0}}
    assert nine["track"] == 9 and nine["duration"] == 0 and nine["dominant"] == "neutral"


def test_writer_writes_rows_as_they_come_and_a_picture_per_video(tmp_path: Path) -> None:
    writer = TimelineWriter(tmp_path / "out", LABELS)
    for r in frames("a/clip.mp4", 12, tracks=(1, 2)):
        writer.write(r)
    csv_path = tmp_path / "out" / "clip.timeline.csv"
    early = pd.read_csv(csv_path)  # before close: every row is on disk already
    assert len(early) == 24 and list(early.track[:2]) == [1, 2] and early.time.iloc[-1] == pytest.approx(1.1)
    assert early.smoothed_label.iloc[0] == "happy" and early.smoothed_happy.iloc[0] == pytest.approx(0.8)
    writer.write(Result("photo.jpg", None, [face(1, "sad")]))  # images are not timelines
    for r in frames("b/clip.mp4", 5, label="sad"):  # a second video with the same file name
        writer.write(r)
    written = writer.close()
    assert [p.name for p in written] == ["clip.timeline.csv", "clip.timeline.png", "clip-1.timeline.csv",
                                         "clip-1.timeline.png"]
    assert pd.read_csv(tmp_path / "out" / "clip-1.timeline.csv").smoothed_label.tolist() == ["sad"] * 5
    image = cv2.imread(str(tmp_path / "out" / "clip.timeline.png"))
    assert image.shape[1] == 12 * 110 and image.shape[0] == round((1.2 + 1.15 * 2) * 110)  # two track rows


def test_picture_draws_at_most_the_longest_tracks(tmp_path: Path) -> None:
    writer = TimelineWriter(tmp_path, LABELS)
    for r in frames("many.mp4", 20, tracks=tuple(range(1, MAX_ROWS + 4))):
        writer.write(r)
    writer.write(Result("many.mp4", 20, [face(99, "sad")], time=2.0))  # one frame: too short to draw
    writer.close()
    image = cv2.imread(str(tmp_path / "many.timeline.png"))
    assert image.shape[0] == round((1.2 + 1.15 * MAX_ROWS) * 110)


def test_writer_refuses_a_file_as_folder(tmp_path: Path) -> None:
    from deepfer.errors import DeepferError

    (tmp_path / "f").write_text("x")
    with pytest.raises(DeepferError, match="not a folder"):
        TimelineWriter(tmp_path / "f", LABELS)


def test_summary_formats() -> None:
    s = TrackSummary(LABELS, "dir/v.mp4")
    for i in range(3):
        add(s, face(2, "sad"), i / 10)
    records = s.records()
    text = format_track_summary(records, LABELS)
    assert text.splitlines()[1].split() == ["v.mp4", "2", "0:00.0", "0:00.2", "0.2", "sad", "0%", "100%", "0%"]
    out = io.StringIO()
    write_summary(records, "json", out, LABELS)
    assert json.loads(out.getvalue()) == records[0]
    out = io.StringIO()
    write_summary(records, "csv", out, LABELS)
    assert out.getvalue().splitlines() == ["path,track,first,last,duration,frames,dominant,share_happy,share_sad,"
                                           "share_neutral", "dir/v.mp4,2,0.0,0.2,0.2,3,sad,0.0000,1.0000,0.0000"]
    assert format_track_summary([], LABELS).splitlines()[1] == "(no face was tracked)"


def test_track_table_and_summarize_agree_with_the_summary() -> None:
    results = frames("v.mp4", 6, tracks=(1, 2)) + [Result("v.mp4", None, [], "v.mp4: frame 6 cannot be decoded",
                                                          decoded=False)]
    table = track_table(results, LABELS)
    assert len(table) == 12 and table.attrs["errors"] == ["v.mp4: frame 6 cannot be decoded"]
    assert tuple(table.loc[1, ["x", "y", "w", "h"]]) == (70, 20, 40, 40) and table.smoothed_label.iloc[0] == "happy"
    assert table.smoothed_happy.iloc[0] == pytest.approx(0.8) and table.happy.iloc[0] == 0.5
    # No cell holds a dict, a tuple or a list: the table is flat.
    assert not any(isinstance(v, (dict, tuple, list)) for v in table.to_numpy().ravel())
    summary = summarize(table)
    direct = TrackSummary(LABELS, "v.mp4")
    for r in results:
        for f in r.faces:
            add(direct, f, r.time)
    expect = [{**{k: v for k, v in d.items() if k != "shares"}, **d["shares"]} for d in direct.records()]
    assert summary.to_dict("records") == expect
    assert summarize(track_table([], LABELS)).empty


def test_interrupted_run_keeps_records_and_timeline(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl+C after 5 frames: their records are printed, their timeline rows and picture are
    written, and the exit code says so."""
    from deepfer.inference import Recognizer

    labels = Recognizer(checkpoint).labels

    def interrupted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        pic = Picture(np.full((120, 160), 90, np.uint8), np.full((120, 160, 3), 90, np.uint8))
        for f in range(5):
            scores = {k: 1 / len(labels) for k in labels}
            yield Result("clip.mp4", f, [Face((10, 10, 40, 40), scores, labels[0], track=1, smoothed=scores)], picture=pic,
                         time=f / 25)
        raise KeyboardInterrupt

    monkeypatch.setattr(Recognizer, "iter_results", interrupted)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00")
    code = main(["predict", str(video), "--model", str(checkpoint), "--format", "json", "--no-progress",
                 "--timeline", str(tmp_path / "tl")])
    out, err = capsys.readouterr()
    assert code == 130 and "interrupted" in err
    assert [json.loads(line)["frame"] for line in out.splitlines()] == [0, 1, 2, 3, 4]
    assert len(pd.read_csv(tmp_path / "tl" / "clip.timeline.csv")) == 5
    assert (tmp_path / "tl" / "clip.timeline.png").stat().st_size > 1000

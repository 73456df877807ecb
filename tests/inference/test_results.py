"""The result types and their one row layout: JSON records, CSV / DataFrame rows, dtypes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from deepfer.inference.results import (
    NO_FACE,
    Face,
    Result,
    column_groups,
    columns,
    rows,
    table_columns,
    to_dataframe,
)
from deepfer.vision import Quality

LABELS = ["happy", "sad"]


def face(box: tuple[int, int, int, int], happy: float) -> Face:
    scores = {"happy": happy, "sad": 1.0 - happy}
    return Face(box, scores, max(scores, key=scores.get))


def test_face_score_and_record() -> None:
    f = face((10, 20, 48, 50), 0.1234567891)
    assert f.label == "sad" and f.score == pytest.approx(0.8765432109)
    assert f.to_dict() == {"box": [10, 20, 48, 50], "scores": {"happy": 0.123457, "sad": 0.876543}, "label": "sad",
                           "quality": None, "landmarks": None}
    assert f.to_dict(digits=None)["scores"]["happy"] == 0.1234567891


def test_face_record_with_quality_and_landmarks() -> None:
    q = Quality(score=0.93, width=48, roll=-12.5, yaw=3.25, blur=310.5)
    f = Face((10, 20, 48, 50), {"happy": 0.9, "sad": 0.1}, "happy", q, ((20.04, 30.0), (40.0, 31.26), (30.0, 40.0)))
    assert f.to_dict() == {"box": [10, 20, 48, 50], "scores": {"happy": 0.9, "sad": 0.1}, "label": "happy",
                           "quality": {"score": 0.93, "width": 48, "roll": -12.5, "yaw": 3.25, "blur": 310.5},
                           "landmarks": [[20.0, 30.0], [40.0, 31.3], [30.0, 40.0]]}
    [row] = rows(Result("a.jpg", None, [f]), LABELS)
    assert (row["detector_score"], row["face_width"], row["roll"], row["yaw"], row["blur"]) == (0.93, 48, -12.5, 3.25,
                                                                                                   310.5)
    table = to_dataframe([Result("a.jpg", None, [f])], LABELS)
    assert table.face_width.dtype.name == "Int64" and table.roll.dtype.name == "float64"
    assert table.detector_score.iloc[0] == 0.93


def test_result_record_leaves_the_picture_out() -> None:
    r = Result("a.jpg", 3, [face((1, 2, 3, 4), 0.75)], picture=None)
    assert r.to_dict() == {"path": "a.jpg", "frame": 3, "error": None,
                           "faces": [{"box": [1, 2, 3, 4], "scores": {"happy": 0.75, "sad": 0.25}, "label": "happy",
                                      "quality": None, "landmarks": None}]}
    assert r.decoded and Result("b.jpg", None, [], NO_FACE).to_dict()["error"] == "no face found"


def test_rows_one_per_face_or_one_empty() -> None:
    assert columns(LABELS) == ["path", "frame", "time", "face", "track", "x", "y", "w", "h", "label", "score", "happy",
                               "sad", "detector_score", "face_width", "roll", "yaw", "blur", "error"]
    assert table_columns(LABELS) == [*columns(LABELS)[:13], "smoothed_label", "smoothed_happy", "smoothed_sad",
                                     *columns(LABELS)[13:]]
    assert column_groups(LABELS)["smoothed"] == ["smoothed_label", "smoothed_happy", "smoothed_sad"]
    assert sum(column_groups(LABELS).values(), []) == sorted(table_columns(LABELS), key=sum(
        column_groups(LABELS).values(), []).index)
    two = rows(Result("a.jpg", None, [face((1, 2, 3, 4), 0.75), face((5, 6, 7, 8), 0.5)]), LABELS)
    assert [sorted(r) for r in two] == [sorted(table_columns(LABELS))] * 2
    assert [(r["face"], r["x"], r["h"], r["label"], r["score"], r["sad"]) for r in two] == [
        (0, 1, 4, "happy", 0.75, 0.25), (1, 5, 8, "happy", 0.5, 0.5)]
    [empty] = rows(Result("v.avi", 7, [], "v.avi: cannot decode", decoded=False), LABELS)
    assert empty == {"path": "v.avi", "frame": 7, "time": None, "face": None, "track": None, "x": None, "y": None,
                     "w": None, "h": None, "label": None, "score": None, "happy": None, "sad": None,
                     "smoothed_label": None, "smoothed_happy": None, "smoothed_sad": None,
                     "detector_score": None, "face_width": None, "roll": None, "yaw": None, "blur": None,
                     "error": "v.avi: cannot decode"}


def test_dataframe_dtypes_and_values() -> None:
    table = to_dataframe([Result("a.jpg", None, [face((1, 2, 3, 4), 0.75)]), Result("v.avi", 2, [], NO_FACE)], LABELS)
    assert list(table.columns) == table_columns(LABELS) and len(table) == 2
    assert [table[c].dtype.name for c in ("frame", "face", "x", "y", "w", "h")] == ["Int64"] * 6
    assert [table[c].dtype.name for c in ("score", "happy", "sad")] == ["float64"] * 3
    assert table.x.tolist()[0] == 1 and pd.isna(table.x.iloc[1]) and pd.isna(table.frame.iloc[0])
    assert table.frame.iloc[1] == 2 and pd.isna(table.error.iloc[0]) and table.error.iloc[1] == NO_FACE
    assert table.happy.iloc[0] == 0.75 and math.isnan(table.score.iloc[1])
    assert list(to_dataframe([], LABELS).columns) == table_columns(LABELS)

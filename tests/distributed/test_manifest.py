"""The manifest: one item per image and per video segment, stable ids, global frame ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
from dist_corpus import make_images, make_video

from deepfer.distributed.manifest import build_manifest, item_id, parse_duration, to_table
from deepfer.errors import DeepferError


def test_images_and_segments(tmp_path: Path) -> None:
    make_images(tmp_path / "photos", 3)
    video = make_video(tmp_path / "clip.avi", 2.5)  # 25 frames at 10 frames/s
    items = build_manifest([tmp_path / "photos", video, tmp_path / "missing.jpg"], segment=1.0)
    kinds = [it.kind for it in items]
    assert kinds == ["image"] * 3 + ["video"] * 3 + ["error"]
    segs = [it for it in items if it.kind == "video"]
    assert [(s.start, s.stop, s.frames) for s in segs] == [(0, 10, 10), (10, 20, 10), (20, None, 5)]
    assert [s.id for s in segs] == [f"{video}#0", f"{video}#10", f"{video}#20"]
    assert items[0].id == items[0].path and Path(items[0].where).is_absolute()
    assert "no such file" in items[-1].error
    # The same inputs give the same ids (the resume key), and they survive the Parquet round trip.
    again = build_manifest([tmp_path / "photos", video, tmp_path / "missing.jpg"], segment=1.0)
    assert [it.id for it in again] == [it.id for it in items]
    assert to_table(items).column("id").to_pylist() == [it.id for it in items]


def test_segments_are_whole_detector_periods(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.avi", 3.0)  # 30 frames; 1 s = 10 frames, rounded to 2 x 4 = 8
    items = build_manifest([video], segment=1.0, every=1, detect_every=4)
    assert [(it.start, it.stop) for it in items] == [(0, 8), (8, 16), (16, 24), (24, None)]
    halves = build_manifest([video], segment=1.0, every=2, detect_every=1)  # 10 frames = 5 kept frames
    assert [(it.start, it.frames) for it in halves] == [(0, 5), (10, 5), (20, 5)]


def test_uri_inputs(tmp_path: Path) -> None:
    make_images(tmp_path / "photos", 2)
    items = build_manifest([f"file://{tmp_path / 'photos'}"])
    assert [it.kind for it in items] == ["image", "image"]
    assert all(it.id.startswith("file://") and it.where == it.id for it in items)
    empty = build_manifest([f"file://{tmp_path / 'nothing'}"])
    assert empty[0].kind == "error" and "no images or videos" in empty[0].error


def test_bad_options(tmp_path: Path) -> None:
    make_images(tmp_path / "p", 1)
    with pytest.raises(DeepferError, match="given twice"):
        build_manifest([tmp_path / "p", tmp_path / "p"])
    with pytest.raises(DeepferError, match="--segment"):
        parse_duration("soon")
    with pytest.raises(DeepferError, match="--segment"):
        parse_duration("-3s")
    assert parse_duration("90s") == 90.0 and parse_duration("2m") == 120.0 and parse_duration(" 1h ") == 3600.0
    assert item_id("a.mp4", 60) == "a.mp4#60" and item_id("a.jpg", None) == "a.jpg"

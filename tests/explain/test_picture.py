"""explain_picture: the one photo-explain path of ``deepfer explain`` and the server: faces cropped by
deepfer.vision, maps equal to the methods' own, the server's lock held only around the model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from torch import nn

from deepfer.explain import explain, explain_picture
from deepfer.inference import sample_image
from deepfer.labels import FER7
from deepfer.vision import Detection, HaarDetector, Picture, face_crops, read_image, resize


@pytest.fixture(scope="module")
def net() -> nn.Module:
    from deepfer.models import create_model

    return create_model("deep-emotion").eval()


def test_without_a_detector_the_maps_are_those_of_the_resized_image(net: nn.Module) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (60, 50), dtype=np.uint8)
    (face,) = explain_picture(net, FER7, Picture(gray), None, ["gradcam", "occlusion"], patch=12, stride=12)
    crop = resize(gray, 48)
    np.testing.assert_array_equal(face.crop, crop)
    assert face.detection == Detection((0, 0, 50, 60)) and face.box == (0, 0, 50, 60)
    for method in ("gradcam", "occlusion"):
        options = {"patch": 12, "stride": 12} if method == "occlusion" else {}
        ref = explain(net, crop[None], method, **options)
        np.testing.assert_allclose(face.heatmaps[method], ref.heatmaps[0], atol=1e-6)
        assert face.label == FER7[int(ref.predictions[0])] == face.target
        assert face.score == pytest.approx(float(ref.probs[0].max()), abs=1e-6)
    assert face.flips is not None and face.stn is None


def test_faces_are_the_detectors_crops_and_the_lock_guards_the_model(net: nn.Module) -> None:
    pic = read_image(sample_image())
    det = HaarDetector()
    held: list[bool] = []

    class Lock:
        def __init__(self) -> None:
            self.inner = threading.Lock()

        def __enter__(self) -> None:
            self.inner.acquire()
            held.append(True)

        def __exit__(self, *exc: object) -> None:
            self.inner.release()

    lock = Lock()
    faces = explain_picture(net, FER7, pic, det, ["saliency"], target=3, lock=lock)
    dets, crops = face_crops(pic, det, 48)
    assert held == [True] and len(faces) == len(dets) == 1
    assert faces[0].detection == dets[0] and faces[0].target == "happy"
    np.testing.assert_array_equal(faces[0].crop, crops[0])
    assert not lock.inner.locked()


def test_no_face_gives_no_maps_and_never_runs_the_model(net: nn.Module) -> None:
    class Refuses:
        def __enter__(self) -> None:
            raise AssertionError("the model ran without a face")

        def __exit__(self, *exc: object) -> None: ...

    flat = Picture(np.full((120, 160), 128, np.uint8))
    assert explain_picture(net, FER7, flat, HaarDetector(), ["gradcam"], lock=Refuses()) == []

"""Mirror-image averaging (tta): ``photos`` mirrors photos, video and webcam frames only with
``all``; the scores are the mean of the face's and its mirror image's, classified in one batch; off
by default (benchmarks/TTA.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfer.errors import ParameterError
from deepfer.inference import Recognizer
from deepfer.models.predict import TTA
from deepfer.inference.tracking import TrackedStream
from deepfer.vision import read_image


def _direct(rec: Recognizer, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's probabilities of the photo's face crops and of their mirror images."""
    _, crops = rec._crops(read_image(path))
    return rec.classifier.predict_proba(crops), rec.classifier.predict_proba(np.ascontiguousarray(crops[:, :, ::-1]))


def _scores(faces: list) -> np.ndarray:
    return np.array([list(f.scores.values()) for f in faces])


def test_photos_are_averaged_with_their_mirror_image(checkpoint: Path, astronaut: Path) -> None:
    assert TTA == "none"  # the default: benchmarks/TTA.md
    rec = Recognizer(checkpoint, tta="photos")
    plain, mirror = _direct(rec, astronaut)
    assert not np.allclose(plain, mirror, atol=1e-4), "a random model must score the mirror image differently"
    np.testing.assert_allclose(_scores(rec.predict(astronaut)), (plain + mirror) / 2, atol=1e-5)
    np.testing.assert_allclose(_scores(Recognizer(checkpoint).predict(astronaut)), plain, atol=1e-5)


@pytest.mark.parametrize(("tta", "mirrored"), [("photos", False), (None, False), ("none", False), ("all", True), (True, True)])
def test_frames_are_mirrored_only_with_all(checkpoint: Path, astronaut: Path, tta: object, mirrored: bool) -> None:
    rec = Recognizer(checkpoint, tta=tta)  # type: ignore[arg-type]
    plain, mirror = _direct(rec, astronaut)
    _, faces = rec.predict_frame(read_image(astronaut), TrackedStream(10.0, reid=False), 0)
    np.testing.assert_allclose(_scores(faces), (plain + mirror) / 2 if mirrored else plain, atol=1e-5)


def test_an_unknown_tta_names_the_parameter(checkpoint: Path) -> None:
    with pytest.raises(ParameterError, match="tta must be one of none, photos, all"):
        Recognizer(checkpoint, tta="sometimes")

"""``deepfer explain`` reports the same calibrated score as ``deepfer predict`` for each face
(the shipped default weights carry a temperature, so the plain softmax would differ)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfer.explain import explain_faces
from deepfer.inference import Recognizer, sample_image
from deepfer.models.pretrained import DEFAULT, list_pretrained


@pytest.mark.parametrize("method", ["occlusion", "gradcam"])
def test_explain_scores_are_predicts(method: str, tmp_path: Path) -> None:
    [default] = [w for w in list_pretrained() if w.name == DEFAULT]
    assert abs(default.temperature - 1.0) > 0.01  # else the test would prove nothing
    [face] = Recognizer(backend="torch").predict(sample_image())
    [report] = explain_faces([sample_image()], None, [method], "auto", tmp_path)
    [explained] = report.faces
    assert explained.label == face.label
    assert explained.score == pytest.approx(face.score, abs=1e-4)

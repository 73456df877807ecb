"""Ensembles at inference: ``Recognizer([A, B])`` and ``deepfer predict --model A --model B``
average the members' probabilities, and refuse members that do not fit together."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from infer_helpers import make_checkpoint, noise
from PIL import Image

from deepfer.cli import main
from deepfer.errors import ModelError
from deepfer.inference import EnsembleClassifier, Recognizer, load_classifier
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("members")
    return [make_checkpoint(root / f"m{seed}.pt", seed=seed) for seed in (0, 1, 2)]


def test_ensemble_probabilities_are_the_members_mean(members: list[Path]) -> None:
    faces = noise((6, 48, 48))
    singles = [load_classifier(m).predict_proba(faces) for m in members]
    ensemble = load_classifier([str(m) for m in members])
    assert isinstance(ensemble, EnsembleClassifier) and ensemble.backend == "torch"
    assert ensemble.labels == list(FER7) and ensemble.size == 48
    np.testing.assert_allclose(ensemble.predict_proba(faces), np.mean(singles, axis=0), rtol=0, atol=1e-6)
    assert not np.allclose(singles[0], singles[1])  # a real average, not three copies
    assert not isinstance(load_classifier([members[0]]), EnsembleClassifier)  # one model is itself


def test_members_must_share_labels_and_size(members: list[Path], tmp_path: Path) -> None:
    six = create_model("deep-emotion", num_classes=6).eval()
    other_labels = tmp_path / "six.pt"
    Checkpoint.from_model(six, list(FER7[:6])).save(other_labels)
    with pytest.raises(ModelError, match="cannot ensemble: model 2 predicts"):
        load_classifier([members[0], other_labels])
    reordered = tmp_path / "reordered.pt"
    seven = create_model("deep-emotion", num_classes=7).eval()
    Checkpoint.from_model(seven, list(reversed(FER7))).save(reordered)
    with pytest.raises(ModelError, match="order must match"):
        load_classifier([members[0], reordered])
    bigger = tmp_path / "64.pt"
    Checkpoint.from_model(create_model("deepfer", input_size=64, use_stn=False).eval(), list(FER7)).save(bigger)
    with pytest.raises(ModelError, match="takes 64x64 faces"):
        load_classifier([members[0], bigger])
    with pytest.raises(ModelError, match="at least one"):
        load_classifier([])


def test_recognizer_and_cli_average_the_members(members: list[Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    crop = tmp_path / "crop.png"
    Image.fromarray(noise((48, 48), seed=3)).save(crop)

    def scores(*models: Path) -> np.ndarray:
        args = ["predict", "--no-progress", str(crop), "--no-detect", "--format", "json"]
        for m in models:
            args += ["--model", str(m)]
        assert main(args) == 0
        record = json.loads(capsys.readouterr().out.splitlines()[0])
        return np.array([record["faces"][0]["scores"][name] for name in FER7])

    singles = [scores(m) for m in members]
    np.testing.assert_allclose(scores(*members), np.mean(singles, axis=0), atol=2e-6)

    faces = Recognizer(list(members), detector=None).predict(str(crop))
    np.testing.assert_allclose([faces[0].scores[n] for n in FER7], np.mean(singles, axis=0), atol=2e-6)


def test_repeats_weigh_more_and_run_once(members: list[Path]) -> None:
    faces = noise((5, 48, 48))
    a, b = (load_classifier(m).predict_proba(faces) for m in members[:2])
    ensemble = load_classifier([members[0], members[0], members[1]])
    assert isinstance(ensemble, EnsembleClassifier) and len(ensemble.members) == 2
    np.testing.assert_allclose(ensemble.weights, [2 / 3, 1 / 3])
    np.testing.assert_allclose(ensemble.predict_proba(faces), (2 * a + b) / 3, rtol=0, atol=1e-6)
    with pytest.raises(ModelError, match="non-negative weights"):
        EnsembleClassifier(ensemble.members, [1.0, -1.0])

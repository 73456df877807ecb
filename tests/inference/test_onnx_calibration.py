"""A calibrated checkpoint exported to ONNX gives torch's calibrated probabilities; an export
``calibrated=False`` gives the plain softmax; the backends and the CLI honour ``--uncalibrated``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from infer_helpers import noise

from deepfer.cli import main
from deepfer.errors import ModelError
from deepfer.inference import Recognizer, export_onnx
from deepfer.inference.onnx_backend import OnnxClassifier
from deepfer.models.checkpoint import Calibration, Checkpoint
from deepfer.models.predict import predict_proba

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

T = 1.7


@pytest.fixture(scope="module")
def calibrated(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cal") / "calibrated.pt"
    dataclasses.replace(Checkpoint.load(checkpoint), calibration=Calibration(T, "by hand")).save(path)
    return path


def test_onnx_matches_calibrated_torch(calibrated: Path, tmp_path: Path) -> None:
    import onnx

    model = Checkpoint.load(calibrated).build()
    faces = noise((40, 48, 48), seed=5)
    info = export_onnx(calibrated, tmp_path / "cal.onnx")
    assert info["temperature"] == T and info["max_abs_diff"] < 1e-5
    got = OnnxClassifier(tmp_path / "cal.onnx").predict_proba(faces)
    assert np.abs(got - predict_proba(model, faces)).max() < 1e-5
    plain = predict_proba(model, faces, calibrated=False)
    assert np.abs(got - plain).max() > 1e-3  # the temperature is really in the graph
    tta = OnnxClassifier(tmp_path / "cal.onnx", tta=True).predict_proba(faces)  # averaged, then tempered
    assert np.abs(tta - predict_proba(model, faces, tta=True)).max() < 1e-5
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "cal.onnx")).metadata_props}
    assert json.loads(meta["deepfer.calibration"]) == {"temperature": T, "fitted_on": "by hand"}

    info = export_onnx(calibrated, tmp_path / "plain.onnx", calibrated=False)
    assert info["temperature"] == 1.0 and info["max_abs_diff"] < 1e-5
    assert np.abs(OnnxClassifier(tmp_path / "plain.onnx", calibrated=False).predict_proba(faces) - plain).max() < 1e-5
    with pytest.raises(ModelError, match=r"cal\.onnx: its probabilities are calibrated \(temperature 1\.7"):
        OnnxClassifier(tmp_path / "cal.onnx", calibrated=False)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_recognizer_is_calibrated_by_default(calibrated: Path, backend: str) -> None:
    faces = noise((6, 48, 48), seed=6)
    model = Checkpoint.load(calibrated).build()
    on = Recognizer(calibrated, detector=None, backend=backend).classifier.predict_proba(faces)
    off = Recognizer(calibrated, detector=None, backend=backend, calibrated=False).classifier.predict_proba(faces)
    assert np.abs(on - predict_proba(model, faces)).max() < 1e-5
    assert np.abs(off - predict_proba(model, faces, calibrated=False)).max() < 1e-5
    np.testing.assert_array_equal(on.argmax(1), off.argmax(1))


def test_cli_predict_and_export_uncalibrated(calibrated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    face = noise((48, 48), seed=7)
    Image.fromarray(face).save(tmp_path / "face.png")
    model = Checkpoint.load(calibrated).build()
    for flag, expect in (([], predict_proba(model, face[None])), (["--uncalibrated"], predict_proba(model, face[None], calibrated=False))):
        assert main(["predict", str(tmp_path / "face.png"), "--no-detect", "--model", str(calibrated), "--format", "json",
                     "--no-progress", "--tta", "none", *flag]) == 0
        scores = json.loads(capsys.readouterr().out)["faces"][0]["scores"]
        assert np.abs(np.array(list(scores.values())) - expect[0]).max() < 1e-4
    assert main(["export", "--model", str(calibrated), "--out", str(tmp_path / "p.onnx"), "--uncalibrated"]) == 0
    assert "temperature 1;" in capsys.readouterr().out
    assert OnnxClassifier(tmp_path / "p.onnx", calibrated=False).temperature == 1.0

"""ONNX export and the onnxruntime backend: same probabilities as torch within 1e-5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from infer_helpers import noise

from deepfer.models.predict import predict_proba
from deepfer.cli import main
from deepfer.errors import ModelError
from deepfer.inference import Recognizer, export_onnx
from deepfer.inference.onnx_backend import OnnxClassifier
from deepfer.labels import FER7
from deepfer.models.checkpoint import Checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def onnx_file(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    info = export_onnx(checkpoint, out)
    assert info["max_abs_diff"] < 1e-5
    return out


def test_onnx_matches_torch_on_a_random_batch(checkpoint: Path, onnx_file: Path) -> None:
    model = Checkpoint.load(checkpoint).build()
    faces = noise((300, 48, 48), seed=3)  # not a multiple of the batch size: a ragged last batch
    ref = predict_proba(model, faces)
    clf = OnnxClassifier(onnx_file, batch_size=128)
    got = clf.predict_proba(faces)
    assert got.shape == (300, 7) and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))
    tta = OnnxClassifier(onnx_file, tta=True).predict_proba(faces[:20])
    assert np.abs(tta - predict_proba(model, faces[:20], tta=True)).max() < 1e-5
    assert clf.predict_proba(faces[:0]).shape == (0, 7)


def test_export_carries_labels_and_preprocessing(onnx_file: Path) -> None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert json.loads(meta["deepfer.labels"]) == list(FER7)
    assert json.loads(meta["deepfer.preprocess"])["size"] == 48
    clf = OnnxClassifier(onnx_file)
    assert clf.labels == list(FER7) and clf.size == 48


def test_recognizer_backends_agree(checkpoint: Path, onnx_file: Path, astronaut: Path) -> None:
    ref = Recognizer(checkpoint).predict(astronaut)[0]
    for rec in (Recognizer(checkpoint, backend="onnx"), Recognizer(onnx_file)):
        assert rec.classifier.backend == "onnx"
        face = rec.predict(astronaut)[0]
        assert face.box == ref.box and face.label == ref.label
        assert max(abs(face.scores[k] - ref.scores[k]) for k in FER7) < 1e-5


def test_export_cli(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and "max |torch - onnxruntime|" in capsys.readouterr().out
    assert main(["export", "--model", str(checkpoint), "--out", str(out), "--opset", "17"]) == 2
    assert "opset 17 has no AffineGrid" in capsys.readouterr().err


def test_foreign_or_broken_onnx_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        OnnxClassifier(bad)
    with pytest.raises(ModelError, match="no such ONNX file"):
        OnnxClassifier(tmp_path / "missing.onnx")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(foreign))
    with pytest.raises(ModelError, match="not a deepfer ONNX export"):
        OnnxClassifier(foreign)

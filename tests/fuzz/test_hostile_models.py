"""Hostile model files: ONNX graphs with deepfer's metadata that ask for gigabytes, take the wrong
input or answer something other than probabilities, and checkpoints whose options describe a model
far larger than their weights. Each is refused in one line before it allocates the model
(``deepfer predict`` in a child process, its peak read from the kernel)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fuzz_corpus import cli_peak

onnx = pytest.importorskip("onnx", reason="the ONNX checks need the onnx extra")
pytest.importorskip("onnxruntime", reason="the ONNX checks need the onnx extra")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deepfer.errors import ModelError  # noqa: E402
from deepfer.inference.onnx_backend import OnnxClassifier  # noqa: E402
from deepfer.labels import FER7  # noqa: E402
from deepfer.models import create_model  # noqa: E402
from deepfer.models.checkpoint import Checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def predict(model: Path, image: Path) -> tuple[int, str, float]:
    """``deepfer predict IMAGE --model MODEL``: exit code, stderr, peak resident MiB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return cli_peak(["predict", str(image), "--model", str(model), "--no-progress"], env)


def graph(tmp_path: Path, name: str, nodes: list, inputs: list, outputs: list, inits: list) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {"deepfer.labels": json.dumps(list(FER7)), "deepfer.preprocess": json.dumps({"size": 48})}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


FACES = helper.make_tensor_value_info("faces", TensorProto.UINT8, ["N", 48, 48])
PROBS = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7])


def _scores(scale: float) -> tuple[list, list]:
    """faces -> (N, 7) of sum(pixels) * scale: probabilities only for scale 0 and a blank face."""
    nodes = [helper.make_node("Cast", ["faces"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f", "axes"], ["r"], keepdims=0),
             helper.make_node("Unsqueeze", ["r", "one"], ["r2"]),
             helper.make_node("Mul", ["r2", "scale"], ["m"]),
             helper.make_node("Tile", ["m", "reps"], ["t"]),
             helper.make_node("Add", ["t", "offset"], ["probs"])]
    inits = [numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array(scale, np.float32), "scale"),
             numpy_helper.from_array(np.array([1, 7], np.int64), "reps"),
             numpy_helper.from_array(np.full(7, 1e8, np.float32), "offset")]
    return nodes, inits


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepfer.inference import sample_image

    return sample_image()


def test_a_graph_that_asks_for_gigabytes_is_refused_before_it_runs(tmp_path: Path, image: Path) -> None:
    nodes, inits = _scores(1.0)
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0), *nodes[:-1],
             helper.make_node("Mul", ["t", "s"], ["probs"])]
    inits.append(numpy_helper.from_array(np.array([30000, 30000], np.int64), "shape"))
    path = graph(tmp_path, "big.onnx", nodes, [FACES], [PROBS], inits)
    assert path.stat().st_size < 1000
    with pytest.raises(ModelError, match=r"makes a tensor of 858 MiB for one face .*limit is 100 MiB"):
        OnnxClassifier(path)
    code, err, peak = predict(path, image)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "858 MiB" in err, err
    assert peak < 500, peak  # 3.6 GB per inference when it ran


def test_outputs_that_are_not_probabilities_are_refused(tmp_path: Path) -> None:
    nodes, inits = _scores(1.0)
    path = graph(tmp_path, "scores.onnx", nodes, [FACES], [PROBS], inits)
    with pytest.raises(ModelError, match="outputs are not probabilities"):
        OnnxClassifier(path)


@pytest.mark.parametrize(("kind", "shape", "message"), [
    (TensorProto.FLOAT, ["N", 48, 48], "must be uint8 faces"),
    (TensorProto.UINT8, ["N", 2304], "must be uint8 faces"),
    (TensorProto.UINT8, ["N", 96, 96], "must be uint8 faces"),
])
def test_a_wrong_input_is_refused_in_one_line(tmp_path: Path, kind: int, shape: list, message: str) -> None:
    nodes = [helper.make_node("Cast", ["faces"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f", "axes"], ["r"], keepdims=0),
             helper.make_node("Reshape", ["r", "col"], ["r1"]),
             helper.make_node("Tile", ["r1", "reps"], ["r7"]),
             helper.make_node("Softmax", ["r7"], ["probs"], axis=1)]
    inits = [numpy_helper.from_array(np.array(list(range(1, len(shape))), np.int64), "axes"),
             numpy_helper.from_array(np.array([-1, 1], np.int64), "col"),
             numpy_helper.from_array(np.array([1, 7], np.int64), "reps")]
    path = graph(tmp_path, "wrong.onnx", nodes, [helper.make_tensor_value_info("faces", kind, shape)], [PROBS], inits)
    with pytest.raises(ModelError, match=message) as err:
        OnnxClassifier(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300 + len(str(path))


def test_the_server_refuses_a_hostile_graph_at_start(tmp_path: Path) -> None:
    from deepfer.serve.engine import Engine
    from deepfer.serve.settings import ServeSettings

    nodes, inits = _scores(1.0)
    path = graph(tmp_path, "scores.onnx", nodes, [FACES], [PROBS], inits)
    with pytest.raises(ModelError, match="not probabilities"):
        Engine(ServeSettings(model=str(path), detector="haar"))  # not a 500 on every request


@pytest.fixture(scope="module")
def checkpoint_dict(tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "ok.pt"
    Checkpoint.from_model(create_model("deep-emotion", num_classes=7).eval(), list(FER7)).save(path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize(("change", "message"), [
    ({"input_size": 3000}, "field 'model.input_size' must be in 1..512, got 3000"),
    ({"input_size": 20000}, "field 'model.input_size' must be in 1..512, got 20000"),
    ({"input_size": 500}, "weights do not fit model 'deep-emotion': 2 tensor(s) of another shape"),
    ({"extra": {"batch_norm": True, "use_stn": True, "hidden": 2_000_000}}, "fc1.weight is [50, 810] in the file"),
])
def test_a_checkpoint_describing_a_huge_model_is_refused_before_it_is_built(
        tmp_path: Path, image: Path, checkpoint_dict: dict, change: dict, message: str) -> None:
    raw = {**checkpoint_dict, "model": {**checkpoint_dict["model"], **change}}
    if "input_size" in change:
        raw["preprocess"] = {**raw["preprocess"], "size": change["input_size"]}
    path = tmp_path / "claims.pt"
    torch.save(raw, path)
    code, err, peak = predict(path, image)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert peak < 500, peak  # 2.1 GB for input_size 3000, a 74-line traceback for 20000

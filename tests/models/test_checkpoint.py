"""The typed checkpoint: what it writes, what it reads back, the field-by-field validation of
damaged or foreign files, and the tensor digest that catches altered weights."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from deepfer.errors import ModelError
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.models.checkpoint import DIGEST_KEY, FORMAT, Checkpoint, Preprocess, TrainingState, tensor_digest


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("deep-emotion").eval()


def _raw(model: torch.nn.Module) -> dict:
    return Checkpoint.from_model(model, FER7, dataset="fixture").to_dict()


def test_save_and_load_round_trip(model: torch.nn.Module, tmp_path: Path) -> None:
    ckpt = Checkpoint.from_model(model, FER7, dataset="fixture", epoch=3)
    ckpt.save(tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)  # the file format, as older deepfer reads it
    assert list(raw) == ["format", "format_version", "model", "labels", "preprocess", "state_dict", "info", DIGEST_KEY]
    assert raw["format"] == FORMAT and raw["format_version"] == 1
    assert raw["model"] == dataclasses.asdict(model.config) and raw["labels"] == list(FER7)
    assert raw["preprocess"] == {"size": 48, "mean": 0.5, "std": 0.25, "grayscale": True}
    assert raw["info"] == {"dataset": "fixture", "epoch": 3}
    assert raw[DIGEST_KEY] == tensor_digest(model.state_dict()) and len(raw[DIGEST_KEY]) == 64

    back = Checkpoint.load(tmp_path / "m.pt")
    assert back.config == model.config and back.labels == FER7 and back.training is None
    assert back.preprocess == Preprocess(48, 0.5, 0.25, True) and back.info == {"dataset": "fixture", "epoch": 3}
    assert back.source == str(tmp_path / "m.pt")
    rebuilt = back.build()
    assert not rebuilt.training
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_training_state_round_trip(model: torch.nn.Module, tmp_path: Path) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 48, 48)).sum().backward()
    opt.step()
    state = TrainingState(opt.state_dict(), torch.get_rng_state(), {"epoch": 2, "history": [{"val_acc": 0.5}]})
    Checkpoint.from_model(model, FER7, training=state, epoch=2).save(tmp_path / "last.pt")
    raw = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"optimizer", "rng", "state"} <= set(raw) and raw["state"]["epoch"] == 2
    back = Checkpoint.load(tmp_path / "last.pt")
    assert back.training is not None and back.training.loop == {"epoch": 2, "history": [{"val_acc": 0.5}]}
    assert torch.equal(back.training.rng, state.rng)
    assert back.info == {"epoch": 2}  # training state and info are separate
    fresh = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fresh.load_state_dict(back.training.optimizer)
    assert torch.equal(fresh.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"])
    assert back.for_inference(half=False).training is None


def test_digest_covers_names_dtypes_shapes_and_bytes() -> None:
    base = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor(5)}
    digest = tensor_digest(base)
    assert digest == tensor_digest({"b": torch.tensor(5), "a": base["a"].clone()})  # order and copies do not matter
    changed = {"a": base["a"].clone(), "b": torch.tensor(5)}
    changed["a"][1, 2] = 5.000001
    for other in (changed, {"a": base["a"].double(), "b": base["b"]}, {"a": base["a"].reshape(3, 2), "b": base["b"]},
                  {"c": base["a"], "b": base["b"]}, {"a": base["a"]}):
        assert tensor_digest(other) != digest


def test_altered_weights_are_refused(model: torch.nn.Module, tmp_path: Path) -> None:
    raw = _raw(model)
    raw["state_dict"]["fc2.bias"] = raw["state_dict"]["fc2.bias"] + 1e-3  # digest kept: an altered file
    torch.save(raw, tmp_path / "altered.pt")
    with pytest.raises(ModelError, match=r"altered\.pt: the weights do not match the checkpoint's sha256 digest"):
        Checkpoint.load(tmp_path / "altered.pt")


def test_damaged_bytes_are_refused(model: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    Checkpoint.from_model(model, FER7).save(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"m\.pt: damaged checkpoint: archive/data/\d+ fails its integrity check"):
        Checkpoint.load(path)


def test_a_checkpoint_without_digest_loads_with_one_notice(model: torch.nn.Module, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    raw = _raw(model)
    del raw[DIGEST_KEY]  # as written before deepfer recorded digests
    torch.save(raw, tmp_path / "old.pt")
    with caplog.at_level(logging.WARNING, logger="deepfer.models.checkpoint"):
        first = Checkpoint.load(tmp_path / "old.pt")
        Checkpoint.load(tmp_path / "old.pt")
    notices = [r.getMessage() for r in caplog.records if "digest" in r.getMessage()]
    assert len(notices) == 1 and "old.pt" in notices[0]
    assert torch.equal(first.state_dict["fc2.weight"], model.fc2.weight)
    first.save(tmp_path / "new.pt")  # written again: with a digest
    assert torch.load(tmp_path / "new.pt", weights_only=True)[DIGEST_KEY] == tensor_digest(model.state_dict())


def _breakers() -> dict[str, tuple]:
    """name -> (change to the raw dict, the field the error must name)."""

    def drop(key):  # type: ignore[no-untyped-def]
        return lambda raw: raw.pop(key)

    def put(key, value):  # type: ignore[no-untyped-def]
        return lambda raw: raw.__setitem__(key, value)

    def put_model(key, value):  # type: ignore[no-untyped-def]
        return lambda raw: raw["model"].__setitem__(key, value)

    return {
        "no model": (drop("model"), "field 'model' is missing"),
        "no labels": (drop("labels"), "field 'labels' is missing"),
        "no state_dict": (drop("state_dict"), "field 'state_dict' is missing"),
        "labels not a list": (put("labels", "angry"), "field 'labels' must be a list, got str"),
        "labels of ints": (put("labels", list(range(7))), "field 'labels' must be a list of str, got int"),
        "too few labels": (put("labels", list(FER7[:6])), "field 'labels' has 6 names for the model's 7 outputs"),
        "model not a dict": (put("model", ["deep-emotion"]), "field 'model' must be a dict, got list"),
        "model without name": (lambda raw: raw["model"].pop("name"), "field 'model.name' must be a str"),
        "unknown architecture": (put_model("name", "resnet"), "field 'model.name': unknown model 'resnet'"),
        "num_classes a str": (put_model("num_classes", "7"), "field 'model.num_classes' must be an integer, got str"),
        "std a str": (put_model("std", "0.25"), "field 'model.std' must be a number, got str"),
        "std zero": (put_model("std", 0.0), "field 'model': deep-emotion: std must be > 0"),
        "unknown model key": (put_model("depth", 3), "field 'model' has unknown key"),
        "extra a list": (put_model("extra", []), "field 'model.extra' must be a dict"),
        "state_dict a list": (put("state_dict", [1, 2]), "field 'state_dict' must be a dict, got list"),
        "state_dict of lists": (lambda raw: raw["state_dict"].__setitem__("fc2.bias", [0.0] * 7),
                                "field 'state_dict' must map names to tensors, got str -> list"),
        "format_version a str": (put("format_version", "1"), "field 'format_version' must be an integer, got str"),
        "format_version newer": (put("format_version", 99), "checkpoint format 99 is newer than this deepfer"),
        "preprocess a list": (put("preprocess", [48]), "field 'preprocess' must be a dict, got list"),
        "preprocess size a float": (lambda raw: raw["preprocess"].__setitem__("size", 48.0),
                                    "field 'preprocess.size' must be a int, got float"),
        "preprocess align unknown": (lambda raw: raw["preprocess"].__setitem__("align", "eyes"),
                                     "field 'preprocess.align' must be one of none, landmarks, got 'eyes'"),
        "info a str": (put("info", "fer2013"), "field 'info' must be a dict, got str"),
        "digest an int": (put(DIGEST_KEY, 5), f"field '{DIGEST_KEY}' must be a hex string, got int"),
        "rng a list": (lambda raw: raw.update(optimizer={}, rng=[1, 2], state={}), "field 'rng' must be a Tensor, got list"),
        "no marker": (drop("format"), "not a deepfer checkpoint (no 'deepfer-checkpoint' marker)"),
    }


@pytest.mark.parametrize("case", sorted(_breakers()))
def test_malformed_fields_are_one_line_errors_naming_the_file_and_field(case: str, model: torch.nn.Module,
                                                                      tmp_path: Path) -> None:
    change, message = _breakers()[case]
    raw = _raw(model)
    change(raw)
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    with pytest.raises(ModelError) as err:
        Checkpoint.load(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_model_that_takes_aligned_faces_says_so_in_its_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = create_model("prior-attention")
    Checkpoint.from_model(net, FER7).save(tmp_path / "p.pt")
    raw = torch.load(tmp_path / "p.pt", weights_only=True)
    assert raw["preprocess"]["align"] == "landmarks"  # what deepfer predict and ONNX consumers read
    assert Checkpoint.load(tmp_path / "p.pt").preprocess.align == "landmarks"
    plain = create_model("prior-attention", align="none")
    assert Preprocess.from_config(plain.config).to_dict() == {"size": 48, "mean": 0.5, "std": 0.25, "grayscale": True}


def test_weights_that_do_not_fit_the_architecture(model: torch.nn.Module, tmp_path: Path) -> None:
    raw = _raw(model)
    raw["state_dict"]["fc2.bias"] = torch.zeros(3)
    raw[DIGEST_KEY] = tensor_digest(raw["state_dict"])
    torch.save(raw, tmp_path / "misfit.pt")
    ckpt = Checkpoint.load(tmp_path / "misfit.pt")  # well-formed ...
    with pytest.raises(ModelError, match=r"misfit\.pt: weights do not fit model 'deep-emotion'"):
        ckpt.build()  # ... but not this architecture's weights


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such checkpoint file"):
        Checkpoint.load(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelError, match=r"text\.pt: not a readable deepfer checkpoint"):
        Checkpoint.load(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ModelError, match=r"foreign\.pt: not a deepfer checkpoint"):
        Checkpoint.load(tmp_path / "foreign.pt")


def test_half_copy_records_its_dtype(model: torch.nn.Module) -> None:
    ckpt = Checkpoint.from_model(model, FER7, epoch=1)
    half = ckpt.for_inference()
    assert half.info == {"epoch": 1, "stored_dtype": "float16"} and ckpt.info == {"epoch": 1}
    assert half.state_dict["fc2.weight"].dtype == torch.float16
    assert half.state_dict["block2.3.num_batches_tracked"].dtype == torch.int64  # integers stay
    assert ckpt.for_inference(half=False).state_dict["fc2.weight"].dtype == torch.float32


def test_from_model_needs_a_deepfer_model() -> None:
    with pytest.raises(ModelError, match="not a deepfer model"):
        Checkpoint.from_model(torch.nn.Linear(2, 2), ["a", "b"])

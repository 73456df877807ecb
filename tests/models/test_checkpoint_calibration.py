"""The checkpoint's optional calibration field: written and read back, carried by the built model
and by the half-precision copy, absent from older files (temperature 1), and every malformed value
refused in one line that names the file and the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfer.errors import ModelError
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.models.checkpoint import Calibration, Checkpoint
from deepfer.models.predict import predict_proba, temperature_of


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("deep-emotion").eval()


def test_round_trip_and_the_built_model(model: torch.nn.Module, tmp_path: Path) -> None:
    ckpt = dataclasses.replace(Checkpoint.from_model(model, FER7), calibration=Calibration(0.8, "fixture val, 10 faces"))
    ckpt.save(tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["calibration"] == {"temperature": 0.8, "fitted_on": "fixture val, 10 faces"}
    back = Checkpoint.load(tmp_path / "m.pt")
    assert back.calibration == Calibration(0.8, "fixture val, 10 faces") and back.temperature == 0.8
    built = back.build()
    assert built.calibration == back.calibration and temperature_of(built) == 0.8
    assert "calibration" not in "".join(built.state_dict())  # not a tensor: the weights' keys are unchanged
    # Kept by the half copy that ships and by a checkpoint made from the built model.
    assert back.for_inference().calibration == back.calibration
    assert Checkpoint.from_model(built, FER7).calibration == back.calibration
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    with torch.no_grad():
        logits = built((torch.from_numpy(faces).float()[:, None] / 255 - 0.5) / 0.25)
    np.testing.assert_allclose(predict_proba(built, faces), (logits / 0.8).softmax(1).numpy(), atol=1e-6)


def test_uncalibrated_files_are_as_before(model: torch.nn.Module, tmp_path: Path) -> None:
    Checkpoint.from_model(model, FER7).save(tmp_path / "m.pt")
    assert "calibration" not in torch.load(tmp_path / "m.pt", weights_only=True)
    back = Checkpoint.load(tmp_path / "m.pt")
    assert back.calibration is None and back.temperature == 1.0 and temperature_of(back.build()) == 1.0
    assert temperature_of(model) == 1.0  # a model that never saw a checkpoint


@pytest.mark.parametrize(("value", "message"), [
    (-1.0, r"'calibration\.temperature': temperature must be a finite number > 0, got -1\.0"),
    (0.0, r"'calibration\.temperature': temperature must be a finite number > 0"),
    (float("nan"), r"'calibration\.temperature': temperature must be a finite number > 0, got nan"),
    (float("inf"), r"'calibration\.temperature'"),
    ("0.9", r"'calibration\.temperature': temperature must be a finite number > 0, got '0\.9'"),
    (True, r"'calibration\.temperature'"),
    ({"fitted_on": "x"}, r"field 'calibration\.temperature' is missing"),
    ({"temperature": 1.0, "bias": 0.1}, r"field 'calibration' has unknown key\(s\) bias"),
    ({"temperature": 1.0, "fitted_on": 3}, r"field 'calibration\.fitted_on' must be a str, got int"),
    ([0.9], r"field 'calibration' must be a dict, got list"),
])
def test_malformed_calibration_is_one_line_naming_file_and_field(value: object, message: str,
                                                                 model: torch.nn.Module, tmp_path: Path) -> None:
    raw = Checkpoint.from_model(model, FER7).to_dict()
    raw["calibration"] = value if isinstance(value, (dict, list)) else {"temperature": value, "fitted_on": ""}
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    with pytest.raises(ModelError, match=message) as err:
        Checkpoint.load(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_calibration_validates_itself() -> None:
    assert Calibration(2).temperature == 2.0 and isinstance(Calibration(2).temperature, float)
    with pytest.raises(ModelError, match="finite number > 0"):
        Calibration(-0.5)

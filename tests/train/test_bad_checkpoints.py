"""Malformed, damaged and altered checkpoints through the command line: ``deepfer predict --model
BAD.pt`` and ``deepfer evaluate --weights BAD.pt`` exit 2 with one line naming the file and the
field, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepfer.models import pretrained as weights
from deepfer.cli import main
from deepfer.inference import sample_image
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.models.checkpoint import DIGEST_KEY, Checkpoint


def _raw() -> dict:
    torch.manual_seed(0)
    return Checkpoint.from_model(create_model("deep-emotion").eval(), FER7).to_dict()


def _inverted(tmp_path: Path) -> Path:
    data = bytearray(weights.resolve("deepfer_fer2013-kd").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    (tmp_path / "kd.pt").write_bytes(bytes(data))
    return tmp_path / "kd.pt"


# Malformed checkpoints: the deepfer marker with a missing or ill-typed field, and damaged weights.
CASES = {
    "no model": (lambda raw: raw.pop("model"), "field 'model' is missing"),
    "no labels": (lambda raw: raw.pop("labels"), "field 'labels' is missing"),
    "labels not a list": (lambda raw: raw.__setitem__("labels", "angry"), "field 'labels' must be a list"),
    "model not a dict": (lambda raw: raw.__setitem__("model", "deep-emotion"), "field 'model' must be a dict"),
    "state_dict a list": (lambda raw: raw.__setitem__("state_dict", [0.0]), "field 'state_dict' must be a dict"),
    "format_version a str": (lambda raw: raw.__setitem__("format_version", "1"),
                             "field 'format_version' must be an integer"),
    "altered weights": (lambda raw: raw["state_dict"]["fc2.bias"].add_(1.0), "do not match the checkpoint's sha256"),
}


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    files = {}
    for name, (change, message) in CASES.items():
        raw = _raw()
        change(raw)
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        torch.save(raw, path)
        files[name] = (path, message)
    files["inverted bytes"] = (_inverted(tmp_path), "damaged checkpoint")
    return files


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int, path: Path, message: str) -> None:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"deepfer: error: {path}: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_predict_and_evaluate_refuse_bad_checkpoints(bad_files: dict[str, tuple[Path, str]], pattern_jaffe: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for path, message in bad_files.values():
        code = main(["predict", "--no-progress", str(sample_image()), "--no-detect", "--model", str(path)])
        _one_line_error(capsys, code, path, message)
        code = main(["evaluate", "--weights", str(path), "--dataset", "jaffe", "--data", str(pattern_jaffe),
                     "--protocol", "random"])
        _one_line_error(capsys, code, path, message)


def test_the_command_prints_no_traceback(bad_files: dict[str, tuple[Path, str]]) -> None:
    path, message = bad_files["format_version a str"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "deepfer.cli", "predict", "--no-progress", str(sample_image()),
                           "--no-detect", "--model", str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"deepfer: error: {path}: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_good_checkpoint_without_digest_still_predicts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    raw = _raw()
    del raw[DIGEST_KEY]  # written by an older deepfer
    torch.save(raw, tmp_path / "old.pt")
    assert main(["predict", "--no-progress", str(sample_image()), "--no-detect", "--model", str(tmp_path / "old.pt"),
                 "--format", "json"]) == 0
    assert '"label"' in capsys.readouterr().out
    assert [r.levelname for r in caplog.records if "old.pt: no tensors_sha256 digest" in r.getMessage()] == ["WARNING"]

"""Calibration: the temperature fit, ECE / NLL / reliability bins against hand-computed values,
``calibrate`` (validation split only, weights untouched), evaluation before / after, the CLI, and
distillation's teachers staying on the plain softmax."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfer.cli import main
from deepfer.data import load_dataset, split
from deepfer.errors import DeepferError
from deepfer.models.checkpoint import Checkpoint, tensor_digest
from deepfer.models.predict import predict_logits, predict_proba
from deepfer.train.calibrate import NotIdentifiable, calibrate, fit_temperature, tempered_softmax
from deepfer.train.config import TrainConfig
from deepfer.train.distill import teacher_probs
from deepfer.train.evaluate import evaluate
from deepfer.train.loop import fit
from deepfer.train.metrics import (
    ece_noise_floor,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)


def _sampled(temperature: float, n: int = 20000, classes: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / temperature): that temperature is the true one."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, classes))
    cum = np.cumsum(tempered_softmax(logits, temperature), 1)
    labels = (rng.random(n)[:, None] > cum).sum(1).clip(0, classes - 1)
    return logits, labels


@pytest.mark.parametrize("true", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature_that_made_the_labels(true: float) -> None:
    logits, labels = _sampled(true)
    assert fit_temperature(logits, labels) == pytest.approx(true, rel=0.05)


def test_fit_is_the_nll_minimum() -> None:
    logits, labels = _sampled(1.7, n=3000, seed=1)
    t = fit_temperature(logits, labels)

    def nll(temp: float) -> float:
        return negative_log_likelihood(tempered_softmax(logits, temp), labels)

    assert nll(t) < nll(0.98 * t) and nll(t) < nll(1.02 * t) and nll(t) < nll(1.0)


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(DeepferError, match="expected logits"):
        fit_temperature(np.zeros((0, 7)), np.zeros(0, int))
    with pytest.raises(DeepferError, match="labels must be in"):
        fit_temperature(np.zeros((2, 3)), np.array([0, 3]))


def test_a_perfect_validation_split_fits_nothing(trained: Path, pattern_jaffe: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 0.5]])
    with pytest.raises(NotIdentifiable, match="all 3 validation faces are classified correctly"):
        fit_temperature(logits, np.array([0, 1, 0]))
    # calibrate() keeps T = 1 and says why in the checkpoint.
    import deepfer.train.calibrate as module

    def perfect(logits: np.ndarray, y: np.ndarray) -> float:
        raise NotIdentifiable("every face right")

    monkeypatch.setattr(module, "fit_temperature", perfect)
    report = calibrate(trained, "jaffe", str(pattern_jaffe), "random", tmp_path / "kept.pt")
    back = Checkpoint.load(tmp_path / "kept.pt")
    assert report["temperature"] == 1.0 and back.temperature == 1.0
    assert back.calibration.fitted_on.endswith("(all classified correctly: no temperature can be fitted, kept 1)")


def test_ece_and_bins_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    y = np.array([0, 1, 0, 1, 1])
    bins = reliability_bins(probs, y, bins=10)
    # top scores 0.9, 0.95, 0.6, 0.7, 0.55 -> bins (0.8, 0.9], (0.9, 1], (0.5, 0.6], (0.6, 0.7], (0.5, 0.6]
    assert bins["count"] == [0, 0, 0, 0, 0, 2, 1, 0, 1, 1]
    assert bins["confidence"][5] == pytest.approx(0.575) and bins["accuracy"][5] == pytest.approx(0.5)
    assert bins["accuracy"][9] == 0.0 and bins["accuracy"][8] == 1.0
    expected = (2 * abs(0.5 - 0.575) + abs(1 - 0.7) + abs(1 - 0.9) + abs(0 - 0.95)) / 5
    assert expected_calibration_error(probs, y, bins=10) == pytest.approx(expected)
    assert negative_log_likelihood(probs, y) == pytest.approx(-np.mean(np.log([0.9, 0.05, 0.6, 0.7, 0.45])))
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, int)) == 0.0


def test_a_bin_holds_scores_up_to_its_upper_edge() -> None:
    probs = np.array([[1 / 3, 2 / 3], [0.5, 0.5], [1.0, 0.0]])
    assert reliability_bins(probs, np.zeros(3, int), bins=3)["count"] == [0, 2, 1]  # 2/3 and 0.5 share (1/3, 2/3]


def test_ece_of_calibrated_scores_is_the_noise_floor() -> None:
    logits, labels = _sampled(1.0, n=4000, seed=2)
    probs = tempered_softmax(logits, 1.0)
    floor = ece_noise_floor(probs, draws=50)
    assert 0 < floor["p5"] < floor["mean"] < floor["p95"] < 0.05
    assert expected_calibration_error(probs, labels) < floor["p95"] + 0.01
    # Over-confident scores are far outside it.
    assert expected_calibration_error(tempered_softmax(logits, 0.5), labels) > 3 * floor["p95"]


@pytest.fixture
def trained(pattern_jaffe: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    fit(TrainConfig(model="deep-emotion", dataset="jaffe", data=str(pattern_jaffe), protocol="random",
                    epochs=4, batch_size=16, lr=3e-3, augment="none", out=str(out), seed=1,
                    model_options={"dropout": 0.0}))
    return out / "best.pt"


def test_calibrate_fits_on_the_validation_split_only(trained: Path, pattern_jaffe: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import deepfer.train.calibrate as module

    seen: list[np.ndarray] = []

    def spy(model: torch.nn.Module, images: np.ndarray, *args: object) -> np.ndarray:
        seen.append(np.asarray(images).copy())
        return predict_logits(model, images, *args)

    monkeypatch.setattr(module, "predict_logits", spy)
    out = tmp_path / "calibrated.pt"
    report = calibrate(trained, "jaffe", str(pattern_jaffe), "random", out)
    data = load_dataset("jaffe", str(pattern_jaffe))
    fold = split(data, "random").folds[0]
    ckpt = Checkpoint.load(trained)
    # The fit, redone by hand on the validation faces.
    expect = fit_temperature(predict_logits(ckpt.build(), data.images[fold.val]), data.labels[fold.val])
    assert report["temperature"] == pytest.approx(expect) and report["n"] == len(fold.val)
    assert report["fitted_on"] == f"jaffe/random val, {len(fold.val)} faces"
    assert report["after"]["nll"] <= report["before"]["nll"] + 1e-9
    assert report["after"]["accuracy"] == report["before"]["accuracy"]
    back = Checkpoint.load(out)
    assert back.temperature == pytest.approx(expect) and back.calibration.fitted_on == report["fitted_on"]
    assert tensor_digest(back.state_dict) == tensor_digest(ckpt.state_dict) and back.info == ckpt.info
    # The model saw the validation faces and nothing else.
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], data.images[fold.val])


def test_evaluate_reports_ece_before_and_after(trained: Path, pattern_jaffe: Path, tmp_path: Path) -> None:
    out = tmp_path / "calibrated.pt"
    calibrate(trained, "jaffe", str(pattern_jaffe), "random", out)
    t = Checkpoint.load(out).temperature
    plain = evaluate([str(trained)], "jaffe", str(pattern_jaffe), "random")
    cal = evaluate([str(out)], "jaffe", str(pattern_jaffe), "random", out=str(tmp_path / "ev"))
    assert cal["accuracy"] == plain["accuracy"] and cal["confusion_matrix"] == plain["confusion_matrix"]
    assert plain["temperature"] == [1.0] and plain["ece"] == plain["ece_uncalibrated"]
    assert cal["temperature"] == [pytest.approx(t)]
    assert cal["ece_uncalibrated"] == pytest.approx(plain["ece"]) and cal["nll_uncalibrated"] == pytest.approx(plain["nll"])
    # The calibrated numbers, recomputed from the model's logits on the test faces.
    data = load_dataset("jaffe", str(pattern_jaffe))
    test = split(data, "random").folds[0].test
    probs = tempered_softmax(predict_logits(Checkpoint.load(trained).build(), data.images[test]), t)
    assert cal["ece"] == pytest.approx(expected_calibration_error(probs, data.labels[test]), abs=1e-6)
    assert cal["nll"] == pytest.approx(negative_log_likelihood(probs, data.labels[test]), abs=1e-5)
    assert (tmp_path / "ev" / "reliability.png").stat().st_size > 1000
    assert sum(cal["reliability"]["calibrated"]["count"]) == cal["n"]


def test_predict_proba_applies_the_temperature_unless_told_not_to(trained: Path, tmp_path: Path) -> None:
    ckpt = Checkpoint.load(trained)
    calibrated = tmp_path / "t.pt"
    from deepfer.train.calibrate import calibrated as with_temperature

    with_temperature(ckpt, 0.5, "by hand").save(calibrated)
    model = Checkpoint.load(calibrated).build()
    faces = np.random.default_rng(0).integers(0, 256, (9, 48, 48), dtype=np.uint8)
    logits = predict_logits(model, faces)
    np.testing.assert_allclose(predict_proba(model, faces), tempered_softmax(logits, 0.5), atol=1e-6)
    np.testing.assert_allclose(predict_proba(model, faces, calibrated=False), tempered_softmax(logits, 1.0), atol=1e-6)
    np.testing.assert_array_equal(predict_proba(model, faces).argmax(1), logits.argmax(1))
    # Flip TTA: the views' plain probabilities averaged, then tempered (p ∝ mean^(1/T)): same top class.
    mean = 0.5 * (tempered_softmax(logits, 1.0)
                  + tempered_softmax(predict_logits(model, faces[:, :, ::-1].copy()), 1.0))
    expect = mean**2 / (mean**2).sum(1, keepdims=True)  # 1 / T = 2
    tta = predict_proba(model, faces, tta=True)
    np.testing.assert_allclose(tta, expect, atol=1e-6)
    np.testing.assert_array_equal(tta.argmax(1), predict_proba(model, faces, tta=True, calibrated=False).argmax(1))
    # Distillation's teachers keep the plain softmax the distilled recipes were trained on.
    from deepfer.labels import FER7

    plain = 0.5 * (predict_proba(model, faces, calibrated=False) + predict_proba(model, faces[:, :, ::-1].copy(),
                                                                                 calibrated=False))
    np.testing.assert_allclose(teacher_probs([str(calibrated)], faces, list(FER7)), plain, atol=1e-6)


def test_cli_calibrate_and_evaluate(trained: Path, pattern_jaffe: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.pt"
    args = ["--dataset", "jaffe", "--data", str(pattern_jaffe), "--protocol", "random"]
    assert main(["calibrate", "--weights", str(trained), *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    t = Checkpoint.load(out).temperature
    assert f"temperature {t:.4f}, fitted on jaffe/random val" in printed and f"wrote {out}" in printed
    assert main(["evaluate", "--weights", str(out), *args]) == 0
    printed = capsys.readouterr().out
    assert f"with temperature {t:.3g}" in printed and "expected calibration error (15 bins, top score)" in printed
    assert main(["calibrate", "--weights", str(trained), *args, "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["temperature"] == pytest.approx(t)
    # A k-fold protocol has one checkpoint per fold: refused in one line.
    assert main(["calibrate", "--weights", str(trained), "--dataset", "jaffe", "--data", str(pattern_jaffe),
                 "--protocol", "loso", "--out", str(tmp_path / "x.pt")]) == 2
    assert "folds, each with its own checkpoint" in capsys.readouterr().err


def test_old_checkpoints_have_temperature_one(trained: Path) -> None:
    raw = torch.load(trained, weights_only=True)
    assert "calibration" not in raw
    ckpt = Checkpoint.load(trained)
    assert ckpt.calibration is None and ckpt.temperature == 1.0 and ckpt.build().calibration is None

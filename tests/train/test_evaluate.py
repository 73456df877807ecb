"""Evaluation: metrics against hand-computed values, k-fold mean/std, ensembles, CLI report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepfer.cli import main
from deepfer.errors import ModelError
from deepfer.train.config import TrainConfig
from deepfer.train.evaluate import evaluate
from deepfer.train.loop import fit
from deepfer.train.metrics import classification_report


def test_classification_report_values() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["c"]["recall"] == 0.0
    assert r["unweighted_recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert r["weighted_recall"] == pytest.approx(r["accuracy"])
    assert r["weighted_precision"] == pytest.approx((3 * 2 / 3 + 2 * 2 / 3 + 0) / 6)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]


@pytest.fixture
def trained(pattern_jaffe: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    fit(TrainConfig(model="deep-emotion", dataset="jaffe", data=str(pattern_jaffe), protocol="random",
                    epochs=8, batch_size=16, lr=3e-3, augment="none", out=str(out), seed=1,
                    model_options={"dropout": 0.0}))
    return out


def test_evaluate_matches_training_summary(trained: Path, pattern_jaffe: Path, tmp_path: Path) -> None:
    summary = json.loads((trained / "summary.json").read_text())
    report = evaluate([str(trained / "best.pt")], "jaffe", str(pattern_jaffe), "random", out=str(tmp_path / "ev"))
    assert report["accuracy"] == pytest.approx(summary["test_acc"])
    assert report["subject_independent"] is False and report["warnings"]
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert 0.0 <= saved["accuracy"] <= 1.0 and saved["n"] == sum(saved["per_class"][c]["support"] for c in saved["classes"])
    # an ensemble of a model with itself is the model
    twice = evaluate([str(trained / "best.pt")] * 2, "jaffe", str(pattern_jaffe), "random")
    assert twice["accuracy"] == pytest.approx(report["accuracy"])


def test_kfold_report_has_mean_and_std(pattern_jaffe: Path, tmp_path: Path) -> None:
    out = tmp_path / "loso"
    fit(TrainConfig(model="deep-emotion", dataset="jaffe", data=str(pattern_jaffe), protocol="loso",
                    epochs=2, batch_size=16, augment="none", out=str(out)))
    report = evaluate([str(out)], "jaffe", str(pattern_jaffe), "loso")
    accs = [f["accuracy"] for f in report["folds"]]
    assert report["n_folds"] == 4
    assert report["accuracy"] == pytest.approx(np.mean(accs))
    assert report["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert report["subject_independent"] is True
    with pytest.raises(ModelError, match="fold"):
        evaluate([str(out / "fold0" / "best.pt")], "jaffe", str(pattern_jaffe), "loso")


def test_cli_evaluate_json(trained: Path, pattern_jaffe: Path, capsys) -> None:
    rc = main(["evaluate", "--weights", str(trained), "--dataset", "jaffe", "--data", str(pattern_jaffe),
               "--protocol", "random", "--json", "--tta"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tta"] == "hflip" and 0.0 <= report["accuracy"] <= 1.0
    rc = main(["evaluate", "--weights", str(trained / "nope.pt"), "--dataset", "jaffe", "--data",
               str(pattern_jaffe), "--protocol", "random"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("deepfer: error:") and err.count("\n") == 1


def test_evaluate_takes_shipped_names(pattern_jaffe: Path) -> None:
    from deepfer.models.pretrained import resolve

    by_name = evaluate(["deep-emotion_jaffe-random"], "jaffe", str(pattern_jaffe), "random")
    by_path = evaluate([str(resolve("deep-emotion_jaffe-random"))], "jaffe", str(pattern_jaffe), "random")
    assert by_name["accuracy"] == by_path["accuracy"]
    assert by_name["folds"][0]["weights"] == by_path["folds"][0]["weights"]
    with pytest.raises(ModelError, match=r"no shipped weights named 'deepfer_nosuch'; available: .*deepfer_ferplus"):
        evaluate(["deepfer_nosuch"], "jaffe", str(pattern_jaffe), "random")

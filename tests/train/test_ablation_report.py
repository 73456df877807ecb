"""benchmarks/ablation.py's bookkeeping: the best-variant verdict (chosen on validation, with the
seeds' spread) and the reuse of earlier evaluations while a checkpoint is unchanged."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ablation():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("ablation_report", ROOT / "benchmarks" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _row(name: str, test: float, val: float, std: float | None = None) -> dict:
    row = {"variant": name, "base": "base", "accuracy": test, "val_accuracy": val}
    if std is not None:
        row["accuracy_std"] = std
    return row


def test_verdict_picks_on_validation_and_flags_gaps_within_the_spread(ablation) -> None:
    rows = [_row("base", 0.650, 0.638, 0.0065), _row("grid", 0.653, 0.643, 0.0136), _row("region", 0.660, 0.641, 0.0033)]
    v = ablation.verdict(rows)
    assert v["variant"] == "grid"  # best on validation, although region is higher on test
    assert v["beats"] and v["within_noise"]
    assert "within noise" in ablation.verdict_line(v)
    v = ablation.verdict([_row("base", 0.60, 0.60, 0.001), _row("big", 0.65, 0.64, 0.002)])
    assert v["beats"] and not v["within_noise"]
    assert "noise" not in ablation.verdict_line(v)
    v = ablation.verdict([_row("base", 0.60, 0.60), _row("one", 0.61, 0.61)])
    assert v["within_noise"] is None and "One seed" in ablation.verdict_line(v)
    assert ablation.verdict([_row("base", 0.6, 0.6)]) is None  # no variant trained yet


def test_unchanged_checkpoints_are_not_evaluated_again(ablation, tmp_path: Path, monkeypatch) -> None:
    cfg = ablation.load_config(ROOT / "configs" / "ablation" / "fer2013_base.yaml")
    variant = ablation.Variant("fer2013_base", cfg, "fer2013_base")
    run = tmp_path / "fer2013_base" / "seed0"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"not read while the cache holds it")
    (run / "log.csv").write_text("epoch,images_per_s\n1,100\n2,120\n")
    cached = {"seed": 0, "run": str(run), "fingerprint": ablation.fingerprint(run / "best.pt"), "params": 1,
              "device": "cpu", "val_accuracy": 0.6, **{k: 0.5 for k in ablation.METRICS}}

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated a checkpoint the cache holds")

    monkeypatch.setattr(ablation, "evaluate", no_evaluation)
    monkeypatch.setattr(ablation, "load_checkpoint", no_evaluation)
    row = ablation.assess(variant, tmp_path, ablation._cached({"rows": [{"seeds": [cached]}]}))
    assert row["accuracy"] == 0.5 and row["seeds"][0]["epochs_run"] == 2
    assert row["train_images_per_s"] == pytest.approx(110)
    os.utime(run / "best.pt", ns=(1, 1))  # a rewritten checkpoint: evaluated again
    with pytest.raises(AssertionError, match="evaluated a checkpoint"):
        ablation.assess(variant, tmp_path, ablation._cached({"rows": [{"seeds": [cached]}]}))

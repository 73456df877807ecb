"""Training loop: learning, model selection on validation, checkpoints, exact resume, torchrun."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepfer.errors import DeepferError
from deepfer.models.checkpoint import Checkpoint
from deepfer.train import loop
from deepfer.train.config import TrainConfig, load_config
from deepfer.train.loop import fit
from deepfer.train.step import loss_fn


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(model="deep-emotion", dataset="jaffe", data=str(data), protocol="random", epochs=6,
                batch_size=16, lr=3e-3, augment="none", out=str(out), seed=1,
                model_options={"dropout": 0.0})
    base.update(kw)
    return TrainConfig(**base)


def test_selection_prefers_accuracy_then_lower_loss() -> None:
    state = {"best_val": 0.9, "best_loss": 0.30}
    assert loop.improves(0.95, 0.50, state)  # more accurate wins, whatever its loss
    assert not loop.improves(0.85, 0.10, state)
    assert loop.improves(0.9, 0.25, state) and not loop.improves(0.9, 0.30, state)
    assert loop.improves(0.9, 9.0, {"best_val": 0.8})  # states saved before best_loss existed
    assert loop.improves(0.5, 1.0, {"best_val": -1.0, "best_epoch": -1})


def test_learns_the_fixture_and_selects_on_validation(pattern_jaffe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    (summary,) = fit(_cfg(pattern_jaffe, out, epochs=12))
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 12
    val = [(float(r["val_acc"]), -float(r["val_loss"])) for r in rows]
    assert summary["best_epoch"] == 1 + val.index(max(val))  # best val acc, ties to the lower val loss
    val = [acc for acc, _ in val]
    assert max(val) >= 0.8 and summary["test_acc"] >= 0.7
    ckpt = Checkpoint.load(out / "best.pt")
    assert list(ckpt.labels) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert ckpt.info["epoch"] == summary["best_epoch"]
    assert ckpt.info["train_config"]["protocol"] == "random"
    assert ckpt.info["device"] == (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    assert ckpt.training is None  # best.pt is the model alone
    model = ckpt.build()
    assert not model.training
    final = Checkpoint.load(out / "final.pt")  # the weights at the end of the schedule, beside the best
    assert final.info["epoch"] == 12 and final.info["val_accuracy"] == pytest.approx(val[-1])
    assert final.training is None


def test_resume_after_a_kill_continues_exactly(pattern_jaffe: Path, tmp_path: Path, monkeypatch) -> None:
    straight = tmp_path / "straight"
    fit(_cfg(pattern_jaffe, straight, epochs=3, augment="basic"))

    killed = tmp_path / "killed"
    real_write = loop._write_log
    calls = {"n": 0}

    def dies_after_epoch_two(path, history):
        real_write(path, history)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process is killed right after epoch 2's checkpoint

    monkeypatch.setattr(loop, "_write_log", dies_after_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(pattern_jaffe, killed, epochs=3, augment="basic"))
    monkeypatch.setattr(loop, "_write_log", real_write)
    assert Checkpoint.load(killed / "last.pt").training.loop["epoch"] == 2
    fit(_cfg(pattern_jaffe, killed, epochs=3, augment="basic"), resume=True)

    a = Checkpoint.load(straight / "last.pt")
    b = Checkpoint.load(killed / "last.pt")
    for key, value in a.state_dict.items():
        torch.testing.assert_close(b.state_dict[key], value, rtol=0, atol=1e-6)
    assert [r["val_acc"] for r in a.training.loop["history"]] == [r["val_acc"] for r in b.training.loop["history"]]


def test_kfold_protocol_trains_one_folder_per_fold(pattern_jaffe: Path, tmp_path: Path) -> None:
    out = tmp_path / "loso"
    summaries = fit(_cfg(pattern_jaffe, out, protocol="loso", epochs=1))
    assert len(summaries) == 4
    assert sorted(p.parent.name for p in out.glob("fold*/best.pt")) == ["fold0", "fold1", "fold2", "fold3"]


def test_config_file_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("model: deepfer\nepochs: 3\nlr: 0.01\n")
    cfg = load_config(f, epochs=5, lr=None)
    assert (cfg.model, cfg.epochs, cfg.lr) == ("deepfer", 5, 0.01)
    f.write_text("epochz: 3\n")
    with pytest.raises(DeepferError, match="epochz"):
        load_config(f)
    with pytest.raises(DeepferError, match="augment"):
        TrainConfig(augment="heavy")


def test_fc_l2_penalty_is_added(pattern_jaffe: Path) -> None:
    from deepfer.models import create_model

    model = create_model("deep-emotion")
    logits = torch.zeros(2, 7)
    target = torch.tensor([0, 1])
    plain = loss_fn(logits, target, TrainConfig(), model)
    penalised = loss_fn(logits, target, TrainConfig(fc_l2=0.5), model)
    expected = 0.5 * sum(float((w.detach() ** 2).sum()) for w in model.fc_weights())
    assert float((penalised - plain).detach()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(pattern_jaffe: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEEPFER_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "deepfer.cli", "train", "--model", "deep-emotion", "--dataset", "jaffe",
           "--data", str(pattern_jaffe), "--protocol", "random", "--epochs", "4", "--batch-size", "16",
           "--lr", "0.003", "--augment", "none", "--out", str(out), "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 4
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert summary["best_epoch"] >= 1
    Checkpoint.load(out / "best.pt").build()


def test_init_maps_classifier_rows_by_label_name(pattern_jaffe: Path, tmp_path: Path) -> None:
    from deepfer.models import create_model
    src = create_model("deep-emotion", num_classes=3)
    Checkpoint.from_model(src, ["happy", "contempt", "angry"]).save(tmp_path / "src.pt")
    model = loop._build(TrainConfig(init=str(tmp_path / "src.pt")), 7,
                        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
    torch.testing.assert_close(model.fc2.weight[0], src.fc2.weight[2])  # angry
    torch.testing.assert_close(model.fc2.weight[3], src.fc2.weight[0])  # happy
    torch.testing.assert_close(model.fc1.weight, src.fc1.weight)  # the body is copied whole

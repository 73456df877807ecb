"""The loop's public pieces on the CPU: the step (bf16 autocast path included), one epoch's sums,
the validation pass, saving and loading training state, and the time-budget schedule."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfer.errors import DeepferError
from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint
from deepfer.train import schedule as schedule_module
from deepfer.train.config import TrainConfig, load_config
from deepfer.train.loop import fit, load_training_state, save_training_state, train_epoch, validate
from deepfer.train.schedule import BudgetSchedule, EpochSchedule, cosine_factor, lr_factor
from deepfer.train.step import TrainStep, autocast_dtype

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _faces(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 48, 48), dtype=torch.uint8, generator=g), torch.randint(0, 7, (n,), generator=g)


def _step(**kw) -> TrainStep:
    torch.manual_seed(0)
    cfg = TrainConfig(model="deep-emotion", augment="none", lr=1e-3, **kw)
    return TrainStep.build(cfg, create_model("deep-emotion"), num_classes=7)


def test_precision_auto_is_float32_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("float32", cpu) is None
    assert autocast_dtype("bfloat16", cpu) is torch.bfloat16
    with pytest.raises(DeepferError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(DeepferError, match="minutes"):
        TrainConfig(minutes=-1.0)


def test_bf16_autocast_step_runs_in_bf16_and_stays_close_to_float32() -> None:
    faces, labels = _faces(16)
    plain, bf16 = _step(), _step(precision="bfloat16")
    assert bf16.precision is torch.bfloat16 and plain.precision is None
    seen: list[torch.dtype] = []
    hook = bf16.model.fc2.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    torch.manual_seed(1)
    a = plain(faces, labels)
    torch.manual_seed(1)  # the same dropout masks
    b = bf16(faces, labels)
    hook.remove()
    assert seen == [torch.bfloat16]  # the forward really ran under autocast
    assert b.loss.dtype == torch.float32 and math.isfinite(float(b.loss))
    assert abs(float(a.loss) - float(b.loss)) < 0.02  # same weights, batch and masks: bf16 rounding only
    w_plain, w_bf16 = plain.model.fc2.weight, bf16.model.fc2.weight
    assert w_bf16.dtype == torch.float32 and not torch.equal(w_plain, w_bf16)  # master weights stay float32


def test_train_epoch_sums_are_the_steps_and_a_budget_can_end_it() -> None:
    faces, labels = _faces(40)
    step = _step()
    losses: list[tuple[float, int, int]] = []
    update = step.update

    def recording(x, y):
        out = update(x, y)
        losses.append((float(out.loss), int(out.correct), out.size))
        return out

    step.update = recording  # type: ignore[method-assign]
    sched = EpochSchedule(step.cfg, per_epoch=4)
    stats = train_epoch(step, faces, labels, torch.arange(40), 10, sched, first_step=0, steps=4, show=False)
    assert stats["seen"] == 40 and len(losses) == 4
    assert stats["train_loss"] == pytest.approx(sum(l * n for l, _, n in losses) / 40, rel=1e-12)
    assert stats["train_acc"] == sum(c for _, c, _ in losses) / 40
    assert stats["lr"] == pytest.approx(1e-3 * lr_factor(step.cfg, 3, 4 * step.cfg.epochs, 4))  # the last step's

    class TwoSteps:  # a budget that runs out after two steps
        def factor(self, s: int) -> float:
            return 1.0

        def finished(self, s: int) -> bool:
            return s >= 2

    stats = train_epoch(step, faces, labels, torch.arange(40), 10, TwoSteps(), first_step=0, steps=4, show=False)
    assert stats["seen"] == 20


def test_validate_is_accuracy_and_mean_negative_log_likelihood() -> None:
    torch.manual_seed(0)
    model = create_model("deep-emotion")
    faces = torch.randint(0, 256, (30, 48, 48), dtype=torch.uint8)
    labels = np.arange(30) % 7
    out = validate(model, faces, labels, batch_size=8)
    from deepfer.models.predict import predict_proba

    p = predict_proba(model, faces)
    assert out["val_loss"] == pytest.approx(float(-np.log(p[np.arange(30), labels]).mean()), rel=1e-6)
    assert out["val_acc"] == pytest.approx(float((p.argmax(1) == labels).mean()))


def test_training_state_round_trip_restores_weights_optimizer_and_random_stream(tmp_path: Path) -> None:
    faces, labels = _faces(16)
    step = _step(optimizer="adamw")
    step(faces, labels)
    state = {"epoch": 3, "best_val": 0.5, "best_epoch": 2, "history": [{"epoch": 3}], "bad_epochs": 1}
    save_training_state(tmp_path / "last.pt", step.model, LABELS, step.optimizer, state, {"epoch": 3})
    expected = torch.rand(5)
    after = step(faces, labels)

    other = _step(optimizer="adamw")
    loaded = load_training_state(tmp_path / "last.pt", other.model, other.optimizer)
    assert loaded == state
    torch.testing.assert_close(torch.rand(5), expected)  # the random stream continues where it was saved
    again = other(faces, labels)  # same weights, optimizer moments, batch: the same update
    assert float(again.loss) == float(after.loss)
    for a, b in zip(step.model.parameters(), other.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    Checkpoint.from_model(other.model, LABELS).save(tmp_path / "best.pt")
    with pytest.raises(DeepferError, match="no training state"):
        load_training_state(tmp_path / "best.pt", other.model, other.optimizer)


def test_budget_schedule_follows_the_epoch_curve_over_time(monkeypatch: pytest.MonkeyPatch) -> None:
    now = {"t": 100.0}
    monkeypatch.setattr(schedule_module.time, "perf_counter", lambda: now["t"])
    cfg = TrainConfig(scheduler="onecycle", epochs=10)
    budget = BudgetSchedule(cfg, seconds=60.0)
    assert budget.warm == pytest.approx(0.1)
    expected = {0.0: 0.0, 3.0: 0.5, 6.0: 1.0, 33.0: 0.5, 60.0: 0.0}
    for t, factor in expected.items():
        now["t"] = 100.0 + t
        assert budget.factor(0) == pytest.approx(factor, abs=1e-9)
        assert budget.finished(0) == (t >= 60.0)
    # At the same share of the run, the time curve is the epoch curve (to within one step).
    steps = EpochSchedule(cfg, per_epoch=50)
    for step in (0, 49, 50, 200, 499):
        now["t"] = 100.0 + 60.0 * step / 500
        assert budget.factor(0) == pytest.approx(steps.factor(step), abs=1.01 / 50)
    assert steps.finished(499) is False and steps.finished(500) is True
    resumed = BudgetSchedule(cfg, seconds=60.0, spent=33.0)  # 33 s used before a kill
    assert resumed.factor(0) == pytest.approx(0.5) and not resumed.finished(0)
    assert cosine_factor(0.5, 0.0, "none") == 1.0
    warm = TrainConfig(warmup_epochs=2, epochs=10)
    assert BudgetSchedule(warm, 60.0).warm == pytest.approx(0.2)


def test_minutes_trains_for_the_budget_then_resume_adds_nothing(pattern_jaffe: Path, tmp_path: Path) -> None:
    out = tmp_path / "budget"
    budget_s = 4.0
    cfg = TrainConfig(model="deep-emotion", dataset="jaffe", data=str(pattern_jaffe), protocol="random", epochs=1,
                      minutes=budget_s / 60, batch_size=16, lr=3e-3, augment="basic", scheduler="onecycle",
                      out=str(out), seed=1)
    (summary,) = fit(cfg)
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert summary["epochs_run"] == len(rows) > 1  # `epochs: 1` does not apply under a budget
    spent = Checkpoint.load(out / "last.pt").training.loop["budget_spent"]
    assert spent >= budget_s
    epoch_s = [float(r["seconds"]) for r in rows]
    assert sum(epoch_s) <= budget_s + max(epoch_s) + 1.0  # stops within an epoch of the budget
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[-1] < 0.2 * cfg.lr and max(lrs) > 0.5 * cfg.lr  # up, then down to about zero at the end
    assert "gpu_memory_gb" not in rows[0]  # CPU logs keep their columns
    (again,) = fit(cfg, resume=True)
    assert again["epochs_run"] == summary["epochs_run"]
    assert len(list(csv.DictReader((out / "log.csv").open()))) == len(rows)


def test_bf16_and_eac_train_end_to_end_on_the_cpu(pattern_jaffe: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model="deep-emotion", dataset="jaffe", data=str(pattern_jaffe), protocol="random", epochs=2,
                      batch_size=16, lr=3e-3, augment="basic", eac=0.5, mixup=0.2, precision="bfloat16",
                      out=str(tmp_path / "bf16"), seed=1)
    (summary,) = fit(cfg)
    assert summary["epochs_run"] == 2 and np.isfinite(summary["best_val"])
    assert Checkpoint.load(tmp_path / "bf16" / "best.pt").info["train_config"]["precision"] == "bfloat16"


def test_minutes_and_precision_are_recipe_options(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("minutes: 6\nprecision: float32\n")
    cfg = load_config(path, minutes=0.5)
    assert (cfg.minutes, cfg.precision) == (0.5, "float32")

"""Knowledge distillation: the targets' arithmetic, teacher classes matched by name, the cache,
and a student trained end to end from a teacher checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfer.models.predict import predict_proba
from deepfer.data import load_dataset
from deepfer.errors import DeepferError
from deepfer.labels import EMOTIONS
from deepfer.models.checkpoint import Checkpoint
from deepfer.train import distill
from deepfer.train.config import TrainConfig
from deepfer.train.loop import fit


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(model="deep-emotion", dataset="jaffe", data=str(data), protocol="random", epochs=4,
                batch_size=16, lr=3e-3, augment="none", out=str(out), seed=1, model_options={"dropout": 0.0})
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def teacher(pattern_jaffe: Path, tmp_path: Path) -> Path:
    fit(_cfg(pattern_jaffe, tmp_path / "teacher", epochs=2))
    return tmp_path / "teacher" / "best.pt"


def test_targets_mix_the_label_and_the_teacher() -> None:
    hard = torch.tensor([0, 2])
    teacher = np.array([[0.2, 0.8, 0.0], [0.0, 0.5, 0.5]], np.float32)
    t = distill.distill_targets(hard, teacher, alpha=0.25)
    assert torch.allclose(t, torch.tensor([[0.8, 0.2, 0.0], [0.0, 0.125, 0.875]]))
    t = distill.distill_targets(hard, teacher, alpha=0.5, smoothing=0.3)  # smoothing applies to the label part
    assert torch.allclose(t[0], torch.tensor([0.5 * 0.8 + 0.1, 0.5 * 0.1 + 0.4, 0.05]))
    assert torch.allclose(t.sum(1), torch.ones(2))
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])  # vote distributions (FER+) pass through
    assert torch.allclose(distill.distill_targets(soft, teacher, 1.0), torch.from_numpy(teacher))
    with pytest.raises(DeepferError, match="distill weight"):
        distill.distill_targets(hard, teacher, alpha=0.0)


def test_teacher_classes_are_matched_by_name(teacher: Path, pattern_jaffe: Path) -> None:
    faces = load_dataset("jaffe", pattern_jaffe).images[:10]
    meta = Checkpoint.load(teacher)
    full = predict_proba(meta.build(), faces, tta=True)
    cols = [meta.labels.index("surprise"), meta.labels.index("angry")]
    got = distill.teacher_probs([str(teacher)], faces, ["surprise", "angry"])
    want = full[:, cols] / full[:, cols].sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    two = distill.teacher_probs([str(teacher), str(teacher)], faces, ["surprise", "angry"])
    np.testing.assert_allclose(two, got, rtol=1e-5, atol=1e-6)  # an ensemble of one model twice
    with pytest.raises(DeepferError, match="has no class 'contempt'"):
        distill.teacher_probs([str(teacher)], faces, ["happy", "contempt"])


def test_config_needs_a_teacher_and_a_weight_together(tmp_path: Path) -> None:
    with pytest.raises(DeepferError, match="distill"):
        _cfg(tmp_path, tmp_path, distill=0.5)
    with pytest.raises(DeepferError, match="distill"):
        _cfg(tmp_path, tmp_path, teacher=["deepfer"])
    with pytest.raises(DeepferError, match="distill"):
        _cfg(tmp_path, tmp_path, teacher=["deepfer"], distill=1.5)


def data_faces(root: Path) -> np.ndarray:
    return load_dataset("jaffe", root).images


def _fixture_class(faces: np.ndarray, labels: list[str]) -> np.ndarray:
    """The class drawn into each pattern face (tests/train/conftest.py), as an index into ``labels``."""
    names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # the fixture's CODES
    blocks = [faces[:, 4 + 14 * y : 16 + 14 * y, 4 + 14 * x : 16 + 14 * x].mean((1, 2))
              for y, x in (divmod(c, 3) for c in range(7))]
    return np.array([labels.index(names[c]) for c in np.stack(blocks, 1).argmax(1)])


def test_student_learns_the_teachers_labels_and_resume_reuses_them(
    pattern_jaffe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fit(_cfg(pattern_jaffe, tmp_path / "teacher", epochs=1))
    teacher = str(tmp_path / "teacher" / "best.pt")
    calls = []

    def shifted_teacher(teachers, faces, labels, batch_size=512):  # a confident teacher that is wrong
        calls.append(list(teachers))
        return np.eye(len(labels), dtype=np.float32)[(_fixture_class(faces, list(labels)) + 1) % len(labels)]

    monkeypatch.setattr(distill, "teacher_probs", shifted_teacher)
    out = tmp_path / "student"
    cfg = _cfg(pattern_jaffe, out, epochs=12, teacher=[teacher], distill=1.0)
    fit(TrainConfig(**{**cfg.to_dict(), "epochs": 2}))
    assert calls == [[teacher]] and (out / "teacher.npz").is_file()
    (summary,) = fit(cfg, resume=True)
    assert calls == [[teacher]]  # resumed from the cached targets
    first = Checkpoint.load(out / "best.pt").info["teacher_seconds"]
    labels = list(Checkpoint.load(out / "best.pt").labels)
    faces = data_faces(pattern_jaffe)[:20]
    _, seconds = distill.cached_teacher_probs([teacher], faces, labels, out / "teacher.npz")
    assert calls == [[teacher], [teacher]]  # another key (other faces): computed again ...
    _, again = distill.cached_teacher_probs([teacher], faces, labels, out / "teacher.npz")
    assert calls == [[teacher], [teacher]] and again == seconds >= 0  # ... and its cost kept with the cache
    assert first >= 0
    info = Checkpoint.load(out / "last.pt").info
    assert info["epoch"] == 12 and info["train_config"]["teacher"] == [teacher]
    meta = Checkpoint.load(out / "last.pt")  # best.pt is chosen on the true validation labels
    student = meta.build()
    data = load_dataset("jaffe", pattern_jaffe)
    pred = predict_proba(student, data.images).argmax(1)
    truth = _fixture_class(data.images, list(meta.labels))
    assert [meta.labels[i] for i in truth] == [EMOTIONS[c] for c in data.labels]
    assert (pred == (truth + 1) % 7).mean() >= 0.7  # it learnt what the teacher said,
    assert (pred == truth).mean() <= 0.2  # not the dataset's labels


def test_cli_takes_teachers_and_their_weight(teacher: Path, pattern_jaffe: Path, tmp_path: Path, capsys) -> None:
    from deepfer.cli import main

    out = tmp_path / "cli"
    args = ["train", "--model", "deep-emotion", "--dataset", "jaffe", "--data", str(pattern_jaffe), "--protocol",
            "random", "--epochs", "1", "--batch-size", "16", "--out", str(out), "--teacher", str(teacher),
            str(teacher), "--distill", "0.4"]
    assert main(args) == 0
    cfg = Checkpoint.load(out / "last.pt").info["train_config"]
    assert cfg["teacher"] == [str(teacher)] * 2 and cfg["distill"] == 0.4
    assert main(args[:-2]) != 0  # teachers without a weight
    assert "distill" in capsys.readouterr().err

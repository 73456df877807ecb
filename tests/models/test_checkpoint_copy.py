"""``Checkpoint.for_inference``: what ``scripts/ship_weights.py`` puts in the package."""

from __future__ import annotations

from pathlib import Path

import torch

from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint, TrainingState


def _trained_like(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("deepfer", num_classes=7)
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    training = TrainingState({"state": {}, "param_groups": []}, torch.get_rng_state(), {"epoch": 3})
    payload = Checkpoint.from_model(model, ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
                                    training=training, epoch=3)
    path = tmp_path / "best.pt"
    payload.save(path)
    return path


def test_half_copy_is_half_the_size_and_predicts_the_same(tmp_path: Path) -> None:
    src = _trained_like(tmp_path)
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    Checkpoint.load(src).for_inference(half=False).save(full)
    Checkpoint.load(src).for_inference().save(half)
    assert Checkpoint.load(half).training is None
    assert Checkpoint.load(half).info == {"epoch": 3, "stored_dtype": "float16"}
    assert half.stat().st_size < 0.55 * full.stat().st_size
    m_full = Checkpoint.load(full).build()
    m_half = Checkpoint.load(half).build()
    assert all(p.dtype == torch.float32 for p in m_half.parameters())  # runs in float32
    x = torch.randn(64, 1, 48, 48)
    with torch.no_grad():
        p_full, p_half = m_full(x).softmax(1), m_half(x).softmax(1)
    assert (p_full - p_half).abs().max() < 5e-3
    assert (p_full.argmax(1) != p_half.argmax(1)).sum() <= 1
    # the copy is not a no-op: rounding to float16 moved the weights
    assert not torch.equal(m_full.fc1.weight, m_half.fc1.weight)

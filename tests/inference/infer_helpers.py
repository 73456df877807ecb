"""Helpers shared by the inference tests (a module of its own: every tests/ folder has a
conftest.py, so ``from conftest import`` would be ambiguous)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint

# ../shared/data relative to the repository root (tests/inference/ -> parents[3] = /work).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    """A random deep-emotion checkpoint whose outputs are spread out (no near-ties between
    classes, so argmax comparisons are meaningful)."""
    torch.manual_seed(seed)
    model = create_model("deep-emotion", num_classes=7, dropout=0.0).eval()
    with torch.no_grad():
        model.fc2.weight.mul_(20.0)
        # A non-identity spatial transformer, so that the ONNX GridSample path is exercised.
        model.stn.fc_loc[-1].weight.normal_(0.0, 0.05)
    Checkpoint.from_model(model, list(FER7), dataset="random").save(path)
    return path


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def rolled_video(path: Path, portrait: Path, frames: int) -> Path:
    """An MJPG video at 10 fps of ``portrait`` (256x256) shifted one pixel right per frame."""
    face = cv2.resize(cv2.imread(str(portrait)), (256, 256))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for i in range(frames):
        writer.write(np.roll(face, i, axis=1))
    writer.release()
    return path

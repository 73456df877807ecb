"""Helpers shared by the explain tests (a module of its own: every tests/ folder has a conftest.py,
so ``from conftest import`` would be ambiguous).

The region fixture: faces of pure noise except the upper-left 16x16 block, which holds horizontal
(class 0) or vertical (class 1) stripes. Only that block carries the label, so a faithful map must
put its importance there. The tiny training loop lives here on purpose: the library never imports
deepfer.train, and the tests need no more than a few hundred Adam steps.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepfer.models import create_model

BLOCK = (slice(0, 16), slice(0, 16))  # rows, cols of the informative block


def region_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces (n, 48, 48) and int64 labels (n,) of the region fixture."""
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (n, 48, 48)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    idx = np.arange(16)
    for i in range(n):
        phase = rng.integers(0, 4)
        bright = ((idx + phase) // 2) % 2 == 0  # stripes 2 px wide, period 4
        stripes = np.where(bright, 220.0, 35.0)
        block = stripes[:, None].repeat(16, 1) if labels[i] == 0 else stripes[None, :].repeat(16, 0)
        faces[i][BLOCK] = block + rng.normal(0, 12, (16, 16))
    return np.clip(faces, 0, 255).astype(np.uint8), labels.astype(np.int64)


def train_region_model(name: str = "deep-emotion", use_stn: bool = False, steps: int = 250, seed: int = 0,
                       batch: int = 32, until: float | None = None, max_steps: int = 300) -> nn.Module:
    """A model trained on fresh region-fixture batches; returned in eval mode.

    With ``until``, training goes on past ``steps`` (in chunks of 20, at most ``max_steps``) until the
    model reaches that accuracy on 128 faces of their own seed, never the tests' held-out faces: how
    fast the spatial transformer locks on depends on the CPU's kernels (seed 0 needed ~100 steps on one
    machine, 60 on another), and the tests are about the maps of a model that has learned the block.
    """
    from deepfer.models.predict import to_input

    torch.manual_seed(seed)
    model = create_model(name, num_classes=2, dropout=0.0, use_stn=use_stn)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    total = max(steps, max_steps) if until is not None else steps
    faces, labels = region_faces(total * batch, seed=seed + 1)
    x_all = to_input(torch.from_numpy(faces), model.config)
    y_all = torch.from_numpy(labels)
    check = region_faces(128, seed=seed + 1000) if until is not None else None
    model.train()
    for step in range(total):
        if check is not None and step >= steps and step % 20 == 0:
            if accuracy(model, *check) >= until:
                break
            model.train()
        x, y = x_all[step * batch : (step + 1) * batch], y_all[step * batch : (step + 1) * batch]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def accuracy(model: nn.Module, faces: np.ndarray, labels: np.ndarray) -> float:
    from deepfer.models.predict import predict_proba

    return float((predict_proba(model, faces).argmax(1) == labels).mean())


def inside_outside(heatmaps: np.ndarray) -> tuple[float, float]:
    """Mean importance inside and outside the informative block, over all faces."""
    mask = np.zeros(heatmaps.shape[1:], bool)
    mask[BLOCK] = True
    return float(heatmaps[:, mask].mean()), float(heatmaps[:, ~mask].mean())


def save_checkpoint(model: nn.Module, path, labels: list[str] | None = None):  # type: ignore[no-untyped-def]
    """Write ``model`` as a deepfer checkpoint (labels: FER2013's first ``num_classes``)."""
    from deepfer.labels import FER7
    from deepfer.models.checkpoint import Checkpoint

    names = labels if labels is not None else list(FER7[: model.config.num_classes])
    Checkpoint.from_model(model, names, dataset="fixture").save(path)
    return path


def zoom_model(use_stn: bool = True) -> nn.Module:
    """A random deep-emotion whose spatial transformer always looks at the upper-left quadrant
    (theta: scale 0.5, shift -0.5 in normalised coordinates)."""
    torch.manual_seed(0)
    model = create_model("deep-emotion", num_classes=7, dropout=0.0, use_stn=use_stn)
    if use_stn:
        with torch.no_grad():
            last = model.stn.fc_loc[-1]
            last.weight.zero_()
            last.bias.copy_(torch.tensor([0.5, 0.0, -0.5, 0.0, 0.5, -0.5]))
    return model.eval()


def make_jaffe(root, per_class: int = 4, seed: int = 0):  # type: ignore[no-untyped-def]
    """A tiny JAFFE-layout folder (flat TIFFs named ``SUBJ.CODEn.id.tiff``) of noise faces."""
    from PIL import Image

    codes = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for s in ("KA", "KL", "KM"):
        for code in codes:
            for k in range(per_class):
                n += 1
                img = rng.integers(0, 256, (64, 64)).astype(np.uint8)
                Image.fromarray(img).save(root / f"{s}.{code}{k + 1}.{n}.tiff")
    return root

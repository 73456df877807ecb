"""Generated fixtures for training tests: a tiny JAFFE-layout folder whose class is drawn as a
bright block at a class-specific place, so a model can learn it in a few epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CODES = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]


def make_pattern_jaffe(root: Path, subjects: int = 4, per_class: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for s in range(subjects):
        subject = f"S{chr(65 + s)}"
        for c, code in enumerate(CODES):
            for k in range(per_class):
                img = rng.integers(0, 60, (48, 48)).astype(np.uint8)
                y, x = divmod(c, 3)
                img[4 + 14 * y : 16 + 14 * y, 4 + 14 * x : 16 + 14 * x] = 230
                n += 1
                Image.fromarray(img).save(root / f"{subject}.{code}{k + 1}.{n}.tiff")
    return root


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEEPFER_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic and fair to a shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pattern_jaffe(tmp_path: Path) -> Path:
    return make_pattern_jaffe(tmp_path / "jaffe")

"""Helpers the vision tests import (a module name of its own, so it never clashes with another
folder's helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# ../shared/data relative to the repository root (tests/vision/ -> parents[3] = the folder above it).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)

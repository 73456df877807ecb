"""Fixtures for the vision tests: the bundled public-domain photo; every other image is generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfer.inference import sample_image


@pytest.fixture(scope="session")
def astronaut() -> Path:
    path = sample_image()
    assert path.is_file(), "the bundled photo src/deepfer/assets/astronaut.png is missing"
    return path

"""Fixtures for the inference tests: a small random checkpoint written here, the bundled
public-domain photo, and generated images in every awkward format. No dataset image is copied."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from infer_helpers import make_checkpoint

from deepfer.inference import sample_image


@pytest.fixture(autouse=True)
def _isolated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              monkeypatch: pytest.MonkeyPatch):
    """One torch thread (deterministic, fair to a shared machine); unit tests get a private cache,
    integration tests read the default one."""
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("DEEPFER_CACHE", str(tmp_path_factory.mktemp("deepfer-cache")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pt")


@pytest.fixture(scope="session")
def astronaut() -> Path:
    path = sample_image()
    assert path.is_file(), "the bundled photo src/deepfer/assets/astronaut.png is missing"
    return path


@pytest.fixture(scope="session")
def recognizer(checkpoint: Path):
    from deepfer.inference import Recognizer

    return Recognizer(checkpoint)

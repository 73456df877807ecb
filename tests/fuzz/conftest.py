"""Fixtures for the fuzz tests: the corpus (tests/fuzz/fuzz_corpus.py) written to a folder once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_corpus import bombs, mutated_images, mutated_videos, seeds

# Mutated images in the suite (the benchmark runs thousands: benchmarks/fuzz.py).
N_MUTATED = 160


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of every image input: the seeds, their mutations and the bombs."""
    folder = tmp_path_factory.mktemp("corpus")
    files = {**{f"seed_{k}": v for k, v in seeds().items()}, **dict(mutated_images(N_MUTATED)),
             **{f"bomb_{k}": v for k, v in bombs().items()}}
    out = {}
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return mutated_videos(tmp_path_factory.mktemp("videos"), 12)

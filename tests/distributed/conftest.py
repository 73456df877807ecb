"""Fixtures for the distributed tests: a corpus of generated photos and a video (dist_corpus)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dist_corpus import make_images, make_video


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 photos in four folders and ``clip.avi``: 3 s at 10 frames/s (three 1 s segments)."""
    root = tmp_path_factory.mktemp("corpus")
    make_images(root / "photos", 200)
    make_video(root / "clip.avi", 3.0)
    return root

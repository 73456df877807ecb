"""The version has one home (deepfer/version.py), re-exported by the package and matching the
project's metadata."""

from __future__ import annotations

import tomllib
from pathlib import Path

import deepfer
from deepfer.version import __version__


def test_one_version_everywhere() -> None:
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert deepfer.__version__ == __version__ == meta["project"]["version"] == "0.1.0"
    assert "__version__" in deepfer.__all__

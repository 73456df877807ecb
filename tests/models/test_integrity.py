"""The shipped weights' integrity: ``SHA256SUMS`` lists every shipped file with its digest, and a
damaged or altered copy is refused, whether loaded by path or as shipped weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from deepfer.models import pretrained as weights
from deepfer.errors import ModelError
from deepfer.files import sha256_file
from deepfer.models.checkpoint import DIGEST_KEY, Checkpoint

NAME = "deepfer_fer2013-kd"


def _inverted(src: Path, dst: Path) -> Path:
    """``src`` with 64 bytes in the middle inverted, written to ``dst``."""
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture
def shipped_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the package's weights folder (files and SHA256SUMS) that deepfer takes as shipped."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for p in weights.weights_folder().iterdir():
        if p.suffix in (".pt", ".md") or p.name == weights.SUMS:
            shutil.copy(p, folder / p.name)
    monkeypatch.setattr(weights, "weights_folder", lambda: folder)
    return folder


def test_sums_list_every_shipped_file_with_its_digest() -> None:
    root = weights.weights_folder()
    listed = dict(line.split("  ", 1)[::-1] for line in (root / weights.SUMS).read_text().splitlines())
    files = sorted(p.relative_to(root).as_posix() for p in [*root.glob("*.pt"), *root.glob("*/fold*/best.pt")])
    assert sorted(listed) == files
    assert all(listed[f] == sha256_file(root / f) for f in files)
    for f in files:
        assert weights.shipped_sha256(root / f) == listed[f]
    assert weights.shipped_sha256(Path(__file__)) is None  # a file elsewhere: no shipped digest


def test_sums_are_package_data() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"weights/SHA256SUMS"' in text


def test_write_sums_matches_sha256sum_format(shipped_copy: Path) -> None:
    before = (shipped_copy / weights.SUMS).read_text()
    (shipped_copy / weights.SUMS).unlink()
    assert weights.write_sums(shipped_copy) == shipped_copy / weights.SUMS
    assert (shipped_copy / weights.SUMS).read_text() == before
    line = before.splitlines()[0]
    digest, name = line.split("  ")
    assert digest == sha256_file(shipped_copy / name)


def test_inverted_bytes_loaded_by_path_are_refused(tmp_path: Path) -> None:
    bad = _inverted(weights.resolve(NAME), tmp_path / f"{NAME}.pt")
    assert torch.load(bad, weights_only=True)["format"] == "deepfer-checkpoint"  # what torch alone accepts
    for load in (Checkpoint.load, weights.load_checkpoint, weights.load_pretrained):
        with pytest.raises(ModelError, match=rf"{NAME}\.pt: damaged checkpoint: archive/data/\d+ fails its integrity check"):
            load(bad)


def test_inverted_bytes_in_the_package_are_refused(shipped_copy: Path) -> None:
    good = weights.load_checkpoint(NAME)  # the copy as shipped loads
    assert good.source == str(shipped_copy / f"{NAME}.pt")
    _inverted(weights.resolve(NAME), shipped_copy / f"{NAME}.pt")
    with pytest.raises(ModelError, match=rf"{NAME}\.pt: the file's sha256 differs from the one shipped with deepfer"):
        weights.load_checkpoint(NAME)
    with pytest.raises(ModelError, match="differs from the one shipped"):
        weights.list_pretrained()


def test_a_valid_but_altered_shipped_file_is_refused(shipped_copy: Path) -> None:
    ckpt = weights.load_checkpoint(NAME)
    state = {k: v.clone() for k, v in ckpt.state_dict.items()}
    state["fc2.bias"] += 0.5  # a well-formed checkpoint with its own consistent digest, not the shipped one
    Checkpoint(ckpt.config, ckpt.labels, state, ckpt.preprocess, ckpt.info).save(shipped_copy / f"{NAME}.pt")
    assert DIGEST_KEY in torch.load(shipped_copy / f"{NAME}.pt", weights_only=True)
    Checkpoint.load(shipped_copy / f"{NAME}.pt")  # fine as a file of its own ...
    with pytest.raises(ModelError, match="differs from the one shipped with deepfer"):
        weights.load_checkpoint(NAME)  # ... but not as the shipped weights


def test_an_unlisted_file_in_the_package_is_refused(shipped_copy: Path) -> None:
    shutil.copy(shipped_copy / f"{NAME}.pt", shipped_copy / "deepfer_extra.pt")
    with pytest.raises(ModelError, match=r"deepfer_extra\.pt: shipped weights not listed in .*SHA256SUMS"):
        weights.load_checkpoint("deepfer_extra")
    (shipped_copy / weights.SUMS).unlink()
    with pytest.raises(ModelError, match="SHA256SUMS: missing"):
        weights.load_checkpoint(NAME)

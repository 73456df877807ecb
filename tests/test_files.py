"""The one atomic write: the new contents appear whole or not at all, with ordinary permissions."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from deepfer.files import atomic_open, sha256_bytes, sha256_file


def test_writes_whole_files_in_binary_and_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.bin"
    with atomic_open(target) as f:
        f.write(b"abc")
    assert target.read_bytes() == b"abc"
    with atomic_open(tmp_path / "log.csv", "w", newline="") as f:
        f.write("epoch\r\n1\n")
    assert (tmp_path / "log.csv").read_bytes() == b"epoch\r\n1\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["log.csv", "sub", "x.bin"]


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as f:
        f.write(b"half of the new")
        raise KeyboardInterrupt  # killed mid-write
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    with pytest.raises(ValueError, match="mode"), atomic_open(target, "a"):
        pass


def test_digests(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 3_000_000)
    assert sha256_file(tmp_path / "f") == sha256_bytes(b"x" * 3_000_000) == hashlib.sha256(b"x" * 3_000_000).hexdigest()

"""A new user's first commands: ``make demo`` says what it wrote and how to get ``deepfer`` on the
PATH, install hints work from a clone (the package is not on an index), and ``deepfer models``
marks the weights that ``predict`` uses by default."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deepfer import cli
from deepfer.models.pretrained import DEFAULT

ROOT = Path(__file__).resolve().parents[1]


def test_install_hints_work_from_a_clone() -> None:
    # `pip install -e '.[x]'` asks an index for a package that is not there.
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "src").rglob("*.py"))
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if re.search(r"pip install '?deepfer\[", line)]
    assert not bad, bad


def test_models_marks_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = [line for line in lines if "(default)" in line]
    assert len(marked) == 1 and marked[0].split()[0] == DEFAULT


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_says_what_it_wrote_and_how_to_activate(tmp_path: Path) -> None:
    # A stand-in virtual environment whose `deepfer` runs this checkout with this Python.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "deepfer"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT / 'src'} exec {sys.executable} -m deepfer.cli \"$@\"\n")
    exe.chmod(0o755)
    (venv / ".installed").touch()
    os.utime(venv / ".installed", (4e9, 4e9))  # newer than pyproject.toml: no install step
    target = tmp_path / "demo.jpg"
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "demo", f"VENV={venv}", f"DEMO_OUT={target}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert target.is_file()
    text = proc.stdout + proc.stderr
    assert f"wrote {target}" in text and f". {venv}/bin/activate" in text

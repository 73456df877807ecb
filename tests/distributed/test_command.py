"""``deepfer predict --engine ray``'s options: refused with a one-line error before any cluster starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfer.cli import main


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "o"], "go with --engine ray"),
    (["--resume"], "go with --engine ray"),
    (["--engine", "ray"], "give --out DIR"),
    (["--engine", "ray", "--out", "o", "--annotate", "a"], "--annotate is not available with --engine ray"),
    (["--engine", "ray", "--out", "o", "--segment", "later"], "--segment must be a positive duration"),
])
def test_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"")
    assert main(["predict", str(photo), *[str(tmp_path / a) if a in ("o", "a") else a for a in args]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_existing_results_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray", reason="the distributed extra is not installed")
    out = tmp_path / "out"
    out.mkdir()
    (out / "part.parquet").write_bytes(b"x")
    assert main(["predict", str(tmp_path), "--engine", "ray", "--out", str(out)]) == 2
    assert "holds results already; pass --resume" in capsys.readouterr().err
    assert (out / "part.parquet").read_bytes() == b"x"


def test_plain_predict_does_not_load_ray(tmp_path: Path) -> None:
    """Without --engine ray, predict never imports Ray (its start-up and behaviour stay the plain CLI's)."""
    import os
    import subprocess
    import sys

    from deepfer.inference import sample_image

    code = ("import sys, deepfer.cli as c; rc = c.main(['predict', sys.argv[1], '--format', 'json', '--no-progress']); "
            "print('ray' in sys.modules, 'deepfer.distributed' in sys.modules, rc)")
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run([sys.executable, "-c", code, str(sample_image())], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": src}, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "False False 0", done.stderr[-2000:]

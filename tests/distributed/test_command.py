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

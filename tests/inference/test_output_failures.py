"""Outputs that cannot be written (``> /dev/full``, a full disk, a file where a folder is
expected): one line, a non-zero exit, no traceback, no "wrote" line and no truncated file for what
was not written."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infer_helpers import rolled_video

from deepfer.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, stdout: int | None = subprocess.DEVNULL) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "deepfer.cli", "predict", "--no-progress", *args],
                          stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=120)
    return proc.returncode, proc.stderr.decode()


def _one_line_error(code: int, err: str) -> None:
    assert code != 0
    assert "Traceback" not in err and "Exception ignored" not in err, err
    # log warnings (re-identification off without its extra) may precede the one error line
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING deepfer.")]
    assert len(lines) >= 1 and all(line.startswith(("deepfer: error:", "wrote ")) for line in lines), err


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, astronaut: Path) -> Path:
    """A 2 s MJPG video of the bundled portrait at 10 fps."""
    return rolled_video(tmp_path_factory.mktemp("video") / "clip.avi", astronaut, 20)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on an 8 KiB tmpfs: a real full disk (needs root and mount; skipped elsewhere)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a tiny tmpfs, which needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(folder)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_stdout_on_a_full_device_is_one_line(astronaut: Path, checkpoint: Path, fmt: str) -> None:
    with open("/dev/full", "wb") as full:
        code, err = _cli(str(astronaut), "--model", str(checkpoint), "--format", fmt, stdout=full.fileno())
    _one_line_error(code, err)
    assert "No space left on device" in err


def test_summary_on_a_full_device_is_one_line(video: Path, checkpoint: Path) -> None:
    with open("/dev/full", "wb") as full:
        code, err = _cli(str(video), "--model", str(checkpoint), "--summary", stdout=full.fileno())
    _one_line_error(code, err)


def test_annotate_and_timeline_where_a_file_is_in_the_way(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          astronaut: Path, video: Path, checkpoint: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # root ignores permissions; a file where a folder must be stops everyone
    for args in ([str(astronaut), "--annotate", str(blocker / "out")],
                 [str(video), "--annotate", str(blocker / "out")],
                 [str(video), "--timeline", str(blocker / "out")]):
        code = main(["predict", "--no-progress", "--model", str(checkpoint), *args])
        out, err = capsys.readouterr()
        assert code != 0, args
        _one_line_error(code, err)
        assert "Not a directory" in err and "wrote" not in err, err


def test_annotated_video_on_a_full_disk(full_disk: Path, video: Path, checkpoint: Path) -> None:
    code, err = _cli(str(video), "--model", str(checkpoint), "--annotate", str(full_disk / "out.mp4"))
    _one_line_error(code, err)
    assert "could not be written completely" in err
    assert list(full_disk.iterdir()) == []  # no unplayable file, no temporary file


def test_timeline_on_a_full_disk(full_disk: Path, video: Path, checkpoint: Path) -> None:
    code, err = _cli(str(video), "--model", str(checkpoint), "--timeline", str(full_disk / "tl"))
    _one_line_error(code, err)
    assert "No space left on device" in err
    written = {line.split(" ", 1)[1] for line in err.splitlines() if line.startswith("wrote ")}
    on_disk = {str(p) for p in (full_disk / "tl").iterdir()} if (full_disk / "tl").is_dir() else set()
    assert written == on_disk  # every "wrote" line names a whole file, and nothing else is left
    assert not any(p.endswith(".png") for p in written)
    assert not any(".tmp" in p for p in on_disk)
    with contextlib.suppress(FileNotFoundError):
        for p in on_disk:  # what was kept is complete: the CSV's rows all have every column
            rows = Path(p).read_text().splitlines()
            assert len({row.count(",") for row in rows}) == 1

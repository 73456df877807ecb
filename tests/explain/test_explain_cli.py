"""``deepfer explain``: photos (with face detection), face crops (--no-detect), per-emotion maps,
one-line errors per bad file, exit codes; and the same through the Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from explain_helpers import make_jaffe, save_checkpoint
from PIL import Image

from deepfer.cli import main
from deepfer.explain import explain_faces
from deepfer.models import create_model

ASTRONAUT = Path(__file__).resolve().parents[2] / "src" / "deepfer" / "assets" / "astronaut.png"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(create_model("deep-emotion").eval(), tmp_path_factory.mktemp("m") / "m.pt")


@pytest.fixture(scope="module")
def ckpt_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(create_model("deep-emotion", use_stn=False).eval(),
                           tmp_path_factory.mktemp("m") / "plain.pt")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _crops(folder: Path, n: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"crop{i}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_photo_all_methods(capsys: pytest.CaptureFixture[str], tmp_path: Path, ckpt: Path) -> None:
    code, out, err = run(capsys, str(ASTRONAUT), "--model", str(ckpt), "--out", str(tmp_path),
                         "--method", "occlusion", "saliency", "gradcam", "stn", "--stride", "8")
    assert code == 0, err
    png = tmp_path / "astronaut_face0_occlusion-saliency-gradcam-stn.png"
    assert png.is_file() and out.startswith(str(png))
    with Image.open(png) as im:  # the crop, three overlays and the transformer's two panels
        assert im.width > 4.5 * im.height


def test_crops_without_detection_and_bad_files(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               ckpt: Path) -> None:
    good = _crops(tmp_path / "in")
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"not an image")
    code, _, err = run(capsys, str(good[0]), str(bad), str(good[1]), str(tmp_path / "missing.png"),
                         "--no-detect", "--model", str(ckpt), "--method", "gradcam", "--out", str(tmp_path / "o"))
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["crop0_gradcam.png", "crop1_gradcam.png"]
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("deepfer: error: ") for line in errors)
    assert "broken.png" in errors[0] and "missing.png" in errors[1]


def test_nothing_explained_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path, ckpt: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 160), 128, np.uint8)).save(blank)  # no face to detect
    code, _, err = run(capsys, str(blank), "--model", str(ckpt), "--out", str(tmp_path / "o"))
    assert code == 1 and "blank.png: no face found" in err and err.count("\n") == 2


def test_stn_on_a_model_without_one_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     ckpt_plain: Path) -> None:
    crop = _crops(tmp_path / "in", 1)[0]
    code, _, err = run(capsys, str(crop), "--no-detect", "--model", str(ckpt_plain), "--method", "stn",
                       "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "has no spatial transformer" in err


def test_per_emotion_from_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, ckpt: Path) -> None:
    root = make_jaffe(tmp_path / "jaffe")
    code, out, err = run(capsys, "--dataset", "jaffe", "--data", str(root), "--protocol", "random",
                         "--per-emotion", "--method", "gradcam", "--model", str(ckpt), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert (tmp_path / "o" / "per_emotion_gradcam.png").is_file() and "happy" in out
    code, _, err = run(capsys, str(root), "--dataset", "jaffe", "--out", str(tmp_path / "o"))
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "--out", str(tmp_path / "o"))
    assert code == 2 and "give IMAGE paths" in err


def test_python_api_on_arrays(tmp_path: Path, ckpt: Path) -> None:
    face = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    reports = explain_faces([face, np.zeros((0, 5))], ckpt, ["occlusion", "stn"], detector=None, out=tmp_path,
                            target="happy", patch=12, stride=12)
    ok, bad = reports
    assert bad.error and not bad.faces
    (fm,) = ok.faces
    assert fm.target == "happy" and fm.crop.shape == (48, 48) and fm.box == (0, 0, 48, 48)
    assert fm.heatmaps["occlusion"].shape == (48, 48) and fm.stn is not None and fm.png.is_file()
    np.testing.assert_array_equal(fm.crop, face)  # a 48x48 crop is used as it is


def test_explain_never_imports_training_code() -> None:
    import subprocess
    import sys

    code = ("import sys, deepfer.explain, deepfer.explain.figures as im, deepfer.vision.detect, "
            "deepfer.vision.crop, deepfer.inference.inputs\n"
            "bad = sorted(m for m in sys.modules if m.startswith('deepfer.train'))\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)

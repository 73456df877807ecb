"""Training curves read from ``log.csv`` and drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfer.errors import DeepferError
from deepfer.train.curves import plot_curves, read_log


def _log(path: Path, val: list[float]) -> Path:
    rows = ["epoch,lr,train_loss,train_acc,images_per_s,val_loss,val_acc,seconds"]
    rows += [f"{i + 1},0.001,1.0,{0.3 + 0.05 * i},100,1.0,{v},1.0" for i, v in enumerate(val)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_read_and_plot(tmp_path: Path) -> None:
    a = read_log(_log(tmp_path / "a.csv", [0.4, 0.55, 0.5]))
    b = read_log(_log(tmp_path / "b.csv", [0.3, 0.35]))
    assert list(a["epoch"]) == [1, 2, 3] and a["val_acc"].idxmax() == 1
    out = tmp_path / "curves" / "x.png"
    plot_curves({"fold0": a, "fold1": b}, out, "deepfer on X")
    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape[0] > 200 and im.shape[1] > 400 and im.std() > 10  # something was drawn


@pytest.mark.parametrize("text,match", [("", "not a training log"), ("epoch,lr\n1,0.1\n", "without column"),
                                        ("epoch,train_acc,val_acc\n", "no epochs")])
def test_bad_logs_are_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "log.csv").write_text(text)
    with pytest.raises(DeepferError, match=match):
        read_log(tmp_path / "log.csv")
    with pytest.raises(DeepferError, match="no such training log"):
        read_log(tmp_path / "missing.csv")

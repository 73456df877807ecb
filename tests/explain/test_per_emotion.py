"""Per-emotion maps: averaged per class over correctly classified faces only, capped, saved as a
figure and an .npz; the dataset report on a generated JAFFE-layout folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from explain_helpers import inside_outside, make_jaffe, save_checkpoint

from deepfer.errors import DeepferError
from deepfer.explain import per_emotion_maps, per_emotion_report, plot_per_emotion
from deepfer.models import create_model


def test_maps_average_correct_faces_per_class(region_model, region_data, tmp_path: Path) -> None:
    faces, labels = region_data
    labels = labels.copy()
    labels[0] = 1 - labels[0]  # one face the model now gets wrong: it must be left out
    result = per_emotion_maps(region_model, faces, labels, "gradcam", ["horizontal", "vertical"], max_per_class=20)
    totals = np.bincount(labels, minlength=2)
    assert result.totals.tolist() == totals.tolist()
    assert result.correct.sum() == len(labels) - 1
    assert result.counts.tolist() == np.minimum(result.correct, 20).tolist()
    inside, outside = inside_outside(result.maps)
    assert inside > 1.5 * outside
    assert result.maps.shape == result.mean_faces.shape == (2, 48, 48) and result.flips is None

    png = plot_per_emotion(result, tmp_path / "pe.png", title="t")
    assert png.stat().st_size > 1000
    saved = np.load(result.save_npz(tmp_path / "pe.npz"))
    np.testing.assert_array_equal(saved["maps"], result.maps)
    assert saved["classes"].tolist() == ["horizontal", "vertical"]


def test_occlusion_maps_keep_flips_and_a_class_without_correct_faces(region_model, region_data) -> None:
    faces, labels = region_data
    wrong = np.where(labels == 0, 1, 0)[:6]  # every face labelled with the class it is not
    result = per_emotion_maps(region_model, faces[:6], wrong, "occlusion", patch=16, stride=16)
    assert result.counts.tolist() == [0, 0] and not result.maps.any()
    assert result.flips is not None and result.flips.shape == (2, 48, 48)
    with pytest.raises(DeepferError, match="need a heatmap method"):
        per_emotion_maps(region_model, faces, labels, "stn")


def test_dataset_report_writes_figure_arrays_and_summary(tmp_path: Path) -> None:
    root = make_jaffe(tmp_path / "jaffe")
    torch.manual_seed(0)
    ckpt = save_checkpoint(create_model("deep-emotion").eval(), tmp_path / "m.pt")
    out = tmp_path / "out"
    summary = per_emotion_report("jaffe", root, "random", out, ckpt, "saliency", max_per_class=5)
    assert set(summary["classes"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert sum(c["faces"] for c in summary["classes"].values()) > 0
    for suffix in ("png", "npz", "json"):
        assert (out / f"per_emotion_saliency.{suffix}").is_file()
    assert json.loads((out / "per_emotion_saliency.json").read_text())["method"] == "saliency"
    with pytest.raises(DeepferError, match="pass fold I"):
        per_emotion_report("jaffe", root, "loso", out, ckpt, "saliency")

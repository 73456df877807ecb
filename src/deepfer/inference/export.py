"""Export a deepfer model to ONNX: uint8 faces in, class probabilities out.

The exported graph holds the whole of :func:`deepfer.models.predict.predict_proba` for one batch:
``faces`` uint8 ``(N, H, W)`` -> ``(pixel / 255 - mean) / std`` -> the network -> ``/ temperature``
(the checkpoint's calibration; left out when it is 1 or ``calibrated=False``) -> softmax ->
``probs`` float32 ``(N, num_classes)``; the batch axis is dynamic, so onnxruntime's scores are
torch's. The label names, input size, normalisation and temperature are stored in the file's
metadata (``deepfer.labels`` as JSON, ...), so an ``.onnx`` file is as self-describing as a
checkpoint. The spatial transformer's ``affine_grid`` needs opset 20
(``AffineGrid``; ``GridSample`` came in 16), which onnxruntime runs since 1.17. The TorchScript
exporter (``dynamo=False``) is used: it needs no extra packages and gives the same graph every time.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.inference.onnx_backend import INPUT, OUTPUT, OnnxClassifier
from deepfer.models.checkpoint import Calibration, Checkpoint
from deepfer.models.predict import predict_proba, to_input
from deepfer.version import __version__
from deepfer.models.pretrained import load_pretrained

log = logging.getLogger(__name__)

OPSET = 20


class ProbabilityModel(nn.Module):
    """``model`` with :func:`deepfer.models.predict.to_input` in front and a tempered softmax behind it.

    Args:
        model: a deepfer model.
        temperature: the logits are divided by it before the softmax (1: the plain softmax).

    Shape:
        - input: uint8 :math:`(N, H, W)`
        - output: float32 :math:`(N, C)`
    """

    def __init__(self, model: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model.eval()
        self.scale = 1.0 / float(temperature)  # a multiply, as in predict_proba: the same arithmetic

    def forward(self, faces: Tensor) -> Tensor:
        logits = self.model(to_input(faces, self.model.config))
        if self.scale != 1.0:  # no node for the plain softmax: such exports stay as they were
            logits = logits * self.scale
        return logits.softmax(1)


def metadata(ckpt: Checkpoint, calibrated: bool = True) -> dict[str, str]:
    """The ONNX metadata properties that describe a checkpoint's model; ``deepfer.calibration`` is
    the temperature in the graph: the checkpoint's, or 1 when exported ``calibrated=False``."""
    plain = Calibration()
    calibration = (ckpt.calibration or plain) if calibrated else plain
    return {
        "deepfer.format": "deepfer-onnx",
        "deepfer.version": __version__,
        "deepfer.labels": json.dumps(list(ckpt.labels)),
        "deepfer.preprocess": json.dumps(ckpt.preprocess.to_dict()),
        "deepfer.calibration": json.dumps(calibration.to_dict()),
        "deepfer.model": json.dumps(dataclasses.asdict(ckpt.config)),
    }


def export_onnx_bytes(model: nn.Module, ckpt: Checkpoint, opset: int = OPSET, calibrated: bool = True) -> bytes:
    """The serialised ONNX model of a deepfer model (see the module docstring).

    Args:
        model: the model (its weights are exported as they are).
        ckpt: its checkpoint (``labels``, ``preprocess``, ``config``, ``calibration``).
        opset: ONNX opset, >= 20 for the spatial transformer's ``AffineGrid``.
        calibrated: apply the checkpoint's temperature in the graph (``False``: the plain softmax).

    Returns:
        The ``.onnx`` file's bytes.
    """
    import onnx  # the [onnx] extra

    if opset < 20:
        raise ModelError(f"ONNX opset {opset} has no AffineGrid (the spatial transformer): use >= 20")
    size = int(ckpt.preprocess.size)
    temperature = ckpt.temperature if calibrated else 1.0
    wrapper = ProbabilityModel(model, temperature).eval()
    dummy = torch.zeros(2, size, size, dtype=torch.uint8)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
            torch.onnx.export(wrapper, (dummy,), buf, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                              opset_version=opset, dynamo=False)
    except Exception as exc:  # the exporter raises many types; report them as one model error
        first = (str(exc).strip().splitlines() or [""])[-1]
        raise ModelError(f"{ckpt.config.name}: ONNX export failed ({type(exc).__name__}: {first})") from None
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in metadata(ckpt, calibrated).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"deepfer {ckpt.config.name}: uint8 faces (N, {size}, {size}) -> probabilities"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(model: str | Path | None, out: str | Path, opset: int = OPSET, check: bool = True,
                calibrated: bool = True) -> dict[str, Any]:
    """Export shipped weights or a checkpoint to an ``.onnx`` file and check it against torch.

    Args:
        model: a shipped weights name or a checkpoint path (``None``: the shipped default).
        out: the ``.onnx`` file to write.
        opset: ONNX opset (>= 20).
        check: run 64 random faces through torch and onnxruntime and report the difference.
        calibrated: apply the checkpoint's temperature (``False``: the plain softmax).

    Returns:
        ``{"path", "opset", "labels", "temperature", "max_abs_diff"}`` (``max_abs_diff`` is ``None``
        without ``check``).

    Example:
        >>> export_onnx("runs/deep-emotion_fer2013/best.pt", "deep-emotion.onnx")  # doctest: +SKIP
    """
    net, ckpt = load_pretrained(model)
    data = export_onnx_bytes(net, ckpt, opset, calibrated)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    diff = parity(net, data, int(ckpt.preprocess.size), calibrated=calibrated) if check else None
    log.info("wrote %s (max |torch - onnx| = %s)", out, diff)
    return {"path": str(out), "opset": opset, "labels": list(ckpt.labels),
            "temperature": ckpt.temperature if calibrated else 1.0, "max_abs_diff": diff}


def parity(model: nn.Module, onnx_model: bytes | str | Path, size: int, n: int = 64, seed: int = 0,
           calibrated: bool = True) -> float:
    """Largest absolute difference between torch's and onnxruntime's probabilities on ``n``
    random uint8 faces (torch's with or without the model's temperature, as exported)."""
    faces = np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)
    ref = predict_proba(model, faces, calibrated=calibrated)
    got = OnnxClassifier(onnx_model).predict_proba(faces)
    return float(np.abs(ref - got).max())

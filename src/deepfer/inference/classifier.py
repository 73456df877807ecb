"""The backend choice of inference: a checkpoint (or shipped weights name) runs on torch, or is
exported to ONNX in memory for ``backend="onnx"``; an ``.onnx`` file runs on onnxruntime.

The classifiers themselves and the ensembling of several models live in
:mod:`deepfer.models.classifier`, shared with evaluation and distillation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepfer.errors import ModelError
from deepfer.models.classifier import Classifier, Source, build_classifier, torch_classifier

BACKENDS = ("torch", "onnx")


def load_classifier(model: Source | Sequence[Source] | None = None, backend: str | None = None,
                    batch_size: int = 256, tta: bool = False, labels: list[str] | None = None,
                    threads: int | None = None, calibrated: bool = True) -> Classifier:
    """Build the classifier for shipped weights, a checkpoint, an ``.onnx`` file or a model object.

    Args:
        model: a shipped weights name, a checkpoint (``.pt``), an ``.onnx`` export, a deepfer
            ``nn.Module`` or ``None`` for the shipped default; a list or tuple of these, or a
            shipped ensemble's name, is an :class:`~deepfer.models.classifier.EnsembleClassifier`
            (their probabilities are averaged; one listed twice weighs twice).
        backend: ``"torch"`` or ``"onnx"``; ``None`` picks onnx for ``.onnx`` files, torch otherwise.
        batch_size: faces per forward pass.
        tta: average with the mirrored face.
        labels: class names for an ``nn.Module`` (default: the first ``num_classes`` of FER2013's).
        threads: intra-op threads: torch's while classifying (default: torch's setting),
            onnxruntime's (default 2).
        calibrated: apply each checkpoint's temperature (default); ``False``: the plain softmax
            (an ``.onnx`` file must then have been exported without one).

    Returns:
        A :class:`~deepfer.models.classifier.Classifier`.

    Raises:
        ModelError: an unknown backend or model, or a combination that cannot work.
    """
    if backend not in (None, *BACKENDS):
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    onnx_kw: dict[str, Any] = {"batch_size": batch_size, "tta": tta, "calibrated": calibrated}
    if threads is not None:
        onnx_kw["threads"] = threads

    def one(source: Source | None) -> Classifier:
        if isinstance(source, (str, Path)) and str(source).lower().endswith(".onnx"):
            if backend == "torch":
                raise ModelError(f"{source}: an .onnx file runs on the onnx backend, not torch")
            from deepfer.inference.onnx_backend import OnnxClassifier

            return OnnxClassifier(source, **onnx_kw)
        torch_clf = torch_classifier(source, batch_size=batch_size, tta=tta, labels=labels, threads=threads,
                                     calibrated=calibrated)
        if backend != "onnx":
            return torch_clf
        from deepfer.inference.export import export_onnx_bytes
        from deepfer.inference.onnx_backend import OnnxClassifier

        return OnnxClassifier(export_onnx_bytes(torch_clf.model, torch_clf.checkpoint, calibrated=calibrated),
                              **onnx_kw)

    return build_classifier(model, one)

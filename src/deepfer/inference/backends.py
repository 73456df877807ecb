"""The backends that turn a model into a :class:`~deepfer.models.classifier.Classifier`, as a small
registry: ``torch`` runs a checkpoint (or shipped weights name, or model object), ``onnx`` runs an
``.onnx`` file on onnxruntime, or exports a checkpoint to ONNX in memory first, and ``ensemble``
averages several models, each on its backend.

The classifiers themselves and the ensembling live in :mod:`deepfer.models.classifier`, shared with
evaluation and distillation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deepfer.errors import ModelError
from deepfer.models.classifier import Classifier, ModelSource, combine, ensemble_sources, torch_classifier

__all__ = ["BACKENDS", "CLASSIFIERS", "load_classifier"]

BACKENDS = ("torch", "onnx")  # what a user may choose; an ensemble's members run on one of these


def _is_onnx(source: Any) -> bool:
    return isinstance(source, (str, Path)) and str(source).lower().endswith(".onnx")


def _torch(source: ModelSource | None, **options: Any) -> Classifier:
    if _is_onnx(source):
        raise ModelError(f"{source}: an .onnx file runs on the onnx backend, not torch")
    return torch_classifier(source, **options)


def _onnx(source: ModelSource | None, *, labels: Sequence[str] | None = None, threads: int | None = None,
          **options: Any) -> Classifier:
    from deepfer.inference.onnx_backend import OnnxClassifier

    onnx_kw = {**options, **({"threads": threads} if threads is not None else {})}
    if _is_onnx(source):
        return OnnxClassifier(source, **onnx_kw)  # type: ignore[arg-type]
    from deepfer.inference.export import export_onnx_bytes

    clf = torch_classifier(source, labels=labels, threads=threads, **options)
    return OnnxClassifier(export_onnx_bytes(clf.model, clf.checkpoint, calibrated=options["calibrated"]), **onnx_kw)


def _ensemble(sources: Sequence[ModelSource], *, backend: str | None = None, **options: Any) -> Classifier:
    pairs = ensemble_sources(sources)
    return combine([_one(s, backend, options) for s, _ in pairs], [n for _, n in pairs])


def _one(source: ModelSource | None, backend: str | None, options: dict[str, Any]) -> Classifier:
    name = backend or ("onnx" if _is_onnx(source) else "torch")
    return CLASSIFIERS[name](source, **options)


# name -> how a model (or, for "ensemble", a list of models) becomes a classifier.
CLASSIFIERS: dict[str, Callable[..., Classifier]] = {"torch": _torch, "onnx": _onnx, "ensemble": _ensemble}


def load_classifier(model: ModelSource | Sequence[ModelSource] | None = None, backend: str | None = None,
                    batch_size: int = 256, tta: bool = False, labels: list[str] | None = None,
                    threads: int | None = None, calibrated: bool = True) -> Classifier:
    """Build the classifier for shipped weights, a checkpoint, an ``.onnx`` file or a model object.

    Args:
        model: a shipped weights name, a checkpoint (``.pt``), an ``.onnx`` export, a deepfer
            ``nn.Module`` or ``None`` for the shipped default; a list or tuple of these is an
            :class:`~deepfer.models.classifier.EnsembleClassifier` (their probabilities are
            averaged; one listed twice weighs twice).
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
    options = {"batch_size": batch_size, "tta": tta, "labels": labels, "threads": threads, "calibrated": calibrated}
    if isinstance(model, (list, tuple)):
        return _ensemble(model, backend=backend, **options)
    return _one(model, backend, options)

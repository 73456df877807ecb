"""Face crops -> class probabilities, on torch or onnxruntime, behind one small interface.

:func:`load_classifier` picks the backend: a checkpoint (or shipped weights name) runs on torch, or
is exported to ONNX in memory for ``backend="onnx"``; an ``.onnx`` file runs on onnxruntime; a list
of models is an :class:`EnsembleClassifier` that averages their probabilities.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from deepfer.classify import predict_proba
from deepfer.errors import ModelError
from deepfer.labels import FER7
from deepfer.models.checkpoint import model_payload
from deepfer.weights import ensemble_members, load_pretrained

BACKENDS = ("torch", "onnx")


class Classifier(Protocol):
    """What the recognizer needs from a backend."""

    backend: str
    labels: list[str]
    size: int

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (N, len(labels)) for uint8 faces (N, size, size)."""
        ...


class TorchClassifier:
    """A deepfer model run by :func:`deepfer.classify.predict_proba` (the evaluation code path).

    Args:
        model: the model (put in eval mode).
        labels: class names in output order (a checkpoint's ``labels``).
        batch_size: faces per forward pass.
        tta: average each face's probabilities with its mirror image's.
        threads: torch intra-op threads while classifying (restored afterwards); ``None`` leaves
            torch's setting alone.
    """

    backend = "torch"

    def __init__(self, model: nn.Module, labels: list[str], batch_size: int = 256, tta: bool = False,
                 threads: int | None = None) -> None:
        config = getattr(model, "config", None)
        if config is None:
            raise ModelError(f"{type(model).__name__} is not a deepfer model (no `config`)")
        if config.in_chans != 1:
            raise ModelError(f"{config.name}: inference reads grayscale faces, the model takes "
                             f"{config.in_chans} channels")
        if len(labels) != config.num_classes:
            raise ModelError(f"{config.name}: {len(labels)} label names for {config.num_classes} outputs")
        self.model = model.eval()
        self.labels = list(labels)
        self.size = int(config.input_size)
        self.batch_size = batch_size
        self.tta = tta
        self.threads = threads

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (N, len(labels)) float32 for uint8 faces (N, size, size)."""
        if faces.ndim != 3 or faces.shape[1:] != (self.size, self.size):
            raise ModelError(f"expected uint8 faces of shape (N, {self.size}, {self.size}), got {faces.shape}")
        with _torch_threads(self.threads):
            return predict_proba(self.model, faces, self.batch_size, self.tta)


class EnsembleClassifier:
    """Averages the probabilities of several classifiers, as ``deepfer evaluate --weights A B``
    does: members must share their label names (in the same order) and input size.

    Args:
        members: the classifiers (any backends; each applies its own preprocessing).
        weights: each member's averaging weight (normalised to sum to 1); equal by default.

    Raises:
        ModelError: no members, members whose labels or input sizes differ, or bad weights.
    """

    def __init__(self, members: Sequence[Classifier], weights: Sequence[float] | None = None) -> None:
        if not members:
            raise ModelError("an ensemble needs at least one model")
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(members),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ModelError(f"an ensemble of {len(members)} models needs {len(members)} non-negative weights "
                             f"with a positive sum, got {list(weights or [])}")
        self.weights = w / w.sum()
        first = members[0]
        for i, m in enumerate(members[1:], 2):
            if list(m.labels) != list(first.labels):
                raise ModelError(f"cannot ensemble: model {i} predicts {list(m.labels)}, model 1 predicts "
                                 f"{list(first.labels)} (the label names and their order must match)")
            if m.size != first.size:
                raise ModelError(f"cannot ensemble: model {i} takes {m.size}x{m.size} faces, model 1 takes "
                                 f"{first.size}x{first.size}")
        self.members = list(members)
        self.labels = list(first.labels)
        self.size = int(first.size)
        self.backend = "+".join(dict.fromkeys(m.backend for m in members))

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """The members' weighted mean probabilities (N, len(labels)) float32 for uint8 faces (N, size, size)."""
        total = self.weights[0] * self.members[0].predict_proba(faces).astype(np.float64)
        for w, m in zip(self.weights[1:], self.members[1:], strict=True):
            total += w * m.predict_proba(faces)
        return total.astype(np.float32)


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_classifier(model: str | Path | nn.Module | Sequence[str | Path | nn.Module] | None = None,
                    backend: str | None = None, batch_size: int = 256, tta: bool = False,
                    labels: list[str] | None = None, threads: int | None = None) -> Classifier:
    """Build the classifier for shipped weights, a checkpoint, an ``.onnx`` file or a model object.

    Args:
        model: a shipped weights name, a checkpoint (``.pt``), an ``.onnx`` export, a deepfer
            ``nn.Module`` or ``None`` for the shipped default; a list or tuple of these, or a
            shipped ensemble's name, is an :class:`EnsembleClassifier` (their probabilities are
            averaged; one listed twice weighs twice).
        backend: ``"torch"`` or ``"onnx"``; ``None`` picks onnx for ``.onnx`` files, torch otherwise.
        batch_size: faces per forward pass.
        tta: average with the mirrored face.
        labels: class names for an ``nn.Module`` (default: the first ``num_classes`` of FER2013's).
        threads: intra-op threads: torch's while classifying (default: torch's setting),
            onnxruntime's (default 2).

    Returns:
        A :class:`Classifier`.

    Raises:
        ModelError: an unknown backend or model, or a combination that cannot work.
    """
    if backend not in (None, *BACKENDS):
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if isinstance(model, (str, Path)) and (named := ensemble_members(model)) is not None:
        model = named  # a shipped ensemble: its members
    if isinstance(model, (list, tuple)):
        # A name or path listed n times weighs n times; each distinct one is loaded and run once.
        counts = Counter(m if isinstance(m, nn.Module) else str(m) for m in model)
        members = [load_classifier(m, backend, batch_size, tta, labels, threads) for m in counts]
        return members[0] if len(members) == 1 else EnsembleClassifier(members, list(counts.values()))
    onnx_kw: dict[str, Any] = {"batch_size": batch_size, "tta": tta}
    if threads is not None:
        onnx_kw["threads"] = threads
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx"):
        if backend == "torch":
            raise ModelError(f"{model}: an .onnx file runs on the onnx backend, not torch")
        from deepfer.inference.onnx_backend import OnnxClassifier

        return OnnxClassifier(model, **onnx_kw)
    if isinstance(model, nn.Module):
        if not hasattr(model, "config"):
            raise ModelError(f"{type(model).__name__} is not a deepfer model (no `config`)")
        names = list(labels) if labels is not None else list(FER7[: model.config.num_classes])
        net = model.eval()
        ckpt = model_payload(net, names)
    else:
        net, ckpt = load_pretrained(model)
        names = list(ckpt["labels"])
    torch_clf = TorchClassifier(net, names, batch_size, tta, threads)
    if backend != "onnx":
        return torch_clf
    from deepfer.inference.export import export_onnx_bytes
    from deepfer.inference.onnx_backend import OnnxClassifier

    return OnnxClassifier(export_onnx_bytes(net, ckpt), **onnx_kw)

"""Face crops -> class probabilities behind one small interface, and the one place where an ensemble
averages its members: ``deepfer predict``, ``deepfer evaluate``, distillation's teachers and the
ensemble benchmark all go through :func:`ensemble_sources` and :func:`combine`.

A list of models is an :class:`EnsembleClassifier`: one listed n times weighs n times and is run
once. :func:`build_classifier` makes torch classifiers (evaluation's); inference's backend registry
adds ONNX (:func:`deepfer.inference.load_classifier`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from deepfer.errors import ModelError
from deepfer.labels import FER7
from deepfer.models.checkpoint import Checkpoint
from deepfer.models.predict import predict_proba, temperature_of
from deepfer.models.pretrained import load_checkpoint

__all__ = ["Classifier", "EnsembleClassifier", "ModelSource", "Relabelled", "TorchClassifier", "alignment_of",
           "build_classifier", "combine", "ensemble_sources", "torch_classifier", "weighted_mean"]

# What names one model: a shipped weights name, a checkpoint path or a deepfer model object.
ModelSource = str | Path | nn.Module


class Classifier(Protocol):
    """What the recognizer, evaluation and distillation need from a backend."""

    backend: str
    labels: list[str]
    size: int
    align: str  # the faces it takes: "none" (framed like FER2013) or "landmarks" (Preprocess.align)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (N, len(labels)) for uint8 faces (N, size, size)."""
        ...


class TorchClassifier:
    """A deepfer model run by :func:`deepfer.models.predict.predict_proba` (the evaluation code path).

    Args:
        model: the model (put in eval mode).
        labels: class names in output order (a checkpoint's ``labels``).
        batch_size: faces per forward pass.
        tta: average each face's probabilities with its mirror image's.
        threads: torch intra-op threads while classifying (restored afterwards); ``None`` leaves
            torch's setting alone.
        calibrated: apply the model's temperature (its checkpoint's calibration); ``False``: the
            plain softmax.
    """

    backend = "torch"

    def __init__(self, model: nn.Module, labels: Sequence[str], batch_size: int = 256, tta: bool = False,
                 threads: int | None = None, calibrated: bool = True) -> None:
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
        self.align = str(config.extra.get("align", "none"))
        self.batch_size = batch_size
        self.tta = tta
        self.threads = threads
        self.calibrated = calibrated
        self.temperature = temperature_of(model) if calibrated else 1.0  # what the scores are computed with
        self._checkpoint: Checkpoint | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, batch_size: int = 256, tta: bool = False,
                        threads: int | None = None, calibrated: bool = True) -> TorchClassifier:
        """The checkpoint's model (built here, with its calibration) with its labels."""
        clf = cls(ckpt.build(), ckpt.labels, batch_size, tta, threads, calibrated)
        clf._checkpoint = ckpt
        return clf

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint the model was loaded from (or one made from the model and its labels)."""
        return self._checkpoint if self._checkpoint is not None else Checkpoint.from_model(self.model, self.labels)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (N, len(labels)) float32 for uint8 faces (N, size, size)."""
        if faces.ndim != 3 or faces.shape[1:] != (self.size, self.size):
            raise ModelError(f"expected uint8 faces of shape (N, {self.size}, {self.size}), got {faces.shape}")
        with _torch_threads(self.threads):
            return predict_proba(self.model, faces, self.batch_size, self.tta, self.calibrated)


class Relabelled:
    """A classifier's probabilities for other label names: its columns ``columns`` (one per name of
    ``labels``), renormalised to sum to 1, e.g. a teacher with eight classes labelling a dataset
    with seven.

    Args:
        member: the classifier.
        labels: the class names of the output.
        columns: for each of ``labels``, the member's output column (from :func:`deepfer.labels.map_to_model`).
    """

    def __init__(self, member: Classifier, labels: Sequence[str], columns: Sequence[int] | np.ndarray) -> None:
        columns = np.asarray(columns, np.int64)
        if len(columns) != len(labels) or (columns < 0).any() or (columns >= len(member.labels)).any():
            raise ModelError(f"columns {columns.tolist()} do not pick one of {len(member.labels)} outputs per "
                             f"label of {list(labels)}")
        self.member = member
        self.labels = list(labels)
        self.columns = columns
        self.size = member.size
        self.align = alignment_of(member)
        self.backend = member.backend

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """The member's probabilities of ``labels`` (N, len(labels)), each row summing to 1."""
        p = self.member.predict_proba(faces)[:, self.columns]
        return p / np.maximum(p.sum(1, keepdims=True), 1e-12)


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
            if alignment_of(m) != alignment_of(first):
                raise ModelError(f"cannot ensemble: model {i} takes faces aligned by {alignment_of(m)!r}, model 1 "
                                 f"by {alignment_of(first)!r} (members must see the same crops)")
        self.members = list(members)
        self.labels = list(first.labels)
        self.size = int(first.size)
        self.align = alignment_of(first)
        self.backend = "+".join(dict.fromkeys(m.backend for m in members))

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """The members' weighted mean probabilities (N, len(labels)) float32 for uint8 faces (N, size, size)."""
        used = [(w, m) for w, m in zip(self.weights, self.members, strict=True) if w > 0]
        return weighted_mean([m.predict_proba(faces) for _, m in used], [w for w, _ in used]).astype(np.float32)


def alignment_of(clf: Classifier) -> str:
    """The faces a classifier takes (``Preprocess.align``): ``"none"`` for one that does not say."""
    return str(getattr(clf, "align", "none"))


def weighted_mean(probs: Sequence[np.ndarray], weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """``sum(w * p)`` over the members with a positive weight, in float64: how an ensemble averages.

    ``weights`` are used as given (an :class:`EnsembleClassifier`'s sum to 1).
    """
    total: np.ndarray | None = None
    for w, p in zip(weights, probs, strict=True):
        if w <= 0:
            continue
        term = w * np.asarray(p).astype(np.float64)
        total = term if total is None else total + term
    if total is None:
        raise ModelError("an ensemble needs at least one model with a positive weight")
    return total


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


def torch_classifier(source: ModelSource | None = None, *, batch_size: int = 256, tta: bool = False,
                     labels: Sequence[str] | None = None, threads: int | None = None,
                     calibrated: bool = True) -> TorchClassifier:
    """A :class:`TorchClassifier` for shipped weights, a checkpoint file or a model object.

    Args:
        source: a shipped weights name, a checkpoint (``.pt``), a deepfer ``nn.Module`` or
            ``None`` for the shipped default.
        batch_size: faces per forward pass.
        tta: average with the mirrored face.
        labels: class names for an ``nn.Module`` (default: the first ``num_classes`` of FER2013's);
            a checkpoint's own names are used for a file.
        threads: torch intra-op threads while classifying (default: torch's setting).
        calibrated: apply the checkpoint's temperature (default); ``False``: the plain softmax.

    Raises:
        ModelError: an unknown name, an unreadable checkpoint, or a model that is not a deepfer one.
    """
    if isinstance(source, nn.Module):
        if not hasattr(source, "config"):
            raise ModelError(f"{type(source).__name__} is not a deepfer model (no `config`)")
        names = list(labels) if labels is not None else list(FER7[: source.config.num_classes])
        return TorchClassifier(source, names, batch_size, tta, threads, calibrated)
    return TorchClassifier.from_checkpoint(load_checkpoint(source), batch_size, tta, threads, calibrated)


def ensemble_sources(source: ModelSource | Sequence[ModelSource] | None) -> list[tuple[ModelSource | None, int]]:
    """The distinct models of ``source`` and each one's weight: a list or tuple is an ensemble in
    which one listed n times weighs n times (and is loaded and run once); anything else is one model.

    Raises:
        ModelError: an empty list.
    """
    if not isinstance(source, (list, tuple)):
        return [(source, 1)]
    counts = Counter(m if isinstance(m, nn.Module) else str(m) for m in source)
    if not counts:
        raise ModelError("an ensemble needs at least one model")
    return list(counts.items())


def combine(members: Sequence[Classifier], weights: Sequence[float]) -> Classifier:
    """One member itself, or the :class:`EnsembleClassifier` of several with these weights."""
    return members[0] if len(members) == 1 else EnsembleClassifier(members, weights)


def build_classifier(source: ModelSource | Sequence[ModelSource] | None = None, *, batch_size: int = 256,
                     tta: bool = False, threads: int | None = None, calibrated: bool = True) -> Classifier:
    """The torch classifier of one model, or the weighted ensemble of several (see :func:`ensemble_sources`).

    Args:
        source: a shipped weights name, a checkpoint path, a model object or ``None`` (the shipped
            default); a list or tuple of these is an ensemble whose probabilities are averaged.
        batch_size, tta, threads, calibrated: as in :func:`torch_classifier`.

    Raises:
        ModelError: an empty list, or members whose labels or input sizes differ.
    """
    pairs = ensemble_sources(source)
    members = [torch_classifier(s, batch_size=batch_size, tta=tta, threads=threads, calibrated=calibrated)
               for s, _ in pairs]
    return combine(members, [n for _, n in pairs])

"""Knowledge distillation with precomputed teacher targets (Hinton et al. 2015, "Distilling the
knowledge in a neural network").

The teachers (shipped weights or checkpoint files; several are averaged, an ensemble) label every
training face once, with flip averaging, before training starts. The student then learns from

    target = (1 - alpha) * (label-smoothed one-hot label) + alpha * teacher probabilities

through the loop's soft-target cross-entropy, i.e. (1 - alpha) * CE(label) + alpha * CE(teacher).
Precomputing is exact for flip-only augmentation (the teacher's target is the average over both
mirror images) and the usual approximation under crops and erasing; it costs one teacher pass over
the training set instead of one per epoch. The targets are cached next to the checkpoints, keyed by
the teachers' file contents, so ``--resume`` does not recompute them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from deepfer.errors import DeepferError
from deepfer.files import atomic_open
from deepfer.labels import map_to_model
from deepfer.models.classifier import Classifier, ModelSource, Relabelled, combine, ensemble_sources, torch_classifier
from deepfer.train.mix import soft_targets
from deepfer.models.pretrained import resolve

log = logging.getLogger(__name__)


def teacher_probs(teachers: Sequence[str], faces: np.ndarray, labels: Sequence[str], batch_size: int = 512) -> np.ndarray:
    """Mean flip-averaged probabilities (N, len(labels)) of ``teachers`` on uint8 faces (N, H, W),
    columns in the order of ``labels`` (matched by name, then renormalised, per teacher): the
    weighted ensemble of :func:`deepfer.models.classifier.combine` (a teacher listed twice
    weighs twice)."""

    def teacher(name: ModelSource | None) -> Classifier:
        # The plain softmax, not the shipped temperature: the distilled recipes were trained on it.
        clf = torch_classifier(name, batch_size=batch_size, tta=True, calibrated=False)
        columns = map_to_model(list(labels), clf.labels, image_size=faces.shape[1:], input_size=clf.size,
                               where=f"teacher {name}")
        missing = [lab for lab, c in zip(labels, columns) if c < 0]
        if missing:
            raise DeepferError(f"teacher {name} has no class {', '.join(map(repr, missing))}: it cannot label this data")
        return Relabelled(clf, labels, columns)

    pairs = ensemble_sources(list(teachers))
    return combine([teacher(t) for t, _ in pairs], [n for _, n in pairs]).predict_proba(faces).astype(np.float32)


def distill_targets(
    hard: Tensor, teacher: Tensor | np.ndarray, alpha: float, smoothing: float = 0.0
) -> Tensor:
    """(1 - alpha) * smoothed one-hot(``hard``) + alpha * ``teacher``: soft targets (N, K)."""
    if not 0.0 < alpha <= 1.0:
        raise DeepferError(f"distill weight must be in (0, 1], got {alpha}")
    teacher = torch.as_tensor(teacher, dtype=torch.float32)
    return (1.0 - alpha) * soft_targets(hard, teacher.shape[1], smoothing) + alpha * teacher


def cached_teacher_probs(
    teachers: Sequence[str], faces: np.ndarray, labels: Sequence[str], cache: Path, batch_size: int = 512
) -> tuple[np.ndarray, float]:
    """``teacher_probs`` through a cache file; returns (probabilities, seconds the computation took,
    also when they come from the cache)."""
    key = _key(teachers, faces, labels)
    if cache.is_file():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                log.info("teacher targets from %s", cache)
                return z["probs"], float(z["seconds"]) if "seconds" in z else 0.0
    t0 = time.time()
    probs = teacher_probs(teachers, faces, labels, batch_size)
    seconds = time.time() - t0
    with atomic_open(cache) as f:  # each DDP rank writes its own temporary file
        np.savez(f, probs=probs, key=np.array(key), seconds=np.array(seconds))
    log.info("teacher targets from %s on %d faces in %.0f s", ", ".join(teachers), len(faces), seconds)
    return probs, seconds


def _key(teachers: Sequence[str], faces: np.ndarray, labels: Sequence[str]) -> str:
    h = hashlib.sha256()
    for name in teachers:
        h.update(resolve(name).read_bytes())
    h.update(np.ascontiguousarray(faces).tobytes())
    return json.dumps({"teachers": list(teachers), "labels": list(labels), "sha256": h.hexdigest()})

"""The one ensemble path: ``ensemble_sources`` and ``combine`` (repeats weigh more and run once),
``build_classifier`` on them, the weighted mean, and the per-member label reordering distillation uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfer.errors import ModelError
from deepfer.labels import FER7
from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint
from deepfer.models.classifier import (
    EnsembleClassifier,
    Relabelled,
    TorchClassifier,
    build_classifier,
    combine,
    ensemble_sources,
    torch_classifier,
    weighted_mean,
)
from deepfer.models.predict import predict_proba


def _ensemble(sources, member):  # type: ignore[no-untyped-def]
    pairs = ensemble_sources(sources)
    return combine([member(s) for s, _ in pairs], [n for _, n in pairs])


class Fixed:
    """A classifier that returns given probabilities and counts its calls."""

    backend = "fixed"
    size = 4

    def __init__(self, probs: np.ndarray, labels: list[str]) -> None:
        self.probs, self.labels, self.calls = probs.astype(np.float32), labels, 0

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.probs[: len(faces)]


def _probs(seed: int, n: int = 5, k: int = 3) -> np.ndarray:
    p = np.random.default_rng(seed).random((n, k)).astype(np.float32)
    return p / p.sum(1, keepdims=True)


def test_repeats_weigh_more_and_run_once() -> None:
    made: dict[str, Fixed] = {}

    def member(name):  # type: ignore[no-untyped-def]
        made[name] = Fixed(_probs(len(made)), ["a", "b", "c"])
        return made[name]

    ens = _ensemble(["A", "B", "A", "A"], member)
    assert isinstance(ens, EnsembleClassifier) and list(made) == ["A", "B"]
    np.testing.assert_allclose(ens.weights, [0.75, 0.25])
    faces = np.zeros((5, 4, 4), np.uint8)
    got = ens.predict_proba(faces)
    assert got.dtype == np.float32 and made["A"].calls == made["B"].calls == 1
    np.testing.assert_allclose(got, 0.75 * made["A"].probs + 0.25 * made["B"].probs, rtol=1e-6)
    assert _ensemble(["A", "A"], member) is made["A"]  # one model, listed twice, is itself
    assert _ensemble("B", member) is made["B"]
    with pytest.raises(ModelError, match="at least one"):
        _ensemble([], member)


def test_weighted_mean_skips_zero_weights_and_is_float64() -> None:
    a, b = _probs(0), _probs(1)
    got = weighted_mean([a, b, np.full_like(a, np.nan)], np.array([0.25, 0.75, 0.0]))
    assert got.dtype == np.float64
    assert np.array_equal(got, 0.25 * a.astype(np.float64) + 0.75 * b.astype(np.float64))
    ens = EnsembleClassifier([Fixed(a, ["x", "y", "z"]), Fixed(b, ["x", "y", "z"])], [0, 1])
    assert np.array_equal(ens.predict_proba(np.zeros((5, 4, 4), np.uint8)), b)
    assert ens.members[0].calls == 0  # a zero weight is not run


def test_relabelled_picks_columns_by_name_and_renormalises() -> None:
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.0, 0.5]], np.float32)
    member = Fixed(p, ["w", "x", "y", "z"])
    r = Relabelled(member, ["z", "x"], [3, 1])
    assert r.labels == ["z", "x"] and r.size == 4
    np.testing.assert_allclose(r.predict_proba(np.zeros((2, 4, 4), np.uint8)), [[0.4 / 0.6, 0.2 / 0.6], [1.0, 0.0]])
    with pytest.raises(ModelError, match="do not pick"):
        Relabelled(member, ["z", "x"], [3, 4])


def test_distillation_average_is_exactly_sum_over_n() -> None:
    """Per-teacher renormalised columns averaged as ``sum / n`` in float64: the ensemble gives the
    same float32 numbers for distinct teachers and for repeats."""
    labels = ["c", "a"]
    members = {name: Fixed(_probs(seed, n=50, k=3), ["a", "b", "c"]) for seed, name in enumerate("PQ")}

    def member(name):  # type: ignore[no-untyped-def]
        return Relabelled(members[name], labels, [2, 0])

    faces = np.zeros((50, 4, 4), np.uint8)
    for teachers in (["P"], ["P", "Q"], ["P", "P"], ["Q", "P"]):
        total = np.zeros((50, 2), np.float64)
        for t in teachers:
            p = members[t].probs[:, [2, 0]]
            total += p / np.maximum(p.sum(1, keepdims=True), 1e-12)
        expected = (total / len(teachers)).astype(np.float32)
        got = _ensemble(teachers, member).predict_proba(faces).astype(np.float32)
        assert np.array_equal(got, expected), teachers


def test_torch_classifier_from_a_file_a_name_and_a_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("deep-emotion").eval()
    Checkpoint.from_model(model, FER7, dataset="x").save(tmp_path / "m.pt")
    faces = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    from_file = torch_classifier(tmp_path / "m.pt", batch_size=4, tta=True)
    assert isinstance(from_file, TorchClassifier) and from_file.labels == list(FER7)
    assert from_file.checkpoint.info == {"dataset": "x"} and from_file.checkpoint.source == str(tmp_path / "m.pt")
    assert np.array_equal(from_file.predict_proba(faces), predict_proba(model, faces, 4, tta=True))
    from_model = torch_classifier(model, labels=list("abcdefg"))
    assert from_model.labels == list("abcdefg") and from_model.checkpoint.labels == tuple("abcdefg")
    shipped = build_classifier("deep-emotion_jaffe-random", batch_size=512)
    assert shipped.checkpoint.info["dataset"] == "jaffe" and shipped.batch_size == 512
    with pytest.raises(ModelError, match="not a deepfer model"):
        torch_classifier(torch.nn.Linear(2, 2))

"""Ensemble selection on validation (greedy forward selection with replacement)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfer.train.ensemble import greedy_selection, weights_of


def _probs(pred: list[int], conf: list[float], k: int = 2) -> np.ndarray:
    """One row per sample: ``conf`` on the predicted class, the rest spread over the others."""
    p = np.zeros((len(pred), k))
    for i, (c, q) in enumerate(zip(pred, conf)):
        p[i] = (1 - q) / (k - 1)
        p[i, c] = q
    return p


def test_complementary_models_are_combined_and_noise_is_left_out() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    a = _probs([0, 0, 0, 1, 0, 0], [0.9, 0.9, 0.9, 0.9, 0.6, 0.6])  # 4/6, sure where right
    b = _probs([1, 1, 0, 1, 1, 1], [0.6, 0.6, 0.9, 0.9, 0.9, 0.9])  # 4/6, the other mistakes
    noise = _probs([1, 0, 1, 0, 1, 0], [0.95] * 6)  # 3/6, confidently wrong half the time
    chosen = greedy_selection([noise, a, b], y)
    assert sorted(chosen) == [1, 2]  # a + b is right everywhere; the noise never helps
    mean = np.mean([[noise, a, b][i] for i in chosen], axis=0)
    assert (mean.argmax(1) == y).all()
    np.testing.assert_allclose(weights_of(chosen, 3), [0.0, 0.5, 0.5])


def test_stops_at_a_perfect_single_model_and_respects_max_size() -> None:
    y = np.array([0, 1, 1, 0])
    perfect = _probs([0, 1, 1, 0], [0.8] * 4)
    weak = _probs([0, 0, 1, 1], [0.7] * 4)
    assert greedy_selection([weak, perfect], y) == [1]
    assert len(greedy_selection([weak, perfect], y, max_size=1)) == 1


def test_ties_on_accuracy_go_to_the_lower_log_loss() -> None:
    y = np.array([0, 1])
    timid, sure = _probs([0, 1], [0.55, 0.55]), _probs([0, 1], [0.95, 0.95])
    assert greedy_selection([timid, sure], y)[0] == 1


def test_rejects_mismatched_candidates() -> None:
    with pytest.raises(ValueError, match="must all be"):
        greedy_selection([np.zeros((3, 2)), np.zeros((4, 2))], np.zeros(3, int))
    with pytest.raises(ValueError, match="at least one"):
        greedy_selection([], np.zeros(3, int))

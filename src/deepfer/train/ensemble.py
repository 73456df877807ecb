"""Choose an ensemble on the validation split: greedy forward selection with replacement
(Caruana et al., "Ensemble selection from libraries of models", ICML 2004).

Start from the best single model on validation, then repeatedly add the model (possibly one
already in) whose addition most improves the validation accuracy of the averaged probabilities
(ties go to the lower validation log-loss). Selection stops when no addition raises the accuracy:
every member costs inference time, so a lower log-loss alone does not earn one. The test
split plays no part: the chosen ensemble is tested once, afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import log_loss


def _score(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, -log-loss): higher is better on both, compared in that order. The log-loss is
    scikit-learn's (probabilities clipped at their dtype's eps; every column a class)."""
    nll = log_loss(y, probs, labels=np.arange(probs.shape[1]))
    return float((probs.argmax(1) == y).mean()), -float(nll)


def greedy_selection(val_probs: Sequence[np.ndarray], y_val: np.ndarray, max_size: int = 8) -> list[int]:
    """Indices into ``val_probs`` (one (N, K) probability array per candidate), repeats allowed:
    the ensemble is the mean of the chosen arrays. At most ``max_size`` picks."""
    if not len(val_probs):
        raise ValueError("greedy_selection needs at least one candidate")
    shapes = {p.shape for p in val_probs}
    if len(shapes) != 1 or len(y_val) != next(iter(shapes))[0]:
        raise ValueError(f"candidates' probabilities must all be (N, K) with N = {len(y_val)} labels; got {sorted(shapes)}")
    scores = [_score(p, y_val) for p in val_probs]
    chosen = [max(range(len(val_probs)), key=scores.__getitem__)]
    total = val_probs[chosen[0]].astype(np.float64)
    best = scores[chosen[0]]
    while len(chosen) < max_size:
        trials = [_score((total + p) / (len(chosen) + 1), y_val) for p in val_probs]
        i = max(range(len(val_probs)), key=trials.__getitem__)
        if trials[i][0] <= best[0]:
            break
        chosen.append(i)
        total += val_probs[i]
        best = trials[i]
    return chosen


def weights_of(chosen: Sequence[int], n: int) -> np.ndarray:
    """The averaging weight of each of ``n`` candidates implied by a selection with repeats."""
    counts = Counter(chosen)
    return np.array([counts[i] for i in range(n)], np.float64) / len(chosen)

"""Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks",
https://arxiv.org/abs/1706.04599): one temperature per checkpoint, fitted on its protocol's
validation split, stored in the checkpoint (:class:`deepfer.models.checkpoint.Calibration`) and
applied wherever probabilities come out.

The temperature minimises the negative log-likelihood of the validation labels under
``softmax(logits / T)``. That NLL is convex in ``1 / T`` (a log-sum-exp of a linear function minus a
linear one), so a bounded one-dimensional search (scipy's ``minimize_scalar``) finds the one
minimum; no learning rate or iteration count to tune. The test split is never read here. One case
has no minimum: when the model classifies every validation face correctly (small CK+ splits), the
NLL keeps falling as T -> 0 and the "fit" would make every score 1.0; then T stays 1 and the
checkpoint says why.
Measured on ``deepfer_fer2013-kd`` (the default until ``-wild``, FER2013 official protocol): T = 0.934 on
PublicTest, PrivateTest ECE 0.0292 -> 0.0276; on FER+ T = 0.71-0.76, ECE 0.063-0.067 -> 0.013-0.017
(``benchmarks/RESULTS.md``, "Calibration", has every shipped model).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from deepfer.data import load_dataset, split
from deepfer.data.alignment import for_model
from deepfer.errors import DeepferError
from deepfer.labels import map_to_model
from deepfer.models.checkpoint import Calibration, Checkpoint
from deepfer.models.predict import predict_logits
from deepfer.train.metrics import calibration_report
from deepfer.models.pretrained import load_checkpoint

__all__ = ["NotIdentifiable", "calibrate", "calibrated", "fit_temperature", "tempered_softmax"]

log = logging.getLogger(__name__)

# The search range of T. Trained networks land near 1 (0.9-1.5 in Guo et al.; 0.7-1.3 for ours); a
# fit at either end means the logits carry no usable signal, which is reported.
T_MIN, T_MAX = 0.05, 20.0


class NotIdentifiable(DeepferError):
    """The validation faces do not determine a temperature (every one is classified correctly)."""


def tempered_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` row by row, float64 (N, C)."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature that minimises the mean negative log-likelihood of ``y_true`` under
    ``softmax(logits / T)``, searched in [0.05, 20].

    Args:
        logits: (N, C) logits of the validation faces.
        y_true: (N,) their class indices.

    Returns:
        The fitted temperature.

    Raises:
        DeepferError: no faces, or shapes that do not match.
        NotIdentifiable: every face is classified correctly, so the NLL has no minimum (it falls
            towards 0 as T -> 0).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if z.ndim != 2 or y.shape != (len(z),) or len(z) == 0:
        raise DeepferError(f"fit_temperature: expected logits (N, C) and N labels with N > 0, got {z.shape} and {y.shape}")
    if (y < 0).any() or (y >= z.shape[1]).any():
        raise DeepferError(f"fit_temperature: labels must be in [0, {z.shape[1]}), got {y.min()}..{y.max()}")
    if (z.argmax(1) == y).all():
        raise NotIdentifiable(f"all {len(y)} validation faces are classified correctly: the NLL falls as the "
                              "temperature goes to 0, so none can be fitted")
    true = z[np.arange(len(z)), y]

    def nll(beta: float) -> float:  # beta = 1 / T: the NLL is convex in it
        scaled = beta * z
        top = scaled.max(1)
        return float(np.mean(top + np.log(np.exp(scaled - top[:, None]).sum(1)) - beta * true))

    res = minimize_scalar(nll, bounds=(1.0 / T_MAX, 1.0 / T_MIN), method="bounded", options={"xatol": 1e-7})
    temperature = 1.0 / float(res.x)
    if not T_MIN * 1.01 < temperature < T_MAX * 0.99:
        log.warning("fitted temperature %.3g is at the end of the search range [%g, %g]: the validation logits "
                    "barely predict the labels", temperature, T_MIN, T_MAX)
    return temperature


def calibrate(weights: str | Path, dataset: str, data_path: str, protocol: str, out: str | Path | None = None,
              seed: int = 0, dataset_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit a checkpoint's temperature on the validation split of ``protocol`` and store it.

    Args:
        weights: a shipped weights name or a checkpoint file (an earlier temperature is replaced:
            the fit reads the raw logits).
        dataset: the dataset it was trained on.
        data_path: the dataset's path.
        protocol: the protocol it was trained under (one fold); its validation split is used.
        out: where to write the calibrated checkpoint (``None``: do not write).
        seed: the protocol's seed (must match training for random splits).
        dataset_options: reader options (``size``, FER+ ``labels``, ...).

    Returns:
        ``{"weights", "out", "temperature", "fitted_on", "n", "before": {...}, "after": {...}}``;
        ``before`` / ``after`` are :func:`deepfer.train.metrics.calibration_report` on the validation
        split with temperature 1 and the fitted one.

    Raises:
        DeepferError: a k-fold protocol, no validation split, or data the checkpoint cannot read.
    """
    ckpt = load_checkpoint(weights)
    data = load_dataset(dataset, data_path, **dict(dataset_options or {}))
    sp = split(data, protocol, seed)
    if sp.is_kfold:
        raise DeepferError(f"{dataset}/{protocol} has {len(sp.folds)} folds, each with its own checkpoint: "
                           "calibrate one fold's checkpoint under a single-split protocol")
    index = sp.folds[0].val
    if len(index) == 0:
        raise DeepferError(f"{dataset}/{protocol} has no validation split to fit a temperature on")
    y = map_to_model(data.labels[index], ckpt.labels, image_size=data.image_size, input_size=ckpt.preprocess.size,
                     where=ckpt.where, hint=f"pass --size {ckpt.preprocess.size}")
    known = y >= 0
    logits = predict_logits(ckpt.build(), for_model(data, ckpt.preprocess.align).images[index[known]])
    y = y[known]
    fitted_on = f"{dataset}/{protocol} val, {len(y)} faces"
    try:
        temperature = fit_temperature(logits, y)
    except NotIdentifiable:
        temperature = 1.0
        fitted_on += " (all classified correctly: no temperature can be fitted, kept 1)"
        log.warning("%s: every one of the %d validation faces is classified correctly; temperature kept at 1",
                    weights, len(y))
    report: dict[str, Any] = {
        "weights": str(weights), "out": str(out) if out is not None else None, "temperature": temperature,
        "fitted_on": fitted_on, "n": int(len(y)), "skipped_unknown_class": int((~known).sum()),
        "before": calibration_report(tempered_softmax(logits, 1.0), y),
        "after": calibration_report(tempered_softmax(logits, temperature), y),
    }
    if out is not None:
        calibrated(ckpt, temperature, fitted_on).save(out)
    log.info("%s: temperature %.4f on %s (NLL %.4f -> %.4f)", weights, temperature, fitted_on,
             report["before"]["nll"], report["after"]["nll"])
    return report


def calibrated(ckpt: Checkpoint, temperature: float, fitted_on: str) -> Checkpoint:
    """``ckpt`` with its calibration set (weights, labels and everything else unchanged)."""
    return dataclasses.replace(ckpt, calibration=Calibration(temperature, fitted_on))

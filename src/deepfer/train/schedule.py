"""Learning-rate schedules: over a number of epochs (the recipes' ``epochs``), or over a time
budget (``minutes``), so that a recipe fits a fixed amount of GPU time.

Both have the same shape: a linear warm-up, then a cosine decay to zero (``cosine``; ``onecycle``
is the same with a warm-up of 10% of the run when the recipe sets none; ``none`` holds the rate
after the warm-up). The epoch schedule is a function of the optimisation step. The budget schedule
is the same curve as a function of the elapsed time: the rate at any moment is the one the epoch
schedule would have at the same share of the run, and training stops when the budget is spent,
mid-epoch if need be. Time rather than a step count estimated from a measured step time, because
runs that share a GPU change speed as the others start and finish (a step count measured while
eight runs start would be off by the time they settle); the price is that a budgeted run is not
reproducible step for step (its rates depend on the clock) and ``--resume`` continues the curve
from the time the checkpoint had spent, not exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from deepfer.train.config import TrainConfig

__all__ = ["BudgetSchedule", "EpochSchedule", "Schedule", "cosine_factor", "lr_factor"]


def cosine_factor(progress: float, warm: float, kind: str) -> float:
    """The rate's share of its peak at ``progress`` (0-1) of a run whose warm-up ends at ``warm``
    (0-1): linear up to ``warm``, then cosine down to 0 at 1 (``kind`` ``none``: flat after)."""
    if progress < warm:
        return progress / warm
    if kind == "none":
        return 1.0
    t = (progress - warm) / max(1e-12, 1.0 - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def lr_factor(cfg: TrainConfig, step: int, total: int, per_epoch: int) -> float:
    """The rate's share of ``cfg.lr`` at optimisation ``step`` of ``total``: linear warm-up over
    ``warmup_epochs`` (``onecycle`` without one: the first 10% of the steps), then cosine."""
    warm = int(cfg.warmup_epochs * per_epoch)
    if cfg.scheduler == "onecycle" and warm == 0:
        warm = int(0.1 * total)
    if step < warm:
        return (step + 1) / warm
    if cfg.scheduler == "none":
        return 1.0
    t = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


class Schedule(Protocol):
    """What the loop asks a schedule: the rate before each step, and whether the run is over
    (before each step, and before each epoch with the epoch's first step)."""

    def factor(self, step: int) -> float:
        """The rate's share of its peak at global optimisation ``step``."""

    def finished(self, step: int) -> bool:
        """Whether the run is over (before taking ``step``)."""


@dataclass(frozen=True)
class EpochSchedule:
    """:func:`lr_factor` over the recipe's ``epochs`` epochs of ``per_epoch`` steps."""

    cfg: TrainConfig
    per_epoch: int

    def factor(self, step: int) -> float:
        return lr_factor(self.cfg, step, self.per_epoch * self.cfg.epochs, self.per_epoch)

    def finished(self, step: int) -> bool:
        return step >= self.per_epoch * self.cfg.epochs


@dataclass
class BudgetSchedule:
    """The same warm-up and decay over ``seconds`` of wall-clock time, counted from the moment the
    schedule is made plus ``spent`` (the time a resumed run had already used).

    The warm-up keeps the recipe's proportion: ``warmup_epochs / epochs`` of the budget, or 10% for
    ``onecycle`` without one (the recipe's ``epochs`` sets nothing else under a budget).
    """

    cfg: TrainConfig
    seconds: float
    spent: float = 0.0
    start: float = field(default_factory=lambda: time.perf_counter())

    @property
    def warm(self) -> float:
        if self.cfg.warmup_epochs > 0:
            return min(1.0, self.cfg.warmup_epochs / self.cfg.epochs)
        return 0.1 if self.cfg.scheduler == "onecycle" else 0.0

    def elapsed(self) -> float:
        """Seconds of the budget used so far."""
        return self.spent + time.perf_counter() - self.start

    def factor(self, step: int) -> float:
        return cosine_factor(min(1.0, max(0.0, self.elapsed() / self.seconds)), self.warm, self.cfg.scheduler)

    def finished(self, step: int) -> bool:
        return self.elapsed() >= self.seconds

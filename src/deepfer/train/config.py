"""Training recipes as frozen dataclasses, read from YAML/JSON files in ``configs/`` and
overridden from the command line; every checkpoint stores the recipe it was trained with."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deepfer.errors import DeepferError


@dataclass(frozen=True)
class TrainConfig:
    """One training run: model, data, protocol and optimisation settings."""

    model: str = "deep-emotion"
    dataset: str = "fer2013"
    data: str = ""
    protocol: str = "official"
    fold: int | None = None  # k-fold protocols: train only this fold (None = every fold)
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    init: str | None = None  # checkpoint to start from (fine-tuning); the head is re-made if classes differ
    epochs: int = 60
    minutes: float = 0.0  # time budget: train this long on a schedule over the time instead of `epochs`; 0 = off
    batch_size: int = 128
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    fc_l2: float = 0.0  # the papers' lambda * ||W_fc||^2
    scheduler: str = "cosine"  # cosine | onecycle | none
    warmup_epochs: float = 0.0
    augment: str = "basic"  # none | flip | basic | strong | wild
    label_smoothing: float = 0.0
    soft_labels: bool = False  # train on the vote distribution where the data has one (FER+)
    mixup: float = 0.0  # Beta(alpha, alpha) of batch-level mixup; 0 = off (train/mix.py)
    cutmix: float = 0.0  # Beta(alpha, alpha) of CutMix; 0 = off; with mixup, one of the two per batch
    mix_prob: float = 1.0  # share of batches mixed when mixup or cutmix is on
    eac: float = 0.0  # weight of the erasing attention consistency loss (train/eac.py); 0 = off
    teacher: list[str] = field(default_factory=list)  # weights distilled from (train/distill.py), averaged
    distill: float = 0.0  # share of the target given to the teachers' probabilities; 0 = off
    ema: float = 0.0  # decay of an exponential moving average of the weights (torch.optim.swa_utils), validated,
    #                   selected and saved in place of the raw weights; 0 = off
    patience: int = 0  # early stopping on validation accuracy; 0 = off
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave torch's default
    eval_batch_size: int = 512
    precision: str = "auto"  # auto (bf16 autocast on CUDA, float32 elsewhere) | float32 | bfloat16
    out: str = "runs/default"

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "minutes": self.minutes >= 0,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "optimizer": self.optimizer in ("adam", "adamw", "sgd"),
            "scheduler": self.scheduler in ("cosine", "onecycle", "none"),
            "augment": self.augment in ("none", "flip", "basic", "strong", "wild"),
            "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
            "fc_l2": self.fc_l2 >= 0,
            "mixup": self.mixup >= 0,
            "cutmix": self.cutmix >= 0,
            "mix_prob": 0.0 <= self.mix_prob <= 1.0,
            "eac": self.eac >= 0,
            "distill": 0.0 <= self.distill <= 1.0,
            "ema": 0.0 <= self.ema < 1.0,
            "precision": self.precision in ("auto", "float32", "bfloat16"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise DeepferError(f"invalid training option(s): {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        if (self.distill > 0) != bool(self.teacher):
            raise DeepferError(f"distillation needs both teacher weights and a distill weight in (0, 1]; got "
                               f"teacher={self.teacher!r}, distill={self.distill!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a YAML/JSON file, with non-None ``overrides`` applied on top."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DeepferError(f"{p}: no such config file")
        try:
            loaded = yaml.safe_load(p.read_text()) if p.suffix in (".yaml", ".yml") else json.loads(p.read_text())
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise DeepferError(f"{p}: not a valid config file ({exc})") from None
        if not isinstance(loaded, dict):
            raise DeepferError(f"{p}: a config file must hold a mapping of options")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DeepferError(f"unknown training option(s): {', '.join(unknown)}")
    return TrainConfig(**values)

"""The model registry: one dict from architecture name to model class, and the frozen
``ModelConfig`` every model is built from (and every checkpoint stores).

Every registered model exposes the same surface, so training, explanation and inference need no
per-model cases: ``forward(x) -> (B, num_classes)`` logits, ``forward_features(x)`` -> the last conv
feature map, ``forward_head(features)``, ``cam_layer`` (the module Grad-CAM hooks), ``stn`` (the
spatial transformer or ``None``), ``fc_weights()`` (for the L2 penalty) and ``config``. Model files
import this module and register themselves; :mod:`deepfer.models` imports them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import Tensor, nn

from deepfer.errors import ModelError


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model, JSON-serialisable through ``dataclasses.asdict``.

    Models take ``(B, in_chans, input_size, input_size)`` float images already normalised as
    ``(pixel / 255 - mean) / std``; preprocessing reads ``mean`` and ``std`` from here so that it
    always matches the weights. ``extra`` holds the architecture's own options (widths, flags);
    its keys are fixed by the architecture's ``default_config``.
    """

    name: str
    num_classes: int = 7
    in_chans: int = 1
    input_size: int = 48
    dropout: float = 0.5
    mean: float = 0.5
    std: float = 0.25
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ModelError(f"{self.name}: num_classes must be >= 2, got {self.num_classes}")
        if self.in_chans < 1 or self.input_size < 1:
            raise ModelError(
                f"{self.name}: in_chans and input_size must be positive, got "
                f"in_chans={self.in_chans}, input_size={self.input_size}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"{self.name}: dropout must be in [0, 1), got {self.dropout}")
        if self.std <= 0:
            raise ModelError(f"{self.name}: std must be > 0, got {self.std}")
        # A private copy, so that a caller's dict (or a class-level default) is never shared.
        object.__setattr__(self, "extra", dict(self.extra))


_ModelT = TypeVar("_ModelT", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig)) - {"name", "extra"}


def register_model(fn: _ModelT) -> _ModelT:
    """Register a model under ``fn.default_config.name``; usable as a class decorator.

    ``fn`` is called with one ``ModelConfig`` and returns the model; its ``default_config``
    attribute gives the name, the defaults and the accepted ``extra`` keys.
    """
    default = getattr(fn, "default_config", None)
    if not isinstance(default, ModelConfig):
        raise ModelError(f"register_model: {fn!r} has no ModelConfig `default_config` attribute")
    if default.name in _MODELS:
        raise ModelError(f"register_model: a model named {default.name!r} is already registered")
    _MODELS[default.name] = fn
    return fn


def list_models() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_MODELS)


def _lookup(name: str) -> Callable[..., nn.Module]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; available: {', '.join(list_models())}"
        ) from None


def complete_config(config: ModelConfig) -> ModelConfig:
    """``config`` with the architecture's default ``extra`` options filled in.

    Raises ModelError for an unknown architecture or an ``extra`` key it does not accept, so that
    a typo in a config file fails loudly instead of being ignored.
    """
    default = _lookup(config.name).default_config
    unknown = sorted(set(config.extra) - set(default.extra))
    if unknown:
        raise ModelError(
            f"{config.name}: unknown option(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(sorted(_CONFIG_FIELDS | set(default.extra)))}"
        )
    return dataclasses.replace(config, extra={**default.extra, **config.extra})


def model_config(name: str, num_classes: int | None = None, **kwargs: Any) -> ModelConfig:
    """The config ``create_model`` would build ``name`` from, without building it.

    Keyword arguments override ``ModelConfig`` fields or, for the architecture's own options,
    entries of ``extra`` (``model_config("deepfer", widths=[...])``).
    """
    extra: dict[str, Any] = dict(kwargs.pop("extra", None) or {})
    fields = {key: value for key, value in kwargs.items() if key in _CONFIG_FIELDS}
    # Anything that is not a ModelConfig field is an architecture option; complete_config
    # rejects the ones the architecture does not know.
    extra.update({key: value for key, value in kwargs.items() if key not in _CONFIG_FIELDS})
    if num_classes is not None:
        fields["num_classes"] = num_classes
    default = _lookup(name).default_config
    return complete_config(dataclasses.replace(default, extra=extra, **fields))


def create_model(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("deep-emotion", num_classes=8)``.

    Accepts the same overrides as :func:`model_config`, so
    ``create_model(**dataclasses.asdict(model.config))`` rebuilds an identical architecture.
    Loading weights is not done here.
    """
    return _lookup(name)(model_config(name, num_classes=num_classes, **kwargs))


def check_input(x: Tensor, config: ModelConfig, *, fixed_size: bool = True) -> None:
    """Raise ValueError unless ``x`` is a batch the model built from ``config`` accepts."""
    size_ok = not fixed_size or tuple(x.shape[2:]) == (config.input_size, config.input_size)
    if x.ndim != 4 or x.shape[1] != config.in_chans or not size_ok:
        hw = f"{config.input_size}, {config.input_size}" if fixed_size else "H, W"
        raise ValueError(
            f"{config.name}: expected input of shape (B, {config.in_chans}, {hw}), "
            f"got {tuple(x.shape)}"
        )

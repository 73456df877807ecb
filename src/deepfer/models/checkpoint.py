"""Self-describing checkpoints: weights + model config + label names + preprocessing + calibration
(+ the training state of a run's ``last.pt``), so a model is rebuilt from the file alone.

:class:`Checkpoint` is the only code that reads or writes checkpoint files. Files are loaded with
``weights_only=True`` (no pickle code runs) and validated field by field, so a damaged or foreign
file is one :class:`~deepfer.errors.ModelError` naming the file and the field. Integrity is checked
three ways: the zip container's CRC-32s (any torch file), the sha256 digest of the tensors that
deepfer writes into every checkpoint, and, for the weights shipped in the package, the sha256 of the
whole file (:mod:`deepfer.models.pretrained`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.files import atomic_open, sha256_bytes
from deepfer.models.registry import ModelConfig, create_model, list_models

__all__ = ["DIGEST_KEY", "FORMAT", "FORMAT_VERSION", "Calibration", "Checkpoint", "Preprocess", "TrainingState",
           "tensor_digest"]

log = logging.getLogger(__name__)

FORMAT = "deepfer-checkpoint"
FORMAT_VERSION = 1
# The sha256 of the state dict's tensors (see tensor_digest). An optional key, so the format
# version is unchanged and older deepfer versions still read the files.
DIGEST_KEY = "tensors_sha256"
# Optional too: files without it (all written before calibration existed) load with temperature 1.
CALIBRATION_KEY = "calibration"
ALIGNMENTS = ("none", "landmarks")  # Preprocess.align
_INT_FIELDS = ("num_classes", "in_chans", "input_size")
# Far above any deepfer model (48 to 112 px, 7 or 8 classes, 1 or 3 channels): a file claiming more
# is refused before its model is built.
_INT_LIMITS = {"num_classes": 1000, "in_chans": 4, "input_size": 512}
_FLOAT_FIELDS = ("dropout", "mean", "std")
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig))
_noticed: set[str] = set()  # files whose missing digest was already reported


@dataclass(frozen=True)
class Preprocess:
    """What a face goes through before the model: aligned on its landmarks if ``align`` is
    ``"landmarks"`` (:mod:`deepfer.vision.align`; ``"none"``: framed like FER2013 only), resized
    to ``size`` x ``size``, grey if ``grayscale``, then ``(pixel / 255 - mean) / std``.

    ``align`` comes from the model's ``extra["align"]`` (``prior-attention`` has one); files
    written before it existed have no ``align`` key and read as ``"none"``.
    """

    size: int
    mean: float
    std: float
    grayscale: bool
    align: str = "none"

    @classmethod
    def from_config(cls, config: ModelConfig) -> Preprocess:
        """The preprocessing a model built from ``config`` expects."""
        return cls(config.input_size, config.mean, config.std, config.in_chans == 1,
                   str(config.extra.get("align", "none")))

    def to_dict(self) -> dict[str, Any]:
        """As stored in the file (and in an ONNX export's ``deepfer.preprocess``); ``align`` only
        when it is not ``"none"``, so files of models without alignment stay as they were."""
        out = dataclasses.asdict(self)
        if out["align"] == "none":
            del out["align"]
        return out


@dataclass(frozen=True)
class Calibration:
    """What turns the model's logits into probabilities: ``softmax(logits / temperature)``.

    Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks",
    https://arxiv.org/abs/1706.04599): one number fitted on the validation split by
    :mod:`deepfer.train.calibrate` so that the scores match how often the model is right; it
    never changes the top class. ``fitted_on`` says on what (``"fer2013/official val, 3589 faces"``).

    Raises:
        ModelError: a temperature that is not a finite positive number.
    """

    temperature: float = 1.0
    fitted_on: str = ""

    def __post_init__(self) -> None:
        problem = _temperature_problem(self.temperature)
        if problem:
            raise ModelError(f"calibration: {problem}")
        object.__setattr__(self, "temperature", float(self.temperature))

    def to_dict(self) -> dict[str, Any]:
        """As stored in the file (and in an ONNX export's ``deepfer.calibration``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class TrainingState:
    """What ``--resume`` needs besides the weights: the optimizer's state, torch's CPU random
    generator state and the loop's own state (epoch, history, best validation score, ...)."""

    optimizer: dict[str, Any]
    rng: Tensor
    loop: dict[str, Any]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """One checkpoint: everything needed to rebuild the model, and optionally to resume training.

    Attributes:
        config: the model's configuration (``create_model`` rebuilds it from this).
        labels: class names in output order.
        state_dict: the weights (CPU tensors).
        preprocess: the face preprocessing the weights expect.
        info: free-form metadata (dataset, protocol, epoch, validation accuracy, train config, ...).
        training: the training state (``last.pt``), or ``None`` (``best.pt``, shipped weights).
        format_version: the file format version it was read from.
        source: the file it was read from (named in errors), or ``None``.
        calibration: the temperature its probabilities are computed with, or ``None`` (not
            calibrated: temperature 1, the plain softmax).

    Example:
        >>> ckpt = Checkpoint.from_model(model, FER7, dataset="fer2013")  # doctest: +SKIP
        >>> ckpt.save("runs/x/best.pt")  # doctest: +SKIP
        >>> Checkpoint.load("runs/x/best.pt").build()  # doctest: +SKIP
    """

    config: ModelConfig
    labels: tuple[str, ...]
    state_dict: dict[str, Tensor] = field(repr=False)
    preprocess: Preprocess
    info: dict[str, Any] = field(default_factory=dict)
    training: TrainingState | None = field(default=None, repr=False)
    format_version: int = FORMAT_VERSION
    source: str | None = None
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if len(self.labels) != self.config.num_classes:
            raise ModelError(f"{self.where}: field 'labels' has {len(self.labels)} names for the model's "
                             f"{self.config.num_classes} outputs")

    @property
    def temperature(self) -> float:
        """The calibration's temperature; 1.0 (the plain softmax) for an uncalibrated checkpoint."""
        return 1.0 if self.calibration is None else self.calibration.temperature

    @property
    def where(self) -> str:
        """How errors name this checkpoint: its file, else ``checkpoint``."""
        return self.source or "checkpoint"

    @classmethod
    def from_model(cls, model: nn.Module, labels: Sequence[str], *, training: TrainingState | None = None,
                   **info: Any) -> Checkpoint:
        """The checkpoint of a deepfer model (unwrapped from ``DistributedDataParallel``).

        Args:
            model: a deepfer model (it has a ``config``; a model built by :meth:`build` also has
                the ``calibration`` it keeps).
            labels: its class names, in output order.
            training: the training state to keep with it (``last.pt``).
            **info: metadata stored as ``info``.
        """
        model = getattr(model, "module", model)
        config = getattr(model, "config", None)
        if not isinstance(config, ModelConfig):
            raise ModelError(f"{type(model).__name__} is not a deepfer model (no `config`)")
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        calibration = getattr(model, "calibration", None)
        return cls(config, tuple(labels), state, Preprocess.from_config(config), dict(info), training,
                   calibration=calibration if isinstance(calibration, Calibration) else None)

    @classmethod
    def load(cls, path: str | Path, *, sha256: str | None = None) -> Checkpoint:
        """Read and validate a checkpoint file (weights only: no pickled code runs).

        Args:
            path: the ``.pt`` file.
            sha256: the digest the whole file must have (the shipped weights' ``SHA256SUMS``).

        Raises:
            ModelError: a missing, unreadable, damaged or altered file, or one whose fields are
                missing or of the wrong type; the message names the file and the field.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such checkpoint file")
        data = path.read_bytes()
        if sha256 is not None and sha256_bytes(data) != sha256:
            raise ModelError(f"{path}: the file's sha256 differs from the one shipped with deepfer (SHA256SUMS): "
                             "it is damaged or was changed; reinstall deepfer")
        _check_crcs(data, path)
        try:
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for damaged or foreign files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelError(f"{path}: not a readable deepfer checkpoint ({type(exc).__name__}: {first})") from None
        ckpt = cls.from_dict(raw, str(path))
        if DIGEST_KEY not in raw and sha256 is None and str(path.resolve()) not in _noticed:
            _noticed.add(str(path.resolve()))
            log.warning("%s: no %s digest (written by an older deepfer): its weights cannot be checked for damage",
                        path, DIGEST_KEY)
        return ckpt

    @classmethod
    def from_dict(cls, raw: Any, where: str = "checkpoint") -> Checkpoint:
        """Validate what ``torch.load`` returned for a checkpoint file and type it.

        Raises:
            ModelError: not a deepfer checkpoint, a missing or ill-typed field, or tensors that do not
                match the checkpoint's digest; the message names ``where`` and the field.
        """
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ModelError(f"{where}: not a deepfer checkpoint (no '{FORMAT}' marker)")
        version = raw.get("format_version", 0)
        if type(version) is not int:  # bool is an int subclass, and no version
            raise ModelError(f"{where}: field 'format_version' must be an integer, got {_kind(version)}")
        if version > FORMAT_VERSION:
            raise ModelError(f"{where}: checkpoint format {version} is newer than this deepfer")
        config = _config(_field(raw, "model", dict, where), where)
        labels = _field(raw, "labels", list, where)
        if not all(isinstance(name, str) for name in labels):
            raise ModelError(f"{where}: field 'labels' must be a list of str, got "
                             f"{', '.join(sorted({_kind(n) for n in labels if not isinstance(n, str)}))} in it")
        state = _field(raw, "state_dict", dict, where)
        for key, value in state.items():
            if not isinstance(key, str) or not isinstance(value, Tensor):
                raise ModelError(f"{where}: field 'state_dict' must map names to tensors, got "
                                 f"{_kind(key)} -> {_kind(value)}")
        preprocess = _preprocess(raw["preprocess"], where) if "preprocess" in raw else Preprocess.from_config(config)
        info = _field(raw, "info", dict, where) if "info" in raw else {}
        training = None
        if any(k in raw for k in ("optimizer", "rng", "state")):
            training = TrainingState(_field(raw, "optimizer", dict, where), _field(raw, "rng", Tensor, where),
                                     _field(raw, "state", dict, where))
        calibration = _calibration(raw[CALIBRATION_KEY], where) if CALIBRATION_KEY in raw else None
        if DIGEST_KEY in raw:
            stored = raw[DIGEST_KEY]
            if not isinstance(stored, str):
                raise ModelError(f"{where}: field '{DIGEST_KEY}' must be a hex string, got {_kind(stored)}")
            if tensor_digest(state) != stored:
                raise ModelError(f"{where}: the weights do not match the checkpoint's sha256 digest: the file is "
                                 "damaged or was changed")
        return cls(config, tuple(labels), state, preprocess, info, training, version, where, calibration)

    def to_dict(self) -> dict[str, Any]:
        """What the file holds (``torch.save`` of this dict), with the digest of the tensors."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": dataclasses.asdict(self.config),
            "labels": list(self.labels),
            "preprocess": self.preprocess.to_dict(),
            "state_dict": dict(self.state_dict),
            "info": self.info,
            DIGEST_KEY: tensor_digest(self.state_dict),
        }
        if self.calibration is not None:
            out[CALIBRATION_KEY] = self.calibration.to_dict()
        if self.training is not None:
            out.update(optimizer=self.training.optimizer, rng=self.training.rng, state=self.training.loop)
        return out

    def save(self, path: str | Path) -> None:
        """Write the checkpoint to ``path`` atomically: a kill mid-write never leaves a truncated file."""
        with atomic_open(path) as f:
            torch.save(self.to_dict(), f)

    def build(self) -> nn.Module:
        """The model this checkpoint describes, with its weights, in eval mode.

        The model keeps the checkpoint's calibration as ``model.calibration`` (``None`` if it has
        none), which :func:`deepfer.models.predict.predict_proba` applies; it is not part of the
        state dict, so the weights' keys do not change.

        Raises:
            ModelError: the weights do not fit the architecture.
        """
        cfg = dataclasses.asdict(self.config)
        name = cfg.pop("name")
        # First without memory (torch's meta device): a file that claims a size its weights do not
        # have is refused before the model it describes is allocated.
        try:
            with torch.device("meta"):
                shapes = {k: tuple(v.shape) for k, v in create_model(name, **cfg).state_dict().items()}
        except ModelError as exc:
            raise ModelError(f"{self.where}: {exc}") from None
        except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
            raise ModelError(f"{self.where}: model {name!r} cannot be built from the file's options "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
        wrong = [k for k, v in self.state_dict.items() if k in shapes and tuple(v.shape) != shapes[k]]
        if wrong:
            k = wrong[0]
            raise ModelError(f"{self.where}: weights do not fit model {name!r}: {len(wrong)} tensor(s) of another "
                             f"shape, e.g. {k} is {list(self.state_dict[k].shape)} in the file, "
                             f"{list(shapes[k])} in the model its options describe")
        model = create_model(name, **cfg)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise ModelError(f"{self.where}: weights do not fit model {name!r} ({' '.join(str(exc).split())[:300]})") from None
        model.calibration = self.calibration
        return model.eval()

    def for_inference(self, half: bool = True) -> Checkpoint:
        """The part of the checkpoint that inference needs: no training state.

        ``half`` stores the floating-point weights as float16, halving the file; loading copies them
        into the float32 model (``load_state_dict`` casts), so the model still runs in float32. The
        stored dtype is recorded in ``info["stored_dtype"]``.
        """
        state = dict(self.state_dict)
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        info = {**self.info, "stored_dtype": "float16" if half else "float32"}
        return dataclasses.replace(self, state_dict=state, info=info, training=None)


def tensor_digest(state_dict: dict[str, Tensor]) -> str:
    """The sha256 of a state dict: each tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes; their count follows from the header
    return h.hexdigest()


def _check_crcs(data: bytes, path: Path) -> None:
    """Refuse a zip-format torch file whose members fail their CRC-32: torch itself does not check
    them, so damaged weights would load silently."""
    if not data.startswith(b"PK"):
        return  # not a zip (an old torch format or not torch at all): torch.load decides
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load reports it
    with archive:
        for member in archive.infolist():
            # torch stores members uncompressed; a CRC of 0 means it was written without CRC-32s
            # (torch.serialization.set_crc32_options(False)).
            if member.compress_type != zipfile.ZIP_STORED or (member.CRC == 0 and member.file_size):
                continue
            try:
                archive.read(member)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
                raise ModelError(f"{path}: damaged checkpoint: {member.filename} fails its integrity check "
                                 f"({' '.join(str(exc).split())})") from None


def _kind(value: Any) -> str:
    return type(value).__name__


def _field(raw: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in raw:
        raise ModelError(f"{where}: field '{key}' is missing")
    value = raw[key]
    if not isinstance(value, kind):
        raise ModelError(f"{where}: field '{key}' must be a {kind.__name__}, got {_kind(value)}")
    return value


def _config(model: dict[str, Any], where: str) -> ModelConfig:
    """The ``model`` field as a ModelConfig; fields missing from older files take their defaults."""
    unknown = sorted(str(k) for k in model if k not in _CONFIG_FIELDS)
    if unknown:
        raise ModelError(f"{where}: field 'model' has unknown key(s) {', '.join(unknown)}")
    name = model.get("name")
    if not isinstance(name, str):
        raise ModelError(f"{where}: field 'model.name' must be a str, got {_kind(name)}")
    if name not in list_models():
        raise ModelError(f"{where}: field 'model.name': unknown model {name!r}; available: {', '.join(list_models())}")
    for key in _INT_FIELDS:
        if key in model and type(model[key]) is not int:
            raise ModelError(f"{where}: field 'model.{key}' must be an integer, got {_kind(model[key])}")
    for key, top in _INT_LIMITS.items():
        if key in model and not 1 <= model[key] <= top:
            raise ModelError(f"{where}: field 'model.{key}' must be in 1..{top}, got {model[key]}")
    for key in _FLOAT_FIELDS:
        if key in model and (type(model[key]) not in (int, float)):
            raise ModelError(f"{where}: field 'model.{key}' must be a number, got {_kind(model[key])}")
    extra = model.get("extra", {})
    if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
        raise ModelError(f"{where}: field 'model.extra' must be a dict of options, got {_kind(extra)}")
    try:
        return ModelConfig(**model)
    except ModelError as exc:  # out of range (num_classes < 2, std <= 0, ...)
        raise ModelError(f"{where}: field 'model': {exc}") from None


def _preprocess(value: Any, where: str) -> Preprocess:
    if not isinstance(value, dict):
        raise ModelError(f"{where}: field 'preprocess' must be a dict, got {_kind(value)}")
    kinds = {"size": (int,), "mean": (int, float), "std": (int, float), "grayscale": (bool,)}
    for key, types in kinds.items():
        if key not in value:
            raise ModelError(f"{where}: field 'preprocess.{key}' is missing")
        if type(value[key]) not in types:
            raise ModelError(f"{where}: field 'preprocess.{key}' must be a {types[-1].__name__}, got {_kind(value[key])}")
    align = value.get("align", "none")
    if align not in ALIGNMENTS:
        raise ModelError(f"{where}: field 'preprocess.align' must be one of {', '.join(ALIGNMENTS)}, got {align!r}")
    if not 1 <= value["size"] <= _INT_LIMITS["input_size"]:
        raise ModelError(f"{where}: field 'preprocess.size' must be in 1..{_INT_LIMITS['input_size']}, got {value['size']}")
    return Preprocess(value["size"], value["mean"], value["std"], value["grayscale"], align)


def _calibration(value: Any, where: str) -> Calibration:
    if not isinstance(value, dict):
        raise ModelError(f"{where}: field '{CALIBRATION_KEY}' must be a dict, got {_kind(value)}")
    unknown = sorted(str(k) for k in value if k not in ("temperature", "fitted_on"))
    if unknown:
        raise ModelError(f"{where}: field '{CALIBRATION_KEY}' has unknown key(s) {', '.join(unknown)}")
    if "temperature" not in value:
        raise ModelError(f"{where}: field '{CALIBRATION_KEY}.temperature' is missing")
    fitted_on = value.get("fitted_on", "")
    if not isinstance(fitted_on, str):
        raise ModelError(f"{where}: field '{CALIBRATION_KEY}.fitted_on' must be a str, got {_kind(fitted_on)}")
    problem = _temperature_problem(value["temperature"])
    if problem:
        raise ModelError(f"{where}: field '{CALIBRATION_KEY}.temperature': {problem}")
    return Calibration(value["temperature"], fitted_on)


def _temperature_problem(t: Any) -> str:
    """What is wrong with ``t`` as a temperature ("" if nothing)."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        return f"temperature must be a finite number > 0, got {t!r}"
    return ""

"""Self-describing checkpoints: weights + model config + label names + preprocessing, so a model
is rebuilt from the file alone. Loaded with ``weights_only=True`` (no pickle code runs)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepfer.errors import ModelError

FORMAT = "deepfer-checkpoint"
FORMAT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a kill mid-write never
    leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; checkpoints are shared like any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_payload(model: nn.Module, labels: list[str], **info: Any) -> dict[str, Any]:
    """What a checkpoint holds about the model itself (no optimizer state)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    config = model.config
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": dataclasses.asdict(config),
        "labels": list(labels),
        "preprocess": {"size": config.input_size, "mean": config.mean, "std": config.std,
                       "grayscale": config.in_chans == 1},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": info,
    }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint dict (weights only, no code execution)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{path}: not a readable deepfer checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{path}: not a deepfer checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format {ckpt['format_version']} is newer than this deepfer")
    return ckpt


def build_from_checkpoint(ckpt: dict[str, Any], where: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights; returned in eval mode."""
    from deepfer.models import create_model

    cfg = dict(ckpt["model"])
    name = cfg.pop("name")
    model = create_model(name, **cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"{where}: weights do not fit model {name!r} ({exc})") from None
    return model.eval()


def inference_copy(src: str | Path, dst: str | Path, half: bool = True) -> dict[str, Any]:
    """Write the part of checkpoint ``src`` that inference needs (no optimizer, no RNG) to ``dst``.

    ``half`` stores the floating-point weights as float16, halving the file; loading copies them
    into the float32 model (``load_state_dict`` casts), so the model still runs in float32. The
    stored dtype is recorded in ``info["stored_dtype"]``.
    """
    ckpt = read_checkpoint(src)
    keep = {k: ckpt[k] for k in ("format", "format_version", "model", "labels", "preprocess", "state_dict", "info")}
    if half:
        keep["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in keep["state_dict"].items()}
    keep["info"] = {**keep["info"], "stored_dtype": "float16" if half else "float32"}
    atomic_save(keep, dst)
    return keep


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Model (eval mode) and checkpoint metadata from a checkpoint file."""
    ckpt = read_checkpoint(path)
    return build_from_checkpoint(ckpt, str(path)), ckpt

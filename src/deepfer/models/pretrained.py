"""The pretrained registry: the weights that ship inside the package (``deepfer/weights/``), named
``<architecture>_<tag>`` (``deepfer_fer2013-kd``: architecture ``deepfer``, tag ``fer2013-kd``),
each a self-describing checkpoint with a model card beside it, loaded the timm / open_clip way::

    >>> from deepfer.models import create_model, list_pretrained
    >>> [(p.architecture, p.tag) for p in list_pretrained()][:1]  # doctest: +SKIP
    [('deep-emotion', 'ckplus-random')]
    >>> model = create_model("deepfer", pretrained="fer2013-kd")  # doctest: +SKIP

Nothing is downloaded: a name that is not shipped is an error that lists what is. ``SHA256SUMS``
beside the files holds each one's sha256 (written by ``scripts/ship_weights.py``); a shipped file
whose bytes differ is refused when loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from deepfer.errors import ModelError
from deepfer.files import atomic_open, sha256_file
from deepfer.models.checkpoint import Checkpoint
from deepfer.models.registry import create_model as _build

__all__ = ["BEST", "DEFAULT", "Pretrained", "create_model", "list_pretrained", "load_checkpoint",
           "load_pretrained", "resolve", "shipped_sha256", "write_sums"]

DEFAULT = "deepfer_fer2013-wild"
# What a bare architecture name (or pretrained=True) loads: its best FER2013 weights (chosen on
# validation; see the cards).
BEST = {"deepfer": DEFAULT, "deep-emotion": "deep-emotion_fer2013-kd"}
SUMS = "SHA256SUMS"  # `sha256sum` format: "<hex>  <path relative to the weights folder>" per line


@dataclass(frozen=True)
class Pretrained:
    """One shipped checkpoint: its name (``<architecture>_<tag>``), file, model card, the
    checkpoint's metadata and the temperature its probabilities are computed with (1.0: not
    calibrated)."""

    name: str
    path: Path
    card: Path | None
    architecture: str
    labels: list[str]
    info: dict[str, Any]
    temperature: float = 1.0

    @property
    def tag(self) -> str:
        """The weights' tag: the name after ``<architecture>_`` (``fer2013-kd``)."""
        return self.name.removeprefix(f"{self.architecture}_")


def weights_folder() -> Path:
    """The package's folder of shipped weights."""
    return Path(str(resources.files("deepfer"))) / "weights"


def _shipped() -> dict[str, Path]:
    """name -> a checkpoint file, or a folder of ``fold<i>/best.pt`` (k-fold result sets)."""
    root = weights_folder()
    found = {p.stem: p for p in root.glob("*.pt")}
    found.update({d.name: d for d in root.iterdir() if d.is_dir() and any(d.glob("fold*/best.pt"))})
    return dict(sorted(found.items()))


def list_pretrained(architecture: str | None = None) -> list[Pretrained]:
    """The shipped weights (of one ``architecture``, or all), sorted by name; k-fold sets are
    described by their first fold."""
    out = []
    for name, p in _shipped().items():
        first = p if p.is_file() else sorted(p.glob("fold*/best.pt"))[0]
        ckpt = load_checkpoint(first)
        if architecture is not None and ckpt.config.name != architecture:
            continue
        card = p.parent / f"{name}.md"
        out.append(Pretrained(name, p, card if card.is_file() else None, ckpt.config.name,
                              list(ckpt.labels), ckpt.info, ckpt.temperature))
    return out


def resolve(name_or_path: str | Path | None = None) -> Path:
    """The checkpoint file for a shipped name, or ``name_or_path`` itself if it is a file.

    A bare architecture name (``deep-emotion``) picks its best FER2013 weights (``BEST``).
    """
    if name_or_path is None:
        name_or_path = DEFAULT
    p = Path(name_or_path)
    if p.suffix == ".pt" or p.is_file():
        if not p.is_file():
            raise ModelError(f"{p}: no such checkpoint file")
        return p
    names = _shipped()
    for candidate in (str(name_or_path), BEST.get(str(name_or_path), ""), f"{name_or_path}_fer2013"):
        if candidate in names:
            return names[candidate]
    raise ModelError(
        f"no shipped weights named {str(name_or_path)!r}; available: {', '.join(sorted(names)) or 'none'} "
        "(or pass a checkpoint file)"
    )


def shipped_sha256(path: str | Path) -> str | None:
    """The sha256 a file in the package's weights folder must have (from ``SHA256SUMS``), or ``None``
    for a file elsewhere.

    Raises:
        ModelError: a file in the weights folder that ``SHA256SUMS`` does not list.
    """
    root = weights_folder().resolve()
    try:
        rel = Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return None
    sums = _read_sums(root / SUMS)
    if rel not in sums:
        raise ModelError(f"{path}: shipped weights not listed in {root / SUMS}, so their integrity cannot be "
                         "checked (ship weights with scripts/ship_weights.py, which lists them)")
    return sums[rel]


def load_checkpoint(name_or_path: str | Path | None = None) -> Checkpoint:
    """The checkpoint of shipped weights (checked against ``SHA256SUMS``) or of a checkpoint file.

    Raises:
        ModelError: an unknown name, a k-fold set (load one of its folds), or a file that is
            missing, damaged, altered or malformed.
    """
    path = resolve(name_or_path)
    if path.is_dir():
        raise ModelError(f"{path.name} is a set of k-fold evaluation models; load one of {path}/fold*/best.pt")
    return Checkpoint.load(path, sha256=shipped_sha256(path))


def load_pretrained(name_or_path: str | Path | None = None) -> tuple[nn.Module, Checkpoint]:
    """Model (eval mode) and checkpoint for shipped weights or a checkpoint file."""
    ckpt = load_checkpoint(name_or_path)
    return ckpt.build(), ckpt


def create_model(name: str, pretrained: str | bool | None = None, num_classes: int | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build a registered architecture, with shipped weights where ``pretrained`` names them.

    Args:
        name: the architecture (:func:`~deepfer.models.list_models`).
        pretrained: a tag of ``name``'s shipped weights (``"fer2013-kd"``; see
            :func:`list_pretrained`), ``True`` for its best FER2013 weights, or ``None`` / ``False``
            for fresh weights.
        num_classes, kwargs: overrides of the architecture's config
            (:func:`~deepfer.models.registry.model_config`); only without ``pretrained``.

    Returns:
        The model; with ``pretrained``, in eval mode, carrying its checkpoint's calibration.

    Raises:
        ModelError: an unknown architecture or tag, or overrides given with ``pretrained``.

    Example:
        >>> create_model("deep-emotion", num_classes=8).config.num_classes
        8
    """
    if not pretrained:
        return _build(name, num_classes=num_classes, **kwargs)
    if num_classes is not None or kwargs:
        raise ModelError(f"{name}: pretrained weights fix the architecture; drop num_classes and the other options")
    weights = BEST.get(name, f"{name}_fer2013") if pretrained is True else f"{name}_{pretrained}"
    if weights not in _shipped():
        tags = ", ".join(p.tag for p in list_pretrained(name)) or "none"
        raise ModelError(f"no pretrained weights {pretrained!r} for {name!r}; its tags: {tags}")
    model, ckpt = load_pretrained(weights)
    if ckpt.config.name != name:
        raise ModelError(f"{weights}: holds a {ckpt.config.name!r} model, not {name!r}")
    return model


def write_sums(folder: str | Path | None = None) -> Path:
    """(Re)write ``SHA256SUMS`` for every checkpoint in the weights folder (``*.pt`` and the k-fold
    sets' ``*/fold*/best.pt``); returns its path."""
    root = Path(folder) if folder is not None else weights_folder()
    files = sorted([*root.glob("*.pt"), *root.glob("*/fold*/best.pt")], key=lambda p: p.relative_to(root).as_posix())
    with atomic_open(root / SUMS, "w") as f:
        for p in files:
            f.write(f"{sha256_file(p)}  {p.relative_to(root).as_posix()}\n")
    return root / SUMS


def _read_sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ModelError(f"{path}: missing, so the shipped weights cannot be checked (reinstall deepfer)")
    sums = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ModelError(f"{path} line {i}: expected '<sha256>  <file>', got {line[:80]!r}")
        sums[name] = digest
    return sums

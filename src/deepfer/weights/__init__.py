"""Pretrained weights that ship inside the package, named ``<architecture>_<dataset>``
(``deep-emotion_fer2013``), each a self-describing checkpoint with a model card beside it.

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

DEFAULT = "deepfer_fer2013-kd"
# What a bare architecture name loads: its best FER2013 weights (chosen on validation; see the cards).
BEST = {"deepfer": DEFAULT, "deep-emotion": "deep-emotion_fer2013-kd"}
# Shipped ensembles: name -> member weights names, a name listed twice weighing twice. Each was chosen
# on validation by benchmarks/ensemble.py (ENSEMBLE.md) and kept only where its accuracy is worth
# its cost in speed; its card states the trade-off.
ENSEMBLES: dict[str, list[str]] = {}
SUMS = "SHA256SUMS"  # `sha256sum` format: "<hex>  <path relative to this folder>" per line


@dataclass(frozen=True)
class Pretrained:
    """One shipped checkpoint: its name, file, model card, the checkpoint's metadata and the
    temperature its probabilities are computed with (1.0: not calibrated)."""

    name: str
    path: Path
    card: Path | None
    architecture: str
    labels: list[str]
    info: dict[str, Any]
    temperature: float = 1.0


def _folder() -> Path:
    return Path(str(resources.files(__package__)))


def _shipped() -> dict[str, Path]:
    """name -> a checkpoint file, or a folder of ``fold<i>/best.pt`` (k-fold result sets)."""
    root = _folder()
    found = {p.stem: p for p in root.glob("*.pt")}
    found.update({d.name: d for d in root.iterdir() if d.is_dir() and any(d.glob("fold*/best.pt"))})
    return dict(sorted(found.items()))


def list_pretrained() -> list[Pretrained]:
    """The shipped weights, sorted by name (k-fold sets are described by their first fold)."""
    out = []
    for name, p in _shipped().items():
        first = p if p.is_file() else sorted(p.glob("fold*/best.pt"))[0]
        ckpt = load_checkpoint(first)
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
    if str(name_or_path) in ENSEMBLES:
        raise ModelError(f"{name_or_path} is a shipped ensemble of {', '.join(dict.fromkeys(ENSEMBLES[str(name_or_path)]))}: "
                         "predict, evaluate and serve take it by name; elsewhere use one member")
    names = _shipped()
    for candidate in (str(name_or_path), BEST.get(str(name_or_path), ""), f"{name_or_path}_fer2013"):
        if candidate in names:
            return names[candidate]
    raise ModelError(
        f"no shipped weights named {str(name_or_path)!r}; available: {', '.join(sorted(names)) or 'none'} "
        "(or pass a checkpoint file)"
    )


def ensemble_members(name: str | Path | None) -> list[str] | None:
    """The member weights names of a shipped ensemble (repeats weigh more), or None for any other name."""
    members = ENSEMBLES.get(str(name))
    return list(members) if members is not None else None


def shipped_sha256(path: str | Path) -> str | None:
    """The sha256 a file in the package's weights folder must have (from ``SHA256SUMS``), or ``None``
    for a file elsewhere.

    Raises:
        ModelError: a file in the weights folder that ``SHA256SUMS`` does not list.
    """
    root = _folder().resolve()
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


def write_sums(folder: str | Path | None = None) -> Path:
    """(Re)write ``SHA256SUMS`` for every checkpoint in the weights folder (``*.pt`` and the k-fold
    sets' ``*/fold*/best.pt``); returns its path."""
    root = Path(folder) if folder is not None else _folder()
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

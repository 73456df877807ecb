"""Dataset readers, the common FaceData form, and named evaluation protocols."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepfer.data.ckplus import load_ckplus
from deepfer.data.faces import FaceData
from deepfer.data.fer2013 import load_fer2013
from deepfer.data.ferg import load_ferg
from deepfer.data.ferplus import load_ferplus
from deepfer.data.jaffe import load_jaffe
from deepfer.data.protocols import Fold, Split, list_protocols, split
from deepfer.data.summary import describe, duplicate_report
from deepfer.errors import DataError

READERS: dict[str, Callable[..., FaceData]] = {
    "fer2013": load_fer2013,
    "ferplus": load_ferplus,
    "ckplus": load_ckplus,
    "jaffe": load_jaffe,
    "ferg": load_ferg,
}


def list_datasets() -> list[str]:
    return sorted(READERS)


def load_dataset(name: str, path: str | Path, **options: Any) -> FaceData:
    """Read dataset ``name`` from ``path`` with its reader's options (``size=48``, ...)."""
    reader = READERS.get(name)
    if reader is None:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}")
    return reader(path, **options)


__all__ = [
    "FaceData", "Fold", "Split", "READERS", "describe", "duplicate_report", "list_datasets",
    "list_protocols", "load_ckplus", "load_dataset", "load_fer2013", "load_ferg",
    "load_ferplus", "load_jaffe", "split",
]

"""On-disk cache of decoded datasets, so that a second load is a single ``np.load``.

The key covers the reader, its options and a fingerprint of the source files (names, sizes,
modification times); changing any of them builds a new entry. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepfer.data.faces import FaceData
from deepfer.files import atomic_open

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("images", "labels", "subjects", "splits", "paths", "hashes", "soft_labels", "groups")


def cache_dir() -> Path:
    """``$DEEPFER_CACHE`` or ``~/.cache/deepfer``: always outside the repository."""
    root = os.environ.get("DEEPFER_CACHE") or Path.home() / ".cache" / "deepfer"
    return Path(root) / "datasets"


def cache_key(**parts: Any) -> str:
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def save(data: FaceData, path: Path) -> None:
    arrays = {k: getattr(data, k) for k in _ARRAYS if getattr(data, k) is not None}
    arrays["meta"] = np.asarray(json.dumps({"name": data.name, **data.meta}, default=str))
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def load(path: Path) -> FaceData:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        name = meta.pop("name")
        arrays = {k: z[k] for k in _ARRAYS if k in z.files}
    return FaceData(name=name, meta=meta, **arrays)


def cached(build: Callable[[], FaceData], use_cache: bool = True, **key: Any) -> FaceData:
    """Return the cached FaceData for ``key``, building and storing it on a miss."""
    if not use_cache:
        return build()
    path = cache_dir() / f"{key.get('reader', 'data')}-{cache_key(**key)}.npz"
    if path.exists():
        try:
            return load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # a damaged entry is rebuilt, not fatal
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
    data = build()
    try:
        save(data, path)
    except OSError as exc:
        log.warning("could not write cache entry %s (%s)", path, exc)
    return data

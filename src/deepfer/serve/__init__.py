"""Serve deepfer over HTTP: a REST API (``POST /v1/predict``, ``POST /v1/explain``,
``GET /v1/models``, ``GET /healthz``) and a web page for photos and the webcam, as the optional
extra ``pip install -e '.[serve]'`` (FastAPI + uvicorn).

Example:
    >>> from deepfer.serve import ServeSettings, create_app  # doctest: +SKIP
    >>> app = create_app(ServeSettings(workers=2))  # doctest: +SKIP

or ``deepfer serve --port 8000``, or ``uvicorn --factory deepfer.serve:create_app``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from deepfer.serve.settings import ServeSettings

# Before torch loads OpenMP (deepfer's package import does not load torch): OpenMP threads that
# spin while they wait make small batches 10-50x slower on a busy machine, as `deepfer predict` notes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServeSettings", "create_app", "run"]


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app (see :func:`deepfer.serve.app.create_app`)."""
    from deepfer.serve.app import create_app as make

    return make(settings)


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when the app is asked for, so the settings load without the extra.
    if name == "run":
        from deepfer.serve.app import run

        return run
    raise AttributeError(f"module 'deepfer.serve' has no attribute {name!r}")

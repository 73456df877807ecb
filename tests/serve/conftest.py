"""Fixtures for the server tests: one engine per session on the shipped default weights, test
clients per module (their start-up and shutdown are exercised each time), and the photos."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the server tests need the serve extra: pip install -e '.[serve]'")
pytest.importorskip("python_multipart", reason="the server tests need the serve extra: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import encode, portrait  # noqa: E402

from deepfer.serve.app import create_app  # noqa: E402
from deepfer.serve.engine import Engine  # noqa: E402
from deepfer.serve.settings import ServeSettings  # noqa: E402


@pytest.fixture(scope="session")
def photo() -> bytes:
    """640x480 JPEG of the bundled portrait: one face."""
    return encode(portrait())


@pytest.fixture(scope="session")
def settings() -> ServeSettings:
    return ServeSettings()


@pytest.fixture(scope="session")
def engine(settings: ServeSettings) -> Iterator[Engine]:
    """The default engine: shipped weights, exported to ONNX in memory when onnxruntime is there."""
    eng = Engine(settings)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def client(settings: ServeSettings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as c:
        yield c


@pytest.fixture(scope="session")
def small_settings() -> ServeSettings:
    """Tight limits, to test them with small files: 64 KiB uploads, 1 MP images, 0.5 s to upload."""
    return ServeSettings(backend="torch", max_upload_bytes=64 * 1024, max_pixels=1_000_000, max_side=1500,
                         read_timeout=0.5, workers=1, max_queue=2)


@pytest.fixture(scope="module")
def small_client(small_settings: ServeSettings) -> Iterator[TestClient]:
    with TestClient(create_app(small_settings)) as c:
        yield c

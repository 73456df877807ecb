"""Fixtures shared by every test folder. Opt in per module with
``pytestmark = pytest.mark.usefixtures("one_thread")``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """torch on one thread for the module: tiny tensors gain nothing from more threads, and on a
    shared 2-core machine OpenMP threads competing with other jobs made these tests ten times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

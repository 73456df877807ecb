"""Pytest fixtures for the data tests; their builders live in data_fixtures.py so that test
modules can import them without clashing with other folders' conftest modules."""

from data_fixtures import (  # noqa: F401  (fixtures are found by name)
    cache_root,
    ck48_fx,
    ck_original_fx,
    fer2013_fx,
    ferg_fx,
    ferplus_fx,
    jaffe_fx,
)

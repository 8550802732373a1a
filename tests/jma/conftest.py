"""Locate the shared JMA fixtures; a missing file skips the test with the reason, loudly."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES_ENV = "MIMAMORI_FIXTURES"


def fixtures_root() -> Path:
    """The shared fixtures live outside the repository, next to it by default."""
    configured = os.environ.get(FIXTURES_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


def jma_fixture_path(name: str) -> Path:
    path = fixtures_root() / "jma" / name
    if not path.is_file():
        pytest.skip(f"JMA fixture {name} not found at {path} (set {FIXTURES_ENV} to its directory)")
    return path


@pytest.fixture
def jma_bytes() -> Callable[[str], bytes]:
    """Return a loader so each test names the fixture file it depends on."""

    def load(name: str) -> bytes:
        return jma_fixture_path(name).read_bytes()

    return load

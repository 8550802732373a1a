"""Fixtures for the i18n tests: a throwaway copy of the catalogs to break on purpose."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from i18n.catalogs import LOCALES_DIR, clear_cache


@pytest.fixture
def locales_copy(tmp_path: Path) -> Iterator[Path]:
    """A copy of ``i18n/locales`` that a test may edit; the real files stay untouched."""
    target = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, target, ignore=shutil.ignore_patterns("*.mo"))
    yield target
    clear_cache()

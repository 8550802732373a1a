"""Shared settings and fixture paths for the telephony tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
FROM_NUMBER = "+815012345678"
MESSAGING_SERVICE_SID = "MG" + "fedcba9876543210" * 2
PUBLIC_URL = "https://mimamori.example.org"

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    """The service runs on asyncio (uvicorn, the dispatcher); test on the same loop."""
    return "asyncio"


@pytest.fixture
def fixtures_dir() -> Path:
    return Path(os.environ.get("MIMAMORI_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings built from arguments only, so a developer's .env cannot change a test."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "public_url": PUBLIC_URL,
            "twilio_account_sid": None,
            "twilio_auth_token": None,
            "twilio_previous_auth_tokens": [],
            "twilio_from_number": None,
            "twilio_messaging_service_sid": None,
            "twilio_api_url": "https://api.twilio.com",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return build

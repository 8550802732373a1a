"""Fixtures for announcement tests: the check-in world, the dashboard's form client, and
DeepL's wire mocked (its official client speaks ``requests``, so ``responses`` mocks it)."""

from __future__ import annotations

from tests.translation.conftest import (
    DEEPL_URL,
    FormClient,
    World,
    add_staff,
    deepl,
    deepl_wire,
    e164,
    forms,
    google,
    google_wire,
    service_account_key,
    world,
)
from tests.web.conftest import browser_context, live_server, log_in_browser, screenshot

__all__ = [
    "DEEPL_URL",
    "FormClient",
    "World",
    "add_staff",
    "browser_context",
    "deepl",
    "deepl_wire",
    "e164",
    "forms",
    "google",
    "google_wire",
    "live_server",
    "log_in_browser",
    "screenshot",
    "service_account_key",
    "world",
]

"""Fixtures for translation tests: DeepL's and Google's wires, mocked; everything else real.

DeepL's official client speaks through ``requests``, so its wire is mocked with
``responses``; Google's REST API (and its OAuth token exchange) go through httpx and are
mocked with respx. Nothing else is faked: the service-account key is a real RSA key, signed
into a real JWT by google-auth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.translation.deepl_provider import DeepLTranslator
from service.translation.google_provider import GoogleTranslator
from tests.web.conftest import (
    MORNING,
    FormClient,
    Morning,
    World,
    add_staff,
    e164,
    forms,
    morning,
    world,
)

# The check-in world and the dashboard's form client, for these tests too.
__all__ = [
    "MORNING",
    "FormClient",
    "Morning",
    "World",
    "add_staff",
    "e164",
    "forms",
    "morning",
    "world",
]

DEEPL_URL = "https://api.deepl.com/v2/translate"
GOOGLE_PROJECT = "mimamori-test"
GOOGLE_URL = f"https://translation.googleapis.com/v3/projects/{GOOGLE_PROJECT}/locations/global:translateText"
TOKEN_URL = "https://oauth2.googleapis.com/token"


def deepl_answer(*pairs: tuple[str, str]) -> dict[str, Any]:
    """DeepL's /v2/translate body for (text, detected source language) pairs."""
    return {
        "translations": [
            {"detected_source_language": lang, "text": text, "billed_characters": len(text)}
            for text, lang in pairs
        ]
    }


def google_answer(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "translations": [
            {"translatedText": text, "detectedLanguageCode": lang} for text, lang in pairs
        ]
    }


@pytest.fixture
def deepl_wire() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def deepl() -> Iterator[DeepLTranslator]:
    translator = DeepLTranslator("0123abcd-test-key")
    yield translator
    translator.close()


@pytest.fixture(scope="session")
def service_account_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real service-account key file (a fresh RSA key; Google never sees it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path_factory.mktemp("google") / "key.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": GOOGLE_PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": f"mimamori@{GOOGLE_PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": TOKEN_URL,
            }
        )
    )
    return path


@pytest.fixture
def google_wire() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL).respond(
            json={"access_token": "ya29.test-token", "expires_in": 3600, "token_type": "Bearer"}
        )
        yield mock


@pytest.fixture
def google(
    service_account_key: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GoogleTranslator]:
    from service.config import Settings

    settings = Settings(
        translation_provider="google", google_credentials_file=str(service_account_key)
    )
    translator = GoogleTranslator.from_settings(settings)
    yield translator
    translator.close()

"""DeepL and Google each: success with the detected language, permanent failures, and rate
limits classified as transient; the wire is mocked, the clients are the real ones."""

from __future__ import annotations

import json

import httpx
import pytest
import responses
import respx

from service.config import Settings
from service.translation.deepl_provider import DeepLTranslator
from service.translation.errors import (
    PermanentTranslationError,
    TransientTranslationError,
    UnsupportedLanguageError,
)
from service.translation.google_provider import GoogleTranslator
from service.translation.provider import make_translator
from tests.translation.conftest import (
    DEEPL_URL,
    GOOGLE_URL,
    TOKEN_URL,
    deepl_answer,
    google_answer,
)

# --- DeepL ------------------------------------------------------------------------------------


def test_deepl_translates_a_batch_and_reports_each_detected_language(deepl_wire, deepl) -> None:
    deepl_wire.post(DEEPL_URL, json=deepl_answer(("誰ですか?", "VI"), ("大丈夫です", "EN")))
    results = deepl.translate(["ai vậy?", "I'm ok"], "ja")
    assert [(r.text, r.detected_language) for r in results] == [
        ("誰ですか?", "vi"),
        ("大丈夫です", "en"),
    ]
    request = deepl_wire.calls[0].request
    sent = json.loads(request.body)
    assert sent["text"] == ["ai vậy?", "I'm ok"]
    assert sent["target_lang"] == "JA"
    assert "source_lang" not in sent  # detected, not assumed from the registry
    assert sent["enable_beta_languages"] is True
    assert request.headers["Authorization"] == "DeepL-Auth-Key 0123abcd-test-key"


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("pt_BR", "PT-BR"),
        ("zh_Hans", "ZH-HANS"),
        ("zh_Hant", "ZH-HANT"),
        ("en", "EN-US"),
        ("fil", "TL"),
        ("ne", "NE"),
    ],
)
def test_deepl_target_codes_carry_the_variant(deepl_wire, deepl, target, code) -> None:
    deepl_wire.post(DEEPL_URL, json=deepl_answer(("x", "JA")))
    deepl.translate(["すぐ電話します"], target, source="ja")
    sent = json.loads(deepl_wire.calls[0].request.body)
    assert sent["target_lang"] == code
    assert sent["source_lang"] == "JA"


@pytest.mark.parametrize("language", ["km", "si", "easy_ja"])
def test_deepl_refuses_a_language_it_lacks_without_sending(deepl_wire, deepl, language) -> None:
    with pytest.raises(UnsupportedLanguageError) as caught:
        deepl.translate(["すぐ電話します"], language, source="ja")
    assert caught.value.language == language
    assert "DeepL cannot translate into" in caught.value.reason
    assert len(deepl_wire.calls) == 0


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (400, PermanentTranslationError, "HTTP 400"),
        (403, PermanentTranslationError, "key was refused"),
        (429, TransientTranslationError, "too many requests"),
        (456, TransientTranslationError, "quota"),
        (503, TransientTranslationError, "HTTP 503"),
    ],
)
def test_deepl_errors_are_classified(deepl_wire, deepl, status, kind, words) -> None:
    deepl_wire.post(DEEPL_URL, status=status, json={"message": "no"})
    with pytest.raises(kind) as caught:
        deepl.translate(["xin chào bà"], "ja")
    assert words in caught.value.reason
    assert "xin chào" not in caught.value.reason  # a reason never carries the text
    assert len(deepl_wire.calls) == 1  # the client's own retry loop is off: the job retries


def test_deepl_network_failure_is_transient(deepl_wire, deepl) -> None:
    import requests

    deepl_wire.post(DEEPL_URL, body=requests.ConnectionError("reset"))
    with pytest.raises(TransientTranslationError):
        deepl.translate(["oi"], "ja")


def test_a_free_api_key_uses_the_free_endpoint(deepl_wire) -> None:
    deepl_wire.post("https://api-free.deepl.com/v2/translate", json=deepl_answer(("はい", "ID")))
    translator = DeepLTranslator("0123abcd:fx")
    assert translator.translate(["iya"], "ja")[0].detected_language == "id"


# --- Google -----------------------------------------------------------------------------------


def test_google_translates_with_a_service_account_token(google_wire, google) -> None:
    route = google_wire.post(GOOGLE_URL).respond(
        json=google_answer(("話したい", "zh-CN"), ("元気です", "pt"))
    )
    results = google.translate(["想聊聊", "tudo bem"], "ja")
    assert [(r.text, r.detected_language) for r in results] == [
        ("話したい", "zh-cn"),
        ("元気です", "pt"),
    ]
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer ya29.test-token"
    assert json.loads(request.content) == {
        "contents": ["想聊聊", "tudo bem"],
        "targetLanguageCode": "ja",
        "mimeType": "text/plain",
    }
    token_request = google_wire.calls[0].request
    assert str(token_request.url) == TOKEN_URL
    assert b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in (
        token_request.content
    )
    # The token is cached: a second translation asks for no new one.
    google.translate(["oi", "tchau"], "ja")
    assert sum(1 for call in google_wire.calls if str(call.request.url) == TOKEN_URL) == 1


@pytest.mark.parametrize(
    ("target", "code"), [("zh_Hant", "zh-TW"), ("fil", "fil"), ("pt_BR", "pt"), ("km", "km")]
)
def test_google_language_codes(google_wire, google, target, code) -> None:
    route = google_wire.post(GOOGLE_URL).respond(json=google_answer(("x", "")))
    google.translate(["すぐ電話します"], target, source="ja")
    sent = json.loads(route.calls.last.request.content)
    assert sent["targetLanguageCode"] == code and sent["sourceLanguageCode"] == "ja"


def test_google_bad_request_is_permanent_and_names_the_problem(google_wire, google) -> None:
    google_wire.post(GOOGLE_URL).respond(
        400,
        json={
            "error": {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": "Target language is invalid.",
            }
        },
    )
    with pytest.raises(PermanentTranslationError) as caught:
        google.translate(["oi"], "ja")
    assert "INVALID_ARGUMENT" in caught.value.reason and "HTTP 400" in caught.value.reason


def test_google_rate_limit_is_transient_with_its_retry_after(google_wire, google) -> None:
    google_wire.post(GOOGLE_URL).respond(
        429,
        headers={"Retry-After": "120"},
        json={"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded"}},
    )
    with pytest.raises(TransientTranslationError) as caught:
        google.translate(["oi"], "ja")
    assert caught.value.retry_after == 120
    assert "RESOURCE_EXHAUSTED" in caught.value.reason


def test_google_server_error_and_network_failure_are_transient(google_wire, google) -> None:
    google_wire.post(GOOGLE_URL).mock(
        side_effect=[httpx.Response(503), httpx.ConnectError("refused")]
    )
    for _ in range(2):
        with pytest.raises(TransientTranslationError):
            google.translate(["oi"], "ja")


def test_google_refused_key_is_permanent(service_account_key) -> None:
    with respx.mock() as mock:
        mock.post(TOKEN_URL).respond(400, json={"error": "invalid_grant", "error_description": "x"})
        translator = GoogleTranslator.from_settings(
            Settings(
                translation_provider="google", google_credentials_file=str(service_account_key)
            )
        )
        with pytest.raises(PermanentTranslationError) as caught:
            translator.translate(["oi"], "ja")
    assert "key was refused" in caught.value.reason


# --- Choosing a provider ----------------------------------------------------------------------


def test_none_builds_no_translator_and_a_provider_without_key_is_refused_in_production() -> None:
    assert make_translator(Settings(translation_provider="none")) is None
    # Development: a chosen provider without its key translates nothing (with a warning).
    assert make_translator(Settings(translation_provider="deepl")) is None
    assert isinstance(
        make_translator(Settings(translation_provider="deepl", deepl_auth_key="k")),
        DeepLTranslator,
    )
    secret = "3f9c2e7a1b8d4f6e0a5c9b2d7e1f4a8c6b3d9e2f"  # production refuses weak keys
    production = {
        "environment": "production",
        "public_url": "https://mimamori.example.jp",
        "secret_key": secret,
        "telephony_provider": "console",
    }
    with pytest.raises(ValueError, match="MIMAMORI_DEEPL_AUTH_KEY"):
        Settings(**production, translation_provider="deepl")
    with pytest.raises(ValueError, match="MIMAMORI_GOOGLE_CREDENTIALS_FILE"):
        Settings(**production, translation_provider="google")
    Settings(**production, translation_provider="none")  # nothing to configure


def test_deepl_never_logs_the_text(deepl_wire, deepl, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    deepl_wire.post(DEEPL_URL, json=deepl_answer(("誰?", "VI")))
    deepl.translate(["chị Lan ơi, mẹ tôi bị ngã"], "ja")
    assert "mẹ tôi" not in caplog.text
    assert responses  # the module is the wire mock in use


def test_a_broken_key_file_leaves_the_dashboard_working_untranslated(tmp_path, monkeypatch):
    from service.config import get_settings
    from service.translation.deps import get_translator

    broken = tmp_path / "key.json"
    broken.write_text("{not json")
    monkeypatch.setenv("MIMAMORI_TRANSLATION_PROVIDER", "google")
    monkeypatch.setenv("MIMAMORI_GOOGLE_CREDENTIALS_FILE", str(broken))
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="not a readable service-account key"):
            make_translator(get_settings())
        assert get_translator() is None
    finally:
        get_settings.cache_clear()

"""DeepL, through DeepL's official Python client (``deepl``, which speaks HTTP through
``requests``; tests mock that wire with ``responses``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import deepl
import deepl.http_client

from service.config import Settings
from service.translation.errors import (
    PermanentTranslationError,
    TransientTranslationError,
    TranslationError,
)
from service.translation.languages import DEEPL_SOURCE, DEEPL_TARGET, provider_code
from service.translation.translator import TranslationResult

# The client logs each request body at DEBUG: that is the residents' text, which must never
# reach a log. Its INFO lines (URL and status only) are harmless but noisy.
logging.getLogger("deepl").setLevel(logging.WARNING)

# One request carries at most 50 texts (DeepL's limit for /v2/translate).
MAX_TEXTS = 50


class DeepLTranslator:
    """Translates with DeepL's /v2/translate.

    ``enable_beta_languages`` is always sent: Tagalog, Nepali, Burmese, Mongolian, Bengali,
    Urdu, Hindi and Tamil are beta languages at DeepL, and a reply in one of them must be
    recognised as a source too, not only produced as a target.
    """

    name = "deepl"
    max_batch = MAX_TEXTS

    def __init__(self, auth_key: str, *, server_url: str | None = None) -> None:
        # The client would otherwise retry 429/5xx itself, up to five times with sleeps, in
        # the job's thread; the job retries with its own backoff instead.
        deepl.http_client.max_network_retries = 0
        self._client = deepl.Translator(
            auth_key, server_url=server_url or None, send_platform_info=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> DeepLTranslator:
        if not settings.deepl_auth_key:
            raise ValueError("MIMAMORI_DEEPL_AUTH_KEY is not set")
        return cls(settings.deepl_auth_key, server_url=settings.deepl_server_url)

    def translate(
        self, texts: Sequence[str], target: str, source: str | None = None
    ) -> list[TranslationResult]:
        target_code = provider_code(DEEPL_TARGET, target, "DeepL", "into")
        source_code = provider_code(DEEPL_SOURCE, source, "DeepL", "from") if source else None
        if not texts:
            return []
        if len(texts) > MAX_TEXTS:
            raise ValueError(f"at most {MAX_TEXTS} texts per DeepL request")
        try:
            results = self._client.translate_text(
                list(texts),
                target_lang=target_code,
                source_lang=source_code,
                extra_body_parameters={"enable_beta_languages": True},
            )
        except deepl.DeepLException as error:
            raise classify_deepl_error(error) from error
        except (TypeError, ValueError, KeyError) as error:
            # An answer the client could not read (a proxy's error page, a changed format).
            raise TransientTranslationError(f"DeepL: unreadable answer ({error})") from error
        if not isinstance(results, list):
            results = [results]
        if len(results) != len(texts):
            raise TransientTranslationError(
                f"DeepL: {len(results)} translations for {len(texts)} texts"
            )
        return [
            TranslationResult(
                text=result.text,
                detected_language=(result.detected_source_lang or "").lower() or None,
            )
            for result in results
        ]

    def close(self) -> None:
        self._client.close()


def classify_deepl_error(error: deepl.DeepLException) -> TranslationError:
    """DeepL's exceptions as transient or permanent, with a reason staff can read."""
    status = error.http_status_code
    if isinstance(error, deepl.QuotaExceededException):
        return TransientTranslationError("DeepL: character quota used up (HTTP 456)")
    if isinstance(error, deepl.TooManyRequestsException):
        return TransientTranslationError("DeepL: too many requests (HTTP 429)")
    if isinstance(error, deepl.AuthorizationException):
        return PermanentTranslationError("DeepL: the API key was refused (HTTP 403)")
    if isinstance(error, deepl.ConnectionException):
        return TransientTranslationError("DeepL: could not connect")
    if status is not None and (status == 429 or status >= 500):
        return TransientTranslationError(f"DeepL: HTTP {status}")
    if status is not None:
        return PermanentTranslationError(f"DeepL: request refused (HTTP {status})")
    if getattr(error, "should_retry", False):
        return TransientTranslationError("DeepL: temporary failure")
    return PermanentTranslationError("DeepL: request refused")

"""Google Cloud Translation v3 ("Advanced"), through its REST API and httpx.

Credentials: a service-account JSON key (``MIMAMORI_GOOGLE_CREDENTIALS_FILE``) whose account
has the "Cloud Translation API User" role. ``google-auth`` signs the JWT and exchanges it
for an access token, which is cached until shortly before it expires; the exchange goes
through httpx too (a small ``google.auth.transport.Request`` below), so one client, one
timeout policy and one mock (respx) cover both the token and the translation requests.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport
import httpx
from google.oauth2 import service_account

from service.config import Settings
from service.telephony.errors import parse_retry_after
from service.translation.errors import (
    PermanentTranslationError,
    TransientTranslationError,
    TranslationError,
)
from service.translation.languages import GOOGLE_CODES, provider_code
from service.translation.translator import TranslationResult

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/cloud-translation"
# v3 accepts up to 1,024 strings per request and recommends under 30,000 code points; a
# batch of inbox replies is far below both.
MAX_TEXTS = 100
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class _HttpxResponse(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxAuthRequest(google.auth.transport.Request):
    """google-auth's transport interface over an httpx client (for the token exchange)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(  # type: ignore[override]
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        try:
            response = self._client.request(
                method,
                url,
                content=body,
                headers=dict(headers or {}),
                timeout=timeout if timeout is not None else TIMEOUT,
            )
        except httpx.HTTPError as error:
            raise google.auth.exceptions.TransportError(type(error).__name__) from error
        return _HttpxResponse(response)


class GoogleTranslator:
    """Translates with ``projects/{project}/locations/global:translateText``."""

    name = "google"
    max_batch = MAX_TEXTS

    def __init__(
        self,
        *,
        credentials: service_account.Credentials,
        project: str,
        api_url: str = "https://translation.googleapis.com",
        client: httpx.Client | None = None,
    ) -> None:
        self._credentials = credentials
        self._project = project
        self._url = f"{api_url.rstrip('/')}/v3/projects/{project}/locations/global:translateText"
        self._client = client or httpx.Client(timeout=TIMEOUT)
        self._auth_request = HttpxAuthRequest(self._client)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> GoogleTranslator:
        path = settings.google_credentials_file
        if not path:
            raise ValueError("MIMAMORI_GOOGLE_CREDENTIALS_FILE is not set")
        try:
            info = json.loads(Path(path).read_text(encoding="utf-8"))
            credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[SCOPE]
            )
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(
                f"MIMAMORI_GOOGLE_CREDENTIALS_FILE: not a readable service-account key "
                f"({type(error).__name__})"
            ) from error
        project = settings.google_project_id or info.get("project_id")
        if not project:
            raise ValueError("set MIMAMORI_GOOGLE_PROJECT_ID: the key file names no project")
        return cls(
            credentials=credentials, project=project, api_url=settings.google_translate_api_url
        )

    def _access_token(self) -> str:
        with self._lock:
            if not self._credentials.valid:
                try:
                    self._credentials.refresh(self._auth_request)
                except google.auth.exceptions.TransportError as error:
                    raise TransientTranslationError(
                        "Google: could not reach the token service"
                    ) from error
                except google.auth.exceptions.RefreshError as error:
                    if getattr(error, "retryable", False):
                        raise TransientTranslationError(
                            "Google: the token service is unavailable"
                        ) from error
                    raise PermanentTranslationError(
                        "Google: the service-account key was refused"
                    ) from error
            return str(self._credentials.token)

    def translate(
        self, texts: Sequence[str], target: str, source: str | None = None
    ) -> list[TranslationResult]:
        body: dict[str, Any] = {
            "contents": list(texts),
            "targetLanguageCode": provider_code(GOOGLE_CODES, target, "Google", "into"),
            "mimeType": "text/plain",  # the default is HTML, which would eat "<3" and "&"
        }
        if source:
            body["sourceLanguageCode"] = provider_code(GOOGLE_CODES, source, "Google", "from")
        if not texts:
            return []
        if len(texts) > MAX_TEXTS:
            raise ValueError(f"at most {MAX_TEXTS} texts per Google request")
        headers = {"Authorization": f"Bearer {self._access_token()}"}
        try:
            response = self._client.post(self._url, json=body, headers=headers)
        except httpx.TransportError as error:
            raise TransientTranslationError(f"Google: {type(error).__name__}") from error
        if response.status_code >= 400:
            raise classify_google_error(response)
        try:
            translations = response.json()["translations"]
            results = [
                TranslationResult(
                    text=str(item["translatedText"]),
                    detected_language=(item.get("detectedLanguageCode") or "").lower() or None,
                )
                for item in translations
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise TransientTranslationError("Google: unreadable answer") from error
        if len(results) != len(texts):
            raise TransientTranslationError(
                f"Google: {len(results)} translations for {len(texts)} texts"
            )
        return results

    def close(self) -> None:
        self._client.close()


def classify_google_error(response: httpx.Response) -> TranslationError:
    """Google's HTTP errors: 429 and 5xx may pass; any other 4xx will not.

    The reason carries Google's status name (``RESOURCE_EXHAUSTED``, ``INVALID_ARGUMENT``)
    and message, which describe the request, never the text."""
    status = response.status_code
    detail = ""
    try:
        error = response.json().get("error", {})
        detail = " ".join(str(part) for part in (error.get("status"), error.get("message")) if part)
    except (ValueError, AttributeError):
        pass
    reason = f"Google: HTTP {status}" + (f" {detail[:200]}" if detail else "")
    if status == 429 or status >= 500:
        return TransientTranslationError(
            reason, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )
    return PermanentTranslationError(reason)

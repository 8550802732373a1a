"""Webhook signature checking through a real FastAPI route."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from service.config import Settings, get_settings
from service.telephony.signature import TwilioForm, sign
from tests.telephony.conftest import ACCOUNT_SID, PUBLIC_URL

pytestmark = pytest.mark.anyio

TOKEN = "a" * 32
OLD_TOKEN = "b" * 32
PATH = "/twilio/sms"
URL = PUBLIC_URL + PATH

INBOUND_SMS = {
    "MessageSid": "SM" + "3" * 32,
    "AccountSid": ACCOUNT_SID,
    "From": "+819012345678",
    "To": "+815012345678",
    "Body": "1 元気です",
    "NumMedia": "0",
}

# Published by Twilio in its webhook security documentation.
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def build_app(settings: Settings) -> FastAPI:
    app = FastAPI()

    @app.post(PATH)
    async def inbound_sms(form: TwilioForm) -> dict[str, Any]:
        return form

    @app.post("/myapp.php")
    async def vector(form: TwilioForm) -> dict[str, Any]:
        return form

    app.dependency_overrides[get_settings] = lambda: settings
    return app


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=TOKEN,
        twilio_previous_auth_tokens=[OLD_TOKEN],
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def post(
    client: httpx.AsyncClient,
    path: str,
    data: dict[str, str],
    signature: str | None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = dict(headers or {})
    if signature is not None:
        all_headers["X-Twilio-Signature"] = signature
    return await client.post(path, data=data, headers=all_headers)


async def test_valid_signature_is_accepted_and_form_returned(client: httpx.AsyncClient) -> None:
    response = await post(client, PATH, INBOUND_SMS, sign(URL, INBOUND_SMS, TOKEN))

    assert response.status_code == 200
    assert response.json() == INBOUND_SMS


async def test_forged_signature_is_refused(client: httpx.AsyncClient) -> None:
    forged = sign(URL, INBOUND_SMS, "not-the-token-" + "x" * 18)
    response = await post(client, PATH, INBOUND_SMS, forged)
    assert response.status_code == 403


async def test_tampered_body_is_refused(client: httpx.AsyncClient) -> None:
    signature = sign(URL, INBOUND_SMS, TOKEN)
    response = await post(client, PATH, {**INBOUND_SMS, "Body": "2"}, signature)
    assert response.status_code == 403


async def test_signature_for_another_url_is_refused(client: httpx.AsyncClient) -> None:
    elsewhere = sign("https://other-council.example.org/twilio/sms", INBOUND_SMS, TOKEN)
    response = await post(client, PATH, INBOUND_SMS, elsewhere)
    assert response.status_code == 403


async def test_signature_for_the_internal_host_url_is_refused(client: httpx.AsyncClient) -> None:
    """What the app sees as its own URL is not what Twilio signed."""
    internal = sign("http://testserver" + PATH, INBOUND_SMS, TOKEN)
    response = await post(client, PATH, INBOUND_SMS, internal)
    assert response.status_code == 403


async def test_unsigned_request_is_refused(client: httpx.AsyncClient) -> None:
    response = await post(client, PATH, INBOUND_SMS, None)
    assert response.status_code == 403


async def test_empty_signature_is_refused(client: httpx.AsyncClient) -> None:
    response = await post(client, PATH, INBOUND_SMS, "")
    assert response.status_code == 403


async def test_previous_token_still_validates_during_rotation(client: httpx.AsyncClient) -> None:
    response = await post(client, PATH, INBOUND_SMS, sign(URL, INBOUND_SMS, OLD_TOKEN))
    assert response.status_code == 200


async def test_rewritten_host_headers_do_not_change_the_signed_url(
    client: httpx.AsyncClient,
) -> None:
    proxy_headers = {
        "Host": "10.0.0.7:8000",
        "X-Forwarded-Host": "attacker.example",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-For": "203.0.113.9",
    }
    response = await post(client, PATH, INBOUND_SMS, sign(URL, INBOUND_SMS, TOKEN), proxy_headers)
    assert response.status_code == 200


async def test_signature_for_forwarded_host_is_refused(client: httpx.AsyncClient) -> None:
    forwarded = {"X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "https"}
    signature = sign("https://attacker.example" + PATH, INBOUND_SMS, TOKEN)
    response = await post(client, PATH, INBOUND_SMS, signature, forwarded)
    assert response.status_code == 403


async def test_unknown_extra_fields_are_tolerated(client: httpx.AsyncClient) -> None:
    form = {**INBOUND_SMS, "FromCountry": "JP", "SomeFieldTwilioAddsNextYear": "x"}
    response = await post(client, PATH, form, sign(URL, form, TOKEN))
    assert response.status_code == 200
    assert response.json()["SomeFieldTwilioAddsNextYear"] == "x"


async def test_query_string_is_part_of_the_signed_url(client: httpx.AsyncClient) -> None:
    path = "/twilio/sms?attempt=7f0c&x=%E5%85%83"
    response = await post(client, path, INBOUND_SMS, sign(PUBLIC_URL + path, INBOUND_SMS, TOKEN))
    assert response.status_code == 200
    response = await post(client, path, INBOUND_SMS, sign(URL, INBOUND_SMS, TOKEN))
    assert response.status_code == 403


async def test_console_mode_signs_with_the_derived_token(
    make_settings: Callable[..., Settings],
) -> None:
    """Without Twilio, ``mimamori simulate`` signs with the token derived from the secret."""
    settings = make_settings()
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        good = await post(
            http, PATH, INBOUND_SMS, sign(URL, INBOUND_SMS, settings.console_auth_token)
        )
        bad = await post(http, PATH, INBOUND_SMS, sign(URL, INBOUND_SMS, TOKEN))
    assert (good.status_code, bad.status_code) == (200, 403)


def test_twilio_published_vector_with_compute_signature() -> None:
    assert sign(VECTOR_URL, VECTOR_PARAMS, VECTOR_TOKEN) == VECTOR_SIGNATURE
    assert RequestValidator(VECTOR_TOKEN).compute_signature(VECTOR_URL, VECTOR_PARAMS) == (
        VECTOR_SIGNATURE
    )


async def test_twilio_published_vector_through_the_dependency(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(public_url="https://mycompany.com", twilio_auth_token=VECTOR_TOKEN)
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as http:
        response = await post(http, "/myapp.php?foo=1&bar=2", VECTOR_PARAMS, VECTOR_SIGNATURE)
        wrong_query = await post(http, "/myapp.php?foo=1&bar=3", VECTOR_PARAMS, VECTOR_SIGNATURE)

    assert response.status_code == 200
    assert response.json() == VECTOR_PARAMS
    assert wrong_query.status_code == 403


async def test_file_upload_is_refused(client: httpx.AsyncClient) -> None:
    signature = sign(URL, INBOUND_SMS, TOKEN)
    response = await client.post(
        PATH,
        data=INBOUND_SMS,
        files={"MediaUrl0": ("x.txt", b"hello")},
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 403

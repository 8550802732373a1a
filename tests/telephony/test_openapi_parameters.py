"""What we send over the wire must be spelled exactly as Twilio's OpenAPI spec spells it.

Twilio ignores an unknown form field silently, so a misspelt ``StatusCallBack`` would
lose every delivery receipt without a single error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from service.telephony.twilio_provider import TwilioProvider
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, MESSAGING_SERVICE_SID

pytestmark = pytest.mark.anyio

SPEC_RELATIVE = Path("twilio") / "twilio_api_v2010.json"
FORM = "application/x-www-form-urlencoded"


def load_spec(fixtures_dir: Path) -> dict[str, Any]:
    path = fixtures_dir / SPEC_RELATIVE
    if not path.is_file():
        pytest.skip(f"Twilio OpenAPI spec not found at {path} (set MIMAMORI_FIXTURES)")
    return json.loads(path.read_text(encoding="utf-8"))


def operation(spec: dict[str, Any], operation_id: str) -> tuple[str, dict[str, Any]]:
    """Find an operation by id, returning its path template and its form body schema."""
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                assert method == "post", f"{operation_id} is {method}, expected post"
                return path, op["requestBody"]["content"][FORM]["schema"]
    raise AssertionError(f"operation {operation_id} not in the spec")


def path_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


async def capture_requests() -> dict[str, list[httpx.Request]]:
    """Send an SMS both ways and a call through the real provider; keep the requests."""
    captured: dict[str, list[httpx.Request]] = {"CreateMessage": [], "CreateCall": []}
    from_number = TwilioProvider(
        http_client_name="httpx",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
    )
    service = TwilioProvider(
        http_client_name="httpx",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
        messaging_service_sid=MESSAGING_SERVICE_SID,
    )
    base = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
    try:
        with respx.mock(assert_all_called=True) as router:
            messages = router.post(f"{base}/Messages.json").respond(
                201, json={"sid": "SM" + "0" * 32, "status": "queued"}
            )
            calls = router.post(f"{base}/Calls.json").respond(
                201, json={"sid": "CA" + "0" * 32, "status": "queued"}
            )
            callback = "https://mimamori.example.org/twilio/status?attempt=1"
            await from_number.send_sms(to="+819012345678", body="1", status_callback=callback)
            await service.send_sms(to="+819012345678", body="1", status_callback=callback)
            await from_number.place_call(
                to="+819012345678",
                twiml_url="https://mimamori.example.org/twilio/voice?attempt=2",
                status_callback="https://mimamori.example.org/twilio/voice/status?attempt=2",
            )
        captured["CreateMessage"] = [call.request for call in messages.calls]
        captured["CreateCall"] = [call.request for call in calls.calls]
    finally:
        await from_number.aclose()
        await service.aclose()
    return captured


async def test_every_outbound_parameter_exists_in_twilio_openapi_spec(fixtures_dir: Path) -> None:
    spec = load_spec(fixtures_dir)
    captured = await capture_requests()
    assert len(captured["CreateMessage"]) == 2
    assert len(captured["CreateCall"]) == 1

    for operation_id, requests in captured.items():
        path, schema = operation(spec, operation_id)
        allowed = set(schema["properties"])
        required = set(schema.get("required", []))
        for request in requests:
            assert request.headers["Content-Type"] == FORM
            assert path_pattern(path).match(request.url.path), (request.url.path, path)
            sent = {name for name, _ in parse_qsl(request.content.decode(), keep_blank_values=True)}
            unknown = sent - allowed
            assert not unknown, f"{operation_id} sends fields not in the spec: {sorted(unknown)}"
            assert required <= sent, f"{operation_id} misses required {sorted(required - sent)}"
            assert "StatusCallback" in sent


async def test_sms_names_exactly_one_sender() -> None:
    """The spec says in prose that a message needs From or MessagingServiceSid."""
    captured = await capture_requests()
    for request in captured["CreateMessage"]:
        sent = {name for name, _ in parse_qsl(request.content.decode())}
        assert len(sent & {"From", "MessagingServiceSid"}) == 1


async def test_call_names_exactly_one_instruction_source() -> None:
    """The spec says in prose that a call needs exactly one of Url, Twiml, ApplicationSid."""
    captured = await capture_requests()
    sent = {name for name, _ in parse_qsl(captured["CreateCall"][0].content.decode())}
    assert sent & {"Url", "Twiml", "ApplicationSid"} == {"Url"}

"""The Twilio provider against a mocked wire: what Twilio receives and how failures map."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import httpx
import pytest
import respx
from aioresponses import aioresponses
from yarl import URL

from service.config import Settings
from service.telephony.errors import PermanentSendError, TransientSendError
from service.telephony.provider import (
    ReconcileUnavailable,
    call_status_callback_url,
    call_twiml_url,
    make_provider,
    sms_status_callback_url,
)
from service.telephony.twilio_provider import CALL_STATUS_EVENTS, TwilioProvider
from tests.telephony.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    MESSAGING_SERVICE_SID,
    PUBLIC_URL,
)

pytestmark = pytest.mark.anyio

API = "https://api.twilio.com"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CALLS_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
RESIDENT = "+819012345678"
MESSAGE_SID = "SM" + "1" * 32
CALL_SID = "CA" + "2" * 32
SMS_CALLBACK = f"{PUBLIC_URL}/twilio/status?attempt=a1"
CALL_CALLBACK = f"{PUBLIC_URL}/twilio/voice/status?attempt=a2"
TWIML_URL = f"{PUBLIC_URL}/twilio/voice?attempt=a2"


def message_body(**overrides: Any) -> dict[str, Any]:
    """A Messages.json 201 body shaped like Twilio's."""
    body: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": "Are you OK? Reply 1",
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_sent": None,
        "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": FROM_NUMBER,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": MESSAGE_SID,
        "status": "queued",
        "subresource_uris": {"media": f"{MESSAGES_PATH[:-5]}/{MESSAGE_SID}/Media.json"},
        "to": RESIDENT,
        "uri": f"{MESSAGES_PATH[:-5]}/{MESSAGE_SID}.json",
    }
    body.update(overrides)
    return body


def call_body(**overrides: Any) -> dict[str, Any]:
    """A Calls.json 201 body shaped like Twilio's."""
    body: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "answered_by": None,
        "api_version": "2010-04-01",
        "caller_name": None,
        "date_created": None,
        "date_updated": None,
        "direction": "outbound-api",
        "duration": None,
        "end_time": None,
        "from": FROM_NUMBER,
        "from_formatted": "050-1234-5678",
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "sid": CALL_SID,
        "start_time": None,
        "status": "queued",
        "to": RESIDENT,
        "to_formatted": "090-1234-5678",
        "uri": f"{CALLS_PATH[:-5]}/{CALL_SID}.json",
    }
    body.update(overrides)
    return body


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def form_of(request: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(request.content.decode(), keep_blank_values=True)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
async def provider() -> AsyncIterator[TwilioProvider]:
    twilio = TwilioProvider(
        http_client_name="httpx",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
    )
    yield twilio
    await twilio.aclose()


@pytest.fixture
def twilio_api() -> respx.MockRouter:
    with respx.mock(base_url=API, assert_all_called=True) as router:
        yield router


async def test_sms_posts_exact_form_fields_with_basic_auth(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(MESSAGES_PATH).respond(201, json=message_body())

    result = await provider.send_sms(
        to=RESIDENT, body="Are you OK? Reply 1", status_callback=SMS_CALLBACK
    )

    assert result.sid == MESSAGE_SID
    assert result.status == "queued"
    request = route.calls.last.request
    assert str(request.url) == f"{API}{MESSAGES_PATH}"
    assert request.headers["Authorization"] == basic_auth(ACCOUNT_SID, AUTH_TOKEN)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sorted(form_of(request)) == sorted(
        [
            ("To", RESIDENT),
            ("Body", "Are you OK? Reply 1"),
            ("From", FROM_NUMBER),
            ("StatusCallback", SMS_CALLBACK),
        ]
    )


async def test_sms_prefers_messaging_service_over_from_number(twilio_api: respx.MockRouter) -> None:
    route = twilio_api.post(MESSAGES_PATH).respond(
        201, json=message_body(messaging_service_sid=MESSAGING_SERVICE_SID, status="accepted")
    )
    twilio = TwilioProvider(
        http_client_name="httpx",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
        messaging_service_sid=MESSAGING_SERVICE_SID,
    )
    try:
        result = await twilio.send_sms(to=RESIDENT, body="元気ですか", status_callback=SMS_CALLBACK)
    finally:
        await twilio.aclose()

    assert result.status == "accepted"
    form = dict(form_of(route.calls.last.request))
    assert form["MessagingServiceSid"] == MESSAGING_SERVICE_SID
    assert "From" not in form
    assert form["Body"] == "元気ですか"


async def test_call_posts_twiml_url_machine_detection_and_status_events(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(CALLS_PATH).respond(201, json=call_body())

    result = await provider.place_call(
        to=RESIDENT, twiml_url=TWIML_URL, status_callback=CALL_CALLBACK
    )

    assert (result.sid, result.status) == (CALL_SID, "queued")
    request = route.calls.last.request
    assert str(request.url) == f"{API}{CALLS_PATH}"
    assert request.headers["Authorization"] == basic_auth(ACCOUNT_SID, AUTH_TOKEN)
    fields = form_of(request)
    form = dict(fields)
    assert form["To"] == RESIDENT
    assert form["From"] == FROM_NUMBER
    assert form["Url"] == TWIML_URL
    assert form["Method"] == "POST"
    assert form["StatusCallback"] == CALL_CALLBACK
    assert form["StatusCallbackMethod"] == "POST"
    assert form["MachineDetection"] == "Enable"
    assert int(form["Timeout"]) > 0
    events = [value for name, value in fields if name == "StatusCallbackEvent"]
    assert events == list(CALL_STATUS_EVENTS)


async def test_call_without_from_number_is_permanent_and_never_sent() -> None:
    twilio = TwilioProvider(
        http_client_name="httpx",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        messaging_service_sid=MESSAGING_SERVICE_SID,
    )
    try:
        with respx.mock(assert_all_called=False) as router:
            anything = router.route().respond(500)
            with pytest.raises(PermanentSendError):
                await twilio.place_call(
                    to=RESIDENT, twiml_url=TWIML_URL, status_callback=CALL_CALLBACK
                )
    finally:
        await twilio.aclose()
    assert not anything.called


@pytest.mark.parametrize("base", ["http://twilio-mock.local:8080", "https://edge.example.net/mock"])
async def test_custom_api_url_receives_the_requests(
    base: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from_number=FROM_NUMBER,
        twilio_api_url=base + "/",
        twilio_http_client="httpx",
    )
    twilio = make_provider(settings)
    assert isinstance(twilio, TwilioProvider)
    try:
        with respx.mock(assert_all_called=True) as router:
            sms = router.post(f"{base}{MESSAGES_PATH}").respond(201, json=message_body())
            call = router.post(f"{base}{CALLS_PATH}").respond(201, json=call_body())
            await twilio.send_sms(
                to=RESIDENT, body="hi", status_callback=sms_status_callback_url(settings)
            )
            await twilio.place_call(
                to=RESIDENT,
                twiml_url=call_twiml_url(settings),
                status_callback=call_status_callback_url(settings),
            )
    finally:
        await twilio.aclose()
    assert dict(form_of(sms.calls.last.request))["StatusCallback"] == f"{PUBLIC_URL}/twilio/status"
    call_form = dict(form_of(call.calls.last.request))
    assert call_form["Url"] == f"{PUBLIC_URL}/twilio/voice"
    assert call_form["StatusCallback"] == f"{PUBLIC_URL}/twilio/voice/status"


async def test_rate_limit_is_transient_with_retry_after(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(MESSAGES_PATH).respond(
        429, json=twilio_error(20429, "Too Many Requests", 429), headers={"Retry-After": "7"}
    )

    with pytest.raises(TransientSendError) as caught:
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert caught.value.retry_after == 7.0
    assert caught.value.ambiguous is False


async def test_server_error_is_transient(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(MESSAGES_PATH).respond(
        500, json=twilio_error(20500, "Internal Server Error", 500)
    )

    with pytest.raises(TransientSendError) as caught:
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert caught.value.ambiguous is False
    assert caught.value.retry_after is None


async def test_server_error_without_json_body_is_transient(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(CALLS_PATH).respond(503, text="<html>Service Unavailable</html>")

    with pytest.raises(TransientSendError):
        await provider.place_call(to=RESIDENT, twiml_url=TWIML_URL, status_callback=CALL_CALLBACK)


async def test_read_timeout_is_transient_and_ambiguous(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(MESSAGES_PATH).mock(side_effect=httpx.ReadTimeout("timed out"))

    with pytest.raises(TransientSendError) as caught:
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert caught.value.ambiguous is True


async def test_dropped_connection_after_send_is_ambiguous(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(CALLS_PATH).mock(
        side_effect=httpx.RemoteProtocolError("Server disconnected without sending a response.")
    )

    with pytest.raises(TransientSendError) as caught:
        await provider.place_call(to=RESIDENT, twiml_url=TWIML_URL, status_callback=CALL_CALLBACK)

    assert caught.value.ambiguous is True


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout])
async def test_connect_failure_is_transient_not_ambiguous(
    error: type[httpx.TransportError], provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(MESSAGES_PATH).mock(side_effect=error("unreachable"))

    with pytest.raises(TransientSendError) as caught:
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert caught.value.ambiguous is False


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (21610, "Attempt to send to unsubscribed recipient"),
        (21211, "The 'To' number +8190 is not a valid phone number."),
        (21614, "'To' number is not a valid mobile number"),
        (21408, "Permission to send an SMS has not been enabled for the region indicated"),
    ],
)
async def test_twilio_rejection_is_permanent_with_its_code(
    code: int, message: str, provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(MESSAGES_PATH).respond(400, json=twilio_error(code, message, 400))

    with pytest.raises(PermanentSendError) as caught:
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert caught.value.code == code
    assert message in caught.value.reason


async def test_unknown_client_error_is_permanent(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(CALLS_PATH).respond(
        400, json=twilio_error(21205, "Url is not a valid URL", 400)
    )

    with pytest.raises(PermanentSendError) as caught:
        await provider.place_call(to=RESIDENT, twiml_url="nope", status_callback=CALL_CALLBACK)

    assert caught.value.code == 21205


async def test_concurrent_failures_keep_their_own_retry_after(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    """One client serves all concurrent sends; a Retry-After must not leak between them."""

    async def answer(request: httpx.Request) -> httpx.Response:
        to = dict(form_of(request))["To"]
        await asyncio.sleep(0.01 if to.endswith("1") else 0)
        seconds = "11" if to.endswith("1") else "22"
        return httpx.Response(
            429,
            json=twilio_error(20429, "Too Many Requests", 429),
            headers={"Retry-After": seconds},
        )

    twilio_api.post(MESSAGES_PATH).mock(side_effect=answer)

    async def retry_after_for(to: str) -> float | None:
        try:
            await provider.send_sms(to=to, body="hi", status_callback=SMS_CALLBACK)
        except TransientSendError as exc:
            return exc.retry_after
        raise AssertionError("expected a TransientSendError")

    results = await asyncio.gather(*(retry_after_for(f"+8190000000{i}") for i in range(1, 7)))
    assert results == [11.0 if i == 1 else 22.0 for i in range(1, 7)]


async def test_sms_is_sent_once_even_when_it_fails(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    """Retrying belongs to the dispatcher, which knows whether a resend is safe."""
    route = twilio_api.post(MESSAGES_PATH).respond(
        503, json=twilio_error(20503, "Service Unavailable", 503)
    )

    with pytest.raises(TransientSendError):
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert route.call_count == 1


async def test_logs_mask_the_phone_number_and_omit_the_body(
    provider: TwilioProvider, twilio_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    twilio_api.post(MESSAGES_PATH).respond(201, json=message_body())
    caplog.set_level("DEBUG")

    await provider.send_sms(to=RESIDENT, body="secret health note", status_callback=SMS_CALLBACK)

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert RESIDENT not in logged
    assert "secret health note" not in logged
    assert MESSAGE_SID in logged


async def test_rfc9457_error_body_is_classified_by_its_code(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(MESSAGES_PATH).respond(
        400,
        json={
            "type": "https://www.twilio.com/docs/errors/21211",
            "title": "Invalid 'To' Phone Number",
            "status": 400,
            "code": 21211,
            "detail": "The 'To' number is not a valid phone number.",
        },
    )

    with pytest.raises(PermanentSendError) as caught:
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert caught.value.code == 21211


async def test_accepted_but_unreadable_answer_is_ambiguous(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    """Twilio said 201, so the message exists, but without its SID we cannot record it."""
    twilio_api.post(MESSAGES_PATH).respond(201, text="<html>proxy page</html>")

    with pytest.raises(TransientSendError) as caught:
        await provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)

    assert caught.value.ambiguous is True


async def test_accepted_without_sid_is_ambiguous(
    provider: TwilioProvider, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(CALLS_PATH).respond(201, json={"status": "queued"})

    with pytest.raises(TransientSendError) as caught:
        await provider.place_call(to=RESIDENT, twiml_url=TWIML_URL, status_callback=CALL_CALLBACK)

    assert caught.value.ambiguous is True


# --- The aiohttp transport (the default), mocked with aioresponses --------------------------------


@pytest.fixture
async def aio_provider() -> AsyncIterator[TwilioProvider]:
    twilio = TwilioProvider(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER)
    yield twilio
    await twilio.aclose()


def aio_form(mocked: aioresponses, method: str, url: str) -> list[tuple[str, str]]:
    [call] = mocked.requests[(method, URL(url))]
    return parse_qsl(call.kwargs["data"].decode(), keep_blank_values=True)


async def test_aiohttp_is_the_default_and_sends_exactly_what_httpx_sends() -> None:
    """The form is built once, by the provider; both transports put the same bytes and the
    same Basic auth on the wire."""
    aio = TwilioProvider(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER)
    hx = TwilioProvider(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
        http_client_name="httpx",
    )
    try:
        with aioresponses() as mocked:
            mocked.post(API + MESSAGES_PATH, status=201, payload=message_body())
            mocked.post(API + CALLS_PATH, status=201, payload=call_body())
            await aio.send_sms(to=RESIDENT, body="元気ですか 1", status_callback=SMS_CALLBACK)
            await aio.place_call(to=RESIDENT, twiml_url=TWIML_URL, status_callback=CALL_CALLBACK)
            sms_aio = aio_form(mocked, "POST", API + MESSAGES_PATH)
            call_aio = aio_form(mocked, "POST", API + CALLS_PATH)
            [sms_call] = mocked.requests[("POST", URL(API + MESSAGES_PATH))]
            assert sms_call.kwargs["headers"]["Authorization"] == basic_auth(
                ACCOUNT_SID, AUTH_TOKEN
            )
        with respx.mock(base_url=API) as router:
            sms = router.post(MESSAGES_PATH).respond(201, json=message_body())
            call = router.post(CALLS_PATH).respond(201, json=call_body())
            await hx.send_sms(to=RESIDENT, body="元気ですか 1", status_callback=SMS_CALLBACK)
            await hx.place_call(to=RESIDENT, twiml_url=TWIML_URL, status_callback=CALL_CALLBACK)
    finally:
        await aio.aclose()
        await hx.aclose()
    assert sms_aio == form_of(sms.calls.last.request)
    assert call_aio == form_of(call.calls.last.request)


@pytest.mark.parametrize(
    ("answer", "kind", "ambiguous", "retry_after", "code"),
    [
        (
            {
                "status": 429,
                "payload": twilio_error(20429, "Too Many", 429),
                "headers": {"Retry-After": "3"},
            },
            TransientSendError,
            False,
            3.0,
            None,
        ),
        ({"status": 503, "body": "<html>down</html>"}, TransientSendError, False, None, None),
        (
            {"status": 400, "payload": twilio_error(21610, "unsubscribed", 400)},
            PermanentSendError,
            None,
            None,
            21610,
        ),
        ({"status": 201, "body": "<html>proxy</html>"}, TransientSendError, True, None, None),
        ({"exception": aiohttp.SocketTimeoutError("read")}, TransientSendError, True, None, None),
        ({"exception": aiohttp.ServerDisconnectedError()}, TransientSendError, True, None, None),
        (
            {"exception": aiohttp.ConnectionTimeoutError("connect")},
            TransientSendError,
            False,
            None,
            None,
        ),
        (
            {
                "exception": aiohttp.ClientConnectorError(
                    aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
                    OSError(111, "refused"),
                )
            },
            TransientSendError,
            False,
            None,
            None,
        ),
    ],
    ids=[
        "429",
        "503-html",
        "21610",
        "201-unreadable",
        "read-timeout",
        "dropped",
        "connect-timeout",
        "refused",
    ],
)
async def test_aiohttp_failures_are_classified_by_when_they_happened(
    aio_provider: TwilioProvider,
    answer: dict[str, Any],
    kind: type,
    ambiguous: bool | None,
    retry_after: float | None,
    code: int | None,
) -> None:
    with aioresponses() as mocked:
        mocked.post(API + MESSAGES_PATH, **answer)
        with pytest.raises(kind) as caught:
            await aio_provider.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)
    if kind is TransientSendError:
        assert (caught.value.ambiguous, caught.value.retry_after) == (ambiguous, retry_after)
    else:
        assert caught.value.code == code


async def test_aiohttp_custom_api_url_receives_the_requests() -> None:
    base = "http://127.0.0.1:8089"
    twilio = TwilioProvider(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER, api_url=base
    )
    try:
        with aioresponses() as mocked:
            mocked.post(base + MESSAGES_PATH, status=201, payload=message_body())
            result = await twilio.send_sms(to=RESIDENT, body="hi", status_callback=SMS_CALLBACK)
    finally:
        await twilio.aclose()
    assert result.sid == MESSAGE_SID


def listed(sid: str, minutes_ago: float, **fields: Any) -> dict[str, Any]:
    created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return message_body(sid=sid, date_created=format_datetime(created, usegmt=True), **fields)


async def test_sent_to_reads_the_message_list_newest_first_until_before_the_claim(
    aio_provider: TwilioProvider,
) -> None:
    """Filtered by To on Twilio's side; by time, sender and page on ours. Paging stops at
    the first message older than the claim (less a minute for clock skew)."""
    since = datetime.now(UTC) - timedelta(minutes=5)
    first_page = {
        "messages": [
            listed("SM" + "a" * 32, 1),
            listed("SM" + "b" * 32, 2, **{"from": "+81999"}),  # another sender: not ours
        ],
        "next_page_uri": f"{MESSAGES_PATH}?To=%2B819012345678&PageSize=50&Page=1&PageToken=PA1",
    }
    second_page = {
        "messages": [listed("SM" + "c" * 32, 4), listed("SM" + "d" * 32, 30)],
        "next_page_uri": f"{MESSAGES_PATH}?Page=2",
    }
    with aioresponses() as mocked:
        mocked.get(
            re.compile(re.escape(API + MESSAGES_PATH) + r"\?PageSize=50&To=.*"), payload=first_page
        )
        mocked.get(
            re.compile(re.escape(API + MESSAGES_PATH) + r"\?.*PageToken=PA1.*"), payload=second_page
        )
        records = await aio_provider.sent_to(channel="sms", to=RESIDENT, since=since)
        requested = [str(url) for (method, url) in mocked.requests]
    assert [r.sid for r in records] == ["SM" + "a" * 32, "SM" + "c" * 32]
    assert all(r.body == "Are you OK? Reply 1" and r.to == RESIDENT for r in records)
    assert len(requested) == 2  # the third page is never asked for
    assert "To=%2B819012345678" in requested[0] and "PageSize=50" in requested[0]


async def test_sent_to_is_unavailable_when_twilio_cannot_answer(
    aio_provider: TwilioProvider,
) -> None:
    since = datetime.now(UTC)
    with aioresponses() as mocked:
        mocked.get(re.compile(re.escape(API + CALLS_PATH) + ".*"), status=503, body="down")
        with pytest.raises(ReconcileUnavailable):
            await aio_provider.sent_to(channel="call", to=RESIDENT, since=since)
        mocked.get(
            re.compile(re.escape(API + CALLS_PATH) + ".*"), exception=aiohttp.SocketTimeoutError()
        )
        with pytest.raises(ReconcileUnavailable):
            await aio_provider.sent_to(channel="call", to=RESIDENT, since=since)

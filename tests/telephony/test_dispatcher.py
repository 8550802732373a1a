"""The outbox dispatcher end to end: real database rows, the real ``TwilioProvider`` and SDK,
and respx on the wire at ``https://api.twilio.com``. Time is passed in (``now``), so backoff
is checked by moving it, never by sleeping."""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlmodel import Session

from service.checkins.models import CheckInState
from service.common import aware
from service.config import Settings
from service.telephony.console import ConsoleProvider
from service.telephony.dispatch import dispatch_once, dispatch_until_empty
from service.telephony.models import (
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
    Reconciliation,
)
from service.telephony.outbox import enqueue
from service.telephony.twilio_provider import CALL_STATUS_EVENTS, TwilioProvider
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    MESSAGING_SERVICE_SID,
    PUBLIC_URL,
)
from tests.telephony.test_twilio_provider import (
    CALLS_PATH,
    MESSAGES_PATH,
    call_body,
    form_of,
    message_body,
    twilio_error,
)
from tests.telephony.worlds import (
    LANDLINE,
    LANDLINE_LOCAL,
    MOBILE,
    MOBILE_LOCAL,
    attempt_of,
    checkin_of,
    message_row,
    signed_headers,
    start_round_for,
)

pytestmark = pytest.mark.anyio

API = "https://api.twilio.com"
SID = "SM" + "5" * 32
MEMBER_PHONE = "+818030000001"


def twilio_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from_number": FROM_NUMBER,
        "twilio_messaging_service_sid": None,
        "twilio_api_url": API,
        "sms_per_second": 1000.0,
        "calls_per_second": 1000.0,
        "sms_per_recipient_per_hour": 10,
        # respx mocks httpx's wire; the aiohttp transport is tested with aioresponses.
        "twilio_http_client": "httpx",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings() -> Settings:
    return twilio_settings()


@pytest.fixture
async def twilio(settings: Settings) -> AsyncIterator[TwilioProvider]:
    provider = TwilioProvider.from_settings(settings)
    yield provider
    await provider.aclose()


@pytest.fixture
def wire() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


def sms_checkin(world: World) -> OutboxMessage:
    """A resident with a mobile and an open check-in whose first SMS is due now."""
    world.resident("R-sms", MOBILE_LOCAL, language="ja")
    start_round_for(world, "R-sms")
    with Session(world.engine) as s:
        return s.execute(select(OutboxMessage).where(OutboxMessage.to_phone == MOBILE)).scalar_one()


def alert_row(world: World) -> OutboxMessage:
    with Session(world.engine) as s:
        message = enqueue(
            s,
            organization_id=world.org_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.alert,
            to_phone=MEMBER_PHONE,
            body="見守り: 住民 R-1 さんから「助けが必要」。宅田町第2団地 1-101。",
            now=world.clock.now(),
        )
        s.commit()
        s.refresh(message)
        return message


async def dispatch(world: World, provider: Any, settings: Settings, now: datetime) -> int:
    return await dispatch_once(engine=world.engine, provider=provider, settings=settings, now=now)


def successful(route: respx.Route) -> list[httpx.Request]:
    return [call.request for call in route.calls if call.response.status_code == 201]


def expected_sms_form(message: OutboxMessage, sender: tuple[str, str]) -> dict[str, str]:
    return {
        "To": message.to_phone,
        "Body": message.body or "",
        sender[0]: sender[1],
        "StatusCallback": f"{PUBLIC_URL}/twilio/status?attempt={message.id}",
    }


def exact_form(request: httpx.Request) -> dict[str, str]:
    fields = form_of(request)
    assert len(fields) == len({name for name, _ in fields}), fields  # no repeated field
    return dict(fields)


# --- Retries -------------------------------------------------------------------------------------


async def test_429_is_retried_after_retry_after_and_sent_exactly_once(
    world, settings, twilio, wire
):
    message = sms_checkin(world)
    route = wire.post(MESSAGES_PATH).mock(
        side_effect=[
            httpx.Response(
                429,
                json=twilio_error(20429, "Too Many Requests", 429),
                headers={"Retry-After": "3"},
            ),
            httpx.Response(201, json=message_body(sid=SID, to=MOBILE)),
        ]
    )
    t0 = world.clock.now()

    assert await dispatch(world, twilio, settings, t0) == 1
    row = message_row(world.engine, message.id)
    assert (row.status, row.tries, row.sid) == (OutboxStatus.pending, 1, None)
    assert aware(row.next_try_at) == t0 + timedelta(seconds=3)  # Retry-After is the floor

    assert await dispatch(world, twilio, settings, t0 + timedelta(seconds=2)) == 0  # not yet due
    assert route.call_count == 1
    assert await dispatch(world, twilio, settings, t0 + timedelta(seconds=3)) == 1
    assert await dispatch(world, twilio, settings, t0 + timedelta(hours=2)) == 0  # has a SID

    assert route.call_count == 2
    [sent] = successful(route)
    assert exact_form(sent) == expected_sms_form(message, ("From", FROM_NUMBER))
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid, row.tries) == (OutboxStatus.sent, SID, 2)
    assert aware(row.sent_at) == t0 + timedelta(seconds=3)


async def test_500_three_times_is_retried_with_growing_backoff_then_sent_once(
    world, settings, twilio, wire
):
    message = sms_checkin(world)
    server_error = httpx.Response(500, json=twilio_error(20500, "Internal Server Error", 500))
    route = wire.post(MESSAGES_PATH).mock(
        side_effect=[
            server_error,
            server_error,
            server_error,
            httpx.Response(201, json=message_body(sid=SID)),
        ]
    )
    now = world.clock.now()
    delays = []
    for attempt in range(1, 4):
        assert await dispatch(world, twilio, settings, now) == 1
        row = message_row(world.engine, message.id)
        assert (row.status, row.tries, row.sid) == (OutboxStatus.pending, attempt, None)
        due = aware(row.next_try_at)
        assert due is not None
        delays.append((due - now).total_seconds())
        # Nothing goes out before the backoff has passed.
        assert await dispatch(world, twilio, settings, due - timedelta(milliseconds=1)) == 0
        assert route.call_count == attempt
        now = due

    # Exponential with jitter: 1 s * 2^(n-1), between half and all of it.
    for n, delay in enumerate(delays, start=1):
        ceiling = 1.0 * 2 ** (n - 1)
        assert ceiling / 2 <= delay <= ceiling, (n, delay)
    assert await dispatch(world, twilio, settings, now) == 1
    assert await dispatch(world, twilio, settings, now + timedelta(days=1)) == 0

    assert route.call_count == 4
    [sent] = successful(route)
    assert exact_form(sent) == expected_sms_form(message, ("From", FROM_NUMBER))
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid, row.tries) == (OutboxStatus.sent, SID, 4)


async def test_transient_failures_past_the_deadline_fail_the_attempt_and_move_the_checkin_on(
    world, settings, twilio, wire
):
    message = sms_checkin(world)
    route = wire.post(MESSAGES_PATH).respond(503, json=twilio_error(20503, "Unavailable", 503))
    now = world.clock.now()
    give_up_at = aware(message.give_up_at)
    assert give_up_at is not None
    for _ in range(1000):  # every 10 s at most, for the row's window
        await dispatch(world, twilio, settings, now)
        row = message_row(world.engine, message.id)
        if row.status != OutboxStatus.pending:
            break
        now = aware(row.next_try_at) or now
    assert row.status == OutboxStatus.failed and "gave up" in (row.last_error or "")
    assert now <= give_up_at
    tries = route.call_count
    assert await dispatch(world, twilio, settings, give_up_at + timedelta(hours=1)) == 0
    assert route.call_count == tries
    assert attempt_of(world.engine, message.attempt_id).status == "failed"
    checkin = checkin_of(world.engine, world.residents["R-sms"])
    assert aware(checkin.next_action_at) == now


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (21610, "Attempt to send to unsubscribed recipient"),
        (21211, "The 'To' number +8190 is not a valid phone number."),
    ],
)
async def test_permanent_error_fails_the_attempt_at_once_without_retry(
    world, settings, twilio, wire, code, text
):
    message = sms_checkin(world)
    route = wire.post(MESSAGES_PATH).respond(400, json=twilio_error(code, text, 400))
    world.clock.advance(seconds=30)
    now = world.clock.now()

    assert await dispatch(world, twilio, settings, now) == 1
    for later in (timedelta(seconds=10), timedelta(minutes=10), timedelta(hours=3)):
        assert await dispatch(world, twilio, settings, now + later) == 0
    assert route.call_count == 1

    row = message_row(world.engine, message.id)
    assert (row.status, row.last_error_code, row.sid, row.tries) == (
        OutboxStatus.failed,
        code,
        None,
        1,
    )
    attempt = attempt_of(world.engine, message.attempt_id)
    assert (attempt.status, attempt.error_code) == ("failed", code)
    checkin = checkin_of(world.engine, world.residents["R-sms"])
    assert checkin.state == CheckInState.waiting
    assert aware(checkin.next_action_at) == now  # the next step is taken now, not in an hour


# --- Ambiguous timeouts --------------------------------------------------------------------------


async def test_timeout_on_a_checkin_sms_is_uncertain_and_never_resent_unreconciled(
    world, settings, twilio, wire
):
    """A read timeout may hide a created message: the dispatcher never sends it again on
    its own; only reconciliation with Twilio's record decides (test_dispatch_reconcile)."""
    message = sms_checkin(world)
    route = wire.post(MESSAGES_PATH).mock(side_effect=httpx.ReadTimeout("no answer"))
    checkin_before = checkin_of(world.engine, world.residents["R-sms"])
    now = world.clock.now()

    assert await dispatch(world, twilio, settings, now) == 1
    for later in (timedelta(seconds=5), timedelta(minutes=5), timedelta(hours=1)):
        assert await dispatch(world, twilio, settings, now + later) == 0
    assert route.call_count == 1

    row = message_row(world.engine, message.id)
    assert (row.status, row.sid, row.reconciliation) == (
        OutboxStatus.sending,
        None,
        Reconciliation.uncertain,
    )
    assert row.lease_until is None and aware(row.uncertain_since) == now
    assert attempt_of(world.engine, message.attempt_id).status == "queued"
    checkin = checkin_of(world.engine, world.residents["R-sms"])
    assert checkin.state == CheckInState.waiting
    assert checkin.next_action_at == checkin_before.next_action_at


async def test_a_connect_error_is_not_ambiguous_and_is_retried(world, settings, twilio, wire):
    message = sms_checkin(world)
    route = wire.post(MESSAGES_PATH).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=message_body(sid=SID))]
    )
    now = world.clock.now()
    await dispatch(world, twilio, settings, now)
    row = message_row(world.engine, message.id)
    assert row.status == OutboxStatus.pending
    await dispatch(world, twilio, settings, aware(row.next_try_at) or now)
    assert route.call_count == 2
    assert message_row(world.engine, message.id).sid == SID


# --- Callbacks racing the dispatcher -------------------------------------------------------------


def _status_callback(
    world: World, message_id: uuid.UUID, sid: str, status: str, **extra: str
) -> int:
    path = f"/twilio/status?attempt={message_id}"
    params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "MessageStatus": status, **extra}
    return world.client.post(path, data=params, headers=signed_headers(path, params)).status_code


async def test_status_callback_before_the_send_is_recorded_attaches_the_sid_and_is_not_regressed(
    world, settings, twilio, wire
):
    message = sms_checkin(world)
    seen_while_sending: list[tuple[str, str | None]] = []

    def twilio_accepts_and_calls_back_at_once(request: httpx.Request) -> httpx.Response:
        # Twilio has the message and its callbacks overtake our HTTP answer.
        row = message_row(world.engine, message.id)
        seen_while_sending.append((row.status, row.sid))
        assert _status_callback(world, message.id, SID, "sent") == 204
        assert _status_callback(world, message.id, SID, "delivered") == 204
        return httpx.Response(201, json=message_body(sid=SID))

    route = wire.post(MESSAGES_PATH).mock(side_effect=twilio_accepts_and_calls_back_at_once)
    now = world.clock.now()
    assert await dispatch(world, twilio, settings, now) == 1

    assert seen_while_sending == [(OutboxStatus.sending, None)]
    assert route.call_count == 1
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid) == (OutboxStatus.delivered, SID)
    attempt = attempt_of(world.engine, message.attempt_id)
    assert (attempt.status, attempt.sid) == ("delivered", SID)
    assert await dispatch(world, twilio, settings, now + timedelta(hours=1)) == 0
    assert route.call_count == 1


async def test_failure_callback_before_the_send_is_recorded_is_kept(world, settings, twilio, wire):
    message = sms_checkin(world)

    def accepted_then_failed(request: httpx.Request) -> httpx.Response:
        assert _status_callback(world, message.id, SID, "failed", ErrorCode="30003") == 204
        return httpx.Response(201, json=message_body(sid=SID))

    wire.post(MESSAGES_PATH).mock(side_effect=accepted_then_failed)
    await dispatch(world, twilio, settings, world.clock.now())
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid, row.last_error_code) == (OutboxStatus.failed, SID, 30003)
    assert attempt_of(world.engine, message.attempt_id).status == "failed"


async def test_callback_after_a_timeout_resolves_the_uncertain_row(world, settings, twilio, wire):
    message = sms_checkin(world)
    wire.post(MESSAGES_PATH).mock(side_effect=httpx.ReadTimeout("no answer"))
    await dispatch(world, twilio, settings, world.clock.now())
    row = message_row(world.engine, message.id)
    assert (row.status, row.reconciliation) == (OutboxStatus.sending, Reconciliation.uncertain)

    assert _status_callback(world, message.id, SID, "delivered") == 204
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid) == (OutboxStatus.delivered, SID)
    attempt = attempt_of(world.engine, message.attempt_id)
    assert (attempt.status, attempt.sid) == ("delivered", SID)


# --- What Twilio receives ------------------------------------------------------------------------


async def test_messaging_service_is_the_sender_when_configured(world, wire):
    settings = twilio_settings(
        twilio_from_number=None, twilio_messaging_service_sid=MESSAGING_SERVICE_SID
    )
    provider = TwilioProvider.from_settings(settings)
    message = sms_checkin(world)
    route = wire.post(MESSAGES_PATH).respond(201, json=message_body(sid=SID))
    try:
        await dispatch(world, provider, settings, world.clock.now())
    finally:
        await provider.aclose()
    assert exact_form(route.calls.last.request) == expected_sms_form(
        message, ("MessagingServiceSid", MESSAGING_SERVICE_SID)
    )


async def test_checkin_call_is_placed_with_its_twiml_url_status_callback_and_machine_detection(
    world, settings, twilio, wire
):
    world.resident("R-call", LANDLINE_LOCAL, language="ja")
    start_round_for(world, "R-call")
    call_sid = "CA" + "6" * 32
    route = wire.post(CALLS_PATH).respond(201, json=call_body(sid=call_sid, to=LANDLINE))
    await dispatch(world, twilio, settings, world.clock.now())

    with Session(world.engine) as s:
        call = s.execute(
            select(OutboxMessage).where(OutboxMessage.to_phone == LANDLINE)
        ).scalar_one()
    fields = form_of(route.calls.last.request)
    events = [value for name, value in fields if name == "StatusCallbackEvent"]
    assert events == list(CALL_STATUS_EVENTS)
    assert {name: value for name, value in fields if name != "StatusCallbackEvent"} == {
        "To": LANDLINE,
        "From": FROM_NUMBER,
        "Url": f"{PUBLIC_URL}/twilio/voice?attempt={call.id}",
        "Method": "POST",
        "StatusCallback": f"{PUBLIC_URL}/twilio/voice/status?attempt={call.id}",
        "StatusCallbackMethod": "POST",
        "MachineDetection": "Enable",
        "Timeout": "45",
    }
    assert (call.status, call.sid) == (OutboxStatus.sent, call_sid)


# --- Never twice, never dropped ------------------------------------------------------------------


async def test_eleventh_sms_within_an_hour_is_deferred_not_dropped(world):
    """Chatter's cap (notices to a resident): alerts and members' answers have their own
    (``tests/checkins/test_member_protocol_alert_cap.py``)."""
    settings = twilio_settings(twilio_account_sid=None, twilio_auth_token=None)
    console = ConsoleProvider()
    t0 = world.clock.now()
    with Session(world.engine) as s:
        ids = [
            enqueue(
                s,
                organization_id=world.org_id,
                channel=OutboxChannel.sms,
                purpose=OutboxPurpose.resident_notice,
                to_phone=MEMBER_PHONE,
                body=f"お知らせ {i}",
                now=t0 + timedelta(seconds=i),
            ).id
            for i in range(11)
        ]
        s.commit()

    # Eleven claimed, ten sent; the eleventh goes back to wait (the count is of sends).
    assert await dispatch(world, console, settings, t0 + timedelta(seconds=11)) == 10
    rows = [message_row(world.engine, i) for i in ids]
    assert [r.status for r in rows[:10]] == [OutboxStatus.sent] * 10
    eleventh = rows[10]
    assert eleventh.status == OutboxStatus.pending and eleventh.sid is None
    assert aware(eleventh.next_try_at) > t0 + timedelta(minutes=5)  # type: ignore[operator]
    assert "deferred" in (eleventh.last_error or "")
    assert len(console.sent) == 10

    # Still within the hour: deferred again, still kept.
    await dispatch(world, console, settings, aware(eleventh.next_try_at))  # type: ignore[arg-type]
    assert message_row(world.engine, ids[10]).status == OutboxStatus.pending
    assert len(console.sent) == 10

    # Once the first ones are more than an hour old, it goes.
    await dispatch_until_empty(
        engine=world.engine,
        provider=console,
        settings=settings,
        now_fn=lambda: t0 + timedelta(minutes=75),
    )
    assert message_row(world.engine, ids[10]).status == OutboxStatus.sent
    assert [r.body for r in console.sent] == [f"お知らせ {i}" for i in range(11)]


def test_two_dispatchers_at_once_send_each_message_exactly_once(world):
    settings = twilio_settings(twilio_account_sid=None, twilio_auth_token=None)
    console = ConsoleProvider()
    now = world.clock.now()
    with Session(world.engine) as s:
        for i in range(300):
            enqueue(
                s,
                organization_id=world.org_id,
                channel=OutboxChannel.sms,
                purpose=OutboxPurpose.member_notice,
                to_phone=f"+8180{i:08d}",
                body=f"n{i}",
                now=now,
            )
        s.commit()

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(
                dispatch_until_empty(
                    engine=world.engine,
                    provider=console,
                    settings=settings,
                    now_fn=lambda: now,
                    batch=40,
                )
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    bodies = [r.body for r in console.sent]
    assert len(bodies) == 300 and len(set(bodies)) == 300
    with Session(world.engine) as s:
        statuses = set(s.execute(select(OutboxMessage.status)).scalars())
    assert statuses == {OutboxStatus.sent}

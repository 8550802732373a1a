"""The five Twilio webhooks against a real database: signed, stored, idempotent, tolerant.

Every request is signed with ``RequestValidator.compute_signature`` (through
``service.telephony.signature.sign``) exactly as Twilio signs it; nothing is mocked but time.
"""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from i18n.render import render
from scheduler.jobs import process_replies
from service.checkins.models import CheckInState, StaffTask, TaskKind, TimelineEvent
from service.config import get_settings
from service.telephony import webhooks
from service.telephony.models import (
    InboundMessage,
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
    WebhookEvent,
)
from service.telephony.outbox import enqueue
from service.telephony.signature import sign
from tests.checkins.conftest import World, world  # noqa: F401
from tests.conftest import PG_URL
from tests.telephony.worlds import (
    ACCOUNT,
    MOBILE,
    OUR_NUMBER,
    CheckinWorld,
    attempt_of,
    build_checkins,
    checkin_of,
    counts,
    message_row,
    messages_in,
    outbox_to,
    signed_headers,
    snapshot,
)

ORG = "輪島市社会福祉協議会"


def route_requests(cw: CheckinWorld) -> dict[str, tuple[str, dict[str, str]]]:
    """For each webhook, a request that changes the database when it is genuinely signed."""
    return {
        "sms": (
            "/twilio/sms",
            {
                "MessageSid": "SM" + "a" * 32,
                "AccountSid": ACCOUNT,
                "From": MOBILE,
                "To": OUR_NUMBER,
                "Body": "1",
                "NumMedia": "0",
            },
        ),
        "status": (
            f"/twilio/status?attempt={cw.sms.id}",
            {
                "MessageSid": cw.sms.sid or "",
                "AccountSid": ACCOUNT,
                "MessageStatus": "undelivered",
                "ErrorCode": "30003",
            },
        ),
        "voice": (
            f"/twilio/voice?attempt={cw.call.id}",
            {
                "CallSid": cw.call.sid or "",
                "AccountSid": ACCOUNT,
                "CallStatus": "in-progress",
                "AnsweredBy": "machine_end_beep",
            },
        ),
        "gather": (
            f"/twilio/voice/gather?attempt={cw.call.id}",
            {"CallSid": cw.call.sid or "", "AccountSid": ACCOUNT, "Digits": "1"},
        ),
        "call_status": (
            f"/twilio/voice/status?attempt={cw.call.id}",
            {"CallSid": cw.call.sid or "", "AccountSid": ACCOUNT, "CallStatus": "busy"},
        ),
    }


Forgery = Callable[[str, dict[str, str]], tuple[str, dict[str, str], dict[str, str]]]


def _public(path: str) -> str:
    return f"{get_settings().public_url}{path}"


def _token() -> str:
    return get_settings().webhook_auth_tokens()[0]


def _tampered(params: dict[str, str]) -> dict[str, str]:
    changed = dict(params)
    last = list(changed)[-1]
    changed[last] = changed[last] + "0"
    return changed


# Each forgery returns (path to post, form to post, headers) for a genuine (path, form).
FORGERIES: dict[str, Forgery] = {
    "unsigned": lambda path, params: (path, params, {}),
    "empty signature": lambda path, params: (path, params, {"X-Twilio-Signature": ""}),
    "garbage signature": lambda path, params: (
        path,
        params,
        {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
    ),
    "another auth token": lambda path, params: (
        path,
        params,
        {"X-Twilio-Signature": sign(_public(path), params, "0" * 32)},
    ),
    "signed for another host": lambda path, params: (
        path,
        params,
        {"X-Twilio-Signature": sign("https://evil.example.org" + path, params, _token())},
    ),
    "signed for the internal host": lambda path, params: (
        path,
        params,
        {"X-Twilio-Signature": sign("http://testserver" + path, params, _token())},
    ),
    "signed for another path": lambda path, params: (
        path,
        params,
        {"X-Twilio-Signature": sign(_public("/twilio/other"), params, _token())},
    ),
    "signed without the query": lambda path, params: (
        path,
        params,
        {"X-Twilio-Signature": sign(_public(path.split("?")[0] + "?x=1"), params, _token())},
    ),
    "tampered form": lambda path, params: (
        path,
        _tampered(params),
        {"X-Twilio-Signature": sign(_public(path), params, _token())},
    ),
    "signed form of another route": lambda path, params: (
        path,
        params,
        {"X-Twilio-Signature": sign(_public("/twilio/sms"), {"From": MOBILE}, _token())},
    ),
}


@pytest.mark.parametrize("route", ["sms", "status", "voice", "gather", "call_status"])
def test_forged_or_unsigned_webhook_gets_403_and_changes_nothing(world: World, route: str):
    cw = build_checkins(world)
    path, params = route_requests(cw)[route]
    before = snapshot(world.engine)

    for name, forge in FORGERIES.items():
        post_path, form, headers = forge(path, params)
        response = world.client.post(post_path, data=form, headers=headers)
        assert response.status_code == 403, (name, response.status_code, response.text)
        assert snapshot(world.engine) == before, name

    # The same request, genuinely signed, does change the database: the check above can fail.
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code in (200, 204), response.text
    assert snapshot(world.engine) != before


def test_same_message_sid_three_times_has_one_reply_and_one_effect(world: World):
    cw = build_checkins(world)
    params = {
        "MessageSid": "SM" + "d" * 32,
        "AccountSid": ACCOUNT,
        "From": MOBILE,
        "To": OUR_NUMBER,
        "Body": "1",
    }
    headers = signed_headers("/twilio/sms", params)
    before = counts(world.engine)

    replies = []
    for _ in range(3):
        response = world.client.post("/twilio/sms", data=params, headers=headers)
        assert response.status_code == 200, response.text
        replies.extend(messages_in(response.text))
        process_replies(world.ctx)  # the scheduler acts on it between Twilio's retries
        world.clock.advance(seconds=20)  # Twilio's retries come later, not at once

    thanks = render("resident.reply.ok", "ja", org=ORG)
    assert replies == [thanks]
    after = counts(world.engine)
    assert after["inbound_message"] == before["inbound_message"] + 1
    assert after["webhook_event"] == before["webhook_event"] + 1
    with Session(world.engine) as s:
        stored_replies = list(
            s.execute(
                select(OutboxMessage).where(
                    OutboxMessage.to_phone == MOBILE,
                    OutboxMessage.purpose == OutboxPurpose.resident_notice,
                )
            ).scalars()
        )
        reply_events = list(
            s.execute(
                select(TimelineEvent).where(
                    TimelineEvent.resident_id == cw.sms_resident, TimelineEvent.kind == "reply.sms"
                )
            ).scalars()
        )
    assert [m.body for m in stored_replies] == [thanks]
    assert stored_replies[0].status == OutboxStatus.sent  # TwiML carried it; never dispatched
    assert len(reply_events) == 1
    checkin = checkin_of(world.engine, cw.sms_resident)
    assert checkin.state == CheckInState.ok


def test_repeated_talk_request_opens_one_callback_task(world: World):
    """An effect that is not idempotent by itself (a staff task per reply) happens once."""
    build_checkins(world)
    params = {"MessageSid": "SM" + "e" * 32, "From": MOBILE, "To": OUR_NUMBER, "Body": "3"}
    headers = signed_headers("/twilio/sms", params)
    for _ in range(3):
        assert world.client.post("/twilio/sms", data=params, headers=headers).status_code == 200
        process_replies(world.ctx)
    with Session(world.engine) as s:
        tasks = list(
            s.execute(select(StaffTask).where(StaffTask.kind == TaskKind.callback)).scalars()
        )
    assert len(tasks) == 1


def test_replayed_status_callback_is_an_idempotent_no_op(world: World):
    cw = build_checkins(world)
    path = f"/twilio/status?attempt={cw.sms.id}"
    params = {"MessageSid": cw.sms.sid or "", "MessageStatus": "delivered", "AccountSid": ACCOUNT}
    headers = signed_headers(path, params)

    first = world.client.post(path, data=params, headers=headers)
    assert first.status_code == 204
    after_first = snapshot(world.engine)
    world.clock.advance(minutes=1)
    replay = world.client.post(path, data=params, headers=headers)
    assert replay.status_code == 204
    assert snapshot(world.engine) == after_first
    [message] = outbox_to(world.engine, MOBILE)
    assert message.status == OutboxStatus.delivered
    assert attempt_of(world.engine, message.attempt_id).status == "delivered"
    with Session(world.engine) as s:
        events = list(
            s.execute(select(WebhookEvent).where(WebhookEvent.kind == "status")).scalars()
        )
    assert [(e.sid, e.status) for e in events] == [(cw.sms.sid, "delivered")]


def test_late_sent_callback_never_moves_a_delivered_message_backwards(world: World):
    cw = build_checkins(world)
    path = f"/twilio/status?attempt={cw.sms.id}"
    for status in ("delivered", "sent", "queued"):
        params = {"MessageSid": cw.sms.sid or "", "MessageStatus": status}
        assert (
            world.client.post(path, data=params, headers=signed_headers(path, params)).status_code
            == 204
        )
    [message] = outbox_to(world.engine, MOBILE)
    assert message.status == OutboxStatus.delivered


def test_undelivered_status_fails_the_attempt_and_moves_the_checkin_on(world: World):
    cw = build_checkins(world)
    world.clock.advance(minutes=3)
    path = f"/twilio/status?attempt={cw.sms.id}"
    params = {"MessageSid": cw.sms.sid or "", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert (
        world.client.post(path, data=params, headers=signed_headers(path, params)).status_code
        == 204
    )
    [message] = outbox_to(world.engine, MOBILE)
    assert (message.status, message.last_error_code) == (OutboxStatus.undelivered, 30003)
    attempt = attempt_of(world.engine, message.attempt_id)
    assert attempt.status == "failed"
    checkin = checkin_of(world.engine, cw.sms_resident)
    assert checkin.state == CheckInState.waiting
    assert checkin.next_action_at is not None
    assert checkin.next_action_at.replace(tzinfo=None) == world.clock.now().replace(tzinfo=None)


def test_unknown_fields_are_tolerated_and_kept(world: World):
    cw = build_checkins(world)
    params = {
        "MessageSid": "SM" + "f" * 32,
        "SmsMessageSid": "SM" + "f" * 32,
        "AccountSid": ACCOUNT,
        "MessagingServiceSid": "MG" + "1" * 32,
        "From": MOBILE,
        "FromCountry": "JP",
        "To": OUR_NUMBER,
        "Body": "1",
        "NumSegments": "1",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
        "AddOns": '{"status":"successful","results":{}}',
        "SomeFieldTwilioAddsNextYear": "x",
    }
    response = world.client.post(
        "/twilio/sms", data=params, headers=signed_headers("/twilio/sms", params)
    )
    assert response.status_code == 200, response.text
    assert messages_in(response.text) == [render("resident.reply.ok", "ja", org=ORG)]
    with Session(world.engine) as s:
        inbound = s.execute(select(InboundMessage)).scalar_one()
    assert inbound.params["SomeFieldTwilioAddsNextYear"] == "x"
    process_replies(world.ctx)
    assert checkin_of(world.engine, cw.sms_resident).state == CheckInState.ok

    # A status Twilio may add later (or one we do not act on) is accepted and changes nothing.
    path = f"/twilio/status?attempt={cw.sms.id}"
    status = {
        "MessageSid": cw.sms.sid or "",
        "MessageStatus": "scheduled",
        "RawDlrDoneDate": "2612010100",
    }
    assert (
        world.client.post(path, data=status, headers=signed_headers(path, status)).status_code
        == 204
    )
    assert message_row(world.engine, cw.sms.id).status == OutboxStatus.sent


def test_sms_from_an_unknown_number_is_stored_and_flagged_for_staff(world: World):
    build_checkins(world)
    stranger = "+818011112222"
    params = {"MessageSid": "SM" + "b" * 32, "From": stranger, "To": OUR_NUMBER, "Body": "たすけて"}
    response = world.client.post(
        "/twilio/sms", data=params, headers=signed_headers("/twilio/sms", params)
    )
    assert response.status_code == 200
    # Answered in Japanese and English: their language is not known.
    assert messages_in(response.text) == [
        "\n".join(render("resident.reply.received", code) for code in ("ja", "en"))
    ]
    with Session(world.engine) as s:
        inbound = s.execute(
            select(InboundMessage).where(InboundMessage.from_phone == stranger)
        ).scalar_one()
        task = s.execute(select(StaffTask).where(StaffTask.inbound_id == inbound.id)).scalar_one()
    assert inbound.body == "たすけて"
    assert inbound.needs_staff is True
    assert inbound.resident_id is None and inbound.member_id is None
    assert inbound.organization_id == world.org_id  # the only council here: its inbox
    assert inbound.classification == "help"  # a cry for help stands out in the inbox
    assert task.kind == TaskKind.unknown_sender
    assert task.organization_id == world.org_id


def test_webhook_missing_its_sid_is_a_clear_400_and_stores_nothing(world: World):
    build_checkins(world)
    before = snapshot(world.engine)
    params = {"From": MOBILE, "Body": "1"}
    response = world.client.post(
        "/twilio/sms", data=params, headers=signed_headers("/twilio/sms", params)
    )
    assert response.status_code == 400
    assert "MessageSid" in response.text
    assert snapshot(world.engine) == before


def test_twiml_reply_counts_against_the_per_recipient_cap(world: World):
    """A resident who already had the hour's share of SMS gets no TwiML reply (the answer
    still counts), so an auto-responder cannot loop with us."""
    cw = build_checkins(world)
    cap = get_settings().sms_per_recipient_per_hour
    now = world.clock.now()
    with Session(world.engine) as s:
        for i in range(cap - 1):  # plus the check-in SMS already sent
            message = enqueue(
                s,
                organization_id=world.org_id,
                channel=OutboxChannel.sms,
                purpose=OutboxPurpose.resident_notice,
                to_phone=MOBILE,
                body=f"notice {i}",
                now=now - timedelta(minutes=30),
            )
            message.status = OutboxStatus.sent
            message.sent_at = now - timedelta(minutes=30)
        s.commit()
    before = len(outbox_to(world.engine, MOBILE))
    params = {"MessageSid": "SM" + "c" * 32, "From": MOBILE, "To": OUR_NUMBER, "Body": "1"}
    response = world.client.post(
        "/twilio/sms", data=params, headers=signed_headers("/twilio/sms", params)
    )
    assert response.status_code == 200
    assert messages_in(response.text) == []
    assert len(outbox_to(world.engine, MOBILE)) == before
    process_replies(world.ctx)
    assert checkin_of(world.engine, cw.sms_resident).state == CheckInState.ok


def _post(world: World, path: str, params: dict[str, str]) -> Any:
    return world.client.post(path, data=params, headers=signed_headers(path, params))


@pytest.mark.skipif(not PG_URL, reason="two workers holding row locks: PostgreSQL only")
def test_racing_status_callbacks_on_two_workers_never_move_a_message_backwards(world: World):
    """A send whose answer was lost (ambiguous, no SID) is reconciled by its callbacks. If
    'delivered' is being handled by one worker when 'sent' (sent earlier by Twilio) reaches
    another, the second must see the first's result, not the status both started from."""
    cw = build_checkins(world)
    sid = "SM" + "7" * 32
    with Session(world.engine) as s:
        row = s.get(OutboxMessage, cw.sms.id)
        assert row is not None
        row.status, row.sid = OutboxStatus.ambiguous, None
        s.add(row)
        s.commit()
    path = f"/twilio/status?attempt={cw.sms.id}"
    sent = {"MessageSid": sid, "AccountSid": ACCOUNT, "MessageStatus": "sent"}
    outcome: dict[str, int] = {}

    def second_worker() -> None:
        outcome["status"] = _post(world, path, sent).status_code

    with Session(world.engine) as first_worker:
        message = webhooks._find_message(first_worker, sid, str(cw.sms.id))
        assert message is not None
        webhooks._apply_status(first_worker, message, OutboxStatus.delivered, None)
        first_worker.flush()
        thread = threading.Thread(target=second_worker)
        thread.start()
        _wait_for_a_lock_wait(world)
        first_worker.commit()
    thread.join(timeout=30)
    assert outcome == {"status": 204}
    row = message_row(world.engine, cw.sms.id)
    assert (row.status, row.sid) == (OutboxStatus.delivered, sid)
    assert attempt_of(world.engine, cw.sms.attempt_id).status == "delivered"


def _wait_for_a_lock_wait(world: World) -> None:
    """Until another connection is blocked on a row lock (the second worker)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with world.engine.connect() as connection:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the second worker never waited for the first")


def test_a_nul_character_in_an_sms_is_kept_as_a_stand_in_never_a_server_error(world: World):
    """PostgreSQL cannot store U+0000, and refusing the webhook would lose the message: the
    signature is checked on what Twilio sent, then the NUL is stored as U+FFFD."""
    sid = "SM" + "7" * 32
    response = world.post(
        "/twilio/sms",
        {"MessageSid": sid, "From": "+819011119999", "To": "+815012345678", "Body": "助けて\x00水"},
    )
    assert response.status_code == 200, response.text
    with world.session() as s:
        message = s.execute(
            select(InboundMessage).where(InboundMessage.message_sid == sid)
        ).scalar_one()
    assert message.body == "助けて\ufffd水"
    assert "\x00" not in str(message.params)

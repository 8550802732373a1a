"""Attacks on residents' channels (issue 21, item 5), through the real webhooks (Twilio's
RequestValidator, LINE's X-Line-Signature) and the real scheduler jobs; only the wire is
mocked (respx for Twilio, aioresponses for the LINE SDK).

The promise under attack: no resident silently falls out, and nothing a person wrote to us
is stored where no one looks. The last test is a bounded model (hypothesis, fixed seed, 25
examples of up to 8 steps): app-first residents under any order of callbacks, LINE answers,
blocks, replies and pauses end closed, "ok" only after a clear "fine" while waiting.
Unseeded runs of 80 examples found nothing; it fails at once if a LINE reply is read as "1".
"""

# ruff: noqa: F811 (fixtures are imported, and helpers name their world "world")
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlmodel import Session

from service.checkins.models import CheckIn, CheckInState, StaffTask, TaskKind
from service.escalations.models import EscalationState
from service.registry.channels import LineLinkCode
from service.registry.models import Resident
from service.telephony.app_inbound import new_line_link_code
from service.telephony.models import InboundMessage, OutboxMessage
from tests.checkins.conftest import ACTOR, World, world  # noqa: F401
from tests.telephony.conftest import ACCOUNT_SID
from tests.telephony.test_resident_channels import (  # noqa: F401
    LINE_PUSH,
    LINE_USER,
    MEMBER,
    MOBILE,
    MOBILE_LOCAL,
    WHATSAPP_FROM,
    apps,
    checkin,
    escalation_of,
    line_post,
    line_signature,
    link_line,
    resident_on,
    text_event,
    timeline_kinds,
)

STRANGER = "U" + "5" * 32


def event(user: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "mode": "active",
        "timestamp": 1764550000000,
        "webhookEventId": f"ev-{kind}-{extra.get('message', {}).get('id', 'x')}",
        "deliveryContext": {"isRedelivery": False},
        "replyToken": "r" * 32,
        "source": {"type": "user", "userId": user},
        **extra,
    }


def whatsapp_from(world: World, phone: str, text: str) -> Any:
    world._sms_counter += 1
    return world.post(
        "/twilio/sms",
        {
            "MessageSid": f"SM{world._sms_counter + 500:032d}",
            "From": f"whatsapp:{phone}",
            "To": f"whatsapp:{WHATSAPP_FROM}",
            "Body": text,
            "AccountSid": ACCOUNT_SID,
        },
    )


def tasks_for(world: World, inbound_sid: str) -> list[StaffTask]:
    with Session(world.engine) as s:
        inbound = s.execute(
            select(InboundMessage).where(InboundMessage.message_sid == inbound_sid)
        ).scalar_one()
        return list(
            s.execute(select(StaffTask).where(StaffTask.inbound_id == inbound.id)).scalars()
        )


# --- Messages nobody would see ------------------------------------------------------------------


def test_an_unknown_line_users_cry_for_help_reaches_a_staff_inbox(apps):
    """An unlinked LINE user (a resident whose code expired, a neighbour) writes "助けて":
    it must be on staff's list, as an SMS from an unknown number is, and read as urgent."""
    world, _wire = apps
    assert line_post(world, [text_event(STRANGER, "助けて", "m-s1")]).status_code == 200
    tasks = tasks_for(world, "line:m-s1")
    assert [t.kind for t in tasks] == [TaskKind.unknown_sender]
    with Session(world.engine) as s:
        inbound = s.execute(
            select(InboundMessage).where(InboundMessage.message_sid == "line:m-s1")
        ).scalar_one()
        assert inbound.needs_staff and inbound.classification == "help"


def test_an_unknown_whatsapp_sender_reaches_a_staff_inbox(apps):
    world, _wire = apps
    response = whatsapp_from(world, "+819099990000", "助けて")
    assert response.status_code == 200
    with Session(world.engine) as s:
        inbound = s.execute(
            select(InboundMessage).where(InboundMessage.channel == "whatsapp")
        ).scalar_one()
        tasks = list(
            s.execute(select(StaffTask).where(StaffTask.inbound_id == inbound.id)).scalars()
        )
    assert [t.kind for t in tasks] == [TaskKind.unknown_sender]
    assert inbound.classification == "help"


def test_a_members_whatsapp_answer_to_an_alert_follows_the_member_protocol(apps):
    """A member answers an alert on WhatsApp: acknowledged as by SMS, and never shown to
    every organization as an unrouted stranger's message."""
    world, wire = apps
    resident_on(world, "R1", ["whatsapp", "sms"])
    world.broadcast()
    world.tick()
    assert whatsapp_from(world, MOBILE, "2").status_code == 200  # the resident needs help
    world.tick()
    assert len(wire.twilio_to(MEMBER)) == 1  # the member's alert
    assert whatsapp_from(world, MEMBER, "1").status_code == 200
    with Session(world.engine) as s:
        inbound = s.execute(
            select(InboundMessage).where(InboundMessage.from_phone.contains(MEMBER[1:]))
        ).scalar_one()
        assert inbound.organization_id == world.org_id
        assert inbound.member_id == world.members["M1"]
    assert escalation_of(world, "R1").state == EscalationState.acknowledged


@pytest.mark.parametrize(
    "message",
    [
        {"type": "sticker", "id": "9001", "packageId": "1", "stickerId": "2",
         "stickerResourceType": "STATIC", "quoteToken": "q", "keywords": ["OK"]},
        {"type": "image", "id": "9002", "contentProvider": {"type": "line"}, "quoteToken": "q"},
        {"type": "audio", "id": "9003", "contentProvider": {"type": "line"}, "duration": 4000},
        {"type": "location", "id": "9004", "latitude": 37.39, "longitude": 136.9,
         "address": "輪島市"},
    ],
    ids=lambda m: m["type"],
)  # fmt: skip
def test_a_residents_non_text_line_message_is_kept_for_staff_and_closes_nothing(apps, message):
    """A sticker, a photo, a voice message or a location: the resident meant something.
    It is stored and flagged for staff; only a clear "fine" closes the check-in."""
    world, _wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")
    world.broadcast()
    world.tick()
    assert line_post(world, [event(LINE_USER, "message", message=message)]).status_code == 200
    with Session(world.engine) as s:
        inbound = s.execute(
            select(InboundMessage).where(InboundMessage.message_sid == f"line:{message['id']}")
        ).scalar_one_or_none()
    assert inbound is not None, "the message was dropped"
    assert inbound.resident_id == world.residents["R1"]
    assert checkin(world, "R1").state != CheckInState.ok
    # Redelivered: still one.
    line_post(world, [event(LINE_USER, "message", message=message)])
    with Session(world.engine) as s:
        count = s.execute(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.message_sid == f"line:{message['id']}")
        ).scalar_one()
    assert count == 1


def test_a_strangers_sticker_on_line_reaches_staff(apps):
    world, _wire = apps
    sticker = {
        "type": "sticker",
        "id": "9101",
        "packageId": "1",
        "stickerId": "2",
        "stickerResourceType": "STATIC",
        "quoteToken": "q",
    }
    assert line_post(world, [event(STRANGER, "message", message=sticker)]).status_code == 200
    assert [t.kind for t in tasks_for(world, "line:9101")] == [TaskKind.unknown_sender]


# --- Malformed and unexpected webhooks ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b"[]",
        b"null",
        b'{"events": "x"}',
        b'{"events": null}',
        b'{"events": [1]}',
        b'{"events": [{"type": "weird"}]}',
        '{"events": [{"type": "message", "text": "\udcff"}]}'.encode("utf-8", "surrogatepass"),
        b"\xff\xfe",
    ],
)
def test_a_signed_but_malformed_line_webhook_is_refused_without_a_500(apps, body):
    world, _wire = apps
    response = world.client.post(
        "/line/webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-Line-Signature": line_signature(body)},
    )
    # Not UTF-8: its signature cannot be checked on the text the SDK reads (403).
    assert response.status_code in (200, 400, 403), response.text
    assert response.status_code != 403 or b"\xff" in body or b"\xed" in body


def test_unexpected_line_events_are_answered_200_and_change_nothing(apps):
    world, _wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")
    world.broadcast()
    world.tick()
    events = [
        event(LINE_USER, "follow", follow={"isUnblocked": True}),
        event(LINE_USER, "postback", postback={"data": "x"}),
        {**event(LINE_USER, "join"), "source": {"type": "group", "groupId": "C" + "1" * 32}},
        event(LINE_USER, "memberJoined"),
        event(LINE_USER, "somethingNew"),
    ]
    assert line_post(world, events).status_code == 200
    assert checkin(world, "R1").state == CheckInState.waiting


# --- LINE's wire: timeouts, throttling, errors --------------------------------------------------


def test_a_line_push_that_times_out_is_sent_again_under_the_same_key_once(apps):
    world, wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")
    wire.line_status.extend([500, 429])
    world.broadcast()
    for _ in range(6):
        world.tick(1)
    keys = [call["headers"]["X-Line-Retry-Key"] for call in wire.line]
    assert len(keys) == 3 and len(set(keys)) == 1, keys  # 500, 429, then sent
    assert wire.twilio_to(MOBILE) == []  # no fallback: it was delivered in the end
    assert checkin(world, "R1").state == CheckInState.waiting


# --- Status callbacks out of order --------------------------------------------------------------


def test_whatsapp_callbacks_out_of_order_and_repeated_fall_back_once(apps):
    world, wire = apps
    resident_on(world, "R1", ["whatsapp", "sms", "voice"])
    world.broadcast()
    world.tick()
    with Session(world.engine) as s:
        row = s.execute(
            select(OutboxMessage).where(OutboxMessage.channel == "whatsapp")
        ).scalar_one()
    for status in ("sent", "undelivered", "undelivered", "delivered", "read", "failed"):
        world.post("/twilio/status", {"MessageSid": row.sid, "MessageStatus": status})
        world.tick()
    assert len(wire.twilio_to(MOBILE)) == 1  # one SMS fallback, not two
    # "fine" on WhatsApp while the SMS is out closes it; no reminder, no call.
    assert whatsapp_from(world, MOBILE, "1").status_code == 200
    assert checkin(world, "R1").state == CheckInState.ok
    world.tick(240)
    assert len(wire.twilio_to(MOBILE)) == 1


# --- Residents' channel lists -------------------------------------------------------------------


@pytest.mark.parametrize(
    "channels, phone",
    [
        ([], MOBILE_LOCAL),
        (["line"], MOBILE_LOCAL),  # LINE only, never linked
        (["whatsapp", "whatsapp", "line"], "0768-22-1234"),  # WhatsApp first, a landline
    ],
)
def test_residents_no_app_can_reach_still_get_the_schedules_plan(apps, channels, phone):
    world, wire = apps
    world.member("M1", "080-3000-0001")
    world.resident("R1", phone, channels=channels)
    world.assign("R1", "M1", 1)
    world.broadcast()
    world.tick()
    assert wire.line == [] and not any("whatsapp" in f["To"] for f in wire.twilio)
    with Session(world.engine) as s:
        first = [m.channel for m in s.execute(select(OutboxMessage)).scalars()]
    assert first in (["sms"], ["call"]), first  # the plan's own first step
    for _ in range(8):
        world.tick(60)
    state = checkin(world, "R1").state
    assert state in (CheckInState.no_reply, CheckInState.unreachable)


# --- One LINE account, two residents ------------------------------------------------------------


def test_a_line_account_on_two_residents_answers_for_the_one_waiting(apps):
    """One LINE account on two resident records (a resident who moved out and was
    registered again, or a household): "fine" answers the one whose check-in waits, never
    the other record, even if that one was changed last."""
    world, _wire = apps
    resident_on(world, "R1", ["line", "sms"])
    world.resident("R2", "090-1234-9999", channels=["line", "sms"])
    link_line(world, "R1")
    with Session(world.engine) as s:
        r2 = s.get(Resident, world.residents["R2"])
        r2.line_user_id = LINE_USER
        r2.status = "moved_out"  # no check-in for R2; changed last
        r2.updated_at = world.clock.now() + timedelta(minutes=1)
        s.commit()
    world.broadcast()
    world.tick()
    line_post(world, [text_event(LINE_USER, "1", "m-two")])
    assert checkin(world, "R1").state == CheckInState.ok, timeline_kinds(world, "R1")


# --- "help" on LINE in every language ----------------------------------------------------------


def test_help_on_line_in_every_resident_language_opens_a_case(apps):
    from i18n.classifier import RESIDENT_LANGUAGES, load_keywords

    world, _wire = apps
    keywords = load_keywords()
    world.member("M1", "080-3000-0001")
    users = {}
    for index, language in enumerate(RESIDENT_LANGUAGES):
        key = f"R{index}"
        world.resident(key, f"090-2000-{index:04d}", language=language, channels=["line", "sms"])
        world.assign(key, "M1", 1)
        users[key] = f"U{index:032d}"
        with Session(world.engine) as s:
            code = new_line_link_code(
                s,
                organization_id=world.org_id,
                resident_id=world.residents[key],
                actor=ACTOR,
                now=world.clock.now(),
            ).code
            s.commit()
        line_post(world, [text_event(users[key], code, f"link-{index}")])
    world.broadcast()
    world.tick()
    for index, language in enumerate(RESIDENT_LANGUAGES):
        word = keywords[language].lists["help"][0]
        line_post(world, [text_event(users[f"R{index}"], word, f"help-{index}")])
    states = {
        language: checkin(world, f"R{i}").state for i, language in enumerate(RESIDENT_LANGUAGES)
    }
    assert all(state == CheckInState.needs_help for state in states.values()), states


# --- A LINE push whose answer was lost ----------------------------------------------------------


def test_a_line_push_that_times_out_then_is_known_to_line_is_sent_once(apps):
    """The first push's answer is lost (a timeout); the retry under the same key gets 409
    (LINE had it): sent once, no fallback, and the check-in waits for the answer."""
    world, wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")

    class LostThenKnown(list):  # the wire's next answers: a timeout, then LINE's 409
        def pop(self, index: int = -1) -> int:
            value = super().pop(index)
            if value == 0:
                raise TimeoutError("read timed out")
            return value

    wire.line_status = LostThenKnown([0, 409])
    world.broadcast()
    for _ in range(5):
        world.tick(1)
    calls = [call["headers"]["X-Line-Retry-Key"] for call in wire.line]
    assert len(calls) == 2 and calls[0] == calls[1] and calls[0], calls
    assert wire.twilio_to(MOBILE) == []
    with Session(world.engine) as s:
        row = s.execute(select(OutboxMessage).where(OutboxMessage.channel == "line")).scalar_one()
    assert row.status == "sent"
    assert checkin(world, "R1").state == CheckInState.waiting


# --- A bounded model: app-first residents never fall out -----------------------------------------

TWO_SMS = [
    {"channel": "sms", "message": "prompt", "wait_minutes": 60},
    {"channel": "sms", "message": "reminder", "wait_minutes": 60},
]
_step = st.one_of(
    st.tuples(
        st.just("cb"), st.sampled_from(["sent", "delivered", "read", "undelivered", "failed"])
    ),
    st.tuples(st.just("line_answer"), st.sampled_from([400, 429, 500])),
    st.tuples(st.just("unfollow"), st.just("")),
    st.tuples(st.just("reply"), st.sampled_from(["1", "2", "わかりません", "[sticker]"])),
    st.tuples(st.just("tick"), st.sampled_from([0, 1, 30, 61])),
)


@settings(
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    channels=st.lists(st.sampled_from(["line", "whatsapp", "sms", "voice"]), max_size=4),
    linked=st.booleans(),
    steps=st.lists(_step, max_size=8),
)
def test_model_an_app_first_resident_never_falls_out(apps, channels, linked, steps):
    """Any order of callbacks, LINE answers, blocks, replies and pauses: after the deadlines
    the check-in is closed; it is "ok" only after a clear "fine" while it waited, and a
    first answer "fine" while waiting always closes it so; anything else not "ok" has a case."""
    world, wire = apps
    n = len(world.residents)
    key, phone, user = f"X{n}", f"+8190300{n:05d}", f"U{n + 7000:032d}"
    world.resident(key, f"090-300{n // 10000}-{n % 10000:04d}", channels=channels)
    with Session(world.engine) as s:
        assert s.get(Resident, world.residents[key]).phone == phone
        if linked:
            code = new_line_link_code(
                s,
                organization_id=world.org_id,
                resident_id=world.residents[key],
                actor=ACTOR,
                now=world.clock.now(),
            ).code
            s.commit()
    if linked:
        line_post(world, [text_event(user, code, f"x-link-{n}")])
    # Quiet hours would hold the drain below past its end (examples run back to back).
    world.broadcast(resident_ids=[world.residents[key]], plan=TWO_SMS, override_quiet_hours=True)
    world.tick()
    first_waiting_answer: str | None = None
    fine_while_waiting = False
    for index, (kind, value) in enumerate(steps):
        with Session(world.engine) as s:
            row = (
                s.execute(
                    select(OutboxMessage)
                    .where(OutboxMessage.resident_id == world.residents[key])
                    .order_by(OutboxMessage.created_at.desc())
                )
                .scalars()
                .first()
            )
        if kind == "cb" and row is not None and row.sid and row.channel == "whatsapp":
            world.post("/twilio/status", {"MessageSid": row.sid, "MessageStatus": value})
        elif kind == "line_answer":
            wire.line_status.append(value)
        elif kind == "unfollow":
            line_post(world, [event(user, "unfollow")])
        elif kind == "reply":
            if checkin_of(world, key).state == "waiting":
                first_waiting_answer = first_waiting_answer or value
                fine_while_waiting = fine_while_waiting or value == "1"
            channel = row.channel if row is not None else "sms"
            if channel == "line":
                line_post(world, [text_event(user, value, f"x-{n}-{index}")])
            elif channel == "whatsapp":
                assert whatsapp_from(world, phone, value).status_code == 200
            else:
                world.sms(phone, value)
        elif kind == "tick":
            world.tick(value)
    wire.line_status.clear()
    for _ in range(8):
        world.tick(61)
    final = checkin_of(world, key)
    assert final.state != CheckInState.waiting, (channels, linked, steps)
    if final.state == CheckInState.ok:
        assert fine_while_waiting, (channels, linked, steps)
    if first_waiting_answer == "1":
        assert final.state == CheckInState.ok, (final.state, channels, linked, steps)
    if final.state != CheckInState.ok:
        assert final.escalation_id is not None, (final.state, channels, linked, steps)


def checkin_of(world: World, key: str) -> Any:
    with Session(world.engine) as s:
        return (
            s.execute(select(CheckIn).where(CheckIn.resident_id == world.residents[key]))
            .scalars()
            .first()
        )


def test_a_link_code_from_an_account_already_linked_links_the_new_record(apps):
    """A resident who moved out and was registered again (a new record), or a household
    member, sends the new record's code from the LINE account already linked: the code
    links it (it is not swallowed as an unclear reply to the old record)."""
    world, _wire = apps
    resident_on(world, "R1", ["line", "sms"])
    world.resident("R2", "090-1234-8888", channels=["line", "sms"])
    link_line(world, "R1")
    with Session(world.engine) as s:
        code = new_line_link_code(
            s,
            organization_id=world.org_id,
            resident_id=world.residents["R2"],
            actor=ACTOR,
            now=world.clock.now(),
        ).code
        s.commit()
    assert line_post(world, [text_event(LINE_USER, code.lower(), "m-relink")]).status_code == 200
    with Session(world.engine) as s:
        assert s.get(Resident, world.residents["R2"]).line_user_id == LINE_USER
    assert "channel.line_linked" in timeline_kinds(world, "R2")


def test_a_redelivered_link_message_is_not_read_as_a_reply(apps):
    world, wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")  # message id "m-link"
    world.broadcast()
    world.tick()
    with Session(world.engine) as s:
        code = s.execute(select(LineLinkCode.code)).scalar_one()
    line_post(world, [text_event(LINE_USER, code, "m-link")])  # LINE delivers it again
    world.tick()
    assert len(wire.line) == 1  # the check-in only: no "please answer 1 or 2"
    with Session(world.engine) as s:
        assert s.execute(select(StaffTask)).scalars().all() == []
    assert checkin(world, "R1").state == CheckInState.waiting


def test_a_residents_line_message_of_a_kind_the_sdk_cannot_read_is_kept(apps):
    """A message kind newer than the SDK (or one it cannot validate) still came from the
    resident: kept for staff, read as unclear, never dropped."""
    world, _wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")
    world.broadcast()
    world.tick()
    odd = event(LINE_USER, "message", message={"type": "hologram", "id": "9201"})
    assert line_post(world, [odd]).status_code == 200
    with Session(world.engine) as s:
        inbound = s.execute(
            select(InboundMessage).where(InboundMessage.message_sid == "line:9201")
        ).scalar_one_or_none()
    assert inbound is not None and inbound.resident_id == world.residents["R1"]
    assert checkin(world, "R1").state == CheckInState.waiting


def test_a_member_who_is_also_a_resident_answers_an_alert_on_whatsapp(apps):
    """A member registered as a resident too (a daughter's phone) answers an alert "1" on
    WhatsApp while their own check-in waits: it is their answer as a member (as by SMS),
    not a "fine" closing a check-in nobody answered."""
    world, wire = apps
    resident_on(world, "R1", ["whatsapp", "sms"])
    world.resident("R2", "080-3000-0001", channels=["whatsapp", "sms"])  # M1's phone
    world.broadcast()
    world.tick()
    assert whatsapp_from(world, MOBILE, "2").status_code == 200  # R1 needs help
    world.tick()
    assert len(wire.twilio_to(MEMBER)) >= 1  # M1 alerted (and R2's own check-in)
    assert whatsapp_from(world, MEMBER, "1").status_code == 200
    assert escalation_of(world, "R1").state == EscalationState.acknowledged
    assert checkin(world, "R2").state == CheckInState.waiting

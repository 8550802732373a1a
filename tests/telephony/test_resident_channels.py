"""Residents reached on WhatsApp (through Twilio) and LINE (through line-bot-sdk), end to end:
real database, real scheduler jobs, the real TwilioProvider and LINE SDK; only each
provider's wire is mocked (respx for Twilio's httpx client, aioresponses for LINE's aiohttp).

A resident whose first channel is WhatsApp, and one whose first channel is LINE, each
complete a check-in and an escalation; an undelivered WhatsApp message falls back to SMS; a
LINE push refused falls back to SMS; a LINE webhook with a bad signature changes nothing.
"""

# ruff: noqa: F811 (the world fixture is imported, and helpers name their world "world")
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx
from aioresponses import aioresponses
from sqlalchemy import func, select
from sqlmodel import Session

from scheduler.jobs import JobContext
from service.checkins.commands import build_timeline
from service.checkins.models import Attempt, CheckIn, CheckInState
from service.config import get_settings
from service.escalations.models import Escalation
from service.registry.models import Resident
from service.telephony.app_inbound import new_line_link_code
from service.telephony.models import InboundMessage, OutboxMessage
from service.telephony.twilio_provider import TwilioProvider
from service.timeline.models import TimelineEvent
from tests.checkins.conftest import ACTOR, World, world  # noqa: F401
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from tests.telephony.test_twilio_provider import MESSAGES_PATH, message_body

API = "https://api.twilio.com"
LINE_PUSH = "https://api.line.me/v2/bot/message/push"
WHATSAPP_FROM = "+815011112222"
CONTENT_SID = "HX" + "a" * 32
LINE_SECRET = "line-channel-secret-for-tests"
LINE_TOKEN = "line-access-token"
LINE_USER = "U" + "0123456789abcdef" * 2
MOBILE_LOCAL, MOBILE = "090-1234-5678", "+819012345678"
MEMBER_LOCAL, MEMBER = "080-3000-0001", "+818030000001"


@dataclass
class Wire:
    """What reached each provider's wire, and what the next answers are."""

    twilio: list[dict[str, str]] = field(default_factory=list)
    line: list[dict[str, Any]] = field(default_factory=list)
    line_status: list[int] = field(default_factory=list)  # next LINE answers (default 200)
    _sids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def twilio_to(self, to: str) -> list[dict[str, str]]:
        return [form for form in self.twilio if form.get("To") == to]


@pytest.fixture
def apps(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, Wire]]:
    """The world of tests/checkins with Twilio and LINE configured and their wires mocked."""
    for name, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_URL": API,
        "TWILIO_HTTP_CLIENT": "httpx",
        "WHATSAPP_FROM_NUMBER": WHATSAPP_FROM,
        "WHATSAPP_CHECKIN_CONTENT_SID": CONTENT_SID,
        "LINE_CHANNEL_SECRET": LINE_SECRET,
        "LINE_CHANNEL_ACCESS_TOKEN": LINE_TOKEN,
    }.items():
        monkeypatch.setenv(f"MIMAMORI_{name}", value)
    get_settings.cache_clear()
    settings = get_settings()
    world.ctx.close()
    world.ctx = JobContext(
        engine=world.engine,
        clock=world.clock,
        settings=settings,
        provider=TwilioProvider.from_settings(settings),
    )
    wire = Wire()

    def twilio_message(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        wire.twilio.append(form)
        sid = f"SM{next(wire._sids):032d}"
        return httpx.Response(201, json=message_body(sid=sid, to=form["To"]))

    def line_push(url: Any, **kwargs: Any) -> Any:
        from aioresponses import CallbackResult

        body = kwargs.get("data") or kwargs.get("json")
        payload = json.loads(body) if isinstance(body, str | bytes) else body
        wire.line.append({"json": payload, "headers": kwargs.get("headers") or {}})
        status = wire.line_status.pop(0) if wire.line_status else 200
        if status != 200:
            return CallbackResult(status=status, payload={"message": "refused"})
        return CallbackResult(
            status=200, payload={"sentMessages": [{"id": str(len(wire.line)), "quoteToken": "q"}]}
        )

    with (
        respx.mock(base_url=API, assert_all_called=False) as router,
        aioresponses(passthrough=["http://testserver"]) as line_wire,
    ):
        router.post(MESSAGES_PATH).mock(side_effect=twilio_message)
        line_wire.post(LINE_PUSH, callback=line_push, repeat=True)
        try:
            yield world, wire
        finally:
            world.ctx.close()  # its own: the world closes the one it made


# --- helpers ----------------------------------------------------------------------------------


def resident_on(world: World, key: str, channels: list[str], **extra: Any) -> None:
    world.member("M1", MEMBER_LOCAL)
    world.resident(key, MOBILE_LOCAL, channels=channels, **extra)
    world.assign(key, "M1", 1)


def link_line(world: World, key: str, user: str = LINE_USER) -> None:
    """Staff issue a code; the resident sends it from LINE (a signed webhook)."""
    with Session(world.engine) as s:
        code = new_line_link_code(
            s,
            organization_id=world.org_id,
            resident_id=world.residents[key],
            actor=ACTOR,
            now=world.clock.now(),
        ).code
        s.commit()
    assert line_post(world, [text_event(user, code, "m-link")]).status_code == 200


def line_signature(body: bytes, secret: str = LINE_SECRET) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def text_event(user: str, text: str, message_id: str) -> dict[str, Any]:
    return {
        "type": "message",
        "mode": "active",
        "timestamp": 1764550000000,
        "webhookEventId": f"ev-{message_id}",
        "deliveryContext": {"isRedelivery": False},
        "replyToken": "r" * 32,
        "source": {"type": "user", "userId": user},
        "message": {"id": message_id, "type": "text", "quoteToken": "q", "text": text},
    }


def line_post(world: World, events: list[dict[str, Any]], *, signature: str | None = None) -> Any:
    body = json.dumps({"destination": "U" + "f" * 32, "events": events}).encode()
    return world.client.post(
        "/line/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Line-Signature": signature or line_signature(body),
        },
    )


def whatsapp(world: World, text: str) -> str:
    """A WhatsApp reply on Twilio's signed SMS webhook; returns the TwiML answer."""
    world._sms_counter += 1
    response = world.post(
        "/twilio/sms",
        {
            "MessageSid": f"SM{world._sms_counter:032d}",
            "From": f"whatsapp:{MOBILE}",
            "To": f"whatsapp:{WHATSAPP_FROM}",
            "Body": text,
            "AccountSid": ACCOUNT_SID,
        },
    )
    assert response.status_code == 200, response.text
    return response.text


def checkin(world: World, key: str) -> CheckIn:
    with Session(world.engine) as s:
        return s.execute(
            select(CheckIn).where(CheckIn.resident_id == world.residents[key])
        ).scalar_one()


def timeline_kinds(world: World, key: str) -> list[str]:
    with Session(world.engine) as s:
        return list(
            s.execute(
                select(TimelineEvent.kind).where(TimelineEvent.resident_id == world.residents[key])
            ).scalars()
        )


def escalation_of(world: World, key: str) -> Escalation:
    with Session(world.engine) as s:
        return s.execute(
            select(Escalation).where(Escalation.resident_id == world.residents[key])
        ).scalar_one()


# --- WhatsApp ---------------------------------------------------------------------------------


def test_whatsapp_first_resident_gets_the_template_and_a_fine_reply_closes(apps):
    world, wire = apps
    resident_on(world, "R1", ["whatsapp", "sms", "voice"])
    world.broadcast()
    world.tick()
    sent = wire.twilio_to(f"whatsapp:{MOBILE}")
    assert len(sent) == 1, wire.twilio
    assert sent[0]["From"] == f"whatsapp:{WHATSAPP_FROM}"
    assert sent[0]["ContentSid"] == CONTENT_SID
    assert "Body" not in sent[0] and json.loads(sent[0]["ContentVariables"])["1"]
    assert wire.twilio_to(MOBILE) == []  # no SMS beside it
    answer = whatsapp(world, "1")
    assert "<Message>" in answer
    assert checkin(world, "R1").state == CheckInState.ok
    assert "reply.whatsapp" in timeline_kinds(world, "R1")
    with Session(world.engine) as s:
        kinds = [item.kind for item in build_timeline(s, world.residents["R1"])]
    assert {"whatsapp.out.checkin", "whatsapp.in", "reply.whatsapp"} <= set(kinds), kinds
    world.tick(180)  # the plan's SMS reminder and call never come
    assert wire.twilio_to(MOBILE) == []


def test_whatsapp_help_opens_a_case_and_alerts_the_member(apps):
    world, wire = apps
    resident_on(world, "R1", ["whatsapp", "sms"])
    world.broadcast()
    world.tick()
    whatsapp(world, "2")
    assert checkin(world, "R1").state == CheckInState.needs_help
    assert escalation_of(world, "R1").reason == "needs_help"
    world.tick()
    alerts = wire.twilio_to(MEMBER)
    assert len(alerts) == 1 and alerts[0]["From"] == FROM_NUMBER
    assert "whatsapp" not in alerts[0]["To"]


def test_undelivered_whatsapp_falls_back_to_sms_at_once(apps):
    world, wire = apps
    resident_on(world, "R1", ["whatsapp", "sms", "voice"])
    world.broadcast()
    world.tick()
    with Session(world.engine) as s:
        row = s.execute(
            select(OutboxMessage).where(OutboxMessage.channel == "whatsapp")
        ).scalar_one()
    response = world.post(
        "/twilio/status",
        {"MessageSid": row.sid, "MessageStatus": "undelivered", "ErrorCode": "63016"},
    )
    assert response.status_code == 204
    world.tick()  # no waiting out the hour: the SMS goes now
    sms = wire.twilio_to(MOBILE)
    assert len(sms) == 1 and "Body" in sms[0], wire.twilio
    assert checkin(world, "R1").state == CheckInState.waiting
    world.sms(MOBILE, "1")
    assert checkin(world, "R1").state == CheckInState.ok


def test_delivered_whatsapp_and_silence_get_the_reminder_not_the_fallback(apps):
    """A fallback is for an undelivered message: silence meets the plan as written."""
    world, wire = apps
    resident_on(world, "R1", ["whatsapp", "sms", "voice"])
    world.broadcast()
    world.tick()
    with Session(world.engine) as s:
        row = s.execute(
            select(OutboxMessage).where(OutboxMessage.channel == "whatsapp")
        ).scalar_one()
    world.post("/twilio/status", {"MessageSid": row.sid, "MessageStatus": "delivered"})
    world.tick(60)
    with Session(world.engine) as s:
        steps = [
            (a.step_index, a.channel, a.message)
            for a in s.execute(select(Attempt).order_by(Attempt.step_index)).scalars()
        ]
    assert steps == [(0, "whatsapp", "prompt"), (2, "sms", "reminder")]
    assert len(wire.twilio_to(MOBILE)) == 1  # the reminder, by SMS


# --- LINE -------------------------------------------------------------------------------------


def test_line_first_resident_completes_a_checkin(apps):
    world, wire = apps
    resident_on(world, "R1", ["line", "sms", "voice"])
    link_line(world, "R1")
    assert wire.line == []  # linking sends nothing
    with Session(world.engine) as s:
        assert s.get(Resident, world.residents["R1"]).line_user_id == LINE_USER
    world.broadcast()
    world.tick()
    assert len(wire.line) == 1 and wire.line[0]["json"]["to"] == LINE_USER
    assert wire.line[0]["headers"]["Authorization"] == f"Bearer {LINE_TOKEN}"
    assert re.fullmatch(r"[0-9a-f-]{36}", wire.line[0]["headers"]["X-Line-Retry-Key"])
    assert wire.twilio == []  # nothing by SMS
    assert line_post(world, [text_event(LINE_USER, "1", "m-1")]).status_code == 200
    assert checkin(world, "R1").state == CheckInState.ok
    assert "reply.line" in timeline_kinds(world, "R1")
    world.tick()  # the answer goes back on LINE
    assert len(wire.line) == 2 and wire.line[1]["json"]["to"] == LINE_USER
    with Session(world.engine) as s:  # the timeline names the channel of every contact
        kinds = [item.kind for item in build_timeline(s, world.residents["R1"])]
    for kind in ("channel.line_linked", "line.out.checkin", "line.in", "reply.line"):
        assert kind in kinds, kinds
    assert "line.out.resident_notice" in kinds and not any(k.startswith("sms.") for k in kinds)
    # LINE delivers the same event again: nothing is stored twice.
    line_post(world, [text_event(LINE_USER, "1", "m-1")])
    with Session(world.engine) as s:
        assert (
            s.execute(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.message_sid == "line:m-1")
            ).scalar_one()
            == 1
        )


def test_line_help_opens_a_case_and_alerts_the_member(apps):
    world, wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")
    world.broadcast()
    world.tick()
    line_post(world, [text_event(LINE_USER, "2", "m-2")])
    assert checkin(world, "R1").state == CheckInState.needs_help
    assert escalation_of(world, "R1").reason == "needs_help"
    world.tick()
    assert len(wire.twilio_to(MEMBER)) == 1


def test_line_push_refused_falls_back_to_sms(apps):
    world, wire = apps
    resident_on(world, "R1", ["line", "whatsapp", "sms"])
    link_line(world, "R1")
    wire.line_status.append(400)
    world.broadcast()
    world.tick()
    world.tick()
    assert len(wire.line) == 1
    # LINE refused: WhatsApp next, at once.
    assert len(wire.twilio_to(f"whatsapp:{MOBILE}")) == 1


def test_line_unfollow_unlinks_and_falls_back(apps):
    world, wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")
    world.broadcast()
    world.tick()
    unfollow = {
        "type": "unfollow",
        "mode": "active",
        "timestamp": 1764550000000,
        "webhookEventId": "ev-unfollow",
        "deliveryContext": {"isRedelivery": False},
        "source": {"type": "user", "userId": LINE_USER},
    }
    assert line_post(world, [unfollow]).status_code == 200
    with Session(world.engine) as s:
        assert s.get(Resident, world.residents["R1"]).line_user_id is None
    world.tick()
    assert len(wire.twilio_to(MOBILE)) == 1


def test_line_webhook_with_a_bad_signature_is_refused_and_changes_nothing(apps):
    world, _wire = apps
    resident_on(world, "R1", ["line", "sms"])
    link_line(world, "R1")
    world.broadcast()
    world.tick()

    def state() -> tuple[Any, ...]:
        with Session(world.engine) as s:
            return (
                s.execute(select(func.count()).select_from(InboundMessage)).scalar_one(),
                s.execute(select(func.count()).select_from(OutboxMessage)).scalar_one(),
                s.execute(select(func.count()).select_from(TimelineEvent)).scalar_one(),
                s.get(Resident, world.residents["R1"]).line_user_id,
                checkin(world, "R1").state,
            )

    before = state()
    events = [text_event(LINE_USER, "1", "m-forged")]
    forged = line_signature(b"something else")
    assert line_post(world, events, signature=forged).status_code == 403
    body = json.dumps({"destination": "x", "events": events}).encode()
    wrong_secret = line_signature(body, "not-the-secret")
    response = world.client.post(
        "/line/webhook", content=body, headers={"X-Line-Signature": wrong_secret}
    )
    assert response.status_code == 403
    assert world.client.post("/line/webhook", content=body).status_code == 403
    assert state() == before
    assert checkin(world, "R1").state == CheckInState.waiting


def test_a_link_code_links_once_and_an_unknown_line_user_is_kept_for_staff(apps):
    world, _wire = apps
    resident_on(world, "R1", ["line", "sms"])
    with Session(world.engine) as s:
        code = new_line_link_code(
            s,
            organization_id=world.org_id,
            resident_id=world.residents["R1"],
            actor=ACTOR,
            now=world.clock.now(),
        ).code
        s.commit()
    line_post(world, [text_event(LINE_USER, code, "m-a")])
    other = "U" + "9" * 32
    line_post(world, [text_event(other, code, "m-b")])  # the same code again: not linked
    with Session(world.engine) as s:
        assert s.get(Resident, world.residents["R1"]).line_user_id == LINE_USER
        stranger = s.execute(
            select(InboundMessage).where(InboundMessage.message_sid == "line:m-b")
        ).scalar_one()
        assert stranger.resident_id is None and stranger.needs_staff


# --- Sends whose fate is uncertain ------------------------------------------------------------


def uncertain_row(world: World, channel: str, to: str, address: str | None = None) -> Any:
    from service.telephony.models import OutboxChannel, OutboxPurpose, OutboxStatus
    from service.telephony.outbox import enqueue
    from service.telephony.reconcile import mark_uncertain_values

    with Session(world.engine) as s:
        message = enqueue(
            s,
            organization_id=world.org_id,
            channel=OutboxChannel(channel),
            purpose=OutboxPurpose.resident_notice,
            to_phone=to,
            address=address,
            body="ありがとうございます",
            now=world.clock.now(),
        )
        message.status = OutboxStatus.sending
        message.claimed_at = world.clock.now()
        for key, value in mark_uncertain_values(world.clock.now()).items():
            setattr(message, key, value)
        s.add(message)
        s.commit()
        return message.id


@pytest.mark.anyio
async def test_an_uncertain_whatsapp_send_is_looked_up_in_twilios_messages(world):
    from service.telephony.reconcile import reconcile_pass

    row_id = uncertain_row(world, "whatsapp", MOBILE)
    settings = get_settings().model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "twilio_http_client": "httpx",
            "whatsapp_from_number": WHATSAPP_FROM,
        }
    )
    asked: list[dict[str, str]] = []

    def listing(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        record = message_body(
            sid="SM" + "7" * 32,
            to=f"whatsapp:{MOBILE}",
            date_created=world.clock.now().strftime("%a, %d %b %Y %H:%M:%S +0000"),
        )
        record["from"] = f"whatsapp:{WHATSAPP_FROM}"
        return httpx.Response(200, json={"messages": [record], "next_page_uri": None})

    provider = TwilioProvider.from_settings(settings)
    try:
        with respx.mock(base_url=API) as router:
            router.get(MESSAGES_PATH).mock(side_effect=listing)
            outcome = await reconcile_pass(
                engine=world.engine, provider=provider, settings=settings, now=world.clock.now()
            )
    finally:
        await provider.aclose()
    assert asked and asked[0]["To"] == f"whatsapp:{MOBILE}"
    assert outcome == {"found": 1}
    with Session(world.engine) as s:
        assert s.get(OutboxMessage, row_id).sid == "SM" + "7" * 32


@pytest.mark.anyio
async def test_an_uncertain_line_send_is_sent_again_under_its_retry_key(world):
    from service.telephony.reconcile import reconcile_pass

    row_id = uncertain_row(world, "line", "line", address=LINE_USER)
    settings = get_settings().model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "twilio_http_client": "httpx",
        }
    )
    provider = TwilioProvider.from_settings(settings)
    try:
        with respx.mock(base_url=API) as router:  # no route: asking Twilio would fail
            outcome = await reconcile_pass(
                engine=world.engine, provider=provider, settings=settings, now=world.clock.now()
            )
            assert not router.calls
    finally:
        await provider.aclose()
    assert outcome == {"not_found": 1}
    with Session(world.engine) as s:
        row = s.get(OutboxMessage, row_id)
        assert row.status == "pending" and row.sid is None


def test_an_app_reply_loop_is_read_but_not_answered_past_the_cap(apps, monkeypatch):
    """An auto-responder answering our answers: every message is still read, and answered
    only up to the chatter cap per hour, on WhatsApp and on LINE alike."""
    world, _wire = apps
    monkeypatch.setenv("MIMAMORI_SMS_PER_RECIPIENT_PER_HOUR", "2")
    get_settings.cache_clear()
    resident_on(world, "R1", ["whatsapp", "sms"])
    answered = ["<Message>" in whatsapp(world, "thanks") for _ in range(4)]
    assert answered == [True, True, False, False]
    world.resident("R2", "090-1234-9999", channels=["line", "sms"])
    link_line(world, "R2")
    for n in range(4):
        line_post(world, [text_event(LINE_USER, "thanks", f"m-loop-{n}")])
    with Session(world.engine) as s:
        answers = s.execute(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.channel == "line")
        ).scalar_one()
        read = s.execute(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.resident_id.in_(list(world.residents.values())))
        ).scalar_one()
    assert (answers, read) == (2, 8)


def test_free_text_on_an_app_is_queued_for_translation_for_staff(apps):
    from service.translation.models import Translation
    from service.translation.service import discover_replies

    world, _wire = apps
    resident_on(world, "R1", ["whatsapp", "line", "sms"], language="vi")
    link_line(world, "R1")
    whatsapp(world, "mẹ tôi bị ngã")
    line_post(world, [text_event(LINE_USER, "xin hãy đến", "m-vi")])
    with Session(world.engine) as s:
        assert discover_replies(s, now=world.clock.now()) == 2
        s.commit()
        pending = s.execute(select(Translation.status)).scalars().all()
    assert sorted(pending) == ["pending", "pending"]

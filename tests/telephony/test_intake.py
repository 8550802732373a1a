"""The batch intake of residents' SMS replies (service/telephony/intake.py).

A batch must do exactly what the route in webhooks.py does one request at a time: store
each new reply once, answer it in the resident's language, answer a repeat with nothing,
respect the per-recipient cap, and leave every other sender to the route. A batch that
fails writes nothing, and its requests are still answered, by the route.
"""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from i18n.render import render
from scheduler.jobs import process_replies
from service.checkins import events
from service.checkins.models import CheckInState
from service.config import get_settings
from service.registry.models import Resident
from service.telephony import intake
from service.telephony.models import (
    InboundMessage,
    OutboxChannel,
    OutboxPurpose,
    OutboxStatus,
    WebhookEvent,
)
from service.telephony.outbox import enqueue
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.worlds import (
    ACCOUNT,
    OUR_NUMBER,
    checkin_of,
    counts,
    messages_in,
    outbox_to,
    signed_headers,
    start_round_for,
)

ORG = "輪島市社会福祉協議会"


def phone(n: int) -> tuple[str, str]:
    """A mobile number as typed into the registry, and as Twilio sends it."""
    return f"090-1234-{n:04d}", f"+81901234{n:04d}"


def form(sid: str, sender: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }


def inbound_rows(world: World) -> list[InboundMessage]:
    with Session(world.engine) as s:
        return list(
            s.execute(select(InboundMessage).order_by(InboundMessage.message_sid)).scalars()
        )


def test_a_batch_stores_and_answers_each_reply_as_the_route_would(world: World):
    world.resident("ja", phone(1)[0], language="ja")
    world.resident("vi", phone(2)[0], language="vi")
    world.resident("pt", phone(3)[0], language="pt")
    world.member("M", phone(4)[0])
    world.resident("shared-1", phone(5)[0])
    world.resident("shared-2", phone(5)[0])
    start_round_for(world, "ja", "vi", "pt", "shared-1", "shared-2")
    world.tick()
    # A reply seen before the batch (a Twilio retry of it comes in the batch).
    first = intake.take_replies([form("SM-old", phone(3)[1], "1")])
    assert messages_in(first.answers[0] or "") == [render("resident.reply.ok", "pt", org=ORG)]

    forms = [
        form("SM-ja", phone(1)[1], "１"),
        form("SM-vi", phone(2)[1], "Tôi cần giúp đỡ"),
        form("SM-member", phone(4)[1], "1"),  # a member: the route's business
        form("SM-stranger", "+819099999999", "hello"),  # nobody we know: the route's
        form("SM-shared", phone(5)[1], "1"),  # two residents: the route's
        form("SM-old", phone(3)[1], "1"),  # a retry of a reply already stored
        form("SM-ja", phone(1)[1], "１"),  # the same retry twice inside one batch
    ]
    result = intake.take_replies(forms)

    ja, vi, member, stranger, shared, old, again = result.answers
    assert messages_in(ja or "") == [render("resident.reply.ok", "ja", org=ORG)]
    assert messages_in(vi or "") == [render("resident.reply.help", "vi", org=ORG)]
    assert member is None and stranger is None and shared is None
    assert old is not None and messages_in(old) == []
    assert again is not None and messages_in(again) == []
    assert (result.stored, result.duplicates) == (2, 2)

    rows = {row.message_sid: row for row in inbound_rows(world)}
    assert sorted(rows) == ["SM-ja", "SM-old", "SM-vi"]
    assert rows["SM-ja"].classification == "fine" and rows["SM-vi"].classification == "help"
    assert all(row.processed_at is None for row in rows.values())  # for process_replies
    with Session(world.engine) as s:
        keys = s.execute(select(WebhookEvent.sid).where(WebhookEvent.kind == "sms")).scalars()
        assert sorted(keys) == ["SM-ja", "SM-old", "SM-vi"]  # none for the route's three
    [answer] = [m for m in outbox_to(world.engine, phone(2)[1]) if m.purpose == "resident_notice"]
    assert answer.status == OutboxStatus.sent and answer.sent_at is not None
    assert answer.body == render("resident.reply.help", "vi", org=ORG)

    process_replies(world.ctx)
    assert checkin_of(world.engine, world.residents["ja"]).state == CheckInState.ok
    assert checkin_of(world.engine, world.residents["pt"]).state == CheckInState.ok
    assert checkin_of(world.engine, world.residents["vi"]).state == CheckInState.needs_help


def test_the_per_recipient_cap_counts_the_answers_inside_a_batch(world: World):
    """Two SMS from one number in one batch, one answer left under the cap: the first is
    answered, the second is stored but gets no text (an auto-responder cannot loop)."""
    world.resident("R", phone(1)[0])
    start_round_for(world, "R")
    world.tick()  # the check-in SMS: one sent this hour
    cap = get_settings().sms_per_recipient_per_hour
    now = world.clock.now()
    with Session(world.engine) as s:
        for i in range(cap - 2):
            message = enqueue(
                s,
                organization_id=world.org_id,
                channel=OutboxChannel.sms,
                purpose=OutboxPurpose.resident_notice,
                to_phone=phone(1)[1],
                body=f"notice {i}",
                now=now - timedelta(minutes=30),
            )
            message.status = OutboxStatus.sent
            message.sent_at = now - timedelta(minutes=30)
        s.commit()
    result = intake.take_replies([form("SM-a", phone(1)[1], "?"), form("SM-b", phone(1)[1], "1")])
    assert messages_in(result.answers[0] or "") != []
    assert result.answers[1] is not None and messages_in(result.answers[1]) == []
    assert result.capped == [phone(1)[1]]
    assert [row.message_sid for row in inbound_rows(world)] == ["SM-a", "SM-b"]
    sent = outbox_to(world.engine, phone(1)[1], channel="sms")
    assert len(sent) == cap  # the check-in, the notices, one answer; never more


def test_a_failing_batch_writes_nothing(world: World, monkeypatch: pytest.MonkeyPatch):
    world.resident("R", phone(1)[0])
    start_round_for(world, "R")
    world.tick()
    before = counts(world.engine)

    def broken(*args: object, **kwargs: object) -> dict[str, int]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(intake, "recent_sms_counts", broken)  # after the keys are written
    with pytest.raises(RuntimeError):
        intake.take_replies([form("SM-a", phone(1)[1], "1")])
    assert counts(world.engine) == before


def _post_all(world: World, requests: list[dict[str, str]]) -> list[httpx.Response]:
    """Post the signed webhooks all at once, on one event loop, through the whole app."""

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=world.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await asyncio.gather(
                *(
                    c.post(
                        "/twilio/sms", data=params, headers=signed_headers("/twilio/sms", params)
                    )
                    for params in requests
                )
            )

    return asyncio.run(post_all())


def test_a_burst_through_the_app_answers_everyone_once(world: World):
    languages = ["ja", "vi", "id", "tl", "ne", "pt"]
    for n in range(30):
        world.resident(f"R{n}", phone(n)[0], language=languages[n % 6])
    world.member("M", phone(99)[0])
    start_round_for(world, *[f"R{n}" for n in range(30)])
    world.tick()
    batches = intake.INTAKE.batches

    burst = [form(f"SM-{n}", phone(n)[1], "1") for n in range(30)]
    burst += [form(f"SM-{n}", phone(n)[1], "1") for n in range(0, 30, 6)]  # Twilio's retries
    burst += [form("SM-member", phone(99)[1], "hello"), form("SM-x", "+819099999999", "?")]
    responses = _post_all(world, burst)

    assert [r.status_code for r in responses] == [200] * len(burst)
    assert all(r.headers["content-type"].startswith("application/xml") for r in responses)
    answers = [messages_in(r.text) for r in responses]
    firsts = {n: answers[n] for n in range(30)}
    retries = answers[30:35]
    for n, said in firsts.items():
        language = languages[n % 6]
        if n % 6 == 0:  # the original and its retry raced: one of the two was answered
            assert said in ([render("resident.reply.ok", language, org=ORG)], [])
        else:
            assert said == [render("resident.reply.ok", language, org=ORG)]
    for n, said in zip(range(0, 30, 6), retries, strict=True):
        assert sorted([firsts[n], said], key=len) == [
            [],
            [render("resident.reply.ok", "ja", org=ORG)],
        ]
    assert intake.INTAKE.batches > batches  # the residents' replies went through the intake

    rows = inbound_rows(world)
    assert len(rows) == 32  # thirty replies once each, the member's, the stranger's
    assert len({row.message_sid for row in rows}) == 32
    process_replies(world.ctx)
    for n in range(30):
        assert checkin_of(world.engine, world.residents[f"R{n}"]).state == CheckInState.ok
    [stranger] = [row for row in rows if row.message_sid == "SM-x"]
    assert stranger.needs_staff  # on staff's list, as before


def test_when_the_batch_fails_the_route_answers(world: World, monkeypatch: pytest.MonkeyPatch):
    world.resident("R", phone(1)[0], language="vi")
    start_round_for(world, "R")
    world.tick()

    def broken(*args: object, **kwargs: object) -> dict[str, int]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(intake, "recent_sms_counts", broken)
    params = form("SM-a", phone(1)[1], "1")
    [response] = _post_all(world, [params])
    assert response.status_code == 200
    assert messages_in(response.text) == [render("resident.reply.ok", "vi", org=ORG)]
    [row] = inbound_rows(world)
    assert row.message_sid == "SM-a"
    process_replies(world.ctx)
    assert checkin_of(world.engine, world.residents["R"]).state == CheckInState.ok


def test_a_forged_reply_is_refused_by_the_route_and_changes_nothing(world: World):
    world.resident("R", phone(1)[0])
    start_round_for(world, "R")
    world.tick()
    before = counts(world.engine)
    params = form("SM-a", phone(1)[1], "1")
    headers = signed_headers("/twilio/sms", {**params, "Body": "2"})  # signed for another body
    response = world.client.post("/twilio/sms", data=params, headers=headers)
    assert response.status_code == 403
    assert counts(world.engine) == before


def test_a_residents_replies_in_one_batch_are_acted_on_in_the_order_they_came(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    """Each reply keeps the time its request came in, not the batch's: "START" then "STOP"
    in one batch leaves the resident opted out, even when the later row has the smaller id
    (ids are random; this one is pinned)."""
    world.resident("R", phone(1)[0])
    start_round_for(world, "R")
    world.tick()
    world.sms(phone(1)[1], "STOP")
    world.sms(phone(1)[1], "START")  # back in
    ids = iter([uuid.UUID(int=2), uuid.UUID(int=1)])
    real = events.resident_reply_row

    def pinned(*args: Any, **kwargs: Any) -> Any:
        row, reply, locale = real(*args, **kwargs)
        return {**row, "id": next(ids)}, reply, locale

    monkeypatch.setattr(events, "resident_reply_row", pinned)
    came = world.clock.now()
    forms = [form("SM-a", phone(1)[1], "START"), form("SM-b", phone(1)[1], "STOP")]
    intake.take_replies(forms, [came, came + timedelta(milliseconds=3)])
    monkeypatch.undo()
    a, b = (r for r in inbound_rows(world) if r.message_sid in ("SM-a", "SM-b"))
    assert (a.message_sid, b.message_sid) == ("SM-a", "SM-b")
    assert b.received_at > a.received_at and b.id < a.id
    process_replies(world.ctx)
    with Session(world.engine) as s:
        resident = s.get(Resident, world.residents["R"])
        assert resident is not None and resident.status == "opted_out"

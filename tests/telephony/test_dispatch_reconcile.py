"""Uncertain sends are reconciled with Twilio's own record (#16).

A send is uncertain when Twilio may have it but we never heard back: a read timeout after
the request was written, or a dispatcher that died while the request was in flight. The
dispatcher then asks Twilio's Message or Call list resource (the real ``TwilioProvider``
over aiohttp; the wire is ``twilio_wire.py``, a Twilio that keeps a record):

- Twilio has it: its SID is stored, it is not sent again;
- Twilio does not: it is sent;
- Twilio cannot be asked: it stays uncertain, and after the set time a check-in message is
  sent again rather than never (a notice is left ambiguous).

Each case is counted on /metrics by outcome and written to the audit log.
"""

# The `world` fixture is imported from tests/checkins/conftest.py.
# ruff: noqa: F811

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session

from service.audit.models import AuditEntry
from service.checkins.models import CheckInState
from service.telephony.console import ConsoleProvider
from service.telephony.dispatch import LEASE, dispatch_once
from service.telephony.models import (
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
)
from service.telephony.outbox import enqueue
from service.telephony.reconcile import reconcile_pass
from service.telephony.twilio_provider import TwilioProvider
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.test_dispatch_claim import settings_for
from tests.telephony.twilio_wire import TwilioWire, twilio_wire
from tests.telephony.worlds import (
    LANDLINE,
    LANDLINE_LOCAL,
    MOBILE,
    MOBILE_LOCAL,
    attempt_of,
    checkin_of,
    message_row,
    start_round_for,
)

pytestmark = pytest.mark.anyio

RESEND_AFTER = 600


def sms_checkin(world: World) -> OutboxMessage:
    world.resident("R-sms", MOBILE_LOCAL, language="ja")
    start_round_for(world, "R-sms")
    with Session(world.engine) as s:
        return s.execute(select(OutboxMessage).where(OutboxMessage.to_phone == MOBILE)).scalar_one()


def notice(world: World, to: str = "+818030000001") -> OutboxMessage:
    with Session(world.engine) as s:
        message = enqueue(
            s,
            organization_id=world.org_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.member_notice,
            to_phone=to,
            body="お知らせ",
            now=world.clock.now(),
        )
        s.commit()
        s.refresh(message)
        return message


async def send(world: World, wire: TwilioWire, **overrides: Any) -> int:
    settings = settings_for(dispatch_uncertain_resend_seconds=RESEND_AFTER, **overrides)
    provider = TwilioProvider.from_settings(settings)
    try:
        return await dispatch_once(
            engine=world.engine, provider=provider, settings=settings, now=world.clock.now()
        )
    finally:
        await provider.aclose()


async def reconcile(world: World, provider: Any = None) -> dict[str, int]:
    settings = settings_for(dispatch_uncertain_resend_seconds=RESEND_AFTER)
    own = provider is None
    provider = provider or TwilioProvider.from_settings(settings)
    try:
        return await reconcile_pass(
            engine=world.engine, provider=provider, settings=settings, now=world.clock.now()
        )
    finally:
        if own:
            await provider.aclose()


def audit_outcomes(world: World, row_id: uuid.UUID) -> list[tuple[str, Any]]:
    with Session(world.engine) as s:
        entries = s.execute(
            select(AuditEntry)
            .where(AuditEntry.entity_type == "outbox", AuditEntry.entity_id == str(row_id))
            .order_by(AuditEntry.at)
        ).scalars()
        return [(e.action, e.detail.get("outcome") or e.detail.get("why")) for e in entries]


def metric(world: World, name: str, **labels: str) -> float:
    text = world.client.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search("^" + pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_twilio_has_it_the_sid_is_stored_and_it_is_not_sent_again(world):
    message = sms_checkin(world)
    wire = TwilioWire(clock=world.clock.now, script=lambda form: "create-then-timeout")
    with twilio_wire(wire):
        assert await send(world, wire) == 1
        row = message_row(world.engine, message.id)
        assert (row.status, row.reconciliation) == (OutboxStatus.sending, "uncertain")
        assert metric(world, "mimamori_outbox_uncertain") == 1
        world.clock.advance(seconds=3)
        assert await reconcile(world) == {"found": 1}
        for later in (timedelta(minutes=1), timedelta(hours=1)):
            world.clock.advance(seconds=later.total_seconds())
            assert await send(world, wire) == 0
            assert await reconcile(world) == {}

    [created] = wire.created
    assert len(wire.posts) == 1
    assert wire.lists == [{"kind": "Messages", "To": MOBILE, "PageSize": "50"}]
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid, row.reconciliation) == (OutboxStatus.sent, created.sid, "found")
    attempt = attempt_of(world.engine, message.attempt_id)
    assert (attempt.status, attempt.sid) == ("sent", created.sid)
    assert audit_outcomes(world, message.id) == [
        ("outbox.uncertain", "no answer after the request was sent"),
        ("outbox.reconciled", "found"),
    ]
    assert metric(world, "mimamori_outbox_reconciled_total", outcome="found") == 1
    assert metric(world, "mimamori_outbox_uncertain") == 0


async def test_twilio_does_not_have_it_it_is_sent(world):
    message = sms_checkin(world)
    # The first request is cut off before Twilio created anything; the resend goes through.
    fates = iter(["timeout-before-create", None])
    wire = TwilioWire(clock=world.clock.now, script=lambda form: next(fates))
    with twilio_wire(wire):
        assert await send(world, wire) == 1
        assert wire.created == []
        world.clock.advance(seconds=3)
        assert await reconcile(world) == {"not_found": 1}
        assert await send(world, wire) == 1
        world.clock.advance(minutes=5)
        assert await send(world, wire) == 0
        assert await reconcile(world) == {}

    [created] = wire.created
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid, row.reconciliation) == (
        OutboxStatus.sent,
        created.sid,
        "not_found",
    )
    assert audit_outcomes(world, message.id) == [
        ("outbox.uncertain", "no answer after the request was sent"),
        ("outbox.reconciled", "not_found"),
    ]
    assert metric(world, "mimamori_outbox_reconciled_total", outcome="not_found") == 1


async def test_twilio_unavailable_the_checkin_stays_uncertain_then_is_resent(world):
    message = sms_checkin(world)
    wire = TwilioWire(clock=world.clock.now, script=lambda form: "create-then-timeout")
    wire.list_fails = True
    with twilio_wire(wire):
        await send(world, wire)
        t0 = world.clock.now()
        for _ in range(3):  # asked again and again while Twilio does not answer
            world.clock.advance(seconds=20)
            assert await reconcile(world) == {"uncertain": 1}
            assert await send(world, wire) == 0
            row = message_row(world.engine, message.id)
            assert (row.status, row.reconciliation) == (OutboxStatus.sending, "uncertain")
        assert len(wire.lists) == 3
        # The set time passes: a repeated "are you all right?" beats a missing one.
        world.clock.set(t0 + timedelta(seconds=RESEND_AFTER))
        wire.script = lambda form: None
        assert await reconcile(world) == {"resent": 1}
        assert await send(world, wire) == 1

    assert [c.to for c in wire.created] == [MOBILE, MOBILE]  # the lost one, and the resend
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid, row.reconciliation) == (
        OutboxStatus.sent,
        wire.created[-1].sid,
        "resent",
    )
    assert audit_outcomes(world, message.id)[-1] == ("outbox.reconciled", "resent")
    assert metric(world, "mimamori_outbox_reconciled_total", outcome="resent") == 1


async def test_twilio_unavailable_a_notice_is_left_ambiguous_not_resent(world):
    message = notice(world)
    wire = TwilioWire(clock=world.clock.now, script=lambda form: "create-then-timeout")
    wire.list_fails = True
    with twilio_wire(wire):
        await send(world, wire)
        world.clock.advance(seconds=RESEND_AFTER + 1)
        assert await reconcile(world) == {"gave_up": 1}
        world.clock.advance(hours=1)
        assert await send(world, wire) == 0
    assert len(wire.posts) == 1
    row = message_row(world.engine, message.id)
    assert (row.status, row.reconciliation) == (OutboxStatus.ambiguous, "gave_up")
    assert metric(world, "mimamori_outbox_reconciled_total", outcome="gave_up") == 1


async def test_a_sid_another_row_holds_never_matches(world):
    """Two notices with the same text to the same number: Twilio lists both of ours; the
    uncertain one is matched to the message whose SID no row holds yet."""
    first = notice(world)
    answers = iter([None, "create-then-timeout"])
    wire = TwilioWire(clock=world.clock.now, script=lambda form: next(answers))
    with twilio_wire(wire):
        assert await send(world, wire) == 1
        second = notice(world)
        assert await send(world, wire) == 1
        assert await reconcile(world) == {"found": 1}
    one, two = wire.created
    assert message_row(world.engine, first.id).sid == one.sid
    assert message_row(world.engine, second.id).sid == two.sid


async def test_a_call_cut_off_in_flight_is_found_in_the_call_list(world):
    world.resident("R-call", LANDLINE_LOCAL, language="ja")
    start_round_for(world, "R-call")
    wire = TwilioWire(clock=world.clock.now, script=lambda form: "create-then-timeout")
    with twilio_wire(wire):
        await send(world, wire)
        assert await reconcile(world) == {"found": 1}
        assert await send(world, wire) == 0
    [created] = wire.created
    assert created.kind == "Calls" and len(wire.posts) == 1
    assert wire.lists == [
        {"kind": "Calls", "To": LANDLINE, "PageSize": "50", "From": wire.created[0].form["From"]}
    ]
    with Session(world.engine) as s:
        call = s.execute(
            select(OutboxMessage).where(OutboxMessage.to_phone == LANDLINE)
        ).scalar_one()
    assert (call.status, call.sid) == (OutboxStatus.sent, created.sid)


async def test_rows_of_a_dispatcher_that_died_are_reconciled_after_its_lease(world):
    """A dispatcher claimed a row, its request reached Twilio, and it died before the
    answer was recorded: once the lease has run out the row is found, not resent."""
    from service.telephony.dispatch import claim_due, send_one

    message = sms_checkin(world)
    settings = settings_for()
    wire = TwilioWire(clock=world.clock.now)
    with twilio_wire(wire):
        provider = TwilioProvider.from_settings(settings)
        [claimed], _ = claim_due(
            world.engine, now=world.clock.now(), channel="sms", limit=10, settings=settings
        )
        await send_one(provider, settings, claimed)  # ...and the answer is never recorded
        await provider.aclose()
        world.clock.advance(seconds=LEASE.total_seconds() - 1)
        assert await reconcile(world) == {}  # its dispatcher may still be at work
        world.clock.advance(seconds=2)
        assert await reconcile(world) == {"found": 1}
        assert await send(world, wire) == 0
    [created] = wire.created
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid) == (OutboxStatus.sent, created.sid)
    assert audit_outcomes(world, message.id) == [
        ("outbox.uncertain", "the dispatcher's lease ran out"),
        ("outbox.reconciled", "found"),
    ]


async def test_the_console_says_it_cannot_know_what_was_sent_before_it_started(world):
    """A console provider made after the claim (a restarted process) has no record of it:
    the row stays uncertain rather than being sent twice; one that was there finds it."""
    message = sms_checkin(world)
    settings = settings_for(twilio_account_sid=None, twilio_auth_token=None)
    from service.telephony.dispatch import claim_due, send_one

    before = ConsoleProvider()
    [claimed], _ = claim_due(
        world.engine, now=world.clock.now(), channel="sms", limit=1, settings=settings
    )
    world.clock.advance(seconds=1)
    await send_one(before, settings, claimed)
    after = ConsoleProvider()
    world.clock.advance(seconds=LEASE.total_seconds() + 1)
    assert await reconcile(world, provider=after) == {"uncertain": 1}
    assert await reconcile(world, provider=before) == {}  # asked again later, not at once
    world.clock.advance(seconds=20)
    assert await reconcile(world, provider=before) == {"found": 1}
    row = message_row(world.engine, message.id)
    assert (row.status, row.sid) == (OutboxStatus.sent, before.sent[0].sid)
    checkin = checkin_of(world.engine, world.residents["R-sms"])
    assert checkin.state == CheckInState.waiting

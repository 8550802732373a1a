"""A permanent SMS failure is remembered: the next attempt never repeats the SMS (#16).

After Twilio answers 21610 (the resident texted STOP), 21614 (not a mobile) or 21211 (not a
valid number), the check-in moves on at once, and its next step skips SMS to that number:
a call if the resident has a number that can be called, otherwise "unreachable" at once,
escalated for a visit. Real rows, the real ``TwilioProvider`` over aiohttp, and a recording
Twilio on the wire; the sweep is the scheduler's own job, run by ``world.tick``.
"""

# The `world` fixture is imported from tests/checkins/conftest.py.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from service.checkins.models import CheckInState
from service.escalations.models import Escalation
from service.telephony.dispatch import dispatch_once
from service.telephony.models import OutboxStatus
from service.telephony.twilio_provider import TwilioProvider
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.test_dispatch_claim import settings_for
from tests.telephony.twilio_wire import TwilioWire, twilio_wire
from tests.telephony.worlds import MOBILE, MOBILE_LOCAL, checkin_of, outbox_to, start_round_for

pytestmark = pytest.mark.anyio

SECOND_MOBILE = "+819012340002"
SECOND_MOBILE_LOCAL = "090-1234-0002"


def refusing(code: int) -> Any:
    """Twilio refuses every SMS to MOBILE with ``code``; everything else goes through."""

    def script(form: dict[str, str]) -> Any:
        if form["To"] == MOBILE and "Body" in form:
            return {"status": 400, "code": code}
        return None

    return script


async def dispatch(world: World) -> int:
    settings = settings_for()
    provider = TwilioProvider.from_settings(settings)
    try:
        return await dispatch_once(
            engine=world.engine, provider=provider, settings=settings, now=world.clock.now()
        )
    finally:
        await provider.aclose()


def sweep(world: World) -> None:
    from service.checkins import flows

    flows.sweep_checkins(world.engine, world.clock.now)


def channels_to(world: World, phone: str) -> list[tuple[str, str]]:
    return [(m.channel, m.status) for m in outbox_to(world.engine, phone)]


@pytest.mark.parametrize("code", [21610, 21614])
async def test_after_stop_or_not_a_mobile_the_next_attempt_is_a_call_at_once(world, code):
    world.resident("R-1", MOBILE_LOCAL, language="ja")
    start_round_for(world, "R-1")
    wire = TwilioWire(clock=world.clock.now, script=refusing(code))
    with twilio_wire(wire):
        assert await dispatch(world) == 1
        sweep(world)  # no time passes: the failure made the next step due now
        assert await dispatch(world) == 1
    assert channels_to(world, MOBILE) == [("sms", OutboxStatus.failed), ("call", OutboxStatus.sent)]
    assert [c.kind for c in wire.created] == ["Calls"]
    checkin = checkin_of(world.engine, world.residents["R-1"])
    assert (checkin.state, checkin.step_index) == (CheckInState.waiting, 1)

    # The step after that (the plan's own call) is a call too; never the SMS again.
    world.clock.advance(minutes=61)
    with twilio_wire(wire):
        sweep(world)
        await dispatch(world)
    assert [c for c, _ in channels_to(world, MOBILE)] == ["sms", "call", "call"]


async def test_an_invalid_number_makes_the_resident_unreachable_at_once(world):
    world.resident("R-1", MOBILE_LOCAL, language="ja")
    start_round_for(world, "R-1")
    wire = TwilioWire(clock=world.clock.now, script=refusing(21211))
    with twilio_wire(wire):
        await dispatch(world)
        sweep(world)
        assert await dispatch(world) == 0
    assert channels_to(world, MOBILE) == [("sms", OutboxStatus.failed)]
    checkin = checkin_of(world.engine, world.residents["R-1"])
    assert checkin.state == CheckInState.unreachable
    with Session(world.engine) as s:
        escalation = s.get(Escalation, checkin.escalation_id)
        assert escalation is not None and escalation.reason == "unreachable"


async def test_a_second_mobile_number_gets_the_reminder_instead(world):
    world.resident("R-1", MOBILE_LOCAL, language="ja", phone2=SECOND_MOBILE_LOCAL)
    start_round_for(world, "R-1")
    wire = TwilioWire(clock=world.clock.now, script=refusing(21610))
    with twilio_wire(wire):
        await dispatch(world)
        sweep(world)
        await dispatch(world)
    assert channels_to(world, MOBILE) == [("sms", OutboxStatus.failed)]
    assert channels_to(world, SECOND_MOBILE) == [("sms", OutboxStatus.sent)]


async def test_a_text_from_the_resident_after_a_stop_lets_sms_go_again(world):
    """A resident who texted STOP and then START (any text reaches us) can be texted again."""
    world.resident("R-1", MOBILE_LOCAL, language="ja")
    start_round_for(world, "R-1")
    wire = TwilioWire(clock=world.clock.now, script=refusing(21610))
    with twilio_wire(wire):
        await dispatch(world)
    world.clock.advance(minutes=1)
    world.sms(MOBILE, "START")
    world.clock.advance(minutes=1)
    wire.script = lambda form: None
    with twilio_wire(wire):
        sweep(world)
        await dispatch(world)
    checkin_messages = [
        (m.channel, m.status) for m in outbox_to(world.engine, MOBILE) if m.purpose == "checkin"
    ]
    assert checkin_messages == [("sms", OutboxStatus.failed), ("sms", OutboxStatus.sent)]


async def test_the_next_round_does_not_text_a_number_that_refused_sms(world):
    """A later round's first attempt skips the number too: a call from the start."""
    world.resident("R-1", MOBILE_LOCAL, language="ja")
    start_round_for(world, "R-1")
    wire = TwilioWire(clock=world.clock.now, script=refusing(21610))
    with twilio_wire(wire):
        await dispatch(world)
    world.clock.advance(hours=3)
    start_round_for(world, "R-1")  # the next day's round, say
    with twilio_wire(wire):
        await dispatch(world)
    checkin_messages = [
        (m.channel, m.status) for m in outbox_to(world.engine, MOBILE) if m.purpose == "checkin"
    ]
    assert checkin_messages[0] == ("sms", OutboxStatus.failed)
    assert checkin_messages[-1] == ("call", OutboxStatus.sent)
    assert ("sms", OutboxStatus.sent) not in checkin_messages
    assert sum(1 for form in (f for _, f in wire.posts) if "Body" in form) == 1

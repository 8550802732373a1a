"""Shared pieces for the database-backed telephony tests: residents with an open check-in,
signed posting, and a snapshot of every table a webhook or the dispatcher may touch.

The ``world`` fixture itself lives in tests/checkins/conftest.py; test modules import it
from there so both suites build the same council, clock and console provider.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.checkins import flows
from service.checkins.models import Attempt, CheckIn, StaffTask, TimelineEvent
from service.config import get_settings
from service.escalations.models import Alert, Escalation
from service.telephony.models import InboundMessage, OutboxMessage, WebhookEvent
from service.telephony.signature import sign

# A mobile (SMS and voice) and a landline (voice only), both in Wajima.
MOBILE = "+819012340001"
MOBILE_LOCAL = "090-1234-0001"
LANDLINE = "+81768221234"
LANDLINE_LOCAL = "(0768) 22-1234"
OUR_NUMBER = "+815000000000"
ACCOUNT = "AC" + "0" * 32

COUNTED = {
    "inbound_message": InboundMessage,
    "webhook_event": WebhookEvent,
    "outbox": OutboxMessage,
    "checkin": CheckIn,
    "checkin_attempt": Attempt,
    "staff_task": StaffTask,
    "timeline_event": TimelineEvent,
    "escalation": Escalation,
    "alert": Alert,
}


def messages_in(twiml: str) -> list[str]:
    """The texts of a TwiML answer's <Message> elements."""
    root = ET.fromstring(twiml.encode("utf-8"))
    assert root.tag == "Response"
    return [el.text or "" for el in root.iter("Message")]


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {
            name: s.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in COUNTED.items()
        }


def snapshot(engine: Engine) -> dict[str, Any]:
    """Row counts plus the mutable columns that a webhook could change without adding rows."""
    with Session(engine) as s:
        checkins = sorted(
            (str(c.id), c.state, str(c.next_action_at), c.flagged, c.last_reply_kind)
            for c in s.execute(select(CheckIn)).scalars()
        )
        outbox = sorted(
            (str(m.id), m.status, m.sid, str(m.updated_at), m.last_error_code)
            for m in s.execute(select(OutboxMessage)).scalars()
        )
        attempts = sorted(
            (str(a.id), a.status, a.sid, a.error_code) for a in s.execute(select(Attempt)).scalars()
        )
    return {"counts": counts(engine), "checkins": checkins, "outbox": outbox, "attempts": attempts}


def start_round_for(world: Any, *keys: str, plan: list[dict[str, Any]] | None = None) -> uuid.UUID:
    """A one-off round for these residents, fanned out now (outbox rows pending)."""
    return flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        resident_ids=[world.residents[k] for k in keys],
        plan=plan,
        override_quiet_hours=True,
    )


def signed_headers(path: str, params: dict[str, str], *, url: str | None = None) -> dict[str, str]:
    settings = get_settings()
    target = url or f"{settings.public_url}{path}"
    return {"X-Twilio-Signature": sign(target, params, settings.webhook_auth_tokens()[0])}


def checkin_of(engine: Engine, resident_id: uuid.UUID) -> CheckIn:
    with Session(engine) as s:
        return s.execute(select(CheckIn).where(CheckIn.resident_id == resident_id)).scalar_one()


def outbox_to(engine: Engine, phone: str, channel: str | None = None) -> list[OutboxMessage]:
    with Session(engine) as s:
        query = select(OutboxMessage).where(OutboxMessage.to_phone == phone)
        if channel:
            query = query.where(OutboxMessage.channel == channel)
        return list(s.execute(query.order_by(OutboxMessage.created_at)).scalars())


def message_row(engine: Engine, message_id: uuid.UUID) -> OutboxMessage:
    with Session(engine) as s:
        message = s.get(OutboxMessage, message_id)
        assert message is not None
        return message


def attempt_of(engine: Engine, attempt_id: uuid.UUID | None) -> Attempt:
    assert attempt_id is not None
    with Session(engine) as s:
        attempt = s.get(Attempt, attempt_id)
        assert attempt is not None
        return attempt


@dataclass
class CheckinWorld:
    """A resident reachable by SMS and one by voice only, each with an open check-in whose
    first message the console provider has already sent (so it has a SID)."""

    sms: OutboxMessage
    call: OutboxMessage
    sms_resident: uuid.UUID
    call_resident: uuid.UUID


def build_checkins(world: Any, *, call_language: str = "ja") -> CheckinWorld:
    world.resident("R-sms", MOBILE_LOCAL, language="ja")
    world.resident("R-call", LANDLINE_LOCAL, language=call_language)
    start_round_for(world, "R-sms", "R-call")
    world.tick()  # the dispatcher sends both through the console provider
    [sms] = outbox_to(world.engine, MOBILE)
    [call] = outbox_to(world.engine, LANDLINE)
    assert sms.channel == "sms" and sms.sid and sms.status == "sent"
    assert call.channel == "call" and call.sid and call.status == "sent"
    return CheckinWorld(
        sms=sms,
        call=call,
        sms_resident=world.residents["R-sms"],
        call_resident=world.residents["R-call"],
    )

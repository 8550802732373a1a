"""The transactional outbox and its dispatcher.

Whatever needs a message writes an outbox row in its own transaction; the dispatcher sends
it later. That keeps state and sending consistent across crashes: a state change without
its message, or a message without its state change, cannot happen.

The dispatcher (``dispatch.py``) claims rows just before they leave and records answers as
they come; a send whose fate is uncertain is reconciled with Twilio's record
(``reconcile.py``). Here: writing rows, the backoff, and the per-recipient counts.

- transient failures are retried with exponential backoff and full jitter until the row's
  deadline, then the row fails and whatever it was for moves on;
- permanent failures fail the row at once;
- a row that has a SID is never sent again;
- per-recipient caps defer (never drop) messages to a number that already had many: one
  for chatter, one much higher for alerts and members' answers (``ALERT_PURPOSES``).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, DateTime, any_, bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from service.common import aware
from service.config import Settings
from service.ids import uuid7
from service.telephony.models import (
    ALERT_PURPOSES,
    CHATTER_PURPOSES,
    DEAD_SMS_WHERE,
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
)

log = logging.getLogger(__name__)

DEFAULT_DEADLINE = timedelta(minutes=30)
# A failed send is retried after 1 s, 2 s, 4 s, 8 s, then every 10 s (each with jitter,
# Twilio's Retry-After a floor) until its deadline. The rate cap, not the backoff, keeps
# retries from flooding Twilio (a retry uses the cap like any send); a long backoff would
# only make the unluckiest residents of a round wait, in a disaster. Retries due go before
# first sends (``dispatch.claim_due``).
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 10.0


def enqueue(
    session: Session,
    *,
    organization_id: uuid.UUID,
    channel: OutboxChannel,
    purpose: OutboxPurpose,
    to_phone: str,
    now: datetime,
    body: str | None = None,
    locale: str = "ja",
    resident_id: uuid.UUID | None = None,
    member_id: uuid.UUID | None = None,
    attempt_id: uuid.UUID | None = None,
    alert_id: uuid.UUID | None = None,
    not_before: datetime | None = None,
    deadline: timedelta = DEFAULT_DEADLINE,
    address: str | None = None,
) -> OutboxMessage:
    """Add a message to the caller's transaction. It is sent only if that commits."""
    start = max(now, not_before) if not_before else now
    message = OutboxMessage(
        organization_id=organization_id,
        channel=channel,
        purpose=purpose,
        to_phone=to_phone,
        address=address,
        body=body,
        locale=locale,
        resident_id=resident_id,
        member_id=member_id,
        attempt_id=attempt_id,
        alert_id=alert_id,
        next_try_at=start,
        give_up_at=start + deadline,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    return message


def outbox_row(
    *,
    organization_id: uuid.UUID,
    channel: OutboxChannel,
    purpose: OutboxPurpose,
    to_phone: str,
    now: datetime,
    body: str | None = None,
    locale: str = "ja",
    resident_id: uuid.UUID | None = None,
    attempt_id: uuid.UUID | None = None,
    not_before: datetime | None = None,
    deadline: timedelta = DEFAULT_DEADLINE,
    address: str | None = None,
) -> dict[str, Any]:
    """The same row as a plain dict, for bulk inserts during fan-out."""
    start = max(now, not_before) if not_before else now
    return {
        "id": uuid7(),
        "organization_id": organization_id,
        "channel": channel.value,
        "purpose": purpose.value,
        "to_phone": to_phone,
        "address": address,
        "body": body,
        "locale": locale,
        "resident_id": resident_id,
        "member_id": None,
        "attempt_id": attempt_id,
        "alert_id": None,
        "status": OutboxStatus.pending.value,
        "sid": None,
        "tries": 0,
        "next_try_at": start,
        "give_up_at": start + deadline,
        "claimed_at": None,
        "sent_at": None,
        "final_at": None,
        "last_error_code": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }


def backoff_delay(tries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; Twilio's Retry-After is a floor, not a target."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(tries - 1, 0)))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def _recent_sms(purposes: frozenset[str]) -> Any:
    return (
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.to_phone == bindparam("to_phone"),
            OutboxMessage.channel == OutboxChannel.sms.value,
            OutboxMessage.purpose.in_(sorted(purposes)),  # type: ignore[attr-defined]
            OutboxMessage.sent_at.is_not(None),  # type: ignore[union-attr]
            OutboxMessage.sent_at >= bindparam("since", type_=DateTime(timezone=True)),  # type: ignore[operator]
        )
    )


# Built once: the statement is the same for every answer, only the values change.
_RECENT_SMS = {False: _recent_sms(CHATTER_PURPOSES), True: _recent_sms(ALERT_PURPOSES)}


def cap_purposes(alerts: bool) -> frozenset[str]:
    """The purposes counted against one per-recipient cap: the alerts' or the chatter's."""
    return ALERT_PURPOSES if alerts else CHATTER_PURPOSES


def sms_cap(settings: Settings, *, alerts: bool) -> int:
    """SMS of one cap's purposes to one number per hour: the chatter's
    (``sms_per_recipient_per_hour``), or the alerts' (``alert_sms_per_hour``), which is
    never lower than the chatter's: an alert is never held back where chatter would go."""
    chatter = settings.sms_per_recipient_per_hour
    return max(settings.alert_sms_per_hour, chatter) if alerts else chatter


def recent_sms_count(
    session: Session | Connection, to_phone: str, now: datetime, *, alerts: bool = False
) -> int:
    """SMS to this number in the past hour, sent or replied through TwiML, of one cap's
    purposes: the chatter's, or (``alerts``) the alerts' and members' answers'."""
    since = now - timedelta(hours=1)
    return session.execute(_RECENT_SMS[alerts], {"to_phone": to_phone, "since": since}).scalar_one()


def among(column: Any, values: Collection[Any], dialect: str) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter however many
    values (an IN list of hundreds costs more to build and parse than to run)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def recent_sms_counts(
    session: Session, phones: set[str], now: datetime, *, alerts: bool = False
) -> dict[str, int]:
    """``recent_sms_count`` for many numbers in one query per chunk: a batch of 500 messages
    to 500 residents would otherwise cost 500 round trips before anything is sent."""
    counts = dict.fromkeys(phones, 0)
    ordered = sorted(phones)
    dialect = session.get_bind().dialect.name
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        counts.update(
            session.execute(
                select(OutboxMessage.to_phone, func.count())
                .where(
                    among(OutboxMessage.to_phone, chunk, dialect),
                    OutboxMessage.channel == OutboxChannel.sms,
                    OutboxMessage.purpose.in_(sorted(cap_purposes(alerts))),  # type: ignore[attr-defined]
                    OutboxMessage.sent_at.is_not(None),  # type: ignore[union-attr]
                    OutboxMessage.sent_at >= now - timedelta(hours=1),  # type: ignore[operator]
                )
                .group_by(OutboxMessage.to_phone)
            ).all()
        )
    return counts


# Twilio error codes after which no SMS to the same number can succeed: the recipient
# unsubscribed (STOP), the number is not a mobile, or it is not a valid number at all. The
# check-in plan then skips SMS to that number (``checkins.service``); the last also rules out
# calling it.
SMS_DEAD_CODES: frozenset[int] = frozenset({21610, 21614, 21211})
INVALID_NUMBER_CODES: frozenset[int] = frozenset({21211})


def dead_sms_numbers(
    session: Session | Connection, phones: Collection[str]
) -> dict[str, tuple[int, datetime]]:
    """Numbers an SMS failed to for good: number -> (Twilio's error code, when), the
    latest such failure of each. The caller decides whether a later sign of life (an SMS
    from the number) undoes it."""
    numbers = sorted({p for p in phones if p})
    dialect = (
        session.get_bind().dialect.name if isinstance(session, Session) else session.dialect.name
    )
    dead: dict[str, tuple[int, datetime]] = {}
    for start in range(0, len(numbers), 1000):
        for phone, code, at in session.execute(
            select(OutboxMessage.to_phone, OutboxMessage.last_error_code, OutboxMessage.final_at)
            .where(
                # Literal, as the partial index ix_outbox_dead_sms says it: a few rows.
                text(DEAD_SMS_WHERE),
                among(OutboxMessage.to_phone, numbers[start : start + 1000], dialect),
            )
            .order_by(OutboxMessage.final_at)
        ):
            dead[phone] = (int(code), aware(at) or at)
    return dead


# --- Dispatch lives in dispatch.py and reconcile.py -------------------------------------------

_MOVED = {
    "RateLimiter": "service.telephony.dispatch",
    "claim_due": "service.telephony.dispatch",
    "dispatch_once": "service.telephony.dispatch",
    "dispatch_until_empty": "service.telephony.dispatch",
    "make_limiters": "service.telephony.dispatch",
    "release_expired_leases": "service.telephony.reconcile",
}


def __getattr__(name: str) -> Any:
    """The dispatcher's names, still importable from here (they import this module)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(name)

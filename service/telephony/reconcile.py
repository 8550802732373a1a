"""Uncertain sends are resolved with Twilio's own record, never guessed.

A send is uncertain when its request may or may not have reached Twilio: it timed out
after it was written, the connection dropped before the answer, or the dispatcher that
held it died (its lease ran out). Such a row stays "sending", without a lease, marked
``reconciliation = uncertain``. This pass asks the provider what it sent to the row's
number since the row was claimed (Twilio's Message and Call list resources):

- **found** (same number, same text for an SMS, created since the claim, a SID we do not
  already hold): its SID is stored and it is never sent again;
- **not found**: it goes back to "pending" and is sent;
- **Twilio cannot be asked**: it stays uncertain and is asked about again. After
  ``MIMAMORI_DISPATCH_UNCERTAIN_RESEND_SECONDS`` a check-in message or an alert is sent
  again anyway: a repeated "are you all right?" costs little, a missing one means a visit
  an hour late. Other notices are then left "ambiguous" (final) and not resent.

Twilio's list resources do not show the StatusCallback a message was created with, so a
request cannot be tagged for them; a match is by number, text and time, and a SID another
row already has never matches. Every row that became uncertain and every resolution goes
to the audit log; ``/metrics`` counts them by outcome.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.audit.service import Actor, record
from service.common import aware
from service.config import Settings
from service.privacy import mask_phone
from service.telephony.hooks import outbox_hooks
from service.telephony.messaging import app_senders, reconcile_address
from service.telephony.models import (
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
    Reconciliation,
)
from service.telephony.outbox import DEFAULT_DEADLINE
from service.telephony.provider import ReconcileUnavailable, SentRecord, TelephonyProvider
from service.telephony.senders import all_sender_addresses

log = logging.getLogger(__name__)

DISPATCHER = Actor(label="dispatcher")
# While Twilio cannot be asked, an uncertain row is asked about again this often.
ASK_AGAIN = timedelta(seconds=15)
# Rows claimed by a dispatcher from before leases (an older version) count as abandoned
# after this long, as they used to.
LEGACY_STUCK_AFTER = timedelta(minutes=5)
RECONCILE_BATCH = 100
RECONCILE_CONCURRENCY = 8
# What is sent again when Twilio cannot be asked for the set time.
RESENT_WHEN_UNVERIFIABLE = frozenset({OutboxPurpose.checkin.value, OutboxPurpose.alert.value})

_UNCERTAIN = Reconciliation.uncertain.value


def mark_uncertain_values(now: datetime) -> dict[str, Any]:
    """The columns of a row that became uncertain (it stays "sending", without a lease)."""
    return {
        "lease_until": None,
        "uncertain_since": now,
        "reconciliation": _UNCERTAIN,
        "next_try_at": now,
        "updated_at": now,
    }


def audit_uncertain(
    session: Session, rows: list[tuple[uuid.UUID, uuid.UUID, str]], why: str
) -> None:
    """(row id, organization id, channel) of rows that just became uncertain."""
    for row_id, organization_id, channel in rows:
        record(
            session=session,
            organization_id=organization_id,
            actor=DISPATCHER,
            action="outbox.uncertain",
            entity_type="outbox",
            entity_id=row_id,
            detail={"channel": str(channel), "why": why},
        )


def release_expired_leases(engine: Engine, *, now: datetime) -> int:
    """Rows whose dispatcher stopped renewing their lease (it died or lost the database):
    their requests may have left, so they become uncertain and are reconciled."""
    with Session(engine) as session, session.begin():
        rows = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.sending,
                or_(
                    OutboxMessage.lease_until < now,  # type: ignore[operator]
                    (
                        OutboxMessage.lease_until.is_(None)  # type: ignore[union-attr]
                        & OutboxMessage.claimed_at.is_not(None)  # type: ignore[union-attr]
                        & (OutboxMessage.reconciliation.is_(None))  # type: ignore[union-attr]
                        & (OutboxMessage.claimed_at < now - LEGACY_STUCK_AFTER)  # type: ignore[operator]
                    ),
                ),
            )
            .values(**mark_uncertain_values(now))
            .returning(OutboxMessage.id, OutboxMessage.organization_id, OutboxMessage.channel)
            .execution_options(synchronize_session=False)
        ).all()
        audit_uncertain(session, [tuple(row) for row in rows], "the dispatcher's lease ran out")  # type: ignore[misc]
    if rows:
        log.warning("%d outbox rows left in flight by a stopped dispatcher: reconciling", len(rows))
    return len(rows)


@dataclass(slots=True)
class _Uncertain:
    id: uuid.UUID
    organization_id: uuid.UUID
    channel: str
    purpose: str
    to_phone: str
    body: str | None
    claimed_at: datetime | None
    uncertain_since: datetime | None
    give_up_at: datetime | None


@dataclass(slots=True)
class _Answer:
    row: _Uncertain
    records: list[SentRecord] | None = None  # None: the provider could not be asked
    reason: str = ""


def _normalized(text: str | None) -> str:
    return " ".join((text or "").split())


def match(row: _Uncertain, records: list[SentRecord], known: set[str]) -> SentRecord | None:
    """The provider's record of this row's send, if it has one: the earliest since the
    claim to the same number (with the same text, for an SMS) whose SID no other row holds.
    ``records`` are newest first, as Twilio lists them."""
    address = reconcile_address(str(row.channel), row.to_phone)
    to = address[1] if address else row.to_phone  # "whatsapp:+81…" in Twilio's record
    for candidate in reversed(records):
        if candidate.sid in known or candidate.to != to:
            continue
        if row.channel == OutboxChannel.sms and _normalized(candidate.body) != _normalized(
            row.body
        ):
            continue
        return candidate
    return None


def _due_uncertain(engine: Engine, now: datetime, limit: int) -> list[_Uncertain]:
    with Session(engine) as session:
        rows = session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.organization_id,
                OutboxMessage.channel,
                OutboxMessage.purpose,
                OutboxMessage.to_phone,
                OutboxMessage.body,
                OutboxMessage.claimed_at,
                OutboxMessage.uncertain_since,
                OutboxMessage.give_up_at,
            )
            .where(
                OutboxMessage.reconciliation == _UNCERTAIN,
                OutboxMessage.status == OutboxStatus.sending,
                OutboxMessage.next_try_at <= now,  # type: ignore[operator]
            )
            .order_by(OutboxMessage.next_try_at)
            .limit(limit)
        ).all()
    return [_Uncertain(*row) for row in rows]


def _our_senders(engine: Engine) -> frozenset[str]:
    with Session(engine) as session:
        return all_sender_addresses(session)


async def _ask(
    provider: TelephonyProvider,
    row: _Uncertain,
    gate: asyncio.Semaphore,
    senders: frozenset[str] = frozenset(),
) -> _Answer:
    since = aware(row.claimed_at) or aware(row.uncertain_since)
    assert since is not None
    async with gate:
        try:
            # A WhatsApp message is in Twilio's Messages list, to "whatsapp:+81…".
            address = reconcile_address(str(row.channel), row.to_phone)
            if address is None:  # sent with a retry key: sending again cannot repeat it
                return _Answer(row, records=[])
            channel, to = address
            records = await provider.sent_to(channel=channel, to=to, since=since, senders=senders)
        except ReconcileUnavailable as exc:
            return _Answer(row, reason=str(exc) or type(exc).__name__)
        except Exception as exc:  # a provider bug must not stop the pass
            log.exception("reconciling %s failed", row.id)
            return _Answer(row, reason=repr(exc))
    return _Answer(row, records=records)


async def reconcile_pass(
    *,
    engine: Engine,
    provider: TelephonyProvider,
    settings: Settings,
    now: datetime,
    limit: int = RECONCILE_BATCH,
) -> dict[str, int]:
    """Release expired leases, then resolve the uncertain rows that are due. Returns how
    many rows ended in each outcome (``uncertain``: still unresolved)."""
    outbox_hooks()  # an answer found here must reach check-ins and escalations
    await asyncio.to_thread(release_expired_leases, engine, now=now)
    rows = await asyncio.to_thread(_due_uncertain, engine, now, limit)
    if not rows:
        return {}
    gate = asyncio.Semaphore(RECONCILE_CONCURRENCY)
    # A message may have gone from any organization's own sender (``senders``).
    ours = await asyncio.to_thread(_our_senders, engine) | app_senders(settings)
    answers = await asyncio.gather(*(_ask(provider, row, gate, ours) for row in rows))
    resend_after = timedelta(seconds=settings.dispatch_uncertain_resend_seconds)
    return await asyncio.to_thread(_apply, engine, list(answers), now, resend_after)


def _apply(
    engine: Engine, answers: list[_Answer], now: datetime, resend_after: timedelta
) -> dict[str, int]:
    hooks = outbox_hooks()
    outcomes: dict[str, int] = {}
    with Session(engine) as session, session.begin():
        candidates = {r.sid for a in answers for r in a.records or ()}
        known = (
            set(
                session.execute(
                    select(OutboxMessage.sid).where(OutboxMessage.sid.in_(candidates))  # type: ignore[union-attr]
                ).scalars()
            )
            if candidates
            else set()
        )
        for answer in answers:
            row = answer.row
            outcome, values = _decide(answer, known, now, resend_after)
            changed = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,  # type: ignore[arg-type]
                    OutboxMessage.status == OutboxStatus.sending,
                    OutboxMessage.reconciliation == _UNCERTAIN,
                )
                .values(**values, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not changed:
                continue  # a status callback, or another dispatcher, resolved it meanwhile
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == _UNCERTAIN:
                continue
            if outcome == Reconciliation.found:
                known.add(values["sid"])
                message = session.get(OutboxMessage, row.id)
                assert message is not None
                hooks.on_status(session, message, OutboxStatus.sent, now)
            elif values.get("status") in (OutboxStatus.ambiguous, OutboxStatus.failed):
                message = session.get(OutboxMessage, row.id)
                assert message is not None
                hooks.on_failed(session, message, now)
            record(
                session=session,
                organization_id=row.organization_id,
                actor=DISPATCHER,
                action="outbox.reconciled",
                entity_type="outbox",
                entity_id=row.id,
                detail={"outcome": outcome, "channel": str(row.channel), "sid": values.get("sid")},
            )
            log.info(
                "uncertain %s to %s: %s",
                row.channel,
                mask_phone(row.to_phone),
                outcome,
                extra={"event": "outbox.reconciled", "outcome": outcome},
            )
    return outcomes


def _decide(
    answer: _Answer, known: set[str], now: datetime, resend_after: timedelta
) -> tuple[str, dict[str, Any]]:
    """The outcome for one uncertain row and the columns it sets (a pure decision)."""
    row = answer.row
    if answer.records is not None:
        found = match(row, answer.records, known)
        if found is not None:
            return Reconciliation.found.value, {
                "status": OutboxStatus.sent,
                "sid": found.sid,
                "sent_at": aware(row.claimed_at) or now,
                "reconciliation": Reconciliation.found.value,
            }
        if row.give_up_at is not None and now > aware(row.give_up_at):  # type: ignore[operator]
            # Not sent, and its window is over: it fails, and whatever it was for moves on.
            return Reconciliation.not_found.value, {
                "status": OutboxStatus.failed,
                "final_at": now,
                "reconciliation": Reconciliation.not_found.value,
                "last_error": "gave up: not sent (Twilio has no record), and past its window",
            }
        return Reconciliation.not_found.value, {
            "status": OutboxStatus.pending,
            "next_try_at": now,
            "reconciliation": Reconciliation.not_found.value,
        }
    since = aware(row.uncertain_since) or now
    if now - since < resend_after:
        return _UNCERTAIN, {
            "next_try_at": now + ASK_AGAIN,
            "last_error": f"cannot ask Twilio: {answer.reason}"[:500],
        }
    if row.purpose in RESENT_WHEN_UNVERIFIABLE:
        return Reconciliation.resent.value, _resend(Reconciliation.resent, now)
    return Reconciliation.gave_up.value, {
        "status": OutboxStatus.ambiguous,
        "final_at": now,
        "reconciliation": Reconciliation.gave_up.value,
        "last_error": f"uncertain, and Twilio could not be asked: {answer.reason}"[:500],
    }


def _resend(outcome: Reconciliation, now: datetime) -> dict[str, Any]:
    """Back to "pending", due now, with a fresh window to be sent in (it could not be sent
    in its own). A check-in message whose step is over meanwhile is cancelled when it is
    claimed, not sent."""
    return {
        "status": OutboxStatus.pending,
        "next_try_at": now,
        "give_up_at": now + DEFAULT_DEADLINE,
        "reconciliation": outcome.value,
    }

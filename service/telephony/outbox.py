"""The transactional outbox and its dispatcher.

Whatever needs a message writes an outbox row in its own transaction; the dispatcher sends
it later. That keeps state and sending consistent across crashes: a state change without
its message, or a message without its state change, cannot happen.

Dispatch rules (DESIGN.md, "The rules that keep people safe", 3):
- rows are claimed in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several
  dispatchers are safe;
- transient failures are retried with exponential backoff and full jitter until the row's
  deadline, then the row fails and whatever it was for moves on;
- permanent failures fail the row at once;
- a row that has a SID is never sent again; an ambiguous send is not repeated (the policy
  is written in ``errors.py``), and neither is a row a crashed dispatcher left "sending";
- per-recipient caps defer (never drop) messages to a number that already had many.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, exists, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from service.common import aware
from service.config import Settings
from service.metrics import observe_dispatch
from service.privacy import mask_phone
from service.telephony.errors import PermanentSendError, TransientSendError
from service.telephony.models import (
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
)
from service.telephony.provider import (
    TelephonyProvider,
    call_status_callback_url,
    call_twiml_url,
    sms_status_callback_url,
)

log = logging.getLogger(__name__)

DEFAULT_DEADLINE = timedelta(minutes=30)
STUCK_SENDING_AFTER = timedelta(minutes=5)
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0


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
) -> OutboxMessage:
    """Add a message to the caller's transaction. It is sent only if that commits."""
    start = max(now, not_before) if not_before else now
    message = OutboxMessage(
        organization_id=organization_id,
        channel=channel,
        purpose=purpose,
        to_phone=to_phone,
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
) -> dict[str, Any]:
    """The same row as a plain dict, for bulk inserts during fan-out."""
    start = max(now, not_before) if not_before else now
    return {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "channel": channel.value,
        "purpose": purpose.value,
        "to_phone": to_phone,
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


_RECENT_SMS = (
    select(func.count())
    .select_from(OutboxMessage)
    .where(
        OutboxMessage.to_phone == bindparam("to_phone"),
        OutboxMessage.channel == OutboxChannel.sms.value,
        OutboxMessage.sent_at.is_not(None),  # type: ignore[union-attr]
        OutboxMessage.sent_at >= bindparam("since", type_=DateTime(timezone=True)),  # type: ignore[operator]
    )
)


def recent_sms_count(session: Session | Connection, to_phone: str, now: datetime) -> int:
    """SMS to this number in the past hour, sent or replied through TwiML."""
    since = now - timedelta(hours=1)
    return session.execute(_RECENT_SMS, {"to_phone": to_phone, "since": since}).scalar_one()


def recent_sms_counts(session: Session, phones: set[str], now: datetime) -> dict[str, int]:
    """``recent_sms_count`` for many numbers in one query per chunk: a batch of 500 messages
    to 500 residents would otherwise cost 500 round trips before anything is sent."""
    counts = dict.fromkeys(phones, 0)
    ordered = sorted(phones)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        counts.update(
            session.execute(
                select(OutboxMessage.to_phone, func.count())
                .where(
                    OutboxMessage.to_phone.in_(chunk),  # type: ignore[attr-defined]
                    OutboxMessage.channel == OutboxChannel.sms,
                    OutboxMessage.sent_at.is_not(None),  # type: ignore[union-attr]
                    OutboxMessage.sent_at >= now - timedelta(hours=1),  # type: ignore[operator]
                )
                .group_by(OutboxMessage.to_phone)
            ).all()
        )
    return counts


# --- Dispatch -------------------------------------------------------------------------------------


class RateLimiter:
    """Never more than ``rate`` sends of one channel start in any one second.

    Two rules, both checked while holding the lock at the moment a send really starts:

    * sends are spaced ``1 / rate`` apart on a schedule, so a slightly late wake-up is made
      up and the average stays at the cap (only a little lateness, ``CATCH_UP_SECONDS``, is
      made up: after an idle spell the dispatcher does not burst);
    * the start of the send ``rate`` sends ago must be a full second old, plus a little
      (``JITTER_SECONDS``) for the time between starting a send and its request reaching
      Twilio, which varies on a busy machine. Handing out future slots and letting each
      task sleep on its own let a stalled event loop wake many at once, a burst above the
      cap exactly when Twilio is most likely to answer 429; this rule holds whatever the
      loop does.
    """

    CATCH_UP_SECONDS = 0.02
    JITTER_SECONDS = 0.03

    def __init__(self, rate: float) -> None:
        self.rate = max(rate, 0.001)
        self._interval = 1.0 / self.rate
        self._next = time.monotonic()
        self._starts: deque[float] = deque(maxlen=max(1, math.floor(self.rate)))
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                ready = self._next
                if len(self._starts) == self._starts.maxlen:
                    ready = max(ready, self._starts[0] + 1.0 + self.JITTER_SECONDS)
                if ready <= now:
                    break
                await asyncio.sleep(ready - now)
            self._starts.append(now)
            self._next = max(self._next, now - self.CATCH_UP_SECONDS) + self._interval


@dataclass
class _Claimed:
    id: uuid.UUID
    channel: str
    purpose: str
    to_phone: str
    body: str | None
    tries: int
    give_up_at: datetime


@dataclass
class _Result:
    claimed: _Claimed
    sid: str | None = None
    status: str | None = None
    error: TransientSendError | PermanentSendError | None = None


FailureHook = Callable[[Session, OutboxMessage, datetime], None]


def _failure_hook() -> FailureHook:
    from service.checkins.events import on_outbox_failed

    return on_outbox_failed


def _screen_checkin_messages(
    engine: Engine, claimed: list[_Claimed], now: datetime
) -> list[_Claimed]:
    """Check-in messages whose step is over are cancelled, and those reached during their
    round's quiet hours wait for the morning (``checkins.events.screen_checkin_messages``)."""
    from service.checkins.events import screen_checkin_messages

    checkin_ids = [item.id for item in claimed if item.purpose == OutboxPurpose.checkin]
    if not checkin_ids:
        return claimed
    with Session(engine) as session, session.begin():
        screened = screen_checkin_messages(session, checkin_ids, now)
    if screened:
        log.info("%d check-in messages not sent now (step over, or quiet hours)", len(screened))
    return [item for item in claimed if item.id not in screened]


def _cancel_settled_alert_calls(session: Session, now: datetime) -> None:
    """An alert call still waiting to be placed whose alert was answered, declined, expired
    or withdrawn meanwhile is not placed: nobody should be rung about a settled alert."""
    alert = OutboxMessage.metadata.tables["alert"]  # escalations' table, by name: no import
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.pending,
            OutboxMessage.channel == OutboxChannel.call,
            exists().where(alert.c.id == OutboxMessage.alert_id, alert.c.state != "sent"),
        )
        .values(status=OutboxStatus.cancelled, final_at=now, updated_at=now)
    )


def claim_batch(engine: Engine, *, now: datetime, limit: int) -> list[_Claimed]:
    """Mark up to ``limit`` due rows as ours. Committed before anything is sent."""
    with Session(engine) as session, session.begin():
        _cancel_settled_alert_calls(session, now)
        query = (
            select(OutboxMessage.id)
            .where(OutboxMessage.status == OutboxStatus.pending, OutboxMessage.next_try_at <= now)
            .order_by(OutboxMessage.next_try_at)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.execute(query).scalars())
        if not ids:
            return []
        rows = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.pending)  # type: ignore[attr-defined]
            .values(status=OutboxStatus.sending, claimed_at=now, updated_at=now)
            .returning(
                OutboxMessage.id,
                OutboxMessage.channel,
                OutboxMessage.purpose,
                OutboxMessage.to_phone,
                OutboxMessage.body,
                OutboxMessage.tries,
                OutboxMessage.give_up_at,
            )
        ).all()
    # RETURNING comes back in no particular order; keep the oldest first, so that under the
    # rate cap and the per-recipient cap the messages that waited longest go first.
    position = {row_id: index for index, row_id in enumerate(ids)}
    return sorted((_Claimed(*row) for row in rows), key=lambda item: position[item.id])


async def _send(
    provider: TelephonyProvider,
    settings: Settings,
    claimed: _Claimed,
    limiters: dict[str, RateLimiter],
    semaphore: asyncio.Semaphore,
) -> _Result:
    async with semaphore:
        await limiters[claimed.channel].wait()
        started = time.perf_counter()
        try:
            if claimed.channel == OutboxChannel.sms:
                result = await provider.send_sms(
                    to=claimed.to_phone,
                    body=claimed.body or "",
                    status_callback=sms_status_callback_url(settings, attempt_id=claimed.id),
                )
            else:
                result = await provider.place_call(
                    to=claimed.to_phone,
                    twiml_url=call_twiml_url(settings, attempt_id=claimed.id),
                    status_callback=call_status_callback_url(settings, attempt_id=claimed.id),
                )
        except (TransientSendError, PermanentSendError) as error:
            return _Result(claimed, error=error)
        except Exception as exc:
            log.exception("unexpected error sending %s", claimed.id)
            return _Result(claimed, error=TransientSendError(repr(exc), ambiguous=True))
        finally:
            observe_dispatch(claimed.channel, time.perf_counter() - started)
        return _Result(claimed, sid=result.sid, status=result.status)


def _record(engine: Engine, results: list[_Result], now: datetime) -> None:
    """Write what happened. Only rows still "sending" change, so a status callback that
    arrived first (it carries our row id) is never overwritten."""
    hook = _failure_hook()
    with Session(engine) as session, session.begin():
        _record_sent(session, [result for result in results if result.sid], now)
        for result in results:
            claimed = result.claimed
            if result.sid:
                log.info(
                    "sent %s to %s",
                    claimed.channel,
                    mask_phone(claimed.to_phone),
                    extra={"event": "outbox.sent", "sid": result.sid},
                )
                continue
            values: dict[str, Any] = {"updated_at": now, "tries": claimed.tries + 1}
            failed = False
            if isinstance(result.error, PermanentSendError):
                values.update(
                    status=OutboxStatus.failed,
                    final_at=now,
                    last_error_code=result.error.code,
                    last_error=str(result.error)[:500],
                )
                failed = True
            elif isinstance(result.error, TransientSendError):
                error = result.error
                resend_ambiguous = claimed.purpose == OutboxPurpose.alert and claimed.tries == 0
                retry_at = now + timedelta(
                    seconds=backoff_delay(claimed.tries + 1, error.retry_after)
                )
                if error.ambiguous and not resend_ambiguous:
                    values.update(
                        status=OutboxStatus.ambiguous, final_at=now, last_error=str(error)[:500]
                    )
                    # Final for this row, so whatever it was for hears of it (as in
                    # release_stuck): the attempt shows "ambiguous", an alert moves the chain on.
                    failed = True
                elif retry_at > aware(claimed.give_up_at):  # type: ignore[operator]
                    values.update(
                        status=OutboxStatus.failed,
                        final_at=now,
                        last_error=f"gave up: {error}"[:500],
                    )
                    failed = True
                else:
                    values.update(
                        status=OutboxStatus.pending,
                        next_try_at=retry_at,
                        last_error=str(error)[:500],
                    )
            changed = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == claimed.id, OutboxMessage.status == OutboxStatus.sending)
                .values(**values)
            ).rowcount
            if changed and failed:
                message = session.get(OutboxMessage, claimed.id)
                assert message is not None
                hook(session, message, now)
            if result.error is not None:
                log.warning(
                    "send of %s to %s failed: %s",
                    claimed.channel,
                    mask_phone(claimed.to_phone),
                    result.error,
                    extra={"event": "outbox.failed"},
                )


def _record_sent(session: Session, sent: list[_Result], now: datetime) -> None:
    """Store the SIDs of a batch's accepted sends in one executemany: one round trip per
    row would make recording a large batch cost as much as sending it.

    Only rows still "sending" change, so a status callback that arrived first (it carries
    our row id) keeps its status; the SID is stored either way."""
    if not sent:
        return
    table = OutboxMessage.__table__  # Core: a plain executemany, no ORM bookkeeping per row
    params = [
        {"row_id": r.claimed.id, "new_sid": r.sid, "new_tries": r.claimed.tries + 1} for r in sent
    ]
    changed = session.execute(
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.status == OutboxStatus.sending.value)
        .values(
            status=OutboxStatus.sent.value,
            sid=bindparam("new_sid"),
            tries=bindparam("new_tries"),
            sent_at=now,
            updated_at=now,
        ),
        params,
    ).rowcount
    if changed != len(sent):
        # A callback got here first for some: keep their status, but store the SID.
        session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"), table.c.sid.is_(None))
            .values(sid=bindparam("new_sid")),
            [{"row_id": p["row_id"], "new_sid": p["new_sid"]} for p in params],
        )


def _defer_capped(
    engine: Engine, claimed: list[_Claimed], settings: Settings, now: datetime
) -> list[_Claimed]:
    """Messages to a number over its hourly cap wait; they are never dropped."""
    cap = settings.sms_per_recipient_per_hour
    allowed: list[_Claimed] = []
    with Session(engine) as session, session.begin():
        counts = recent_sms_counts(
            session, {item.to_phone for item in claimed if item.channel == OutboxChannel.sms}, now
        )
        for item in claimed:
            if item.channel != OutboxChannel.sms:
                allowed.append(item)
                continue
            if counts[item.to_phone] >= cap:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == item.id)
                    .values(
                        status=OutboxStatus.pending,
                        next_try_at=now + timedelta(minutes=10),
                        give_up_at=now + timedelta(minutes=10) + DEFAULT_DEADLINE,
                        last_error=f"deferred: over {cap} SMS per hour to this number",
                        updated_at=now,
                    )
                )
                log.warning("deferred an SMS to %s: per-recipient cap", mask_phone(item.to_phone))
                continue
            counts[item.to_phone] += 1
            allowed.append(item)
    return allowed


async def dispatch_once(
    *,
    engine: Engine,
    provider: TelephonyProvider,
    settings: Settings,
    now: datetime,
    batch: int = 500,
    concurrency: int = 100,
    limiters: dict[str, RateLimiter] | None = None,
) -> int:
    """Claim one batch, send it with bounded concurrency, record the results."""
    # A batch must be sent well within STUCK_SENDING_AFTER even at the slowest configured
    # rate, or the watchdog would take rows still waiting for the rate limiter as stuck.
    slowest = min(settings.sms_per_second, settings.calls_per_second)
    batch = max(1, min(batch, int(slowest * STUCK_SENDING_AFTER.total_seconds() / 2)))
    claimed = claim_batch(engine, now=now, limit=batch)
    if not claimed:
        return 0
    claimed = _screen_checkin_messages(engine, claimed, now)
    claimed = _defer_capped(engine, claimed, settings, now)
    limiters = limiters or make_limiters(settings)
    semaphore = asyncio.Semaphore(concurrency)
    results = await asyncio.gather(
        *(_send(provider, settings, item, limiters, semaphore) for item in claimed)
    )
    _record(engine, list(results), now)
    return len(claimed)


def make_limiters(settings: Settings) -> dict[str, RateLimiter]:
    return {
        OutboxChannel.sms.value: RateLimiter(settings.sms_per_second),
        OutboxChannel.call.value: RateLimiter(settings.calls_per_second),
    }


async def dispatch_until_empty(
    *,
    engine: Engine,
    provider: TelephonyProvider,
    settings: Settings,
    now_fn: Callable[[], datetime],
    batch: int = 500,
    concurrency: int = 100,
    max_batches: int = 1000,
) -> int:
    total = 0
    limiters = make_limiters(settings)
    for _ in range(max_batches):
        sent = await dispatch_once(
            engine=engine,
            provider=provider,
            settings=settings,
            now=now_fn(),
            batch=batch,
            concurrency=concurrency,
            limiters=limiters,
        )
        total += sent
        if sent == 0:
            break
    return total


def release_stuck(engine: Engine, *, now: datetime) -> int:
    """Rows left "sending" by a dispatcher that died: we cannot know whether Twilio has
    them, so they are ambiguous, like a timeout; the plan's next step is the retry."""
    hook = _failure_hook()
    with Session(engine) as session, session.begin():
        rows = (
            session.execute(
                select(OutboxMessage).where(
                    OutboxMessage.status == OutboxStatus.sending,
                    OutboxMessage.claimed_at < now - STUCK_SENDING_AFTER,
                )
            )
            .scalars()
            .all()
        )  # type: ignore[operator]
        for message in rows:
            if message.purpose == OutboxPurpose.alert:
                # An alert is resent: a duplicate to a volunteer beats a lost alert.
                message.status = OutboxStatus.pending
                message.next_try_at = now
                message.give_up_at = now + DEFAULT_DEADLINE
            else:
                message.status = OutboxStatus.ambiguous
                message.final_at = now
                message.last_error = "dispatcher stopped while sending"
                hook(session, message, now)
            message.updated_at = now
            session.add(message)
        return len(rows)

"""The outbox dispatcher: claims rows just before they leave, records answers as they come.

A row is "sending" only while its request is leaving or in flight, or about to. The
dispatcher keeps, per channel, a few due rows claimed ahead of its free request slots: no
more than its rate cap lets go within the next ``CLAIM_HORIZON_SECONDS``, and no more than
``CLAIM_AHEAD_SHARE`` of the concurrency. It tops them up in overlapping claims of at least
half that (a claim's cost is mostly fixed, so few large claims cost less CPU than many
small ones), so a slot that frees finds its next row in memory. At most ``concurrency``
requests are at Twilio at once (a semaphore); the rest stay "pending", so a crash leaves
them to the next dispatcher at once. A claimed row carries a short lease
(``lease_until``), renewed every few seconds while its request is out: past its lease, the
dispatcher that held it is gone and the row's fate is reconciled with Twilio
(``reconcile.py``). A row whose lease has run out is never sent by the dispatcher that
claimed it: it checks its lease just before the request leaves.

Answers are recorded as they come, a few milliseconds' worth per transaction, in a worker
thread: one slow request never holds back the others, and the event loop never waits for
the database. A retry goes back to "pending" with its backoff (or Twilio's
``Retry-After``) in ``next_try_at``; idle claimers look for due rows every
``IDLE_POLL_SECONDS``, so it leaves within about that of its time.

Rules kept (DESIGN.md, "The rules that keep people safe", 3): several dispatchers are safe
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the claim is a guarded ``UPDATE ...
RETURNING``, the transaction's first write); a row with a SID is never sent again; quiet
hours and "the step is over" are checked when a check-in message is claimed; per-recipient
caps defer, never drop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, exists, func, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.common import aware
from service.config import Settings
from service.privacy import mask_phone
from service.telephony.dispatch_metrics import observe_dispatch
from service.telephony.errors import PermanentSendError, TransientSendError
from service.telephony.hooks import FailedHook, HeldHook, outbox_hooks
from service.telephony.messaging import channels_for
from service.telephony.models import (
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
    is_alert_purpose,
)
from service.telephony.outbox import DEFAULT_DEADLINE, among, backoff_delay, sms_cap
from service.telephony.provider import (
    TelephonyProvider,
    call_status_callback_url,
    call_twiml_url,
    sms_status_callback_url,
)
from service.telephony.reconcile import audit_uncertain, mark_uncertain_values
from service.telephony.senders import Sender, SenderBook

log = logging.getLogger(__name__)

# A claimed row's lease, and how often a live dispatcher renews the leases of its rows.
# After a crash, rows claimed but not answered are reconciled once it has run out.
LEASE = timedelta(seconds=10)
LEASE_RENEW_SECONDS = 2.5
# A dispatcher stops trusting its lease this long before it runs out (a send checks it).
LEASE_SAFETY_SECONDS = 2.0
# Claim what the rate cap lets go within this time: rows wait at most about this long for
# the limiter while "sending".
CLAIM_HORIZON_SECONDS = 0.2
CLAIM_MAX = 1000
# Rows claimed ahead of a free request slot, as a share of the concurrency: the next rows
# are in memory when a slot frees, so no slot waits for a claim transaction. They are few
# (at most this share, and never more than the rate cap lets go within the horizon), so a
# crash leaves at most the concurrency plus these to be reconciled.
CLAIM_AHEAD_SHARE = 1.0
# A claim is started once this share of the rows ahead has left (not for each row), and up
# to CLAIMS_AT_ONCE claims of a channel overlap on PostgreSQL (SKIP LOCKED keeps them
# apart); on SQLite, where writers queue for one lock, claims go one at a time.
CLAIM_REFILL_SHARE = 0.5
CLAIMS_AT_ONCE = 2
IDLE_POLL_SECONDS = 0.25
# Answers are written in one transaction per this much time (or RECORD_MAX answers).
RECORD_WINDOW_SECONDS = 0.05
RECORD_MAX = 1000
RECONCILE_EVERY_SECONDS = 2.0
DEFER_FOR_CAP = timedelta(minutes=10)

CHANNELS = (
    OutboxChannel.sms.value,
    OutboxChannel.call.value,
    # Messaging apps (``messaging.MESSAGING_CHANNELS``), each with its own rate cap.
    OutboxChannel.whatsapp.value,
    OutboxChannel.line.value,
)


class RateLimiter:
    """Never more than ``rate`` sends of one channel start in any one second.

    Two rules, both checked while holding the lock at the moment a send really starts:

    * sends are spaced ``1 / rate`` apart on a schedule, so a slightly late wake-up is made
      up and the average stays at the cap (only a little lateness, ``CATCH_UP_SECONDS``, is
      made up: after an idle spell the dispatcher does not burst);
    * the start of the send ``rate`` sends ago must be a full second old, plus a little
      (``JITTER_SECONDS``) for the time between starting a send and its request reaching
      Twilio. This holds whatever a stalled event loop does when it wakes.
    """

    CATCH_UP_SECONDS = 0.02
    JITTER_SECONDS = 0.03

    def __init__(self, rate: float) -> None:
        self.rate = max(rate, 0.001)
        self._interval = 1.0 / self.rate
        self._next = time.monotonic()
        self._starts: deque[float] = deque(maxlen=max(1, math.floor(self.rate)))
        self._lock = asyncio.Lock()

    def within(self, seconds: float) -> int:
        """About how many sends may start in the next ``seconds`` (at least one)."""
        return max(1, math.ceil(self.rate * seconds))

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


def make_limiters(settings: Settings) -> dict[str, RateLimiter]:
    return {
        OutboxChannel.sms.value: RateLimiter(settings.sms_per_second),
        OutboxChannel.call.value: RateLimiter(settings.calls_per_second),
        OutboxChannel.whatsapp.value: RateLimiter(settings.whatsapp_per_second),
        OutboxChannel.line.value: RateLimiter(settings.line_per_second),
    }


@dataclass(slots=True)
class Claimed:
    id: uuid.UUID
    organization_id: uuid.UUID
    channel: str
    purpose: str
    to_phone: str
    body: str | None
    tries: int
    give_up_at: datetime
    # A messaging app's address, where it is not ``to_phone`` (a LINE user id).
    address: str | None = None
    # time.monotonic() after which this dispatcher's lease on the row is no longer trusted.
    lease_deadline: float = 0.0
    # Its organization's own sender; None: the installation's (``senders.choose_sender``).
    sender: Sender | None = None


@dataclass(slots=True)
class Result:
    claimed: Claimed
    sid: str | None = None
    status: str | None = None
    error: TransientSendError | PermanentSendError | None = None
    # The lease ran out before the request left (the loop stalled): nothing was sent.
    not_sent: bool = False


FailureHook = FailedHook


def failure_hook() -> FailureHook:
    return outbox_hooks().on_failed


def held_hook() -> HeldHook:
    return outbox_hooks().on_alerts_held


# --- Claiming -------------------------------------------------------------------------------------


def claim_due(
    engine: Engine,
    *,
    now: datetime,
    channel: str,
    limit: int,
    settings: Settings,
    lease: timedelta = LEASE,
    senders: SenderBook | None = None,
) -> tuple[list[Claimed], int]:
    """Claim up to ``limit`` due rows of one channel, oldest first, in one transaction.
    Returns the rows to send now and how many were claimed (some may be held back). Each
    carries its organization's own sender, if it has one (looked up in ``senders``).

    In the same transaction, check-in messages whose step is over are cancelled and those
    reached in quiet hours put back (the ``screen_checkin_messages`` hook), alert
    calls whose alert is settled are cancelled, and SMS over a number's hourly cap are
    deferred. What is returned is to be sent now.
    """
    outbox_hooks()  # nothing is claimed by a process that could not report a failure
    deadline = time.monotonic() + lease.total_seconds() - LEASE_SAFETY_SECONDS
    dialect = engine.dialect.name

    def due(first_sends: bool, count: int) -> Any:
        # Retries due go first, then first sends, each oldest first: a resident whose send
        # failed is not queued again behind a whole round. The predicates are literal so
        # that PostgreSQL matches them to the partial index of retries.
        query = (
            select(OutboxMessage.id)
            .where(
                text("status = 'pending'"),
                text("tries = 0") if first_sends else text("tries > 0"),
                OutboxMessage.next_try_at <= now,
                OutboxMessage.channel == channel,
            )
            .order_by(OutboxMessage.next_try_at)
            .limit(count)
        )
        return query.with_for_update(skip_locked=True) if dialect == "postgresql" else query

    with Session(engine) as session, session.begin():
        ids = list(session.execute(due(False, limit)).scalars())
        if len(ids) < limit:
            ids += session.execute(due(True, limit - len(ids))).scalars()
        if not ids:
            return [], 0
        # The guarded UPDATE is the first write: on SQLite a row another dispatcher claimed
        # since it was read is no longer "pending" and is not returned.
        rows = session.execute(
            update(OutboxMessage)
            .where(
                among(OutboxMessage.id, ids, dialect),
                OutboxMessage.status == OutboxStatus.pending,
            )
            .values(
                status=OutboxStatus.sending,
                claimed_at=now,
                lease_until=now + lease,
                updated_at=now,
            )
            .returning(
                OutboxMessage.id,
                OutboxMessage.organization_id,
                OutboxMessage.channel,
                OutboxMessage.purpose,
                OutboxMessage.to_phone,
                OutboxMessage.body,
                OutboxMessage.tries,
                OutboxMessage.give_up_at,
                OutboxMessage.address,
            )
            .execution_options(synchronize_session=False)
        ).all()
        # RETURNING comes back in no particular order; the longest waiting go first.
        position = {row_id: index for index, row_id in enumerate(ids)}
        claimed = sorted(
            (Claimed(*row, lease_deadline=deadline) for row in rows),
            key=lambda item: position[item.id],
        )
        dropped = _screen(session, claimed, now)
        claimed = [item for item in claimed if item.id not in dropped]
        if channel == OutboxChannel.sms:
            claimed = _defer_capped(session, claimed, settings, now)
        _choose_senders(session, claimed, settings, senders or SenderBook(ttl=0.0))
    return claimed, len(rows)


def _choose_senders(
    session: Session, claimed: list[Claimed], settings: Settings, book: SenderBook
) -> None:
    """Each message goes from its organization's own sender when it has one, so that the
    answer comes back to the number that belongs to its organization."""
    if not claimed:
        return
    known = book.senders(session, {item.organization_id for item in claimed})
    if not any(known.values()):
        return
    default = Sender(settings.twilio_from_number, settings.twilio_messaging_service_sid)
    for item in claimed:
        item.sender = book.sender_for(known, item.organization_id, item.channel, default)


def _screen(session: Session, claimed: list[Claimed], now: datetime) -> set[uuid.UUID]:
    """Rows not to send now: check-in messages whose step is over or that hit quiet hours,
    and alert calls whose alert was answered, declined, expired or withdrawn meanwhile."""
    dropped: set[uuid.UUID] = set()
    checkins = [item.id for item in claimed if item.purpose == OutboxPurpose.checkin]
    if checkins:
        dropped |= outbox_hooks().screen_checkin_messages(session, checkins, now)
        if dropped:
            log.info("%d check-in messages not sent now (step over, or quiet hours)", len(dropped))
    calls = [item.id for item in claimed if item.purpose == OutboxPurpose.alert_call]
    if calls:
        alert = OutboxMessage.metadata.tables["alert"]  # escalations' table, by name
        dropped |= set(
            session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(calls),  # type: ignore[attr-defined]
                    exists().where(alert.c.id == OutboxMessage.alert_id, alert.c.state != "sent"),
                )
                .values(status=OutboxStatus.cancelled, final_at=now, lease_until=None)
                .returning(OutboxMessage.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
    return dropped


def _defer_capped(
    session: Session, claimed: list[Claimed], settings: Settings, now: datetime
) -> list[Claimed]:
    """Messages to a number over its hourly cap wait; they are never dropped. SMS still in
    flight to the number (claimed by this or another dispatcher) count as sent.

    Two caps, neither counting the other's messages: chatter's (against floods and reply
    loops) and the much higher one of alerts and members' answers (``ALERT_PURPOSES``).
    An alert held anyway is told to ``held_hook``: the chain waits for it to be sent."""
    caps = {alerts: sms_cap(settings, alerts=alerts) for alerts in (False, True)}
    phones = {item.to_phone for item in claimed}
    counts = _sms_counts(session, phones, now)
    kinds = [(item.to_phone, is_alert_purpose(item.purpose)) for item in claimed]
    for key in kinds:  # these are "sending" too, and counted below, one at a time
        counts[key] -= 1
    allowed: list[Claimed] = []
    held: list[uuid.UUID] = []
    later = now + DEFER_FOR_CAP
    for item, key in zip(claimed, kinds, strict=True):
        alerts = key[1]
        if counts[key] >= caps[alerts]:
            what = "alert SMS" if alerts else "SMS"
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == item.id)  # type: ignore[arg-type]
                .values(
                    status=OutboxStatus.pending,
                    lease_until=None,
                    next_try_at=later,
                    give_up_at=later + DEFAULT_DEADLINE,
                    last_error=f"deferred: over {caps[alerts]} {what} per hour to this number",
                    updated_at=now,
                )
            )
            log.warning("deferred an %s to %s: per-recipient cap", what, mask_phone(item.to_phone))
            if alerts:
                held.append(item.id)
            continue
        counts[key] += 1
        allowed.append(item)
    if held:
        held_hook()(session, held, later, caps[True], now)
    return allowed


def _sms_counts(session: Session, phones: set[str], now: datetime) -> Counter[tuple[str, bool]]:
    """Per number and cap (``(number, alerts)``): SMS sent in the last hour plus SMS
    "sending" now (by any dispatcher), in one query per 500 numbers (a claim's fixed cost
    is mostly its round trips)."""
    sent = OutboxMessage.sent_at >= now - timedelta(hours=1)  # type: ignore[operator]
    sending = OutboxMessage.status == OutboxStatus.sending
    counts: Counter[tuple[str, bool]] = Counter()
    ordered = sorted(phones)
    dialect = session.get_bind().dialect.name
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for phone, purpose, recent, in_flight in session.execute(
            select(
                OutboxMessage.to_phone,
                OutboxMessage.purpose,
                func.sum(case((sent, 1), else_=0)),
                func.sum(case((sending, 1), else_=0)),
            )
            .where(
                among(OutboxMessage.to_phone, chunk, dialect),
                OutboxMessage.channel == OutboxChannel.sms,
                or_(sent, sending),
            )
            .group_by(OutboxMessage.to_phone, OutboxMessage.purpose)
        ):
            counts[phone, is_alert_purpose(purpose)] += int(recent or 0) + int(in_flight or 0)
    return counts


def renew_leases(engine: Engine, ids: list[uuid.UUID], now: datetime, lease: timedelta) -> int:
    """Extend the leases of rows this dispatcher still has in flight."""
    if not ids:
        return 0
    with Session(engine) as session, session.begin():
        return session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),  # type: ignore[attr-defined]
                OutboxMessage.status == OutboxStatus.sending,
                OutboxMessage.lease_until.is_not(None),  # type: ignore[union-attr]
            )
            .values(lease_until=now + lease)
            .execution_options(synchronize_session=False)
        ).rowcount


# --- Sending --------------------------------------------------------------------------------------


async def send_one(provider: TelephonyProvider, settings: Settings, claimed: Claimed) -> Result:
    """One request to the provider, its failure classified, never raised."""
    if time.monotonic() > claimed.lease_deadline:
        return Result(claimed, not_sent=True)
    started = time.perf_counter()
    try:
        app = channels_for(settings, provider).get(claimed.channel)
        if app is not None:
            result = await app.send_text(
                to=claimed.address or claimed.to_phone,
                body=claimed.body or "",
                status_callback=sms_status_callback_url(settings, attempt_id=claimed.id),
                opening=claimed.purpose == OutboxPurpose.checkin,
                key=str(claimed.id),
            )
        elif claimed.channel == OutboxChannel.sms:
            result = await provider.send_sms(
                to=claimed.to_phone,
                body=claimed.body or "",
                status_callback=sms_status_callback_url(settings, attempt_id=claimed.id),
                sender=claimed.sender,
            )
        else:
            result = await provider.place_call(
                to=claimed.to_phone,
                twiml_url=call_twiml_url(settings, attempt_id=claimed.id),
                status_callback=call_status_callback_url(settings, attempt_id=claimed.id),
                sender=claimed.sender,
            )
    except (TransientSendError, PermanentSendError) as error:
        return Result(claimed, error=error)
    except Exception as exc:
        log.exception("unexpected error sending %s", claimed.id)
        return Result(claimed, error=TransientSendError(repr(exc), ambiguous=True))
    finally:
        observe_dispatch(claimed.channel, time.perf_counter() - started)
    return Result(claimed, sid=result.sid, status=result.status)


# --- Recording ------------------------------------------------------------------------------------


def record_results(engine: Engine, results: list[Result], now: datetime) -> None:
    """Write what happened, in one transaction. Only rows still "sending" change, so a
    status callback that arrived first (it carries our row id) is never overwritten."""
    if not results:
        return
    hook = failure_hook()
    with Session(engine) as session, session.begin():
        _record_sent(session, [r for r in results if r.sid], now)
        retries: list[dict[str, Any]] = []
        uncertain: list[tuple[uuid.UUID, uuid.UUID, str]] = []
        for result in results:
            if result.sid:
                continue
            claimed = result.claimed
            if result.not_sent:
                retries.append(_retry_values(claimed, now, tries=claimed.tries, error=None))
                continue
            error = result.error
            log.warning(
                "send of %s to %s failed: %s",
                claimed.channel,
                mask_phone(claimed.to_phone),
                error,
                extra={"event": "outbox.failed"},
            )
            values: dict[str, Any] = {"updated_at": now, "tries": claimed.tries + 1}
            if isinstance(error, TransientSendError) and error.ambiguous:
                # It may have reached Twilio: reconciled with Twilio's record, never guessed.
                values.update(mark_uncertain_values(now), last_error=str(error)[:500])
                if _update_sending(session, claimed.id, values):
                    uncertain.append((claimed.id, claimed.organization_id, claimed.channel))
                continue
            if isinstance(error, TransientSendError):
                retry_at = now + timedelta(
                    seconds=backoff_delay(claimed.tries + 1, error.retry_after)
                )
                if retry_at <= aware(claimed.give_up_at):  # type: ignore[operator]
                    retries.append(_retry_values(claimed, now, claimed.tries + 1, error, retry_at))
                    continue
                values.update(
                    status=OutboxStatus.failed,
                    final_at=now,
                    lease_until=None,
                    last_error=f"gave up: {error}"[:500],
                )
            else:
                assert isinstance(error, PermanentSendError)
                values.update(
                    status=OutboxStatus.failed,
                    final_at=now,
                    lease_until=None,
                    last_error_code=error.code,
                    last_error=str(error)[:500],
                )
            if _update_sending(session, claimed.id, values):
                message = session.get(OutboxMessage, claimed.id)
                assert message is not None
                hook(session, message, now)
        _record_retries(session, retries)
        audit_uncertain(session, uncertain, "no answer after the request was sent")


def _retry_values(
    claimed: Claimed,
    now: datetime,
    tries: int,
    error: TransientSendError | None,
    retry_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "row_id": claimed.id,
        "new_tries": tries,
        "retry_at": retry_at or now,
        "error": str(error)[:500] if error else "not sent: the dispatcher's lease ran out",
        "now": now,
    }


def _record_retries(session: Session, retries: list[dict[str, Any]]) -> None:
    """Back to "pending" with their backoff, in one executemany."""
    if not retries:
        return
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    session.execute(
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.status == OutboxStatus.sending.value)
        .values(
            status=OutboxStatus.pending.value,
            tries=bindparam("new_tries"),
            next_try_at=bindparam("retry_at"),
            last_error=bindparam("error"),
            lease_until=None,
            updated_at=bindparam("now"),
        ),
        retries,
    )


def _update_sending(session: Session, row_id: uuid.UUID, values: dict[str, Any]) -> bool:
    return bool(
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == OutboxStatus.sending)  # type: ignore[arg-type]
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _record_sent(session: Session, sent: list[Result], now: datetime) -> None:
    """Store the SIDs of accepted sends in one executemany.

    Only rows still "sending" change, so a status callback that arrived first (it carries
    our row id) keeps its status; the SID is stored either way."""
    if not sent:
        return
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
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
            lease_until=None,
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
    for result in sent:
        log.info(
            "sent %s to %s",
            result.claimed.channel,
            mask_phone(result.claimed.to_phone),
            extra={"event": "outbox.sent", "sid": result.sid},
        )


# --- The dispatcher -------------------------------------------------------------------------------


@dataclass
class Dispatcher:
    """Claims, sends and records, on one event loop, with bounded concurrency.

    ``run`` keeps going until stopped (the scheduler's dispatcher); ``drain`` sends what is
    due at ``now_fn()`` and returns (tests and simulated clock ticks).
    """

    engine: Engine
    provider: TelephonyProvider
    settings: Settings
    now_fn: Callable[[], datetime]
    concurrency: int = 200
    limiters: dict[str, RateLimiter] = field(default_factory=dict)
    lease: timedelta = LEASE
    # The organizations' own senders, looked up at most every few seconds.
    senders: SenderBook = field(default_factory=SenderBook)
    sent: int = 0
    # Claimed and not yet recorded (their leases are renewed).
    _in_flight: dict[uuid.UUID, Claimed] = field(default_factory=dict)
    # Claimed and not yet answered: waiting for a slot or the rate limiter, or at Twilio.
    _requests: int = 0
    _results: list[Result] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Claimed rows not yet past the rate limiter, and rows being claimed now, per channel.
    _waiting: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0))
    _reserved: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0))
    # Set whenever a channel's claim loop may have something to do.
    _wake: dict[str, asyncio.Event] = field(
        default_factory=lambda: {channel: asyncio.Event() for channel in CHANNELS}
    )
    _answered: asyncio.Event = field(default_factory=asyncio.Event)
    _record_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _slots: asyncio.Semaphore = field(init=False)
    _ahead: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.limiters:
            self.limiters = make_limiters(self.settings)
        # At most ``concurrency`` requests at Twilio at once, whatever is claimed.
        self._slots = asyncio.Semaphore(self.concurrency)
        self._ahead = max(1, int(self.concurrency * CLAIM_AHEAD_SHARE))

    @property
    def in_flight(self) -> int:
        """Requests claimed and not yet answered."""
        return self._requests

    async def claim(self, channel: str, limit: int, *, reserved: int = 0) -> int:
        """Claim in a worker thread, and start a send task for each row to send. Returns
        how many rows were claimed (0: nothing is due). Never more than the concurrency
        plus the rows allowed ahead are claimed and unanswered at once. ``reserved``: rows
        the caller already counted in ``_reserved`` for this claim before starting it."""
        reserving = sum(self._reserved.values()) - reserved
        free = self.concurrency + self._ahead - self._requests - reserving
        limit = min(limit, free, CLAIM_MAX)
        if limit <= 0:
            self._reserved[channel] -= reserved
            return 0
        self._reserved[channel] += limit - reserved
        try:
            claimed, examined = await asyncio.to_thread(
                claim_due,
                self.engine,
                now=self.now_fn(),
                channel=channel,
                limit=limit,
                settings=self.settings,
                lease=self.lease,
                senders=self.senders,
            )
        finally:
            self._reserved[channel] -= limit
            self._wake[channel].set()
        for item in claimed:
            self._in_flight[item.id] = item
            self._requests += 1
            self._waiting[channel] += 1
            task = asyncio.create_task(self._send(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.sent += len(claimed)
        return examined

    async def _send(self, claimed: Claimed) -> None:
        channel = claimed.channel
        try:
            # A slot first, then the limiter: the limiter's record of when sends start
            # stays true, so the rate cap holds however long a slot takes to free.
            async with self._slots:
                try:
                    await self.limiters[channel].wait()
                finally:
                    self._waiting[channel] -= 1
                    self._wake[channel].set()
                result = await send_one(self.provider, self.settings, claimed)
        finally:
            self._requests -= 1
            for event in self._wake.values():
                event.set()
        self._results.append(result)
        self._answered.set()

    async def flush(self) -> None:
        """Record every answer received so far (one transaction, in a worker thread)."""
        async with self._record_lock:
            results, self._results = self._results, []
            if not results:
                return
            try:
                await asyncio.to_thread(record_results, self.engine, results, self.now_fn())
            except Exception:
                # Not recorded: the rows stay "sending", their leases run out and they are
                # reconciled with Twilio. Never retried here, which could send twice.
                log.exception("could not record %d send results", len(results))
            for result in results:
                self._in_flight.pop(result.claimed.id, None)

    async def drain(self, max_rows: int | None = None) -> int:
        """Send everything due now (up to ``max_rows``), wait for the answers, record them."""
        examined_total = 0
        before = self.sent
        while max_rows is None or examined_total < max_rows:
            examined = 0
            for channel in CHANNELS:
                room = self.concurrency if max_rows is None else max_rows - examined_total
                examined += await self.claim(channel, room - examined)
            if not examined:
                break
            examined_total += examined
            await self.settle()
        return self.sent - before

    async def settle(self) -> None:
        """Wait for every send started so far, and record the answers."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        await self.flush()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: claim just in time, record as answers come, renew leases
        and reconcile uncertain rows. On stop, the requests in flight are waited for."""
        workers = [
            asyncio.create_task(self._claim_loop(channel), name=f"claim-{channel}")
            for channel in CHANNELS
        ]
        workers.append(asyncio.create_task(self._record_loop(), name="record"))
        workers.append(asyncio.create_task(self._lease_loop(), name="leases"))
        workers.append(asyncio.create_task(self._reconcile_loop(), name="reconcile"))
        try:
            await stop.wait()
        finally:
            for worker in workers[:2]:
                worker.cancel()
            await asyncio.gather(*workers[:2], return_exceptions=True)
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=60)
            await self.flush()
            for worker in workers[2:]:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _claim_wanted(self, channel: str) -> int:
        """How many rows of ``channel`` to claim now (0: not yet). The rows claimed and not
        yet past the limiter are kept between a refill mark and what the rate cap lets go
        within ``CLAIM_HORIZON_SECONDS`` (at most the rows allowed ahead of the slots)."""
        queue = max(1, min(self._ahead, self.limiters[channel].within(CLAIM_HORIZON_SECONDS)))
        wanted = queue - self._waiting[channel] - self._reserved[channel]
        return wanted if wanted >= max(1, math.floor(queue * CLAIM_REFILL_SHARE)) else 0

    async def _claim_loop(self, channel: str) -> None:
        """Keep a few rows claimed ahead of the free slots, in small overlapping claims,
        so a slot that frees finds its next row in memory instead of waiting for a
        transaction; poll every ``IDLE_POLL_SECONDS`` while nothing is due."""
        at_once = CLAIMS_AT_ONCE if self.engine.dialect.name == "postgresql" else 1
        claims: set[asyncio.Task[int]] = set()
        idle_until = 0.0
        wake = self._wake[channel]
        try:
            while True:
                wake.clear()
                for done in [task for task in claims if task.done()]:
                    claims.discard(done)
                    if done.cancelled() or done.exception() is not None:
                        if done.exception() is not None:
                            log.error(
                                "claiming %s messages failed; trying again",
                                channel,
                                exc_info=done.exception(),
                            )
                        idle_until = time.monotonic() + 1.0
                    elif not done.result():
                        idle_until = time.monotonic() + IDLE_POLL_SECONDS
                pause = idle_until - time.monotonic()
                if pause > 0 and not claims:
                    await asyncio.sleep(pause)
                    continue
                wanted = self._claim_wanted(channel) if pause <= 0 else 0
                if wanted and len(claims) < at_once:
                    # Reserved now, not when the task first runs: the next pass sees it.
                    self._reserved[channel] += wanted
                    claims.add(asyncio.create_task(self.claim(channel, wanted, reserved=wanted)))
                    continue
                await wake.wait()
        finally:
            # A claim under way ends (it is one short transaction) and its rows are sent:
            # cancelled, it would leave them "sending" until their lease ran out.
            if claims:
                await asyncio.gather(*claims, return_exceptions=True)

    async def _record_loop(self) -> None:
        while True:
            await self._answered.wait()
            self._answered.clear()
            if len(self._results) < RECORD_MAX:
                await asyncio.sleep(RECORD_WINDOW_SECONDS)
            await self.flush()

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            mine = list(self._in_flight.values())
            if not mine:
                continue
            started = time.monotonic()
            try:
                await asyncio.to_thread(
                    renew_leases, self.engine, [c.id for c in mine], self.now_fn(), self.lease
                )
            except Exception:
                log.exception("could not renew dispatch leases")
                continue
            deadline = started + self.lease.total_seconds() - LEASE_SAFETY_SECONDS
            for claimed in mine:
                claimed.lease_deadline = max(claimed.lease_deadline, deadline)

    async def _reconcile_loop(self) -> None:
        from service.telephony.reconcile import reconcile_pass

        while True:
            await asyncio.sleep(RECONCILE_EVERY_SECONDS)
            try:
                await reconcile_pass(
                    engine=self.engine,
                    provider=self.provider,
                    settings=self.settings,
                    now=self.now_fn(),
                )
            except Exception:
                log.exception("reconciling uncertain sends failed; trying again")


async def dispatch_once(
    *,
    engine: Engine,
    provider: TelephonyProvider,
    settings: Settings,
    now: datetime,
    batch: int = 500,
    concurrency: int | None = None,
    limiters: dict[str, RateLimiter] | None = None,
) -> int:
    """Send up to ``batch`` rows due at ``now`` and record the results. Returns how many
    were sent (claimed and not screened out or deferred)."""
    dispatcher = Dispatcher(
        engine=engine,
        provider=provider,
        settings=settings,
        now_fn=lambda: now,
        concurrency=concurrency or settings.dispatch_concurrency,
        limiters=limiters or {},
    )
    return await dispatcher.drain(max_rows=batch)


async def dispatch_until_empty(
    *,
    engine: Engine,
    provider: TelephonyProvider,
    settings: Settings,
    now_fn: Callable[[], datetime],
    batch: int = 500,
    concurrency: int | None = None,
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

"""The multi-step workflows the scheduler runs. Each takes an engine and a time, opens its own
sessions, and on error logs and rolls back that unit of work without losing the rest."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.checkins import events
from service.checkins import service as checkins
from service.checkins.models import CheckIn, CheckInState, Round, RoundKind
from service.escalations import service as escalations
from service.escalations.models import Escalation, EscalationState
from service.escalations.partner_release import release_ended_partnerships
from service.telephony.models import InboundMessage

log = logging.getLogger(__name__)
SWEEP_BATCH = 500
REPLY_BATCH = 200


def process_replies(
    engine: Engine,
    now_fn: Callable[[], datetime],
    batch: int = REPLY_BATCH,
    max_batches: int = 1000,
) -> int:
    """Act on the residents' replies the SMS webhook stored and answered, oldest first.

    A batch is one transaction. A batch that fails is retried one reply at a time; a reply
    that still fails is flagged for staff and stays unprocessed, so a later run tries it
    again (after a rest that grows with each failure, see ``_FailingReplies``) and the
    watchdog reports it: it is never dropped.
    """
    done = 0
    # Not tried again in this run, so they hold up no other; nor, for a while, in the next
    # runs (four a second), so one reply that keeps failing does not fill the log.
    failed: set[uuid.UUID] = _failing.resting(now_fn())
    for _ in range(max_batches):
        now = now_fn()
        with Session(engine) as session:
            ids = events.unprocessed_reply_ids(session, batch, skip=failed)
            if not ids:
                break
            try:
                done += events.process_reply_batch(session, ids, now)
                session.commit()
                _failing.succeeded(*ids)
                continue
            except Exception:
                session.rollback()
                log.exception("reply batch failed; retrying one by one")
        for inbound_id in ids:
            try:
                with Session(engine) as session:
                    done += events.process_reply(session, inbound_id, now)
                    session.commit()
                _failing.succeeded(inbound_id)
            except Exception:
                wait = _failing.failed(inbound_id, now)
                log.exception(
                    "could not act on reply %s; flagged for staff, retried in %d s",
                    inbound_id,
                    wait.total_seconds(),
                )
                failed.add(inbound_id)
                _flag_reply(engine, inbound_id)
    return done


class _FailingReplies:
    """Replies that failed in this process, each resting before its next try: 1 s after
    the first failure, doubling to at most 15 s (a call for help that failed on a passing
    fault is not held back long). It only spaces the tries: the reply is flagged for staff
    and stays unprocessed in the database, where the watchdog counts it, and a restarted
    process tries it at once."""

    MAX_WAIT = timedelta(seconds=15)
    LIMIT = 10_000  # forgotten beyond this (each is then tried again at once)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[uuid.UUID, tuple[int, datetime]] = {}

    def failed(self, inbound_id: uuid.UUID, now: datetime) -> timedelta:
        with self._lock:
            failures = self._next.get(inbound_id, (0, now))[0] + 1
            wait = min(self.MAX_WAIT, timedelta(seconds=2 ** (failures - 1)))
            if len(self._next) >= self.LIMIT:
                self._next.clear()
            self._next[inbound_id] = (failures, now + wait)
            return wait

    def succeeded(self, *inbound_ids: uuid.UUID) -> None:
        with self._lock:
            if self._next:
                for inbound_id in inbound_ids:
                    self._next.pop(inbound_id, None)

    def resting(self, now: datetime) -> set[uuid.UUID]:
        with self._lock:
            return {key for key, (_, retry_at) in self._next.items() if retry_at > now}


_failing = _FailingReplies()


def _flag_reply(engine: Engine, inbound_id: uuid.UUID) -> None:
    try:
        with Session(engine) as session:
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id)
                .values(needs_staff=True)
            )
            session.commit()
    except Exception:
        log.exception("could not flag reply %s for staff", inbound_id)


def start_due_rounds(engine: Engine, now_fn: Callable[[], datetime]) -> list[uuid.UUID]:
    started: list[uuid.UUID] = []
    with Session(engine) as session:
        due = [s.id for s in checkins.due_schedules(session, now_fn())]
    for schedule_id in due:
        try:
            with Session(engine) as session:
                schedule = session.get(checkins.Schedule, schedule_id)
                if schedule is None:
                    continue
                round_ = checkins.start_due_schedule(session, schedule, now_fn())
                session.commit()
                if round_ is not None:
                    started.append(round_.id)
        except Exception:
            log.exception("could not start the round of schedule %s", schedule_id)
    continue_fan_outs(engine, now_fn)
    return started


def continue_fan_outs(engine: Engine, now_fn: Callable[[], datetime]) -> int:
    """Finish every round still fanning out: a crash mid-way resumes here, chunk by chunk."""
    with Session(engine) as session:
        pending = checkins.open_rounds_fanning_out(session)
    total = 0
    for round_id in pending:
        try:
            total += checkins.fan_out_round(lambda: Session(engine), round_id, now_fn)
        except Exception:
            log.exception("fan-out of round %s failed; it resumes on the next run", round_id)
    return total


def start_broadcast(
    engine: Engine,
    *,
    organization_id: uuid.UUID,
    started_by: str,
    now_fn: Callable[[], datetime],
    site_ids: list[uuid.UUID] | None = None,
    resident_ids: list[uuid.UUID] | None = None,
    override_quiet_hours: bool = False,
    plan: list[dict] | None = None,
    cause: str | None = None,
    kind: RoundKind = RoundKind.broadcast,
) -> uuid.UUID:
    """Start a round now and fan it out. If fan-out is interrupted, the scheduler finishes it."""
    with Session(engine) as session:
        round_ = checkins.start_round(
            session,
            organization_id=organization_id,
            kind=kind,
            started_by=started_by,
            now=now_fn(),
            site_ids=site_ids,
            resident_ids=resident_ids,
            override_quiet_hours=override_quiet_hours,
            plan=plan,
            cause=cause,
        )
        session.commit()
        round_id = round_.id
    checkins.fan_out_round(lambda: Session(engine), round_id, now_fn)
    return round_id


def sweep_checkins(
    engine: Engine,
    now_fn: Callable[[], datetime],
    batch: int = SWEEP_BATCH,
    max_batches: int = 1000,
) -> int:
    """Advance every check-in whose deadline has passed, oldest deadline first.

    A batch is one transaction (rows locked, stale ones skipped: see
    ``checkins.advance_checkins``). A batch that fails is retried one check-in at a time, so
    one bad row cannot hold up the others; a row that still fails stays due for the next run.
    """
    done = 0
    for _ in range(max_batches):
        now = now_fn()
        # The session ends with the batch: expiring its hundreds of objects at commit is waste.
        with Session(engine, expire_on_commit=False) as session:
            ids = checkins.due_checkin_ids(session, now, batch)
            if not ids:
                break
            try:
                moved = checkins.advance_checkins(session, ids, now)
                session.commit()
                done += moved
                if moved == 0:
                    break  # what is due is locked by another worker, or not ours to move
                continue
            except Exception:
                session.rollback()
                log.exception("check-in sweep batch failed; retrying one by one")
        moved = _one_by_one(engine, ids, lambda s, i, at=now: checkins.advance_checkin(s, i, at))
        done += moved
        if moved == 0:
            break  # every one of them failed again: the next run retries, the watchdog reports
    return done


def sweep_escalations(
    engine: Engine, now_fn: Callable[[], datetime], batch: int = SWEEP_BATCH, max_batches: int = 100
) -> int:
    done = _release_ended_partnerships(engine, now_fn())
    for _ in range(max_batches):
        now = now_fn()
        with Session(engine) as session:
            due = escalations.due_escalation_ids(session, now, batch)
            if not due:
                break
            try:
                moved = 0
                for escalation_id, version in due:
                    moved += escalations.advance_escalation(session, escalation_id, version, now)
                session.commit()
                done += len(due)
                if moved == 0:
                    break
                continue
            except Exception:
                session.rollback()
                log.exception("escalation sweep batch failed; retrying one by one")
        for escalation_id, version in due:
            try:
                with Session(engine) as session:
                    escalations.advance_escalation(session, escalation_id, version, now)
                    session.commit()
                    done += 1
            except Exception:
                log.exception("escalation %s could not advance; it stays due", escalation_id)
    return done


def _release_ended_partnerships(engine: Engine, now: datetime) -> int:
    """A partner's interpreter whose partnership ended lets go of the other organization's
    cases (``escalations.partner_release``) before the due steps are taken."""
    try:
        with Session(engine) as session:
            released = release_ended_partnerships(session, now)
            session.commit()
            return released
    except Exception:
        log.exception("cases of ended partnerships could not be released; the next sweep retries")
        return 0


def _one_by_one(
    engine: Engine, ids: list[uuid.UUID], step: Callable[[Session, uuid.UUID], bool]
) -> int:
    """Each item in its own transaction; how many moved (one that changed meanwhile, and
    so was left as it is, does not count)."""
    done = 0
    for item in ids:
        try:
            with Session(engine) as session:
                moved = step(session, item)
                session.commit()
                done += moved
        except Exception:
            # It stays due, so the next sweep tries again; the watchdog reports it.
            log.exception("could not advance %s; it stays due", item)
    return done


def overdue_counts(engine: Engine, now: datetime, grace_seconds: int = 120) -> dict[str, int]:
    """For the watchdog and /metrics: how much is past its deadline and not yet processed."""
    from datetime import timedelta

    cutoff = now - timedelta(seconds=grace_seconds)

    def count(model: type, *where: Any) -> int:
        """Counted in the database: after a large round's deadline, the late check-ins are
        hundreds of thousands of rows, not to be loaded each watchdog run to be counted."""
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()

    with Session(engine) as session:
        return {
            "checkins": count(
                CheckIn, CheckIn.state == CheckInState.waiting, CheckIn.next_action_at < cutoff
            ),
            "escalations": count(
                Escalation,
                Escalation.state.in_([EscalationState.alerting, EscalationState.acknowledged]),  # type: ignore[attr-defined]
                Escalation.next_action_at < cutoff,
            ),
            "rounds_fanning_out": count(Round, Round.status == "fanning_out"),
            "replies": count(
                InboundMessage,
                InboundMessage.processed_at.is_(None),  # type: ignore[union-attr]
                InboundMessage.received_at < cutoff,
            ),
        }

"""The check-in sweep: the next attempt of each due check-in, or an escalation when its
plan has run out."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    DateTime,
    Integer,
    Uuid,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from service.audit.service import Actor, record
from service.checkins import policy
from service.checkins.attempts import _attempt_rows, dead_numbers_of, reachable_by
from service.checkins.bulk import insert_rows
from service.checkins.models import (
    Attempt,
    CheckIn,
    CheckInState,
    Round,
)
from service.common import aware
from service.escalations import service as escalations
from service.registry.models import (
    Organization,
    Resident,
)
from service.telephony.models import (
    InboundMessage,
    OutboxMessage,
)

SCHEDULER = Actor(label="scheduler")

log = logging.getLogger(__name__)

# --- The check-in sweep -------------------------------------------------------------------------


# How long a due check-in waits for its resident's stored, not yet acted-on reply before the
# sweep moves it on regardless (a reply that cannot be acted on must not stop the plan).
REPLY_HOLD = timedelta(minutes=5)


def _due(now: datetime) -> tuple[Any, ...]:
    """Conditions of a check-in whose next step is due (see ``due_checkin_ids``)."""
    pending_reply = exists().where(
        InboundMessage.resident_id == CheckIn.resident_id,
        InboundMessage.processed_at.is_(None),  # type: ignore[union-attr]
        InboundMessage.received_at > now - REPLY_HOLD,
    )
    return (
        CheckIn.state == CheckInState.waiting,
        CheckIn.next_action_at <= now,  # type: ignore[operator]
        ~pending_reply,
    )


def due_checkin_ids(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """Due check-ins, oldest deadline first. One whose resident has a reply stored in the
    past few minutes and not yet acted on is left for the next sweep: that reply (a "1"
    that came in time, say) is being acted on, perhaps by another worker holding its row,
    and it is not a silence."""
    return list(
        session.execute(
            select(CheckIn.id).where(*_due(now)).order_by(CheckIn.next_action_at).limit(limit)
        ).scalars()
    )


def advance_checkin(session: Session, checkin_id: uuid.UUID, now: datetime) -> bool:
    """Take the next step of one due check-in under its row lock: the next attempt, or,
    when the plan is exhausted, escalation."""
    return advance_checkins(session, [checkin_id], now) == 1


def advance_checkins(session: Session, checkin_ids: list[uuid.UUID], now: datetime) -> int:
    """Take the next step of each due check-in in ``checkin_ids``, in deadline order, in the
    caller's transaction. Returns how many moved.

    A check-in moves only while it is still waiting and due, checked under its row lock: a
    duplicated or late sweep is a no-op, and a reply acted on meanwhile is never written
    over. On PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED`` (a row another worker
    holds is left to it). SQLite has no row locks and takes its write lock only at a
    transaction's first write, so the next steps are worked out first and then claimed by
    a guarded ``UPDATE``, the first write: a check-in that changed after it was read (a
    "1" that closed it, another sweep that moved it) is dropped, and nothing of it applied.

    The work is done per batch, not per row: one query reads the check-ins, one their
    residents, and the new attempts and outbox rows go in with one insert each.
    """
    if not checkin_ids:
        return 0
    sqlite = session.get_bind().dialect.name == "sqlite"
    # Still due, as ``due_checkin_ids`` found it: a reply stored since is left to be acted on.
    still_due = (CheckIn.id.in_(checkin_ids), *_due(now))  # type: ignore[attr-defined]
    query = select(CheckIn).where(*still_due).execution_options(populate_existing=True)
    if not sqlite:
        query = query.with_for_update(skip_locked=True)
    locked = [
        checkin
        for checkin in session.execute(query).scalars()
        if checkin.state == CheckInState.waiting
        and (due := aware(checkin.next_action_at)) is not None
        and due <= now
    ]
    if not locked:
        return 0
    locked.sort(key=lambda c: (aware(c.next_action_at), str(c.id)))
    steps = _next_steps(session, locked, now)
    if sqlite:
        claimed = set(
            session.execute(
                update(CheckIn)
                .where(*still_due)
                .values(updated_at=now)
                .returning(CheckIn.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
        for step in steps:
            if step.checkin.id not in claimed:
                session.expire(step.checkin)  # changed since it was read: not ours to move
        steps = [step for step in steps if step.checkin.id in claimed]
    attempts: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    moves: list[tuple[CheckIn, int, datetime | None]] = []
    exhausted: list[tuple[CheckIn, Resident, Round]] = []
    for step in steps:
        checkin = step.checkin
        if step.late_seconds is not None:
            record(
                session=session,
                organization_id=checkin.organization_id,
                actor=SCHEDULER,
                action="late",
                entity_type="checkin",
                entity_id=checkin.id,
                detail={"late_seconds": step.late_seconds},
            )
        if step.escalate:
            exhausted.append((checkin, step.resident, step.round_))
            continue
        if step.attempt is not None:
            attempts.append(step.attempt)
            outbox.append(step.message)
        moves.append(
            (
                checkin,
                step.step_index if step.attempt is not None else checkin.step_index,
                step.next_action_at,
            )
        )
    insert_rows(session, Attempt.__table__, attempts)  # type: ignore[attr-defined]
    insert_rows(session, OutboxMessage.__table__, outbox)  # type: ignore[attr-defined]
    _record_moves(session, moves, now, sqlite)
    if exhausted:
        _escalate_exhausted_plans(session, exhausted, now)
    return len(steps)


def _record_moves(
    session: Session, moves: list[tuple[CheckIn, int, datetime | None]], now: datetime, sqlite: bool
) -> None:
    """Write the batch's new step and deadline of each check-in in one statement (the unit
    of work would send one UPDATE per row), and give the loaded check-ins the same values
    as their committed state, so nothing is left for it to flush."""
    if not moves:
        return
    table = CheckIn.__table__  # type: ignore[attr-defined]
    if sqlite:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                step_index=bindparam("b_step"), next_action_at=bindparam("b_next"), updated_at=now
            ),
            [{"b_id": c.id, "b_step": s, "b_next": n} for c, s, n in moves],
        )
    else:
        values = (
            select(
                func.unnest(bindparam("ids", type_=ARRAY(Uuid()))).label("id"),
                func.unnest(bindparam("steps", type_=ARRAY(Integer()))).label("step"),
                func.unnest(bindparam("nexts", type_=ARRAY(DateTime(timezone=True)))).label("next"),
            )
        ).subquery()
        session.execute(
            update(table)
            .where(table.c.id == values.c.id)
            .values(step_index=values.c.step, next_action_at=values.c.next, updated_at=now),
            {
                "ids": [c.id for c, _s, _n in moves],
                "steps": [s for _c, s, _n in moves],
                "nexts": [n for _c, _s, n in moves],
            },
        )
    for checkin, step_index, next_action_at in moves:
        set_committed_value(checkin, "step_index", step_index)
        set_committed_value(checkin, "next_action_at", next_action_at)
        set_committed_value(checkin, "updated_at", now)


@dataclass(slots=True)
class _NextStep:
    """What the sweep will do with one due check-in, worked out before anything is written:
    escalate it, defer it to the end of quiet hours, or send its next attempt."""

    checkin: CheckIn
    resident: Resident
    round_: Round
    late_seconds: int | None
    escalate: bool = False
    step_index: int = 0
    next_action_at: datetime | None = None
    attempt: dict[str, Any] | None = None
    message: dict[str, Any] | None = None


def _next_steps(session: Session, locked: list[CheckIn], now: datetime) -> list[_NextStep]:
    """Work out each due check-in's next step. Reads only: nothing is changed or added to
    the session, so on SQLite the claim that follows is the transaction's first write."""
    residents = {
        r.id: r
        for r in session.execute(
            select(Resident).where(Resident.id.in_({c.resident_id for c in locked}))  # type: ignore[attr-defined]
        ).scalars()
    }
    rounds = {
        r.id: r
        for r in session.execute(
            select(Round).where(Round.id.in_({c.round_id for c in locked}))  # type: ignore[attr-defined]
        ).scalars()
    }
    orgs = {
        o.id: o
        for o in session.execute(
            select(Organization).where(
                Organization.id.in_({c.organization_id for c in locked})  # type: ignore[attr-defined]
            )
        ).scalars()
    }
    # Numbers an SMS failed to for good are skipped (one indexed query; usually none).
    dead = dead_numbers_of(session, residents.values())
    failed_now = _current_attempt_failed(session, locked)
    steps: list[_NextStep] = []
    bodies: dict[tuple[str, str], str] = {}
    for checkin in locked:
        round_ = rounds[checkin.round_id]
        resident = residents[checkin.resident_id]
        org = orgs[checkin.organization_id]
        due = aware(checkin.next_action_at)
        assert due is not None
        plan = checkin.plan
        # How each step still to come can reach the resident (none: the step is skipped).
        reach = [None] * (checkin.step_index + 1) + [
            reachable_by(resident, later["channel"], dead)
            for later in plan[checkin.step_index + 1 :]
        ]
        # An app message's fallbacks only when it was not delivered, never for silence.
        reach = policy.fallback_reach(plan, checkin.step_index, reach, checkin.id in failed_now)
        quiet = (
            None
            if round_.override_quiet_hours
            else policy.QuietHours(org.timezone, round_.quiet_start, round_.quiet_end)
        )
        decision = policy.decide_due(plan, checkin.step_index, reach, due=due, now=now, quiet=quiet)
        step = _NextStep(
            checkin,
            resident,
            round_,
            decision.late_seconds,
            escalate=decision.next == policy.Next.ESCALATE,
            step_index=decision.step_index,
            next_action_at=decision.next_action_at,
        )
        steps.append(step)
        if decision.next != policy.Next.SEND:
            continue
        assert decision.step is not None
        if decision.by_call_instead:
            log.info("check-in %s: SMS step by call (number failed for good)", checkin.id)
        step.attempt, step.message = _attempt_rows(
            round_,
            org,
            resident,
            dict(decision.step),
            decision.step_index,
            checkin.id,
            now,
            now,
            bodies,
            decision.phone,
        )
    return steps


def _current_attempt_failed(session: Session, locked: list[CheckIn]) -> set[uuid.UUID]:
    """The check-ins, among those with a fallback step still ahead, whose current step's
    attempt failed for good (one query, and none for plans without fallbacks)."""
    ahead = [
        c
        for c in locked
        if any(step.get(policy.FALLBACK) for step in (c.plan or [])[c.step_index + 1 :])
    ]
    if not ahead:
        return set()
    current = {c.id: c.step_index for c in ahead}
    return {
        checkin_id
        for checkin_id, step_index, status in session.execute(
            select(Attempt.checkin_id, Attempt.step_index, Attempt.status).where(
                Attempt.checkin_id.in_(list(current))  # type: ignore[attr-defined]
            )
        )
        if step_index == current[checkin_id] and status in policy.UNDELIVERED
    }


def _escalate_exhausted_plans(
    session: Session, exhausted: list[tuple[CheckIn, Resident, Round]], now: datetime
) -> None:
    """No answer after the whole plan: no reply, or unreachable when every attempt failed."""
    ids = [checkin.id for checkin, _resident, _round in exhausted]
    statuses: dict[uuid.UUID, list[str]] = {}
    for checkin_id, status in session.execute(
        select(Attempt.checkin_id, Attempt.status).where(Attempt.checkin_id.in_(ids))  # type: ignore[attr-defined]
    ):
        statuses.setdefault(checkin_id, []).append(status)
    last_contact = escalations.last_contacts(session, [r.id for _c, r, _r in exhausted])
    for checkin, resident, round_ in exhausted:
        outcome = policy.plan_exhausted(statuses.get(checkin.id, []))
        checkin.state = outcome.state
        checkin.next_action_at = None
        checkin.closed_at = now
        checkin.updated_at = now
        escalation = escalations.open_escalation(
            session,
            resident=resident,
            reason=outcome.reason,
            now=now,
            checkin_id=checkin.id,
            cause=round_.cause,
            last_contact=last_contact.get(resident.id),
        )
        checkin.escalation_id = escalation.id
        session.add(checkin)

"""Rounds and their fan-out: a check-in, a first attempt and its message for each resident."""

from __future__ import annotations

import logging
import uuid
from collections import namedtuple
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlmodel import Session

from service.audit.service import Actor, record
from service.checkins.attempts import (
    _attempt_rows,
    dead_numbers_of,
    eligible,
    reachable_by,
)
from service.checkins.bulk import insert_rows
from service.checkins.models import (
    DEFAULT_PLAN,
    Attempt,
    AttemptStatus,
    CheckIn,
    CheckInState,
    Round,
    RoundKind,
    RoundStatus,
    Schedule,
    TargetKind,
)
from service.checkins.policy import in_quiet_hours, quiet_hours_end, resident_plan
from service.checkins.sweep import _due, advance_checkins
from service.escalations import service as escalations
from service.escalations.models import EscalationReason
from service.ids import uuid7
from service.registry.channels import app_chain
from service.registry.models import (
    Organization,
    Resident,
)
from service.telephony.models import (
    OutboxMessage,
    OutboxStatus,
)

# Residents per fan-out transaction. Larger chunks mean fewer commits (and, on SQLite, fewer
# WAL checkpoints): 5,000 starts a 100,000-resident round 15-20 % faster than 2,000, and a
# chunk still commits in well under a second (tests/bench/bench_rounds.py).
FANOUT_CHUNK = 5000

log = logging.getLogger(__name__)

# Plain values, read once per resident of a fan-out (an enum member is looked up through a
# descriptor on every use).
_WAITING = CheckInState.waiting.value
_VISIT_LIST = CheckInState.visit_list.value
# A check-in closed as it is made: away, taken over by a newer round, or on the visit list
# (with its own state).
_CLOSED = {"state": CheckInState.superseded.value, "plan": [], "next_action_at": None}

# --- Rounds ---------------------------------------------------------------------------------------


def start_round(
    session: Session,
    *,
    organization_id: uuid.UUID,
    kind: RoundKind,
    started_by: str,
    now: datetime,
    site_ids: list[uuid.UUID] | None = None,
    resident_ids: list[uuid.UUID] | None = None,
    override_quiet_hours: bool = False,
    plan: list[dict[str, Any]] | None = None,
    cause: str | None = None,
    schedule: Schedule | None = None,
    scheduled_for: datetime | None = None,
) -> Round:
    """Create the round. Fan-out follows, in chunks, by :func:`fan_out_round`."""
    if schedule is not None:
        target_kind = schedule.target_kind
        target_sites = list(schedule.target_site_ids)
        target_flag = schedule.target_flag
        target_residents = list(schedule.target_resident_ids)
        plan = plan or schedule.plan
        quiet = (schedule.quiet_start, schedule.quiet_end)
    else:
        target_sites = [str(s) for s in site_ids or []]
        target_residents = [str(r) for r in resident_ids or []]
        target_flag = None
        target_kind = (
            TargetKind.residents
            if target_residents
            else TargetKind.sites
            if target_sites
            else TargetKind.all
        )
        quiet = ("21:00", "08:00")
    round_ = Round(
        organization_id=organization_id,
        schedule_id=schedule.id if schedule else None,
        scheduled_for=scheduled_for,
        kind=kind,
        cause=cause,
        target_kind=target_kind,
        target_site_ids=target_sites,
        target_flag=target_flag,
        target_resident_ids=target_residents,
        plan=list(plan or DEFAULT_PLAN),
        override_quiet_hours=override_quiet_hours,
        quiet_start=quiet[0],
        quiet_end=quiet[1],
        started_by=started_by,
        started_at=now,
    )
    session.add(round_)
    session.flush()
    record(
        session=session,
        organization_id=organization_id,
        actor=Actor(label=started_by),
        action="start",
        entity_type="round",
        entity_id=round_.id,
        detail={
            "kind": kind.value,
            "sites": len(target_sites),
            "override_quiet_hours": override_quiet_hours,
            "cause": cause,
        },
    )
    return round_


def _ids(round_: Round, values: list[str]) -> list[uuid.UUID]:
    """The ids a round targets. Schedules are checked when saved; one saved before that
    check with something that is not an id must not stop its round for good (a fan-out
    that raises is retried every run), so that entry is left out, and logged."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            log.error("round %s: target %r is not an id; left out", round_.id, value)
    return ids


def _target_filter(round_: Round, sqlite: bool = False) -> Any:
    """The round's residents. On SQLite the organization's condition is marked as likely
    true (``likely()``, a planner hint): its planner, without statistics, would otherwise
    read the chunk's residents through an index on ``organization_id``, every one of the
    organization's residents each chunk and sorted by id, rather than walk the primary key
    from the chunk's cursor (110 ms against 23 ms a chunk of 5,000 out of 100,000)."""
    in_organization = Resident.organization_id == round_.organization_id
    conditions = [func.likely(in_organization) if sqlite else in_organization]
    if round_.target_kind == TargetKind.sites:
        conditions.append(Resident.site_id.in_(_ids(round_, round_.target_site_ids)))  # type: ignore[union-attr]
    elif round_.target_kind == TargetKind.residents:
        conditions.append(Resident.id.in_(_ids(round_, round_.target_resident_ids)))  # type: ignore[attr-defined]
    elif round_.target_kind == TargetKind.flag and round_.target_flag:
        conditions.append(getattr(Resident, round_.target_flag).is_(True))
    return and_(*conditions)


def fan_out_chunk(
    session: Session,
    round_: Round,
    now: datetime,
    limit: int = FANOUT_CHUNK,
    after: uuid.UUID | None = None,
) -> int:
    """Create check-ins, first attempts and outbox rows for the next residents of the round.

    One transaction per chunk (the caller commits). The unique key (round, resident) and the
    NOT EXISTS filter make a chunk that was interrupted by a crash simply run again.
    """
    return _fan_out_chunk(session, round_, now, limit, after)[0]


@lru_cache
def _row_type(fields: tuple[str, ...]) -> Any:
    """A named tuple type with the query's column names, made once."""
    return namedtuple("FanOutResident", fields)


def _fan_out_chunk(
    session: Session,
    round_: Round,
    now: datetime,
    limit: int,
    after: uuid.UUID | None,
) -> tuple[int, uuid.UUID | None]:
    """The chunk, and the last resident id it covered. ``after`` is a keyset cursor that only
    saves work: residents are taken in id order, so the NOT EXISTS filter (which alone makes
    a resumed fan-out correct) need not re-probe every earlier chunk's residents."""
    org = session.get(Organization, round_.organization_id)
    assert org is not None
    tz = org.timezone
    today = now.astimezone(ZoneInfo(tz)).date()
    columns = [
        Resident.id,
        Resident.name,
        Resident.language,
        Resident.phone,
        Resident.phone_kind,
        Resident.phone2,
        Resident.phone2_kind,
        Resident.preferred_channel,
        Resident.channels,
        Resident.line_user_id,
        Resident.status,
        Resident.away_until,
        # Only whether it is set matters here (``eligible``); a timestamp would be parsed
        # for each of a round's residents (on SQLite, from text) to answer that.
        case((Resident.consent_at.is_(None), None), else_=literal(1)).label("consent_at"),
    ]
    dialect = session.connection().dialect.name
    postgres, sqlite = dialect == "postgresql", dialect == "sqlite"
    if postgres:
        _lock_fan_out(session, round_)
    # The cursor, said again in the subquery (``resident_id = resident.id > after`` implies
    # it): PostgreSQL does not carry it in and, its statistics not yet counting the round's
    # new check-ins, merged the anti-join over every check-in of the round written so far,
    # a cost per chunk growing with the round. Bounded, it reads only those past the cursor.
    past = [] if after is None else [CheckIn.resident_id > after]
    already = exists().where(
        CheckIn.round_id == round_.id, CheckIn.resident_id == Resident.id, *past
    )
    # PostgreSQL: whether the resident has another round's check-in still waiting (superseded
    # below), asked per resident in the select, through the (resident_id, state) index. An
    # UPDATE over the chunk's 5,000 ids made PostgreSQL scan every waiting check-in, this
    # round's included, once per chunk. A scalar subquery with LIMIT 1, not EXISTS: an
    # EXISTS may be planned as one hashed scan of every waiting check-in instead of the
    # probes, which the planner, unaware of the round's new check-ins, did each chunk
    # (0.01 s the first chunk of 300,000, 0.18 s the last). SQLite does that UPDATE well
    # and takes it as is.
    waiting_elsewhere = (
        select(literal(1))
        .where(
            CheckIn.resident_id == Resident.id,
            CheckIn.state == CheckInState.waiting,
            CheckIn.round_id != round_.id,
        )
        .limit(1)
        .scalar_subquery()
        .is_not(None)
        .label("waiting_elsewhere")
    )
    columns.append(waiting_elsewhere if postgres else null().label("waiting_elsewhere"))
    query = select(*columns).where(_target_filter(round_, sqlite), ~already)
    if after is not None:
        query = query.where(Resident.id > after)
    # Through the connection, not the ORM: plain rows, no ORM loading machinery per row. Then
    # as named tuples: the loop below reads about fifteen fields of each resident, and a
    # named tuple's field is read ten times faster than a Row's.
    result = session.connection().execute(query.order_by(Resident.id).limit(limit))
    rows = list(map(_row_type(tuple(result.keys()))._make, result))
    if not rows:
        return 0, after
    # A newer round supersedes a resident's older open check-in, unless it is escalated;
    # never the other way round (see _taken_over). One whose whole plan has run out
    # unanswered is escalated first, as the sweep would have done.
    table = CheckIn.__table__  # type: ignore[attr-defined]
    newer = _newer_rounds(round_)
    _escalate_silent_before_superseding(session, round_, newer, {r.id for r in rows}, now)
    waiting_ids = [r.id for r in rows if r.waiting_elsewhere] if postgres else [r.id for r in rows]
    superseded = (
        []
        if not waiting_ids
        else list(
            session.execute(
                update(table)
                .where(
                    table.c.resident_id.in_(waiting_ids),
                    table.c.state == CheckInState.waiting.value,
                    table.c.round_id != round_.id,
                    table.c.round_id.not_in(newer),
                )
                .values(
                    state=CheckInState.superseded.value,
                    closed_at=now,
                    next_action_at=None,
                    updated_at=now,
                )
                .returning(table.c.id)
            ).scalars()
        )
    )
    if superseded:
        _cancel_queued_attempts(session, superseded, now)
    taken = _taken_over(session, newer, [r.id for r in rows])
    # Numbers an SMS failed to for good are not texted again (an indexed look-up of the
    # few such failures; none, usually).
    dead = dead_numbers_of(session, rows)
    quiet = not round_.override_quiet_hours and in_quiet_hours(
        now, tz, round_.quiet_start, round_.quiet_end
    )
    start_at = quiet_hours_end(now, tz, round_.quiet_end) if quiet else now
    checkins: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    visits: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    bodies: dict[tuple[str, str], str] = {}
    plans: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    organization_id, round_id = round_.organization_id, round_.id  # read once, not per row
    skipped = 0

    def messages() -> Iterator[dict[str, Any]]:
        """Each resident's check-in and first attempt (into the lists above), and, as it
        goes, their message. The messages are inserted as they are made: on PostgreSQL the
        server stores each part of the COPY while the next is being made, instead of
        waiting for the whole chunk. (The outbox has no foreign key to the attempt.)"""
        nonlocal skipped
        for resident in rows:
            contact, visit_reason = eligible(resident, today)
            checkin_id = uuid7()
            base = {
                "id": checkin_id,
                "organization_id": organization_id,
                "round_id": round_id,
                "resident_id": resident.id,
                "step_index": 0,
                "flagged": False,
                "last_reply_kind": None,
                "replied_at": None,
                "escalation_id": None,
                "created_at": now,
                "updated_at": now,
            }
            if not contact and visit_reason is None:
                # Away or moved out: recorded in the round so it is visible, never contacted.
                checkins.append({**base, **_CLOSED, "closed_at": now})
                skipped += 1
                continue
            if resident.id in taken:
                # A newer round has asked (or put on the visit list) this resident already.
                checkins.append({**base, **_CLOSED, "closed_at": now})
                continue
            if not contact:
                checkins.append({**base, **_CLOSED, "state": _VISIT_LIST, "closed_at": now})
                visits.append((resident.id, checkin_id, visit_reason or "visit"))
                continue
            # One plan object per kind of resident: shared by their rows (nothing changes a
            # plan after it is written), so it is also serialized once.
            apps = tuple(c for c, _ in app_chain(resident.channels or (), resident))
            plan_key = (resident.preferred_channel, resident.phone_kind, resident.phone2_kind, apps)
            plan = plans.get(plan_key)
            if plan is None:
                plan = plans[plan_key] = resident_plan(round_.plan, *plan_key)
            checkins.append(
                {
                    **base,
                    "state": _WAITING,
                    "plan": plan,
                    "next_action_at": start_at + timedelta(minutes=plan[0]["wait_minutes"]),
                    "closed_at": None,
                }
            )
            first, phone = plan[0], None
            if dead and (reach := reachable_by(resident, first["channel"], dead)) is not None:
                # Its SMS number failed for good: a call, or another mobile number.
                first, phone = {**first, "channel": reach[0]}, reach[1]
            attempt_row, message = _attempt_rows(
                round_, org, resident, first, 0, checkin_id, now, start_at, bodies, phone
            )
            attempts.append(attempt_row)
            yield message

    insert_rows(session, OutboxMessage.__table__, messages())  # type: ignore[attr-defined]
    insert_rows(session, CheckIn.__table__, checkins)  # type: ignore[attr-defined]
    insert_rows(session, Attempt.__table__, attempts)  # type: ignore[attr-defined]
    if skipped:
        # Added in the database, not to the count read before the chunk: a count another
        # fan-out of this round committed in between is kept.
        session.execute(
            update(Round)
            .where(Round.id == round_id)  # type: ignore[arg-type]
            .values(skipped_away=Round.skipped_away + skipped)
            .execution_options(synchronize_session=False)
        )
    for resident_id, checkin_id, reason in visits:
        resident_obj = session.get(Resident, resident_id)
        assert resident_obj is not None
        escalation = escalations.open_escalation(
            session,
            resident=resident_obj,
            reason=EscalationReason.visit_list,
            now=now,
            checkin_id=checkin_id,
            cause=round_.cause,
        )
        session.execute(
            update(CheckIn).where(CheckIn.id == checkin_id).values(escalation_id=escalation.id)
        )
        escalations.timeline(
            session,
            resident_id=resident_id,
            organization_id=round_.organization_id,
            kind="checkin.visit_list",
            at=now,
            checkin_id=checkin_id,
            detail={"why": reason},
        )
    return len(rows), rows[-1].id


def _escalate_silent_before_superseding(
    session: Session, round_: Round, newer: Any, resident_ids: set[Any], now: datetime
) -> None:
    """The chunk's residents whose older check-in is due to escalate now (its last step
    waited out, no reply) are escalated, not superseded. After downtime, today's round
    starts in the same run as the sweep that catches up: superseding would put a resident
    who has been silent since yesterday back at the start of a new plan."""
    length = func.json_array_length(CheckIn.plan)
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL raises on the length of a JSON scalar ('null'); SQLite answers 0.
        length = case((func.json_typeof(CheckIn.plan) == "array", length), else_=0)
    at_last_step = CheckIn.step_index + 1 >= length
    due = session.execute(
        select(CheckIn.id, CheckIn.resident_id).where(
            *_due(now),
            at_last_step,
            CheckIn.organization_id == round_.organization_id,
            CheckIn.round_id != round_.id,
            CheckIn.round_id.not_in(newer),  # type: ignore[attr-defined]
        )
    ).all()
    silent = [checkin_id for checkin_id, resident_id in due if resident_id in resident_ids]
    if silent:
        advance_checkins(session, silent, now)


def _newer_rounds(round_: Round) -> Any:
    """The organization's rounds newer than this one, as a subquery.

    A round's age is the time it is for: a scheduled round's ``scheduled_for`` (it may
    start late, after downtime), anyone else's ``started_at``; ties go by id. A round that
    fans out late (resumed after a crash, slower than a broadcast started after it, or a
    10:00 round started at 14:00 after a noon broadcast) must not supersede a newer round's
    check-ins: the broadcast after an earthquake keeps its check-ins, its queued messages
    and its cause."""
    rounds = Round.__table__  # type: ignore[attr-defined]
    age = func.coalesce(rounds.c.scheduled_for, rounds.c.started_at)
    mine = select(age).where(rounds.c.id == round_.id).scalar_subquery()
    return select(rounds.c.id).where(
        rounds.c.organization_id == round_.organization_id,
        rounds.c.id != round_.id,
        or_(age > mine, and_(age == mine, rounds.c.id > round_.id)),
    )


def _taken_over(session: Session, newer: Any, resident_ids: list[Any]) -> set[Any]:
    """The chunk's residents that a newer round already asks, asked, or put on the visit
    list: this older round's check-in is closed as superseded at once, sending nothing.

    A newer check-in that is itself superseded does not count. Either a still newer round
    took over (and its own check-in counts), or the resident was away when the newer round
    started: back home now, they are asked by this round.

    It must be asked when no other fan-out can write between it and the chunk's commit. On
    PostgreSQL the chunk holds the organization's fan-out lock. On SQLite it runs after the
    chunk's first write (the supersede UPDATE, which on SQLite always runs, or an escalation
    before it), under the database's write lock. A newer round whose chunks come later sees
    this chunk's check-ins and supersedes them itself.
    """
    round_ids = list(session.execute(newer).scalars())
    if not round_ids:
        return set()
    return set(
        session.execute(
            select(CheckIn.resident_id).where(
                CheckIn.round_id.in_(round_ids),  # type: ignore[attr-defined]
                CheckIn.resident_id.in_(resident_ids),  # type: ignore[attr-defined]
                CheckIn.state != CheckInState.superseded,
            )
        ).scalars()
    )


# Names "a round's fan-out" among PostgreSQL's two-key advisory locks (the second key is
# the organization); any fixed 32-bit number.
FAN_OUT_LOCK_CLASS = 0x4D4D4F46


def _lock_fan_out(session: Session, round_: Round) -> None:
    """PostgreSQL: hold the organization's fan-out lock until the chunk's transaction ends.

    Two rounds fanning out at once (the morning round and an earthquake broadcast) take
    turns chunk by chunk, so each chunk reads, under the lock, every check-in the other has
    written: a resident is never left with two waiting check-ins. (SQLite needs no such
    lock: there the chunk's first write, the supersede UPDATE (or the escalation of a
    silent check-in before it), takes the database's write lock, and the checks after it
    see every committed check-in. Taking that lock earlier, before the chunk's residents
    are read, would keep every other writer, webhooks included, out for most of a fan-out.)
    """
    key = int.from_bytes(round_.organization_id.bytes[:4], "big", signed=True)
    lock = func.pg_advisory_xact_lock(cast(FAN_OUT_LOCK_CLASS, Integer), cast(key, Integer))
    session.execute(select(lock))


def _cancel_queued_attempts(session: Session, checkin_ids: list[uuid.UUID], now: datetime) -> None:
    """A superseded check-in's messages that are still queued (say, held until quiet hours
    end) are not sent: the new round's first message replaces them, and a resident never
    gets two first check-ins. One a dispatcher already claimed is left to it."""
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    attempts = Attempt.__table__  # type: ignore[attr-defined]
    cancelled = list(
        session.execute(
            update(outbox)
            .where(
                outbox.c.attempt_id.in_(
                    select(attempts.c.id).where(attempts.c.checkin_id.in_(checkin_ids))
                ),
                outbox.c.status == OutboxStatus.pending.value,
            )
            .values(status=OutboxStatus.cancelled.value, final_at=now, updated_at=now)
            .returning(outbox.c.attempt_id)
        ).scalars()
    )
    if cancelled:
        session.execute(
            update(attempts)
            .where(attempts.c.id.in_(cancelled))
            .values(status=AttemptStatus.skipped.value, updated_at=now)
        )


def fan_out_round(
    session_factory: Any, round_id: uuid.UUID, now_fn: Any, chunk: int = FANOUT_CHUNK
) -> int:
    """Run every remaining chunk, each in its own transaction."""
    total = 0
    after: uuid.UUID | None = None
    while True:
        with session_factory() as session:
            round_ = session.get(Round, round_id)
            if round_ is None or round_.status != RoundStatus.fanning_out:
                return total
            done, after = _fan_out_chunk(session, round_, now_fn(), chunk, after)
            if done == 0:
                round_.status = RoundStatus.open
                round_.fanned_out_at = now_fn()
                session.add(round_)
            session.commit()
        total += done
        if done == 0:
            return total

"""Rounds, check-ins and replies.

Every deadline is a column (``checkin.next_action_at``); sweeps process what is due, so a
scheduler that was down catches up when it returns and nothing depends on in-memory timers.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections import namedtuple
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlmodel import Session

from i18n.classifier import Classification, ReplyKind, classify
from i18n.languages import display_name, get_language
from i18n.names import LocalizedName
from i18n.render import render
from service.audit.service import Actor, record
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
    StaffTask,
    TargetKind,
    TaskKind,
)
from service.common import aware
from service.escalations import service as escalations
from service.escalations.models import Escalation, EscalationReason
from service.registry.models import (
    Channel,
    Member,
    Organization,
    Resident,
    ResidentStatus,
)
from service.registry.phones import PhoneKind, display_phone
from service.telephony.models import (
    InboundMessage,
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
)
from service.telephony.outbox import (
    INVALID_NUMBER_CODES,
    dead_sms_numbers,
    enqueue,
    outbox_row,
)

# Residents per fan-out transaction. Larger chunks mean fewer commits (and, on SQLite, fewer
# WAL checkpoints): 5,000 starts a 100,000-resident round 15-20 % faster than 2,000, and a
# chunk still commits in well under a second (tests/bench/bench_rounds.py).
FANOUT_CHUNK = 5000
SCHEDULER = Actor(label="scheduler")


# --- Time helpers -------------------------------------------------------------------------------


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(now: datetime, tz: str, start: str, end: str) -> bool:
    local = now.astimezone(ZoneInfo(tz)).time()
    begin, finish = _hhmm(start), _hhmm(end)
    if begin == finish:
        return False
    if begin < finish:
        return begin <= local < finish
    return local >= begin or local < finish


def quiet_hours_end(now: datetime, tz: str, end: str) -> datetime:
    """The next moment routine rounds may send again."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), _hhmm(end), zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), _hhmm(end), zone)
    return candidate.astimezone(now.tzinfo)


def next_run_after(schedule: Schedule, after: datetime, tz: str) -> datetime:
    zone = ZoneInfo(tz)
    local = after.astimezone(zone)
    at = _hhmm(schedule.time_of_day)
    for offset in range(0, 8):
        day = local.date() + timedelta(days=offset)
        candidate = datetime.combine(day, at, zone)
        if candidate > local and day.weekday() in schedule.weekdays:
            return candidate.astimezone(after.tzinfo)
    raise ValueError("schedule has no weekdays")  # pragma: no cover - validated on input


# --- Plans ----------------------------------------------------------------------------------------


def resident_plan(
    plan: list[dict[str, Any]],
    resident_channel: str,
    phone_kind: str | None,
    phone2_kind: str | None,
) -> list[dict[str, Any]]:
    """Fit the schedule's plan to one resident: landlines and voice-preferring residents get
    calls where the plan says SMS; nobody is sent an SMS to a number that cannot take one.
    A resident who prefers SMS, or both, follows the plan as written: it already mixes the
    two (SMS, an SMS reminder, then a call), and a call stays the fallback for silence."""
    voice_only = reached_by_voice_only(resident_channel, phone_kind, phone2_kind)
    out = []
    for step in plan:
        step = dict(step)
        if step["channel"] == "sms" and voice_only:
            step["channel"] = "voice"
        out.append(step)
    return out


def reached_by_voice_only(
    resident_channel: str, phone_kind: str | None, phone2_kind: str | None
) -> bool:
    """A resident with no mobile (landlines only), or who asked to be called, is never
    sent an SMS, so nothing said to them may ask for one."""
    has_mobile = PhoneKind.mobile in (phone_kind, phone2_kind)
    return not has_mobile or resident_channel == Channel.voice


def voicemail_message_id(session: Session, resident_id: uuid.UUID | None) -> str:
    """What a check-in call leaves on the resident's answering machine: "we will call
    again", and, to a resident who gets our SMS, that they can also answer it."""
    resident = session.get(Resident, resident_id) if resident_id else None
    if resident is not None and reached_by_voice_only(
        resident.preferred_channel, resident.phone_kind, resident.phone2_kind
    ):
        return "voice.voicemail.voice_only"
    return "voice.voicemail"


log = logging.getLogger(__name__)

# Plain values: a fan-out compares 100,000 residents with them, and an enum member is looked
# up through a descriptor on every use.
_MOBILE = PhoneKind.mobile.value
_WAITING = CheckInState.waiting.value
_VISIT_LIST = CheckInState.visit_list.value
# A check-in closed as it is made: away, taken over by a newer round, or on the visit list
# (with its own state).
_CLOSED = {"state": CheckInState.superseded.value, "plan": [], "next_action_at": None}
_QUEUED = AttemptStatus.queued.value
_MOVED_OUT = ResidentStatus.moved_out.value
_AWAY = ResidentStatus.away.value
_OPTED_OUT = ResidentStatus.opted_out.value


def pick_number(resident: Any, channel: str) -> str | None:
    if channel == "sms":
        if resident.phone and resident.phone_kind == _MOBILE:
            return resident.phone
        if resident.phone2 and resident.phone2_kind == _MOBILE:
            return resident.phone2
        return None
    return resident.phone or resident.phone2


def reachable_by(resident: Any, channel: str, dead: dict[str, int]) -> tuple[str, str] | None:
    """(channel, number) for a plan step of ``channel``, or None when the step cannot reach
    the resident. ``dead`` holds numbers an SMS failed to for good (Twilio's code): an SMS
    step never goes to one of them again; the resident gets a call instead if they have a
    number that can be called (not one Twilio called invalid)."""
    if channel == "sms":
        if pick_number(resident, "sms") is None:
            return None
        numbers = ((resident.phone, resident.phone_kind), (resident.phone2, resident.phone2_kind))
        for phone, kind in numbers:
            if phone and kind == _MOBILE and phone not in dead:
                return "sms", phone
        channel = "voice"
    for phone in (resident.phone, resident.phone2):
        if phone and dead.get(phone) not in INVALID_NUMBER_CODES:
            return channel, phone
    return None


def dead_numbers_of(session: Session, residents: Iterable[Any]) -> dict[str, int]:
    """The residents' numbers an SMS failed to for good (21610, 21614, 21211), with the
    code, unless the resident has texted us since (a START after a STOP, say)."""
    owners: dict[str, list[Any]] = {}
    for resident in residents:
        for phone in (resident.phone, resident.phone2):
            if phone:
                owners.setdefault(phone, []).append(resident.id)
    dead = dead_sms_numbers(session, owners)
    if not dead:
        return {}
    from service.telephony.models import InboundMessage

    ids = {rid for phone in dead for rid in owners[phone]}
    heard = {
        rid: aware(at)
        for rid, at in session.execute(
            select(InboundMessage.resident_id, func.max(InboundMessage.received_at))
            .where(InboundMessage.resident_id.in_(ids))  # type: ignore[union-attr]
            .group_by(InboundMessage.resident_id)
        )
    }
    return {
        phone: code
        for phone, (code, at) in dead.items()
        if not any((heard.get(rid) or at) > at for rid in owners[phone])
    }


def eligible(resident: Any, today: date) -> tuple[bool, str | None]:
    """(contact by phone?, reason for the visit list instead). Away and moved-out residents
    are outside the round; everyone else is either contacted or visited."""
    status = resident.status
    if status == _MOVED_OUT:
        return False, None
    if status == _AWAY and resident.away_until and resident.away_until >= today:
        return False, None
    if status == _OPTED_OUT:
        return False, "opted_out"
    if resident.consent_at is None:
        return False, "no_consent"
    if not (resident.phone or resident.phone2):
        return False, "no_phone"
    return True, None


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
    already = exists().where(CheckIn.round_id == round_.id, CheckIn.resident_id == Resident.id)
    # PostgreSQL: whether the resident has another round's check-in still waiting (superseded
    # below), asked per resident in the select, through the (resident_id, state) index. An
    # UPDATE over the chunk's 5,000 ids made PostgreSQL scan every waiting check-in, this
    # round's included, once per chunk. SQLite does that UPDATE well and takes it as is.
    waiting_elsewhere = (
        exists()
        .where(
            CheckIn.resident_id == Resident.id,
            CheckIn.state == CheckInState.waiting,
            CheckIn.round_id != round_.id,
        )
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
            checkin_id = uuid.uuid4()
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
            plan_key = (resident.preferred_channel, resident.phone_kind, resident.phone2_kind)
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


def insert_rows(session: Session, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert complete rows (dicts with the same keys) in the session's transaction.

    Fan-out writes three rows per resident, so this is as direct as the database allows. On
    PostgreSQL it is a COPY, about twice as fast as multi-row INSERT statements, with the
    same constraint, foreign key and index checks; rows given as an iterator are sent as
    they come. On SQLite each value goes through its column type's own bind processor (the
    same stored form as any Core insert) and the rows through one driver-level executemany,
    without per-row statement compilation.
    """
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return
    rows = itertools.chain((first,), iterator)
    connection = session.connection()
    names = list(first)
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in names)
    if connection.dialect.name == "sqlite":
        dialect = connection.dialect
        processors = [
            (
                n,
                _memoized(
                    table.c[n].type, table.c[n].type.dialect_impl(dialect).bind_processor(dialect)
                ),
            )
            for n in names
        ]
        connection.exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({', '.join('?' * len(names))})",
            _converted(rows, names, [p for _, p in processors]),
        )
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), list(rows))
        return
    as_json = {c.name for c in table.columns if isinstance(c.type, JSON)} & set(names)
    to_json = _by_identity(_json)
    statement = f"COPY {quote(table.name)} ({columns}) FROM STDIN"
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        with cursor.copy(statement) as copy:
            for row in rows:
                if as_json:
                    row = {**row, **{n: to_json(row[n]) for n in as_json}}
                copy.write_row([row[n] for n in names])


def _converted(
    rows: Iterable[dict[str, Any]], names: list[str], processors: list[Any]
) -> list[tuple[Any, ...]]:
    """The rows as tuples of stored values, column by column: each processor is mapped
    over its column, and the columns without one are taken as they are. A generator per
    row, calling or skipping a processor for each of a fan-out's millions of values, took
    a fifth of a SQLite fan-out."""
    if len(names) == 1:  # itemgetter of one name gives the value, not a tuple
        (name,), (process,) = names, processors
        return [(row[name] if process is None else process(row[name]),) for row in rows]
    columns = zip(*map(itemgetter(*names), rows), strict=True)
    converted = (c if p is None else map(p, c) for c, p in zip(columns, processors, strict=True))
    return list(zip(*converted, strict=True))


def _by_identity(convert: Any) -> Any:
    """``convert`` once per object: a fan-out's rows share a handful of plan objects."""
    done: dict[int, tuple[Any, Any]] = {}

    def process(value: Any) -> Any:
        hit = done.get(id(value))
        if hit is None or hit[0] is not value:  # the object itself is kept, so its id is too
            hit = done[id(value)] = (value, convert(value))
        return hit[1]

    return process


def _memoized(column_type: Any, processor: Any) -> Any:
    """A timestamp column of a fan-out holds a handful of distinct values (now, the start,
    the deadline) over thousands of rows: convert each once. So does a JSON column (the
    plans, shared by identity)."""
    if processor is not None and isinstance(column_type, JSON):
        return _by_identity(processor)
    if processor is None or not isinstance(column_type, DateTime):
        return processor
    done: dict[Any, Any] = {}

    def process(value: Any) -> Any:
        # Keyed with the zone too: equal instants in two zones are stored differently.
        key = (value, getattr(value, "tzinfo", None))
        try:
            return done[key]
        except KeyError:
            done[key] = converted = processor(value)
            return converted

    return process


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


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


def _attempt_rows(
    round_: Round,
    org: Organization,
    resident: Any,
    step: dict[str, Any],
    step_index: int,
    checkin_id: uuid.UUID,
    now: datetime,
    start_at: datetime,
    bodies: dict[tuple[str, str], str] | None = None,
    phone: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    channel = step["channel"]
    phone = phone or pick_number(resident, channel)
    assert phone is not None
    attempt_id = uuid.uuid4()
    language = resident.language
    message_id = (
        "resident.checkin"
        if step.get("message", "prompt") == "prompt"
        else "resident.checkin.reminder"
    )
    body = (
        _checkin_body(message_id, language, org, resident.name, bodies)
        if channel == "sms"
        else None
    )
    attempt = {
        "id": attempt_id,
        "checkin_id": checkin_id,
        "step_index": step_index,
        "channel": channel,
        "message": step.get("message", "prompt"),
        "phone": phone,
        "status": _QUEUED,
        "sid": None,
        "error_code": None,
        "created_at": now,
        "updated_at": now,
    }
    message = outbox_row(
        organization_id=round_.organization_id,
        channel=OutboxChannel.sms if channel == "sms" else OutboxChannel.call,
        purpose=OutboxPurpose.checkin,
        to_phone=phone,
        body=body,
        locale=language,
        resident_id=resident.id,
        attempt_id=attempt_id,
        now=now,
        not_before=start_at,
        deadline=timedelta(minutes=max(10, int(step["wait_minutes"]) // 2)),
    )
    return attempt, message


_NAME_SLOT = "\x00name\x00"


def _checkin_body(
    message_id: str,
    language: str,
    org: Organization,
    name: str,
    bodies: dict[tuple[str, str], str] | None,
) -> str:
    """The check-in text for one resident, with the organization's name in their language.
    A round renders each (message, language) once and inserts each name into it, exactly as
    ``render`` inserts values (verbatim): a 100,000-resident fan-out then costs a handful of
    catalog look-ups and name choices, not 100,000."""
    if bodies is None:
        org_name = LocalizedName.of(org).for_reader(language)
        return render(message_id, language, org=org_name, name=name)
    key = (message_id, language)
    text = bodies.get(key)
    if text is None:
        org_name = LocalizedName.of(org).for_reader(language)
        text = bodies[key] = render(message_id, language, org=org_name, name=_NAME_SLOT)
    return text.replace(_NAME_SLOT, name)


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
            checkin.step_index = step.step_index
        checkin.next_action_at = step.next_action_at
        checkin.updated_at = now
    insert_rows(session, Attempt.__table__, attempts)  # type: ignore[attr-defined]
    insert_rows(session, OutboxMessage.__table__, outbox)  # type: ignore[attr-defined]
    if exhausted:
        _escalate_exhausted_plans(session, exhausted, now)
    return len(steps)


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
    steps: list[_NextStep] = []
    bodies: dict[tuple[str, str], str] = {}
    for checkin in locked:
        round_ = rounds[checkin.round_id]
        resident = residents[checkin.resident_id]
        org = orgs[checkin.organization_id]
        due = aware(checkin.next_action_at)
        assert due is not None
        lateness = (now - due).total_seconds()
        late = round(lateness) if lateness > 60 else None
        step = _NextStep(checkin, resident, round_, late, step_index=checkin.step_index)
        steps.append(step)
        next_step = checkin.step_index + 1
        reach: tuple[str, str] | None = None
        while next_step < len(checkin.plan):
            reach = reachable_by(resident, checkin.plan[next_step]["channel"], dead)
            if reach is not None:
                break
            next_step += 1
        if next_step >= len(checkin.plan):
            # Escalation is not a message to the resident: quiet hours never delay it.
            step.escalate = True
            continue
        if not round_.override_quiet_hours and in_quiet_hours(
            now, org.timezone, round_.quiet_start, round_.quiet_end
        ):
            step.next_action_at = quiet_hours_end(now, org.timezone, round_.quiet_end)
            continue
        planned = checkin.plan[next_step]
        assert reach is not None
        channel, phone = reach
        if channel != planned["channel"]:
            # An SMS step to a number that cannot take SMS any more: a call instead.
            planned = {**planned, "channel": channel}
            log.info("check-in %s: SMS step by call (number failed for good)", checkin.id)
        step.attempt, step.message = _attempt_rows(
            round_, org, resident, planned, next_step, checkin.id, now, now, bodies, phone
        )
        step.step_index = next_step
        step.next_action_at = now + timedelta(minutes=int(planned["wait_minutes"]))
    return steps


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
    failed = {AttemptStatus.failed, AttemptStatus.no_answer}
    for checkin, resident, round_ in exhausted:
        tried = statuses.get(checkin.id, [])
        unreachable = bool(tried) and all(s in failed for s in tried)
        checkin.state = CheckInState.unreachable if unreachable else CheckInState.no_reply
        checkin.next_action_at = None
        checkin.closed_at = now
        checkin.updated_at = now
        reason = EscalationReason.unreachable if unreachable else EscalationReason.no_reply
        escalation = escalations.open_escalation(
            session,
            resident=resident,
            reason=reason,
            now=now,
            checkin_id=checkin.id,
            cause=round_.cause,
            last_contact=last_contact.get(resident.id),
        )
        checkin.escalation_id = escalation.id
        session.add(checkin)


# --- Replies -------------------------------------------------------------------------------------


def current_checkin(
    session: Session,
    resident_id: uuid.UUID,
    *,
    lock: bool = False,
    before: datetime | None = None,
) -> CheckIn | None:
    """The resident's newest check-in that a reply can still matter to (of those created
    no later than ``before``, if given).

    ``lock`` takes its row lock (and re-reads it): a reply then waits for a sweep that is
    escalating the same check-in, and sees the escalation, instead of closing the check-in
    as answered over it while the escalation it never saw stays open.
    """
    query = (
        select(CheckIn)
        .where(CheckIn.resident_id == resident_id, CheckIn.state != CheckInState.superseded)
        .order_by(CheckIn.created_at.desc())  # type: ignore[attr-defined]
        .limit(1)
    )
    if before is not None:
        query = query.where(CheckIn.created_at <= before)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.execute(query).scalars().first()


def open_escalation_for(session: Session, resident_id: uuid.UUID) -> Escalation | None:
    return (
        session.execute(
            select(Escalation).where(
                Escalation.resident_id == resident_id, Escalation.state.in_(escalations.OPEN_STATES)
            )
        )
        .scalars()
        .first()
    )  # type: ignore[attr-defined]


ANSWER_IDS = {
    ReplyKind.FINE: "answer.ok",
    ReplyKind.HELP: "answer.help",
    ReplyKind.TALK: "answer.talk",
    ReplyKind.UNCLEAR: "answer.unclear",
}


_REPLY_IDS = {
    ReplyKind.STOP: "resident.optout",
    ReplyKind.START: "resident.optin",
    ReplyKind.FINE: "resident.reply.ok",
    ReplyKind.HELP: "resident.reply.help",
    ReplyKind.TALK: "resident.reply.talk",
}


def resident_reply_text(
    verdict: Classification, language: str, org: LocalizedName
) -> tuple[str, str]:
    """The answer to a resident's reply, and its language. It depends on what the reply says
    and nothing else, so the webhook answers at once and ``process_replies`` acts on it. The
    organization is named in the language of the answer (a language change answers in the
    new language)."""
    switching = verdict.kind == ReplyKind.CHANGE_LANGUAGE and verdict.language
    org_name = org.for_reader(verdict.language if switching else language)
    return _reply_text(verdict.kind, verdict.language, language, org_name)


@lru_cache(maxsize=4096)
def _reply_text(
    kind: ReplyKind, new_language: str | None, language: str, org_name: str
) -> tuple[str, str]:
    # A handful of texts per language and organization: rendered once per process.
    if kind == ReplyKind.CHANGE_LANGUAGE and new_language:
        new = get_language(new_language)
        text = render(
            "resident.language_changed",
            new_language,
            org=org_name,
            language=new.native_name if new else new_language,
        )
        return text, new_language
    message_id = _REPLY_IDS.get(kind, "resident.reply.unclear")
    return render(message_id, language, org=org_name), language


def handle_resident_reply(
    session: Session,
    *,
    resident: Resident,
    text: str,
    channel: str,
    now: datetime,
    inbound_id: uuid.UUID | None = None,
    verdict: Classification | None = None,
    received_at: datetime | None = None,
) -> str | None:
    """Classify a reply and act on it. Returns the answer to send back (or None).

    Only a recognisable "fine" closes a check-in; when in doubt, nothing is closed.
    ``received_at`` is when the reply arrived, if it is acted on later (``now``): the
    timeline and the check-in show the reply at that time, while anything it starts (an
    escalation's deadlines) starts from ``now``.
    """
    if verdict is None:
        verdict = classify(text, resident.language)
    replied_at = received_at or now
    org = session.get(Organization, resident.organization_id)
    assert org is not None
    reply, _ = resident_reply_text(verdict, resident.language, LocalizedName.of(org))
    # The check-in the reply answers: the newest one that existed when it arrived. A round
    # started in between (before the reply was acted on) is not answered by it.
    checkin = current_checkin(session, resident.id, lock=True, before=received_at)
    waiting = checkin is not None and checkin.state == CheckInState.waiting
    escalation = open_escalation_for(session, resident.id)
    kind = verdict.kind
    escalations.timeline(
        session,
        resident_id=resident.id,
        organization_id=org.id,
        kind=f"reply.{channel}",
        at=replied_at,
        inbound_id=inbound_id,
        checkin_id=checkin.id if checkin else None,
        detail={
            "class": kind.value,
            "matched": verdict.matched,
            "words": list(verdict.words),
            "why": verdict.reason,
        },
    )
    # An escalation opened by this reply says what started the round (an earthquake, say).
    round_ = session.get(Round, checkin.round_id) if checkin is not None else None
    round_cause = round_.cause if round_ is not None else None
    if checkin is not None and kind not in (ReplyKind.CHANGE_LANGUAGE, ReplyKind.START):
        checkin.last_reply_kind = kind.value
        checkin.replied_at = replied_at
        checkin.updated_at = now
        session.add(checkin)

    if kind == ReplyKind.CHANGE_LANGUAGE and verdict.language:
        resident.language = verdict.language
        resident.updated_at = now
        session.add(resident)
        record(
            session=session,
            organization_id=org.id,
            actor=Actor(label="resident"),
            action="update",
            entity_type="resident",
            entity_id=resident.id,
            fields=["language"],
            detail={"source": "reply"},
        )
        return reply

    if kind == ReplyKind.STOP:
        resident.status = ResidentStatus.opted_out
        resident.updated_at = now
        session.add(resident)
        record(
            session=session,
            organization_id=org.id,
            actor=Actor(label="resident"),
            action="update",
            entity_type="resident",
            entity_id=resident.id,
            fields=["status"],
            detail={"source": "reply STOP"},
        )
        _task(session, org.id, TaskKind.opt_out, resident, checkin, inbound_id, now)
        if waiting:
            assert checkin is not None
            _close(checkin, CheckInState.opted_out, now)
            esc = escalations.open_escalation(
                session,
                resident=resident,
                reason=EscalationReason.visit_list,
                now=now,
                checkin_id=checkin.id,
                cause=round_cause,
            )
            checkin.escalation_id = esc.id
            session.add(checkin)
        return reply

    if kind == ReplyKind.START:
        if resident.status == ResidentStatus.opted_out:
            resident.status = ResidentStatus.active
            resident.updated_at = now
            session.add(resident)
            record(
                session=session,
                organization_id=org.id,
                actor=Actor(label="resident"),
                action="update",
                entity_type="resident",
                entity_id=resident.id,
                fields=["status"],
                detail={"source": "reply START"},
            )
        return reply

    if escalation is not None and kind in ANSWER_IDS:
        # A late reply (or a reply while an older case is open): recorded, and whoever
        # holds the case is told. The case stays open until someone records a visit. When
        # nobody holds it (the chain ran out), staff are given the reply as a task.
        told = escalations.notify_late_reply(
            session, escalation=escalation, answer_id=ANSWER_IDS[kind], now=now
        )
        if not told:
            _task(session, org.id, TaskKind.late_reply, resident, checkin, inbound_id, now)

    if kind == ReplyKind.FINE:
        if waiting:
            assert checkin is not None
            _close(checkin, CheckInState.ok, now)
        return reply

    if kind == ReplyKind.HELP:
        if waiting:
            assert checkin is not None
            _close(checkin, CheckInState.needs_help, now)
        esc = escalations.open_escalation(
            session,
            resident=resident,
            reason=EscalationReason.needs_help,
            now=now,
            checkin_id=checkin.id if checkin else None,
            last_contact=replied_at,
            cause=round_cause,
        )
        if checkin is not None and waiting:
            checkin.escalation_id = esc.id
            session.add(checkin)
        return reply

    if kind == ReplyKind.TALK:
        if waiting:
            assert checkin is not None
            _close(checkin, CheckInState.wants_talk, now)
        task = _task(
            session,
            org.id,
            TaskKind.callback,
            resident,
            checkin,
            inbound_id,
            now,
            interpreter=resident.needs_interpreter,
        )
        if task.assigned_member_id is not None:
            _ask_supporter_to_call(session, task.assigned_member_id, resident, now)
        return reply

    # Unclear: ask again, flag for staff; it is not an answer.
    if checkin is not None:
        checkin.flagged = True
        session.add(checkin)
    _task(session, org.id, TaskKind.unclear, resident, checkin, inbound_id, now)
    return reply


def _close(checkin: CheckIn, state: CheckInState, now: datetime) -> None:
    checkin.state = state
    checkin.next_action_at = None
    checkin.closed_at = now
    checkin.updated_at = now


def _task(
    session: Session,
    organization_id: uuid.UUID,
    kind: TaskKind,
    resident: Resident,
    checkin: CheckIn | None,
    inbound_id: uuid.UUID | None,
    now: datetime,
    interpreter: bool = False,
) -> StaffTask:
    assigned = None
    if interpreter:
        supporter = escalations.interpreter_for(session, resident)
        assigned = supporter.id if supporter is not None else None
    task = StaffTask(
        organization_id=organization_id,
        kind=kind,
        resident_id=resident.id,
        checkin_id=checkin.id if checkin else None,
        inbound_id=inbound_id,
        language=resident.language,
        assigned_member_id=assigned,
        created_at=now,
    )
    session.add(task)
    return task


def _ask_supporter_to_call(
    session: Session, member_id: uuid.UUID, resident: Resident, now: datetime
) -> None:
    """The call-back goes to the supporter who speaks the resident's language: they have
    no dashboard, so they are told by SMS, in their language, whom to call and at which
    number (nothing else: not what the resident said)."""
    member = session.get(Member, member_id)
    number = pick_number(resident, "voice")
    if member is None or not member.phone or member.phone_kind != PhoneKind.mobile or not number:
        return  # staff see the task, assigned to them, on the inbox
    locale = (member.languages or ["ja"])[0]
    body = render(
        "member.callback",
        locale,
        name=resident.name,
        language=display_name(resident.language, locale),
        phone=display_phone(number),
    )
    enqueue(
        session,
        organization_id=resident.organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.member_notice,
        to_phone=member.phone,
        body=body,
        locale=locale,
        resident_id=resident.id,
        member_id=member.id,
        now=now,
    )


def record_reply_sent(
    session: Session,
    *,
    organization_id: uuid.UUID | None,
    to_phone: str,
    body: str,
    locale: str,
    resident_id: uuid.UUID | None,
    member_id: uuid.UUID | None,
    now: datetime,
) -> None:
    """A TwiML reply is sent by Twilio as the webhook's answer; it is stored as an outbox
    row already sent, so the timeline shows it and it counts against the recipient's cap."""
    if organization_id is None:
        return
    row = reply_sent_row(
        organization_id=organization_id,
        to_phone=to_phone,
        body=body,
        locale=locale,
        resident_id=resident_id,
        member_id=member_id,
        now=now,
    )
    # A plain INSERT on the session's connection (the SMS webhook's hot path has no ORM
    # objects to flush); it commits or rolls back with the caller's transaction.
    session.connection().execute(insert(OutboxMessage.__table__), [row])  # type: ignore[attr-defined]


def reply_sent_row(
    *,
    organization_id: uuid.UUID,
    to_phone: str,
    body: str,
    locale: str,
    resident_id: uuid.UUID | None,
    member_id: uuid.UUID | None,
    now: datetime,
) -> dict[str, Any]:
    """The outbox row of a TwiML answer: an SMS already sent (``record_reply_sent``)."""
    row = outbox_row(
        organization_id=organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.resident_notice if resident_id else OutboxPurpose.member_notice,
        to_phone=to_phone,
        body=body,
        locale=locale,
        resident_id=resident_id,
        now=now,
    )
    row.update(member_id=member_id, status=OutboxStatus.sent.value, sent_at=now, final_at=now)
    return row


# --- Attempts and delivery ------------------------------------------------------------------------


def attempt_failed(
    session: Session,
    *,
    attempt_id: uuid.UUID,
    now: datetime,
    status: AttemptStatus = AttemptStatus.failed,
    error_code: int | None = None,
) -> None:
    """A channel failed for good: move the check-in on now instead of waiting out the step."""
    attempt = session.get(Attempt, attempt_id)
    if attempt is None:
        return
    attempt.status = status
    attempt.error_code = error_code
    attempt.updated_at = now
    session.add(attempt)
    checkin = session.get(CheckIn, attempt.checkin_id)
    if (
        checkin is not None
        and checkin.state == CheckInState.waiting
        and checkin.step_index == attempt.step_index
    ):
        checkin.next_action_at = now
        checkin.updated_at = now
        session.add(checkin)


def set_attempt_status(
    session: Session,
    *,
    attempt_id: uuid.UUID,
    status: AttemptStatus,
    now: datetime,
    sid: str | None = None,
) -> None:
    attempt = session.get(Attempt, attempt_id)
    if attempt is None:
        return
    attempt.status = status
    if sid:
        attempt.sid = sid
    attempt.updated_at = now
    session.add(attempt)


# --- Counts -------------------------------------------------------------------------------------


def round_counts(session: Session, round_id: uuid.UUID) -> dict[str, int]:
    counts = {state.value: 0 for state in CheckInState}
    for state, count in session.execute(
        select(CheckIn.state, func.count())
        .where(CheckIn.round_id == round_id)
        .group_by(CheckIn.state)
    ):
        counts[str(state)] = count
    counts["unclear"] = session.execute(
        select(func.count())
        .select_from(CheckIn)
        .where(
            CheckIn.round_id == round_id,
            CheckIn.state == CheckInState.waiting,
            CheckIn.flagged.is_(True),
        )
    ).scalar_one()  # type: ignore[attr-defined]
    counts["total"] = sum(counts[s.value] for s in CheckInState)
    return counts


def due_schedules(session: Session, now: datetime) -> list[Schedule]:
    return list(
        session.execute(
            select(Schedule).where(
                Schedule.active.is_(True),
                Schedule.next_run_at.is_not(None),  # type: ignore[attr-defined,union-attr]
                Schedule.next_run_at <= now,
            )
        ).scalars()
    )  # type: ignore[operator]


def start_due_schedule(session: Session, schedule: Schedule, now: datetime) -> Round | None:
    """Start one round for a due schedule. Runs missed while the scheduler was down are
    coalesced into this one, and the lateness goes to the audit log."""
    org = session.get(Organization, schedule.organization_id)
    assert org is not None
    first_missed = aware(schedule.next_run_at)
    assert first_missed is not None
    # The round is for the latest of the runs it stands for: after two days of downtime,
    # today's 10:00, not the first 10:00 missed. Its age orders it among the rounds that
    # overlap it (``_newer_rounds``): a broadcast sent during the downtime is older than it.
    scheduled_for, missed = first_missed, 1
    while (following := next_run_after(schedule, scheduled_for, org.timezone)) <= now:
        if following <= scheduled_for:  # a clock change must not loop it back
            break
        scheduled_for, missed = following, missed + 1
    already = session.execute(
        select(Round.id).where(
            Round.schedule_id == schedule.id, Round.scheduled_for == scheduled_for
        )
    ).first()
    schedule.last_run_at = now
    schedule.next_run_at = next_run_after(schedule, now, org.timezone)
    session.add(schedule)
    if already:
        return None
    lateness = (now - first_missed).total_seconds()
    if lateness > 60:
        record(
            session=session,
            organization_id=org.id,
            actor=SCHEDULER,
            action="late",
            entity_type="schedule",
            entity_id=schedule.id,
            detail={"late_seconds": round(lateness), "runs": missed},
        )
    return start_round(
        session,
        organization_id=org.id,
        kind=RoundKind.scheduled,
        started_by=f"schedule:{schedule.name}",
        now=now,
        schedule=schedule,
        scheduled_for=scheduled_for,
    )


def open_rounds_fanning_out(session: Session) -> list[uuid.UUID]:
    return list(
        session.execute(
            select(Round.id)
            .where(Round.status == RoundStatus.fanning_out)
            .order_by(Round.started_at)
        ).scalars()
    )


def resident_open_items(session: Session, resident_id: uuid.UUID) -> dict[str, Any]:
    return {
        "checkin": current_checkin(session, resident_id),
        "escalation": open_escalation_for(session, resident_id),
        "tasks": list(
            session.execute(
                select(StaffTask).where(
                    StaffTask.resident_id == resident_id, StaffTask.closed_at.is_(None)
                )
            ).scalars()
        ),  # type: ignore[union-attr]
    }

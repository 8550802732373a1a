"""Rounds, check-ins and replies: the module callers import.

Every deadline is a column (``checkin.next_action_at``); sweeps process what is due, so a
scheduler that was down catches up when it returns and nothing depends on in-memory timers.

The work is done in modules of their own, re-exported here: the pure rules
(``policy``), reaching a resident (``attempts``), bulk inserts (``bulk``), rounds and
their fan-out (``fanout``), the check-in sweep (``sweep``) and residents' replies
(``replies``). What is left here are schedules, counts and a resident's open items.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from service.audit.service import record
from service.checkins.attempts import (
    attempt_failed,
    dead_numbers_of,
    eligible,
    pick_number,
    reachable_by,
    set_attempt_status,
)
from service.checkins.bulk import insert_rows
from service.checkins.fanout import (
    FAN_OUT_LOCK_CLASS,
    FANOUT_CHUNK,
    _fan_out_chunk,  # noqa: F401 - tests drive one chunk with its cursor
    fan_out_chunk,
    fan_out_round,
    start_round,
)
from service.checkins.models import (
    CheckIn,
    CheckInState,
    Round,
    RoundKind,
    RoundStatus,
    Schedule,
    StaffTask,
)
from service.checkins.policy import (
    in_quiet_hours,
    next_run_after,
    quiet_hours_end,
    reached_by_voice_only,
    resident_plan,
)
from service.checkins.replies import (
    ANSWER_IDS,
    current_checkin,
    handle_resident_reply,
    open_escalation_for,
    record_reply_sent,
    reply_sent_row,
    resident_reply_text,
)
from service.checkins.sweep import (
    REPLY_HOLD,
    SCHEDULER,
    advance_checkin,
    advance_checkins,
    due_checkin_ids,
)
from service.common import aware
from service.registry.models import Organization, Resident

__all__ = [
    "ANSWER_IDS",
    "FANOUT_CHUNK",
    "FAN_OUT_LOCK_CLASS",
    "REPLY_HOLD",
    "SCHEDULER",
    "advance_checkin",
    "advance_checkins",
    "attempt_failed",
    "current_checkin",
    "dead_numbers_of",
    "due_checkin_ids",
    "due_schedules",
    "eligible",
    "fan_out_chunk",
    "fan_out_round",
    "handle_resident_reply",
    "in_quiet_hours",
    "insert_rows",
    "next_run_after",
    "open_escalation_for",
    "open_rounds_fanning_out",
    "pick_number",
    "quiet_hours_end",
    "reachable_by",
    "reached_by_voice_only",
    "record_reply_sent",
    "reply_sent_row",
    "resident_open_items",
    "resident_plan",
    "resident_reply_text",
    "round_counts",
    "set_attempt_status",
    "start_due_schedule",
    "start_round",
    "voicemail_message_id",
]


def voicemail_message_id(session: Session, resident_id: uuid.UUID | None) -> str:
    """What a check-in call leaves on the resident's answering machine: "we will call
    again", and, to a resident who gets our SMS, that they can also answer it."""
    resident = session.get(Resident, resident_id) if resident_id else None
    if resident is not None and reached_by_voice_only(
        resident.preferred_channel, resident.phone_kind, resident.phone2_kind
    ):
        return "voice.voicemail.voice_only"
    return "voice.voicemail"


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

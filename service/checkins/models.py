"""Schedules, rounds, check-ins, attempts and staff tasks (the timeline: ``service.timeline``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, field_validator, model_validator
from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field
from service.texts import N_, TextError

# The timeline has its own package (below check-ins and escalations); kept importable here.
from service.timeline.models import TimelineEvent as TimelineEvent
from service.timeline.models import TimelineEventPublic as TimelineEventPublic

# --- Attempt plans ------------------------------------------------------------------------------


class PlanStep(BaseModel):
    """One step of an attempt plan: contact the resident, then wait before the next step."""

    channel: str = "sms"  # sms or voice
    message: str = "prompt"  # prompt or reminder (for SMS)
    wait_minutes: int = 60

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if value not in ("sms", "voice"):
            raise ValueError("channel must be sms or voice")
        return value

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        if value not in ("prompt", "reminder"):
            raise ValueError("message must be prompt or reminder")
        return value

    @field_validator("wait_minutes")
    @classmethod
    def _wait(cls, value: int) -> int:
        if not 1 <= value <= 24 * 60:
            raise ValueError("wait_minutes must be between 1 and 1440")
        return value


DEFAULT_PLAN: list[dict[str, Any]] = [
    {"channel": "sms", "message": "prompt", "wait_minutes": 60},
    {"channel": "sms", "message": "reminder", "wait_minutes": 60},
    {"channel": "voice", "message": "prompt", "wait_minutes": 30},
]


def validate_plan(plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not plan:
        raise ValueError("an attempt plan needs at least one step")
    if len(plan) > 10:
        raise ValueError("an attempt plan has at most 10 steps")
    return [PlanStep.model_validate(step).model_dump() for step in plan]


# --- Schedules ----------------------------------------------------------------------------------


class TargetKind(StrEnum):
    all = "all"
    sites = "sites"
    flag = "flag"
    residents = "residents"


TARGET_FLAGS = ("lives_alone", "elderly", "disability", "pregnancy", "needs_interpreter")


class ScheduleBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    active: bool = True
    time_of_day: str = Field(default="10:00", max_length=5)  # HH:MM, organization's timezone
    weekdays: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], sa_column=Column(JSON)
    )  # 0 = Monday
    target_kind: TargetKind = Field(default=TargetKind.all, sa_type=String(12))
    target_site_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    target_flag: str | None = Field(default=None, max_length=32)
    target_resident_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    plan: list[dict[str, Any]] = Field(
        default_factory=lambda: list(DEFAULT_PLAN), sa_column=Column(JSON)
    )
    quiet_start: str = Field(default="21:00", max_length=5)
    quiet_end: str = Field(default="08:00", max_length=5)


def _check_hhmm(value: str) -> str:
    try:
        hours, minutes = value.split(":")
        h, m = int(hours), int(minutes)
    except ValueError:
        raise TextError(N_("use HH:MM, for example 10:00")) from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise TextError(N_("use HH:MM, for example 10:00"))
    return f"{h:02d}:{m:02d}"


class _ScheduleValidators(SQLModel):
    @field_validator("time_of_day", "quiet_start", "quiet_end", check_fields=False)
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return None if value is None else _check_hhmm(value)

    @field_validator("weekdays", check_fields=False)
    @classmethod
    def _weekdays(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value or any(not 0 <= d <= 6 for d in value):
            raise TextError(N_("weekdays are 0 (Monday) to 6 (Sunday), at least one"))
        return sorted(set(value))

    @field_validator("plan", check_fields=False)
    @classmethod
    def _plan(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if value is None else validate_plan(value)

    @field_validator("target_flag", check_fields=False)
    @classmethod
    def _flag(cls, value: str | None) -> str | None:
        if value is not None and value not in TARGET_FLAGS:
            raise ValueError(f"target_flag must be one of {', '.join(TARGET_FLAGS)}")
        return value

    @field_validator("target_site_ids", "target_resident_ids", check_fields=False)
    @classmethod
    def _ids(cls, value: list[Any] | None) -> list[str] | None:
        if value is None:
            return None
        ids = []
        for item in value:
            try:
                ids.append(str(uuid.UUID(str(item))))
            except ValueError:
                raise ValueError(f"{item!r} is not an id") from None
        return list(dict.fromkeys(ids))


def check_targets(
    kind: TargetKind, site_ids: list[str], flag: str | None, resident_ids: list[str]
) -> None:
    """A schedule's targets must say whom they mean: raises ValueError naming what is missing."""
    if kind == TargetKind.sites and not site_ids:
        raise TextError(N_("target_kind 'sites' needs target_site_ids"))
    if kind == TargetKind.flag and not flag:
        raise TextError(N_("target_kind 'flag' needs target_flag"))
    if kind == TargetKind.residents and not resident_ids:
        raise TextError(N_("target_kind 'residents' needs target_resident_ids"))


class Schedule(ScheduleBase, table=True):
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    next_run_at: datetime | None = timestamp_field(nullable=True, index=True)
    last_run_at: datetime | None = timestamp_field(nullable=True)
    created_at: datetime = timestamp_field()


class ScheduleCreate(_ScheduleValidators, ScheduleBase):
    @model_validator(mode="after")
    def _targets(self) -> ScheduleCreate:
        check_targets(
            self.target_kind, self.target_site_ids, self.target_flag, self.target_resident_ids
        )
        return self


class ScheduleUpdate(_ScheduleValidators):
    name: str | None = None
    active: bool | None = None
    time_of_day: str | None = None
    weekdays: list[int] | None = None
    target_kind: TargetKind | None = None
    target_site_ids: list[str] | None = None
    target_flag: str | None = None
    target_resident_ids: list[str] | None = None
    plan: list[dict[str, Any]] | None = None
    quiet_start: str | None = None
    quiet_end: str | None = None


class SchedulePublic(ScheduleBase):
    id: uuid.UUID
    next_run_at: datetime | None
    last_run_at: datetime | None


# --- Rounds -------------------------------------------------------------------------------------


class RoundKind(StrEnum):
    scheduled = "scheduled"
    broadcast = "broadcast"
    one_off = "one_off"  # a single resident, from the resident page


class RoundStatus(StrEnum):
    fanning_out = "fanning_out"
    open = "open"
    closed = "closed"


class Round(SQLModel, table=True):
    __tablename__ = "round"
    __table_args__ = (UniqueConstraint("schedule_id", "scheduled_for"),)
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    schedule_id: uuid.UUID | None = Field(
        default=None, foreign_key="schedule.id", ondelete="SET NULL"
    )
    scheduled_for: datetime | None = timestamp_field(nullable=True)
    kind: RoundKind = Field(sa_type=String(12))
    status: RoundStatus = Field(default=RoundStatus.fanning_out, sa_type=String(12))
    cause: str | None = Field(default=None, max_length=300)
    target_kind: TargetKind = Field(default=TargetKind.all, sa_type=String(12))
    target_site_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    target_flag: str | None = Field(default=None, max_length=32)
    target_resident_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    plan: list[dict[str, Any]] = Field(
        default_factory=lambda: list(DEFAULT_PLAN), sa_column=Column(JSON)
    )
    override_quiet_hours: bool = False
    quiet_start: str = Field(default="21:00", max_length=5)
    quiet_end: str = Field(default="08:00", max_length=5)
    started_by: str = Field(max_length=200)
    started_at: datetime = timestamp_field()
    fanned_out_at: datetime | None = timestamp_field(nullable=True)
    skipped_away: int = 0


class RoundStart(SQLModel):
    """A broadcast: check on these sites now. Overriding quiet hours must be said explicitly."""

    site_ids: list[uuid.UUID] = Field(default_factory=list)
    resident_ids: list[uuid.UUID] = Field(default_factory=list)
    override_quiet_hours: bool = False
    plan: list[dict[str, Any]] | None = None
    cause: str | None = Field(default=None, max_length=300)

    @field_validator("plan")
    @classmethod
    def _plan(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if value is None else validate_plan(value)

    @model_validator(mode="after")
    def _one_target(self) -> RoundStart:
        # A round asks chosen sites, or chosen residents; given both, one would be dropped.
        if self.site_ids and self.resident_ids:
            raise TextError(N_("give site_ids or resident_ids, not both"))
        return self


class RoundPublic(SQLModel):
    id: uuid.UUID
    kind: RoundKind
    status: RoundStatus
    cause: str | None
    schedule_id: uuid.UUID | None
    target_kind: TargetKind
    target_site_ids: list[str]
    override_quiet_hours: bool
    started_by: str
    started_at: datetime
    fanned_out_at: datetime | None
    skipped_away: int
    counts: dict[str, int] = {}


# --- Check-ins ----------------------------------------------------------------------------------


class CheckInState(StrEnum):
    waiting = "waiting"  # attempts in progress, no recognisable answer yet
    ok = "ok"  # closed as safe
    needs_help = "needs_help"  # escalated with priority
    wants_talk = "wants_talk"  # a call-back task is open for staff
    no_reply = "no_reply"  # the plan ran out: escalated
    unreachable = "unreachable"  # every channel failed: escalated for a visit
    visit_list = "visit_list"  # could not be contacted at all: straight to a visit
    opted_out = "opted_out"  # replied STOP during the round: visit list too
    superseded = "superseded"  # a newer round took over before anything happened


OPEN_CHECKIN_STATES = {CheckInState.waiting}
ESCALATED_STATES = {
    CheckInState.needs_help,
    CheckInState.no_reply,
    CheckInState.unreachable,
    CheckInState.visit_list,
    CheckInState.opted_out,
}


class CheckIn(SQLModel, table=True):
    __tablename__ = "checkin"
    __table_args__ = (
        UniqueConstraint("round_id", "resident_id"),
        Index("ix_checkin_due", "state", "next_action_at"),
        Index("ix_checkin_resident_state", "resident_id", "state"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    # Looked up through the unique (round_id, resident_id) index: no index of its own.
    round_id: uuid.UUID = Field(foreign_key="round.id")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE")
    state: CheckInState = Field(default=CheckInState.waiting, sa_type=String(12))
    plan: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    step_index: int = 0
    next_action_at: datetime | None = timestamp_field(nullable=True)
    flagged: bool = False  # an unclear reply or a STOP: staff should look
    last_reply_kind: str | None = Field(default=None, max_length=20)
    replied_at: datetime | None = timestamp_field(nullable=True)
    closed_at: datetime | None = timestamp_field(nullable=True)
    escalation_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class AttemptStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    delivered = "delivered"
    failed = "failed"
    ambiguous = "ambiguous"
    answered = "answered"
    no_answer = "no_answer"
    machine = "machine"
    skipped = "skipped"


class Attempt(SQLModel, table=True):
    __tablename__ = "checkin_attempt"
    __table_args__ = (UniqueConstraint("checkin_id", "step_index", "channel"),)
    id: uuid.UUID = id_field()
    # Looked up through the unique (checkin_id, step_index, channel) index.
    checkin_id: uuid.UUID = Field(foreign_key="checkin.id", ondelete="CASCADE")
    step_index: int
    channel: str = Field(max_length=8)
    message: str = Field(default="prompt", max_length=12)
    phone: str = Field(max_length=20)
    status: AttemptStatus = Field(default=AttemptStatus.queued, sa_type=String(12))
    sid: str | None = Field(default=None, max_length=64)
    error_code: int | None = None
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


# --- Staff tasks and the timeline ---------------------------------------------------------------


class TaskKind(StrEnum):
    callback = "callback"  # the resident asked to talk
    unclear = "unclear"  # a reply nobody could read
    opt_out = "opt_out"  # the resident replied STOP
    unknown_sender = "unknown_sender"  # an SMS from a number not in the registry
    late_reply = "late_reply"
    member_message = "member_message"  # a member's words that answer no alert: for staff


class StaffTask(SQLModel, table=True):
    __tablename__ = "staff_task"
    __table_args__ = (Index("ix_task_org_open", "organization_id", "closed_at"),)
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID | None = Field(default=None, foreign_key="organization.id")
    kind: TaskKind = Field(sa_type=String(16))
    resident_id: uuid.UUID | None = Field(
        default=None, foreign_key="resident.id", ondelete="CASCADE"
    )
    checkin_id: uuid.UUID | None = Field(default=None)
    inbound_id: uuid.UUID | None = Field(default=None)
    language: str | None = Field(default=None, max_length=16)
    assigned_member_id: uuid.UUID | None = Field(
        default=None, foreign_key="member.id", ondelete="SET NULL"
    )
    created_at: datetime = timestamp_field()
    closed_at: datetime | None = timestamp_field(nullable=True)
    closed_by: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, sa_type=Text)


class StaffTaskPublic(SQLModel):
    id: uuid.UUID
    kind: TaskKind
    resident_id: uuid.UUID | None
    checkin_id: uuid.UUID | None
    inbound_id: uuid.UUID | None
    language: str | None
    assigned_member_id: uuid.UUID | None
    created_at: datetime
    closed_at: datetime | None
    closed_by: str | None


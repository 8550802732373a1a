"""Escalations: the frozen chain of people who must go and knock on the door."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, text
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field


class EscalationReason(StrEnum):
    needs_help = "needs_help"
    no_reply = "no_reply"
    unreachable = "unreachable"
    visit_list = "visit_list"  # opted out, no usable phone or no consent


REASON_PRIORITY = {
    EscalationReason.needs_help: 0,
    EscalationReason.unreachable: 2,
    EscalationReason.no_reply: 2,
    EscalationReason.visit_list: 3,
}


class EscalationState(StrEnum):
    alerting = "alerting"  # waiting for someone in the current step to acknowledge
    acknowledged = "acknowledged"  # someone said "I'll go"; waiting for the outcome
    exhausted = "exhausted"  # the chain ran out: on staff's list until someone acts
    resolved = "resolved"


class Outcome(StrEnum):
    safe = "safe"
    needs_support = "needs_support"
    hospitalised = "hospitalised"
    moved = "moved"
    not_found = "not_found"


OUTCOME_BY_DIGIT = {
    "1": Outcome.safe,
    "2": Outcome.needs_support,
    "3": Outcome.hospitalised,
    "4": Outcome.moved,
    "5": Outcome.not_found,
}


#: The states of an escalation still on the board (``OPEN_CASE`` in SQL).
OPEN_STATES = (EscalationState.alerting, EscalationState.acknowledged, EscalationState.exhausted)
# An escalation still on the board (``OPEN_STATES``).
OPEN_CASE = text("state IN ('alerting', 'acknowledged', 'exhausted')")


class Escalation(SQLModel, table=True):
    __table_args__ = (
        Index("ix_escalation_due", "state", "next_action_at"),
        Index("ix_escalation_org_state", "organization_id", "state"),
        # A member answers "A7 1": no two open cases of an organization share a code, even
        # when two transactions open cases at once (the second one fails and is retried).
        Index(
            "uq_escalation_open_case_code",
            "organization_id",
            "case_code",
            unique=True,
            sqlite_where=OPEN_CASE,
            postgresql_where=OPEN_CASE,
        ),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE", index=True)
    checkin_id: uuid.UUID | None = Field(default=None)
    reason: EscalationReason = Field(sa_type=String(12))
    priority: int = 2
    state: EscalationState = Field(default=EscalationState.alerting, sa_type=String(12))
    # The chain is frozen when the escalation starts: a list of steps, each a list of
    # recipients {member_id, name, phone, language, kind}.
    chain: list[list[dict[str, Any]]] = Field(default_factory=list, sa_column=Column(JSON))
    step_index: int = 0
    # Stale-job guard: every transition bumps the version; a sweep acts only on the version
    # it read, under the row lock.
    version: int = 0
    ack_minutes: int = 30
    outcome_hours: int = 4
    next_action_at: datetime | None = timestamp_field(nullable=True)
    acknowledged_by: uuid.UUID | None = Field(default=None)
    acknowledged_at: datetime | None = timestamp_field(nullable=True)
    reminded_at: datetime | None = timestamp_field(nullable=True)
    outcome: Outcome | None = Field(default=None, sa_type=String(16))
    outcome_note: str | None = Field(default=None, sa_type=Text)
    resolved_at: datetime | None = timestamp_field(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=200)
    case_code: str = Field(max_length=8)
    cause: str | None = Field(default=None, max_length=300)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class AlertState(StrEnum):
    sent = "sent"
    acknowledged = "acknowledged"
    declined = "declined"
    expired = "expired"  # the step moved on without an answer
    withdrawn = "withdrawn"  # someone else acknowledged, or it was resolved


class Alert(SQLModel, table=True):
    """One alert to one member in one step of an escalation."""

    __table_args__ = (Index("ix_alert_member_state", "member_id", "state"),)
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    escalation_id: uuid.UUID = Field(foreign_key="escalation.id", ondelete="CASCADE", index=True)
    member_id: uuid.UUID = Field(foreign_key="member.id", ondelete="CASCADE")
    step_index: int
    state: AlertState = Field(default=AlertState.sent, sa_type=String(12))
    language: str = Field(default="ja", max_length=16)
    sent_at: datetime = timestamp_field()
    answered_at: datetime | None = timestamp_field(nullable=True)


class EscalationPublic(SQLModel):
    id: uuid.UUID
    resident_id: uuid.UUID
    checkin_id: uuid.UUID | None
    reason: EscalationReason
    priority: int
    state: EscalationState
    step_index: int
    chain_length: int = 0
    case_code: str
    cause: str | None
    acknowledged_by: uuid.UUID | None
    acknowledged_at: datetime | None
    next_action_at: datetime | None
    outcome: Outcome | None
    resolved_at: datetime | None
    resolved_by: str | None
    created_at: datetime


class AcknowledgeRequest(SQLModel):
    member_id: uuid.UUID | None = None
    note: str | None = Field(default=None, max_length=2000)


class ResolveRequest(SQLModel):
    outcome: Outcome
    member_id: uuid.UUID | None = None
    note: str | None = Field(default=None, max_length=4000)


class ReassignRequest(SQLModel):
    member_id: uuid.UUID

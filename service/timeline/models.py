"""The timeline's one table (``timeline_event``) and what the API shows of it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field


class TimelineEvent(SQLModel, table=True):
    """Everything that happened to or for a resident, in order: the resident page's timeline."""

    __tablename__ = "timeline_event"
    __table_args__ = (Index("ix_timeline_resident_at", "resident_id", "at"),)
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE")
    at: datetime = timestamp_field()
    kind: str = Field(max_length=32)
    checkin_id: uuid.UUID | None = None
    escalation_id: uuid.UUID | None = None
    outbox_id: uuid.UUID | None = None
    inbound_id: uuid.UUID | None = None
    member_id: uuid.UUID | None = None
    actor: str | None = Field(default=None, max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class TimelineEventPublic(SQLModel):
    at: datetime
    kind: str
    actor: str | None
    member_id: uuid.UUID | None
    checkin_id: uuid.UUID | None
    escalation_id: uuid.UUID | None
    detail: dict[str, Any]
    delivery_status: str | None = None

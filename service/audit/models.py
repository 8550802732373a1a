"""The audit log: who did what to which record, and when. Never the sensitive values."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_org_entity", "organization_id", "entity_type", "entity_id"),
        Index("ix_audit_org_at", "organization_id", "at"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    at: datetime = timestamp_field()
    actor_user_id: uuid.UUID | None = Field(
        default=None, foreign_key="user.id", ondelete="SET NULL"
    )
    actor: str = Field(max_length=200)
    action: str = Field(max_length=40)
    entity_type: str = Field(max_length=40)
    entity_id: str | None = Field(default=None, max_length=64)
    fields: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class AuditEntryPublic(SQLModel):
    id: uuid.UUID
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str | None
    fields: list[str]
    detail: dict[str, Any]

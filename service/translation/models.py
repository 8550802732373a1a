"""Stored machine translations: residents' replies into Japanese, staff answers out of it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, Text, text
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field


class TranslationKind(StrEnum):
    reply = "reply"  # an inbound SMS (a resident's reply or an inbox item), into Japanese
    answer = "answer"  # a staff answer from the inbox, into the resident's language


class TranslationStatus(StrEnum):
    pending = "pending"  # waiting for the job (next_try_at says when)
    done = "done"
    failed = "failed"  # permanent failure, or retries used up: the note says why
    not_configured = "not_configured"  # no provider: nothing was sent, nothing is shown
    skipped = "skipped"  # not free text (digits, emoji) or already Japanese: nothing sent


class Translation(SQLModel, table=True):
    """One text's translation, or the reason there is none.

    A reply's text stays in ``inbound_message.body`` and is read from there when the job
    sends it; an answer's Japanese original lives only here (``source_text``), and the text
    actually sent is the outbox row's body.
    """

    __tablename__ = "translation"
    __table_args__ = (
        # One translation per inbound message: the job's "not yet seen" test.
        Index(
            "uq_translation_inbound",
            "inbound_id",
            unique=True,
            postgresql_where=text("inbound_id IS NOT NULL"),
            sqlite_where=text("inbound_id IS NOT NULL"),
        ),
        # Partial: the job reads only what is pending, and nearly nothing is, most of the time.
        Index(
            "ix_translation_due",
            "next_try_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_translation_outbox",
            "outbox_id",
            postgresql_where=text("outbox_id IS NOT NULL"),
            sqlite_where=text("outbox_id IS NOT NULL"),
        ),
    )
    id: uuid.UUID = id_field()
    # NULL only for a message from an unknown number no single organization owns yet.
    organization_id: uuid.UUID | None = Field(default=None, foreign_key="organization.id")
    kind: TranslationKind = Field(sa_type=String(8))
    inbound_id: uuid.UUID | None = Field(
        default=None, foreign_key="inbound_message.id", ondelete="CASCADE"
    )
    task_id: uuid.UUID | None = Field(
        default=None, foreign_key="staff_task.id", ondelete="SET NULL"
    )
    outbox_id: uuid.UUID | None = Field(default=None, foreign_key="outbox.id", ondelete="SET NULL")
    source_text: str | None = Field(default=None, sa_type=Text)
    # The provider's code for the language it found in the original, lower case ("vi").
    detected_language: str | None = Field(default=None, max_length=16)
    target_language: str = Field(max_length=16)
    translated_text: str | None = Field(default=None, sa_type=Text)
    provider: str | None = Field(default=None, max_length=16)
    status: TranslationStatus = Field(default=TranslationStatus.pending, sa_type=String(16))
    error: str | None = Field(default=None, max_length=500)
    tries: int = 0
    next_try_at: datetime = timestamp_field()
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    translated_at: datetime | None = timestamp_field(nullable=True)


class TranslationPublic(SQLModel):
    """What the API and the pages show: the translation, never the original (the caller
    has that already)."""

    id: uuid.UUID
    kind: TranslationKind
    inbound_id: uuid.UUID | None
    task_id: uuid.UUID | None
    outbox_id: uuid.UUID | None
    detected_language: str | None
    target_language: str
    translated_text: str | None
    provider: str | None
    status: TranslationStatus
    error: str | None
    translated_at: datetime | None

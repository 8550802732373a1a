"""Announcements: a notice staff write in Japanese, sent to chosen sites in each resident's
language (issue 21, item 4).

Three tables. ``announcement`` holds the Japanese original, the sites it is for and who
wrote and sent it; ``announcement_text`` one text per language, drafted by a translator or
typed by staff, and confirmed by staff before anything is sent; ``announcement_delivery``
one row per resident it was sent to, tying the resident to their outbox message.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.common import StrictBody, id_field, timestamp_field


class AnnouncementStatus(StrEnum):
    draft = "draft"  # being translated and confirmed
    sent = "sent"  # its messages are in the outbox (``send_at`` says from when)


class TextOrigin(StrEnum):
    source = "source"  # the Japanese original itself
    machine = "machine"  # drafted by the translation provider, unchanged
    staff = "staff"  # typed, or a machine draft corrected, by staff
    fallback = "fallback"  # staff chose to send another language's text (``fallback``)


class Announcement(SQLModel, table=True):
    __tablename__ = "announcement"
    __table_args__ = (Index("ix_announcement_org_created", "organization_id", "created_at"),)
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    source_text: str = Field(sa_type=Text)
    # The sites it is for; empty for everyone in the organization.
    site_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: AnnouncementStatus = Field(default=AnnouncementStatus.draft, sa_type=String(8))
    written_by: str = Field(max_length=200)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    sent_by: str | None = Field(default=None, max_length=200)
    sent_at: datetime | None = timestamp_field(nullable=True)
    # When its messages may leave: ``sent_at``, or the end of quiet hours.
    send_at: datetime | None = timestamp_field(nullable=True)
    override_quiet_hours: bool = False
    recipients: int = 0
    segments: int = 0


class AnnouncementText(SQLModel, table=True):
    __tablename__ = "announcement_text"
    __table_args__ = (UniqueConstraint("announcement_id", "language"),)
    id: uuid.UUID = id_field()
    announcement_id: uuid.UUID = Field(foreign_key="announcement.id", ondelete="CASCADE")
    language: str = Field(max_length=16)
    text: str | None = Field(default=None, sa_type=Text)
    origin: TextOrigin = Field(default=TextOrigin.staff, sa_type=String(8))
    # The language whose text is sent instead (``ja`` or ``easy_ja``), chosen by staff.
    fallback: str | None = Field(default=None, max_length=16)
    provider: str | None = Field(default=None, max_length=16)
    # Why the translator gave no draft ("DeepL cannot translate into Khmer").
    error: str | None = Field(default=None, max_length=500)
    confirmed_by: str | None = Field(default=None, max_length=200)
    confirmed_at: datetime | None = timestamp_field(nullable=True)
    updated_at: datetime = timestamp_field()


class AnnouncementDelivery(SQLModel, table=True):
    __tablename__ = "announcement_delivery"
    __table_args__ = (UniqueConstraint("announcement_id", "resident_id"),)
    id: uuid.UUID = id_field()
    announcement_id: uuid.UUID = Field(foreign_key="announcement.id", ondelete="CASCADE")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE", index=True)
    outbox_id: uuid.UUID = Field(foreign_key="outbox.id")
    language: str = Field(max_length=16)


# --- What the API takes and gives -------------------------------------------------------


class AnnouncementCreate(StrictBody):
    """The Japanese text, and the sites it is for (none: everyone)."""

    text: str
    site_ids: list[uuid.UUID] = Field(default_factory=list)


class TextEdit(StrictBody):
    """A language's text as staff want it sent (a corrected draft, or typed)."""

    text: str


class TextConfirm(StrictBody):
    """Confirm the text staff read. ``text`` is what they saw: if it is no longer the
    stored one (someone edited it meanwhile), nothing is confirmed."""

    text: str | None = None
    fallback: str | None = None


class SendRequest(StrictBody):
    """``segments``: the total staff were shown; if the cost changed since, nothing is sent."""

    override_quiet_hours: bool = False
    segments: int | None = None


class AnnouncementTextPublic(SQLModel):
    language: str
    text: str | None
    origin: TextOrigin
    fallback: str | None
    provider: str | None
    error: str | None
    confirmed_by: str | None
    confirmed_at: datetime | None


class CostLinePublic(SQLModel):
    language: str
    recipients: int
    encoding: str
    segments_each: int
    segments: int
    confirmed: bool


class PreviewPublic(SQLModel):
    recipients: int
    segments: int
    languages: list[CostLinePublic]
    missing: list[str]
    unconfirmed: list[str]
    skipped: dict[str, int]
    quiet_now: bool
    send_at: datetime
    ready: bool


class AnnouncementPublic(SQLModel):
    id: uuid.UUID
    source_text: str
    site_ids: list[str]
    status: AnnouncementStatus
    written_by: str
    created_at: datetime
    sent_by: str | None
    sent_at: datetime | None
    send_at: datetime | None
    override_quiet_hours: bool
    recipients: int
    segments: int
    texts: list[AnnouncementTextPublic] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    preview: PreviewPublic | None = None


def public(
    announcement: Announcement,
    texts: list[AnnouncementText],
    *,
    warnings: list[str] | None = None,
    preview: dict[str, Any] | None = None,
) -> AnnouncementPublic:
    data = AnnouncementPublic.model_validate(announcement, update={"texts": [], "warnings": []})
    data.texts = [AnnouncementTextPublic.model_validate(t) for t in texts]
    data.warnings = list(warnings or [])
    data.preview = PreviewPublic.model_validate(preview) if preview is not None else None
    return data

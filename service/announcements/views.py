"""Announcements under /api/v1: compose, drafts, edit and confirm per language, preview
the cost, send. Thin routes over ``service.announcements.commands``, which the dashboard
calls too."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from sqlmodel import Session

from service.announcements import commands
from service.announcements.models import (
    AnnouncementCreate,
    AnnouncementPublic,
    AnnouncementTextPublic,
    PreviewPublic,
    SendRequest,
    TextConfirm,
    TextEdit,
    public,
)
from service.auth.deps import Coordinator, CurrentUser, actor_for
from service.clock import get_clock
from service.db import SessionDep
from service.translation.deps import TranslatorDep

router = APIRouter(prefix="/announcements", tags=["announcements"])


def _public(
    session: Session, organization_id: uuid.UUID, announcement_id: uuid.UUID
) -> AnnouncementPublic:
    row = commands.load(session, organization_id=organization_id, announcement_id=announcement_id)
    texts = commands.texts_of(session, row.id)
    return public(row, texts, warnings=commands.warnings_for(row.source_text))


@router.get("", response_model=list[AnnouncementPublic])
def list_announcements(
    session: SessionDep, user: CurrentUser, limit: int = Query(50, ge=1, le=200)
) -> list[AnnouncementPublic]:
    """The organization's latest announcements, newest first (without their texts)."""
    rows = commands.list_announcements(session, organization_id=user.organization_id, limit=limit)
    return [public(row, []) for row in rows]


@router.post("", response_model=AnnouncementPublic, status_code=201)
def compose(
    session: SessionDep, user: Coordinator, translator: TranslatorDep, data: AnnouncementCreate
) -> AnnouncementPublic:
    """Write a notice in Japanese for the chosen sites (none: everyone). Drafts in the
    recipients' languages come back from the translator, if one is configured, for staff
    to check and confirm; ``warnings`` names what to look at again (``phone_number``)."""
    row = commands.compose(
        session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        text=data.text,
        site_ids=data.site_ids,
        translator=translator,
        now=get_clock().now(),
    )
    session.commit()
    return _public(session, user.organization_id, row.id)


@router.get("/{announcement_id}", response_model=AnnouncementPublic)
def get_announcement(
    session: SessionDep, user: CurrentUser, announcement_id: uuid.UUID
) -> AnnouncementPublic:
    return _public(session, user.organization_id, announcement_id)


@router.post("/{announcement_id}/drafts", response_model=AnnouncementPublic)
def draft_missing(
    session: SessionDep, user: Coordinator, translator: TranslatorDep, announcement_id: uuid.UUID
) -> AnnouncementPublic:
    """Drafts for recipients' languages that have no text yet (residents added since)."""
    commands.draft_missing(
        session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        announcement_id=announcement_id,
        translator=translator,
        now=get_clock().now(),
    )
    session.commit()
    return _public(session, user.organization_id, announcement_id)


@router.put("/{announcement_id}/texts/{language}", response_model=AnnouncementTextPublic)
def edit_text(
    session: SessionDep,
    user: Coordinator,
    announcement_id: uuid.UUID,
    language: str,
    data: TextEdit,
) -> AnnouncementTextPublic:
    """Staff's text for a language (typed, or a draft corrected); it needs confirming."""
    row = commands.edit_text(
        session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        announcement_id=announcement_id,
        language=language,
        text=data.text,
        now=get_clock().now(),
    )
    session.commit()
    return AnnouncementTextPublic.model_validate(row)


@router.post("/{announcement_id}/texts/{language}/confirm", response_model=AnnouncementTextPublic)
def confirm_text(
    session: SessionDep,
    user: Coordinator,
    announcement_id: uuid.UUID,
    language: str,
    data: TextConfirm,
) -> AnnouncementTextPublic:
    """Confirm a language's text as read (``text``), or send its readers Japanese or
    Easy Japanese instead (``fallback``)."""
    row = commands.confirm_text(
        session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        announcement_id=announcement_id,
        language=language,
        text=data.text,
        fallback=data.fallback,
        now=get_clock().now(),
    )
    session.commit()
    return AnnouncementTextPublic.model_validate(row)


@router.get("/{announcement_id}/preview", response_model=PreviewPublic)
def preview(
    session: SessionDep,
    user: CurrentUser,
    announcement_id: uuid.UUID,
    override_quiet_hours: bool = False,
) -> PreviewPublic:
    """Recipients and SMS segments per language and in total, languages still missing or
    unconfirmed, residents skipped by reason, and when it would leave (quiet hours)."""
    data = commands.preview(
        session,
        organization_id=user.organization_id,
        announcement_id=announcement_id,
        now=get_clock().now(),
        override_quiet_hours=override_quiet_hours,
    )
    return PreviewPublic.model_validate(data)


@router.post("/{announcement_id}/send", response_model=AnnouncementPublic)
def send(
    session: SessionDep, user: Coordinator, announcement_id: uuid.UUID, data: SendRequest
) -> AnnouncementPublic:
    """One SMS per recipient, in their language, through the outbox. Inside quiet hours
    it waits for their end unless ``override_quiet_hours``; ``segments`` is the total the
    caller was shown, and a different cost now refuses the send (409)."""
    row = commands.send(
        session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        announcement_id=announcement_id,
        now=get_clock().now(),
        override_quiet_hours=data.override_quiet_hours,
        segments=data.segments,
    )
    session.commit()
    return _public(session, user.organization_id, row.id)

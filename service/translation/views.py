"""Translations and translated staff answers under /api/v1, for everything the inbox does.

The dashboard calls the same commands (``service.translation.answers``); neither calls the
other's routes.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlmodel import SQLModel

from service.auth.deps import Coordinator, CurrentUser, actor_for
from service.clock import get_clock
from service.db import SessionDep
from service.errors import NotFound
from service.texts import N_
from service.translation import answers
from service.translation import service as translations
from service.translation.deps import TranslatorDep
from service.translation.models import TranslationPublic

router = APIRouter(tags=["tasks"])


class AnswerDraftRequest(SQLModel):
    """What staff wrote, in Japanese."""

    text: str


class AnswerDraftPublic(SQLModel):
    draft: TranslationPublic
    language: str
    source_text: str | None


class AnswerSend(SQLModel):
    """Either ``body`` (the text to send, in the resident's language: usually a draft's
    translation, checked and perhaps corrected) or ``ready`` (a ready-made answer's id,
    e.g. ``resident.answer.call_soon``)."""

    body: str | None = None
    ready: str | None = None
    draft_id: uuid.UUID | None = None


class AnswerSent(SQLModel):
    outbox_id: uuid.UUID
    language: str
    body: str


@router.post("/tasks/{task_id}/answer/draft", response_model=AnswerDraftPublic)
def draft_answer(
    session: SessionDep,
    user: Coordinator,
    translator: TranslatorDep,
    task_id: uuid.UUID,
    data: AnswerDraftRequest,
) -> AnswerDraftPublic:
    """Translate an answer into the resident's language, for checking before it is sent.
    ``draft.status`` is done, failed (see ``error``), not_configured or skipped (the
    resident reads Japanese)."""
    row = answers.draft_answer(
        session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        task_id=task_id,
        text=data.text,
        translator=translator,
        now=get_clock().now(),
    )
    session.commit()
    return AnswerDraftPublic(
        draft=TranslationPublic.model_validate(row),
        language=row.target_language,
        source_text=row.source_text,
    )


@router.post("/tasks/{task_id}/answer", response_model=AnswerSent, status_code=201)
def send_answer(
    session: SessionDep, user: Coordinator, task_id: uuid.UUID, data: AnswerSend
) -> AnswerSent:
    """Send the answer by SMS, through the outbox, in the resident's language."""
    message = answers.send_answer(
        session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        task_id=task_id,
        now=get_clock().now(),
        body=data.body,
        ready=data.ready,
        draft_id=data.draft_id,
    )
    session.commit()
    return AnswerSent(outbox_id=message.id, language=message.locale, body=message.body or "")


@router.get("/inbound/{inbound_id}/translation", response_model=TranslationPublic)
def inbound_translation(
    session: SessionDep, user: CurrentUser, inbound_id: uuid.UUID
) -> TranslationPublic:
    """The stored Japanese translation of one inbound message of the caller's organization."""
    found = translations.for_inbound(
        session, organization_id=user.organization_id, inbound_ids=[inbound_id]
    ).get(inbound_id)
    if found is None:
        raise NotFound(N_("no translation for this message"))
    return TranslationPublic.model_validate(found)

"""The inbox: messages nobody could read, unknown senders, residents who want to talk.

Each message is shown as it was written, with its Japanese translation when a translator
is configured (and the language it was written in, when that is not the registry's).
Answers go out in the resident's language, in two steps: staff write Japanese, check the
translation (and may correct it), then send. Without a translator staff write in the
resident's language themselves, or pick a ready-made answer from the resident catalogs.
The commands are ``service.translation.answers``, the same the API calls.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from babel import Locale, UnknownLocaleError
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlmodel import Session

from i18n.languages import get_language
from i18n.messages import READY_ANSWER_IDS
from i18n.render import render
from service.audit.service import record
from service.auth.deps import actor_for
from service.checkins import commands, routing
from service.checkins.models import StaffTask
from service.clock import get_clock
from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.escalations import service as escalations
from service.registry import service as registry
from service.registry.models import Member, Resident
from service.telephony.models import InboundMessage
from service.translation import answers
from service.translation import service as translations
from service.translation.deps import TranslatorDep
from service.translation.languages import WRITTEN_BY_STAFF, base_language
from service.web.core import (
    ActingStaff,
    CsrfChecked,
    Staff,
    StaffDep,
    environment,
    flash,
    render_page,
    ui_language,
)
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form()]
INBOX = "/inbox"

#: The dashboard's wording for each reason an answer cannot be drafted or sent.
ANSWER_ERRORS: dict[str, str] = {
    "empty": N_("Write the answer first."),
    "too_long": N_("The answer is too long for an SMS (at most 1,000 characters)."),
    "no_number": N_("There is no mobile number to answer to."),
    "unknown_ready": N_("Choose one of the ready-made answers."),
    "stale_draft": N_("That translation was already sent or belongs to another message."),
}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- Showing translations ---------------------------------------------------------------------


def detected_language_name(code: str | None, ui_language: str) -> str:
    """A provider's language code ("vi", "zh-TW", "tl") named in the staff's language."""
    base = base_language(code)
    if not base:
        return ""
    try:
        names = Locale.parse(ui_language).languages
    except (UnknownLocaleError, ValueError):
        return base
    return names.get(base) or (code or base)


environment.globals["detected_language_name"] = detected_language_name


# --- The inbox page ---------------------------------------------------------------------------


def _members_by_id(session: Session, staff: Staff) -> dict[uuid.UUID, Member]:
    members, _count = registry.list_members(
        session=session, organization_id=staff.organization_id, limit=500
    )
    return {m.id: m for m in members}


def _ready_answers(session: Session, staff: Staff, language: str) -> list[dict[str, str]]:
    """Each ready-made answer in the recipient's language, with the Japanese beside it."""
    return [
        {
            "id": message_id,
            "text": answers.ready_answer_text(
                session,
                organization_id=staff.organization_id,
                message_id=message_id,
                language=language,
            ),
            "ja": render(message_id, "ja", org=staff.org.name),
        }
        for message_id in READY_ANSWER_IDS
    ]


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(
    request: Request, session: SessionDep, staff: StaffDep, translator: TranslatorDep
) -> HTMLResponse:
    tasks = list(
        session.execute(
            select(StaffTask)
            .where(
                routing.unrouted_tasks_filter(staff.organization_id),  # type: ignore[arg-type]
                StaffTask.closed_at.is_(None),  # type: ignore[union-attr]
            )
            .order_by(StaffTask.created_at)
            .limit(500)
        ).scalars()
    )
    inbound_ids = [t.inbound_id for t in tasks if t.inbound_id]
    resident_ids = [t.resident_id for t in tasks if t.resident_id]
    inbound = {
        m.id: m
        for m in session.execute(
            select(InboundMessage).where(InboundMessage.id.in_(inbound_ids))  # type: ignore[attr-defined]
        ).scalars()
    }
    residents = {
        r.id: r
        for r in session.execute(
            select(Resident).where(Resident.id.in_(resident_ids))  # type: ignore[attr-defined]
        ).scalars()
    }
    # A stranger's cry for help ("助けて", "倒れました") first, then the oldest.
    urgent = {
        t.id
        for t in tasks
        if t.inbound_id in inbound and routing.is_urgent(inbound[t.inbound_id].classification)
    }
    tasks.sort(key=lambda t: t.id not in urgent)
    stored = translations.for_inbound(
        session, organization_id=staff.organization_id, inbound_ids=inbound_ids
    )
    shown: dict[uuid.UUID, dict[str, Any] | None] = {}
    answer_languages: dict[uuid.UUID, str] = {}
    ready: dict[str, list[dict[str, str]]] = {}
    for task in tasks:
        person = residents.get(task.resident_id) if task.resident_id else None
        registered = person.language if person is not None else task.language
        if task.inbound_id:
            shown[task.id] = translations.display(stored.get(task.inbound_id), registered)
        found = stored.get(task.inbound_id) if task.inbound_id else None
        language = answers.answer_language(
            person.language if person is not None else None,
            task.language,
            found.detected_language if found is not None else None,
        )
        answer_languages[task.id] = language
        if language not in ready:
            ready[language] = _ready_answers(session, staff, language)
    return render_page(
        request,
        "inbox.html",
        staff=staff,
        tasks=tasks,
        inbound=inbound,
        residents=residents,
        members=_members_by_id(session, staff),
        translations=shown,
        answer_languages=answer_languages,
        ready_answers=ready,
        written_by_staff=WRITTEN_BY_STAFF,
        translator_on=translator is not None,
        urgent=urgent,
    )


def _task(session: Session, staff: Staff, task_id: uuid.UUID) -> StaffTask | None:
    task = session.get(StaffTask, task_id)
    if task is None or task.organization_id != staff.organization_id:
        return None
    return task


@router.post("/inbox/{task_id}/link", dependencies=[CsrfChecked])
def link_task(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    task_id: uuid.UUID,
    resident: FormStr = "",
) -> RedirectResponse:
    """Say whose message it was: it then shows on that resident's timeline."""
    task = _task(session, staff, task_id)
    if task is None:
        flash(request, "error", N_("That item is no longer in the inbox."))
        return _see_other(INBOX)
    matches, count = registry.list_residents(
        session=session, organization_id=staff.organization_id, q=resident or None, limit=2
    )
    if not resident.strip() or count != 1:
        flash(
            request,
            "error",
            N_("%(count)s residents match; give the ID (管理番号) or the phone number."),
            count=str(count if resident.strip() else 0),
        )
        return _see_other(INBOX)
    found = matches[0]
    actor = actor_for(staff.user)
    now = get_clock().now()
    task.resident_id = found.id
    session.add(task)
    if task.inbound_id:
        message = session.get(InboundMessage, task.inbound_id)
        if message is not None:
            message.resident_id = found.id
            message.organization_id = staff.organization_id
            session.add(message)
    escalations.timeline(
        session,
        resident_id=found.id,
        organization_id=staff.organization_id,
        kind="inbox.linked",
        at=now,
        inbound_id=task.inbound_id,
        actor=actor.label,
    )
    record(
        session=session,
        organization_id=staff.organization_id,
        actor=actor,
        action="link",
        entity_type="task",
        entity_id=task.id,
        detail={"resident_id": str(found.id)},
    )
    session.commit()
    flash(request, "ok", N_("Linked to %(name)s."), name=found.name)
    return _see_other(INBOX)


@router.post("/inbox/{task_id}/claim", dependencies=[CsrfChecked])
def claim_task(
    request: Request, session: SessionDep, staff: ActingStaff, task_id: uuid.UUID
) -> RedirectResponse:
    """Take an unrouted message for this organization (``routing.claim``, which the API's
    ``POST /api/v1/tasks/{id}/claim`` calls too): it leaves every other inbox."""
    try:
        routing.claim(
            session,
            organization_id=staff.organization_id,
            task_id=task_id,
            actor=actor_for(staff.user),
            now=get_clock().now(),
        )
    except NotFound:
        session.rollback()
        flash(request, "error", N_("That item is no longer in the inbox."))
        return _see_other(INBOX)
    except DomainError:
        session.rollback()
        flash(request, "error", N_("Another organization has already claimed this message."))
        return _see_other(INBOX)
    session.commit()
    flash(request, "ok", N_("Claimed: the message is now your organization's."))
    return _see_other(INBOX)


# --- Answering --------------------------------------------------------------------------------


def _answer_error(request: Request, error: DomainError) -> RedirectResponse:
    code = getattr(error, "code", None)
    if isinstance(error, NotFound):
        flash(request, "error", N_("That item is no longer in the inbox."))
    elif code in ANSWER_ERRORS:
        flash(request, "error", ANSWER_ERRORS[code])
    else:
        reason = error.text.render(ui_language(request))
        flash(request, "error", N_("Not saved: %(reason)s"), reason=reason)
    return _see_other(INBOX)


@router.post("/inbox/{task_id}/answer/preview", dependencies=[CsrfChecked])
def preview_answer(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    translator: TranslatorDep,
    task_id: uuid.UUID,
    text: FormStr = "",
) -> Any:
    """Step one: translate what staff wrote in Japanese and show it, editable, for sending."""
    try:
        draft = answers.draft_answer(
            session,
            organization_id=staff.organization_id,
            actor=actor_for(staff.user),
            task_id=task_id,
            text=text,
            translator=translator,
            now=get_clock().now(),
        )
    except DomainError as error:
        session.rollback()
        return _answer_error(request, error)
    session.commit()
    task = _task(session, staff, task_id)
    assert task is not None
    message = session.get(InboundMessage, task.inbound_id) if task.inbound_id else None
    language = draft.target_language
    return render_page(
        request,
        "inbox_answer.html",
        staff=staff,
        task=task,
        message=message,
        draft=draft,
        language=language,
        language_known=get_language(language) is not None,
        ready_answers=_ready_answers(session, staff, language),
    )


@router.post("/inbox/{task_id}/answer", dependencies=[CsrfChecked])
def answer_task(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    task_id: uuid.UUID,
    body: FormStr = "",
    ready: FormStr = "",
    draft: FormStr = "",
) -> RedirectResponse:
    """Step two (or the only step without a translator): send the text in the resident's
    language, or a ready-made answer, through the outbox like every other message."""
    try:
        draft_id = uuid.UUID(draft) if draft else None
    except ValueError:
        draft_id = None
    try:
        answers.send_answer(
            session,
            organization_id=staff.organization_id,
            actor=actor_for(staff.user),
            task_id=task_id,
            now=get_clock().now(),
            body=body,
            ready=ready or None,
            draft_id=draft_id,
        )
    except DomainError as error:
        session.rollback()
        return _answer_error(request, error)
    session.commit()
    flash(request, "ok", N_("The answer is on its way."))
    return _see_other(INBOX)


@router.post("/inbox/{task_id}/close", dependencies=[CsrfChecked])
def close_task(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    task_id: uuid.UUID,
    note: FormStr = "",
) -> RedirectResponse:
    task = _task(session, staff, task_id)
    if task is None:
        flash(request, "error", N_("That item is no longer in the inbox."))
        return _see_other(INBOX)
    if task.inbound_id:
        message = session.get(InboundMessage, task.inbound_id)
        if message is not None and message.needs_staff:
            message.needs_staff = False  # handled: it no longer counts as unanswered
            session.add(message)
    try:
        commands.close_task(
            session=session,
            user=staff.user,
            task_id=task_id,
            data=commands.CloseTask(note=note.strip() or None),
        )
    except DomainError as error:
        session.rollback()
        reason = error.text.render(ui_language(request))
        flash(request, "error", N_("Not saved: %(reason)s"), reason=reason)
        return _see_other(INBOX)
    flash(request, "ok", N_("Closed."))
    return _see_other(INBOX)

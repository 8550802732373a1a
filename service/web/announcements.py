"""The announcements screens: write a notice in Japanese, check and confirm each language,
see the cost, send. Every step calls ``service.announcements.commands``, as the API does."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.announcements import commands
from service.auth.deps import actor_for
from service.clock import get_clock
from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.registry import service as registry
from service.translation.deps import TranslatorDep
from service.web.core import ActingStaff, CsrfChecked, StaffDep, flash, render_page, ui_language
from service.web.translation import N_

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]
HOME = "/announcements"

#: Why a resident gets no announcement, as the screen says it.
SKIP_REASONS: dict[str, str] = {
    "away_or_moved": N_("Away or moved out"),
    "opted_out": N_("Stopped messages (STOP)"),
    "no_consent": N_("No consent recorded"),
    "no_phone": N_("No phone number"),
    "no_mobile": N_("No mobile number for SMS"),
}
ORIGINS: dict[str, str] = {
    "source": N_("Original"),
    "machine": N_("Machine translation"),
    "staff": N_("Written by staff"),
    "fallback": N_("Sent in another language"),
}
WARNINGS: dict[str, str] = {
    "phone_number": N_(
        "The notice seems to contain a phone number. Make sure it is not a resident's."
    ),
}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _refused(request: Request, error: DomainError, url: str) -> RedirectResponse:
    if isinstance(error, NotFound):
        flash(request, "error", N_("That announcement does not exist."))
        return _see_other(HOME)
    reason = error.text.render(ui_language(request))
    flash(request, "error", N_("Not saved: %(reason)s"), reason=reason)
    return _see_other(url)


@router.get("/announcements", response_class=HTMLResponse)
def announcements_page(request: Request, session: SessionDep, staff: StaffDep) -> HTMLResponse:
    rows = commands.list_announcements(session, organization_id=staff.organization_id)
    sites = registry.list_sites(session=session, organization_id=staff.organization_id)
    return render_page(
        request,
        "announcements.html",
        staff=staff,
        announcements=rows,
        sites=sites,
        site_names={str(site.id): site.name for site in sites},
    )


@router.post("/announcements", dependencies=[CsrfChecked])
async def compose(
    request: Request, session: SessionDep, staff: ActingStaff, translator: TranslatorDep
) -> Response:
    form = await request.form()
    text = str(form.get("text") or "")
    try:
        site_ids = [uuid.UUID(str(value)) for value in form.getlist("site_ids")]
    except ValueError:
        site_ids = [uuid.UUID(int=0)]  # refused as "no such site" below
    try:
        row = commands.compose(
            session,
            organization_id=staff.organization_id,
            actor=actor_for(staff.user),
            text=text,
            site_ids=site_ids,
            translator=translator,
            now=get_clock().now(),
        )
    except DomainError as error:
        session.rollback()
        return _refused(request, error, HOME)
    session.commit()
    return _see_other(f"{HOME}/{row.id}")


@router.get("/announcements/{announcement_id}", response_class=HTMLResponse)
def announcement_page(
    request: Request,
    session: SessionDep,
    staff: StaffDep,
    announcement_id: uuid.UUID,
    override: int = 0,
) -> Response:
    org_id = staff.organization_id
    try:
        row = commands.load(session, organization_id=org_id, announcement_id=announcement_id)
    except NotFound as error:
        return _refused(request, error, HOME)
    preview = commands.preview(
        session,
        organization_id=org_id,
        announcement_id=row.id,
        now=get_clock().now(),
        override_quiet_hours=bool(override),
    )
    sites = registry.list_sites(session=session, organization_id=org_id)
    texts = {text.language: text for text in commands.texts_of(session, row.id)}
    languages = sorted(set(texts) | set(preview["missing"]), key=lambda c: (c != "ja", c))
    return render_page(
        request,
        "announcement.html",
        staff=staff,
        announcement=row,
        texts=[(language, texts.get(language)) for language in languages],
        preview=preview,
        override=bool(override),
        warnings=[WARNINGS[code] for code in commands.warnings_for(row.source_text)],
        site_names=[site.name for site in sites if str(site.id) in row.site_ids],
        skip_reasons=SKIP_REASONS,
        origins=ORIGINS,
    )


@router.post("/announcements/{announcement_id}/texts/{language}", dependencies=[CsrfChecked])
def save_text(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    announcement_id: uuid.UUID,
    language: str,
    action: FormStr = "confirm",
    text: FormStr = "",
    shown: FormStr = "",
    fallback: FormStr = "",
) -> Response:
    """``save`` stores the text as typed; ``confirm`` stores it if changed, then confirms
    what is stored; ``fallback`` sends this language's readers Japanese or Easy Japanese."""
    url = f"{HOME}/{announcement_id}#lang-{language}"
    common = {
        "organization_id": staff.organization_id,
        "actor": actor_for(staff.user),
        "announcement_id": announcement_id,
        "language": language,
        "now": get_clock().now(),
    }
    try:
        if action == "fallback":
            commands.confirm_text(session, fallback=fallback, **common)
        else:
            if text.strip() != shown.strip() or action == "save":
                commands.edit_text(session, text=text, **common)
            if action == "confirm":
                commands.confirm_text(session, text=text, **common)
    except DomainError as error:
        session.rollback()
        return _refused(request, error, url)
    session.commit()
    flash(request, "ok", N_("Saved.") if action == "save" else N_("Confirmed."))
    return _see_other(url)


@router.post("/announcements/{announcement_id}/send", dependencies=[CsrfChecked])
def send(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    announcement_id: uuid.UUID,
    segments: FormStr = "",
    override_quiet_hours: FormStr = "",
) -> Response:
    url = f"{HOME}/{announcement_id}"
    try:
        row = commands.send(
            session,
            organization_id=staff.organization_id,
            actor=actor_for(staff.user),
            announcement_id=announcement_id,
            now=get_clock().now(),
            override_quiet_hours=bool(override_quiet_hours),
            segments=int(segments) if segments.isdigit() else None,
        )
    except DomainError as error:
        session.rollback()
        return _refused(request, error, url)
    session.commit()
    flash(request, "ok", N_("Sent to %(count)s residents."), count=str(row.recipients))
    return _see_other(url)

"""Partnerships and referrals on the dashboard (issue 21).

The screens call the same commands as the API (``service.partners.service`` and
``service.referrals.service``): a refused step is a flashed, translated reason and nothing
is saved; a referral or partnership of another organization is the ordinary 404 page.
The partner's page shows only the copy the referral carries (``Referral.shared``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, select

from i18n.languages import LANGUAGES
from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.partners import service as partners
from service.referrals import service as referrals
from service.referrals.models import (
    ConsentCreate,
    ReferralAnswer,
    ReferralCreate,
    ReferralOutcome,
    SourceKind,
)
from service.registry.models import Organization, Resident
from service.web.core import (
    ActingStaff,
    CsrfChecked,
    Staff,
    StaffDep,
    flash,
    render_page,
    ui_language,
)
from service.web.registry_screens import not_found, parse_uuid, see_other
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form()]
PARTNERS = "/partners"
REFERRALS = "/referrals"

REASONS: dict[str, str] = {
    "language_support": N_("Language support"),
    "daily_life": N_("Daily life"),
    "health_care": N_("Health care"),
    "housing": N_("Housing"),
    "work": N_("Work"),
    "money": N_("Money"),
    "safety": N_("Safety"),
    "isolation": N_("Isolation"),
    "other": N_("Other"),
}
STATUSES: dict[str, str] = {
    "invited": N_("Invited"),
    "active": N_("Active"),
    "declined": N_("Declined"),
    "ended": N_("Ended"),
    "sent": N_("Waiting for the partner"),
    "accepted": N_("Accepted"),
    "closed": N_("Closed"),
}
OUTCOMES: dict[str, str] = {
    "helped": N_("Helped"),
    "referred_on": N_("Referred on"),
    "not_reached": N_("Could not reach"),
    "not_needed": N_("No longer needed"),
    "other": N_("Other"),
}
METHODS: dict[str, str] = {
    "verbal_phone": N_("Said so on the phone"),
    "verbal_in_person": N_("Said so in person"),
    "written": N_("Signed in writing"),
}
SOURCES: dict[str, str] = {
    "case": N_("Case"),
    "callback": N_("Call-back"),
    "inbox": N_("Inbox item"),
}
WORDS = {
    "reasons": REASONS,
    "statuses": STATUSES,
    "outcomes": OUTCOMES,
    "methods": METHODS,
    "sources": SOURCES,
}


def _refused(request: Request, staff: Staff, error: DomainError, url: str) -> Response:
    if isinstance(error, NotFound):
        return not_found(request, staff)
    flash(
        request,
        "error",
        N_("Not saved: %(reason)s"),
        reason=error.text.render(ui_language(request)),
    )
    return see_other(url)


def _invalid_form(request: Request, error: ValidationError, url: str) -> Response:
    """A form value the request models refuse: each named, in the staff's language."""
    from service.validation_text import localized_errors

    for item in localized_errors(list(error.errors()), ui_language(request)):
        field = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        flash(request, "error", N_("Not saved: %(reason)s"), reason=f"{field}: {item['msg']}")
    return see_other(url)


# --- Partnerships ------------------------------------------------------------------------------


@router.get("/partners", response_class=HTMLResponse)
def partners_page(request: Request, session: SessionDep, staff: StaffDep) -> HTMLResponse:
    org_id = staff.organization_id
    rows = partners.list_partnerships(session, org_id)
    names = {row.id: referrals.org_name(session, row.other_side(org_id)) for row in rows}
    return render_page(
        request,
        "partners.html",
        staff=staff,
        here="partners",
        rows=rows,
        names=names,
        words=WORDS,
        is_admin=staff.user.role == "admin",
    )


@router.post("/partners/invite", dependencies=[CsrfChecked])
def invite_partner(
    request: Request, session: SessionDep, staff: ActingStaff, organization_name: FormStr = ""
) -> Response:
    name = organization_name.strip()
    org = session.exec(select(Organization).where(Organization.name == name)).first()
    if not name or org is None:
        flash(request, "error", N_("No organization of that exact name on this installation."))
        return see_other(PARTNERS)
    try:
        partners.invite(session, staff.user, org.id)
    except DomainError as error:
        session.rollback()
        return _refused(request, staff, error, PARTNERS)
    session.commit()
    flash(request, "ok", N_("Invitation sent. Their administrator accepts it on this page."))
    return see_other(PARTNERS)


@router.post("/partners/{partnership_id}/{action}", dependencies=[CsrfChecked])
def answer_partnership(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    partnership_id: uuid.UUID,
    action: str,
) -> Response:
    command = {"accept": partners.accept, "decline": partners.decline, "end": partners.end}.get(
        action
    )
    if command is None:
        return not_found(request, staff)
    try:
        command(session, staff.user, partnership_id)
    except DomainError as error:
        session.rollback()
        return _refused(request, staff, error, PARTNERS)
    session.commit()
    flash(request, "ok", N_("Saved."))
    return see_other(PARTNERS)


# --- Referrals: lists ----------------------------------------------------------------------------


@router.get("/referrals", response_class=HTMLResponse)
def referrals_page(request: Request, session: SessionDep, staff: StaffDep) -> HTMLResponse:
    sent = referrals.list_sent(session=session, user=staff.user)
    received = referrals.list_received(session=session, user=staff.user)
    session.commit()  # the reads' audit entries
    residents = _resident_names(session, staff, [row.resident_id for row in sent])
    return render_page(
        request,
        "referrals.html",
        staff=staff,
        here="referrals",
        sent=sent,
        received=received,
        residents=residents,
        org_name=lambda org_id: referrals.org_name(session, org_id),
        words=WORDS,
    )


def _resident_names(session: Session, staff: Staff, ids: list[uuid.UUID]) -> dict[Any, str]:
    if not ids:
        return {}
    rows = session.exec(
        select(Resident).where(
            Resident.organization_id == staff.organization_id,
            Resident.id.in_(set(ids)),  # type: ignore[attr-defined]
        )
    ).all()
    return {row.id: row.name for row in rows}


# --- Referrals: sending --------------------------------------------------------------------------


@router.get("/referrals/new", response_class=HTMLResponse)
def new_referral(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    source_kind: str = "",
    source_id: str = "",
) -> Response:
    kind = source_kind if source_kind in SOURCES else ""
    target = parse_uuid(source_id)
    if not kind or target is None:
        return not_found(request, staff)
    try:
        resident_id = referrals.source_resident(
            session, staff.organization_id, SourceKind(kind), target
        )
    except DomainError:
        return not_found(request, staff)
    resident = session.get(Resident, resident_id)
    partner_ids = partners.partner_org_ids(session, staff.organization_id)
    choices = sorted(
        ((org_id, referrals.org_name(session, org_id) or "") for org_id in partner_ids),
        key=lambda pair: pair[1],
    )
    return render_page(
        request,
        "referral_new.html",
        staff=staff,
        here="referrals",
        source_kind=kind,
        source_id=target,
        resident=resident,
        partners=choices,
        languages=LANGUAGES,
        words=WORDS,
    )


@router.post("/referrals/new", dependencies=[CsrfChecked])
def send_referral(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    source_kind: FormStr = "",
    source_id: FormStr = "",
    partner_org_id: FormStr = "",
    reason: FormStr = "",
    language: FormStr = "",
    mode: FormStr = "",
    method: FormStr = "",
    share_notes: FormStr = "",
    share_health: FormStr = "",
    area: FormStr = "",
) -> Response:
    back = f"{REFERRALS}/new?source_kind={source_kind}&source_id={source_id}"
    try:
        data = ReferralCreate.model_validate(
            {
                "partner_org_id": partner_org_id,
                "source_kind": source_kind,
                "source_id": source_id,
                "reason": reason,
                "language": language or None,
                "anonymous": mode == "anonymous",
                "area": area or None,
            }
        )
        consent = (
            ConsentCreate.model_validate(
                {
                    "partner_org_id": partner_org_id,
                    "method": method,
                    "share_notes": share_notes == "on",
                    "share_health": share_health == "on",
                }
            )
            if mode == "consent"
            else None
        )
    except ValidationError as error:
        return _invalid_form(request, error, back)
    try:
        if consent is not None:
            resident_id = referrals.source_resident(
                session, staff.organization_id, data.source_kind, data.source_id
            )
            referrals.record_consent(
                session=session, user=staff.user, resident_id=resident_id, data=consent
            )
        referral = referrals.send_referral(session=session, user=staff.user, data=data)
    except DomainError as error:
        session.rollback()
        return _refused(request, staff, error, back)
    session.commit()
    flash(request, "ok", N_("Referral sent."))
    return see_other(f"{REFERRALS}/{referral.id}")


@router.get("/referrals/{referral_id}", response_class=HTMLResponse)
def sent_referral(
    request: Request, session: SessionDep, staff: StaffDep, referral_id: uuid.UUID
) -> Response:
    try:
        referral = referrals.get_sent(session=session, user=staff.user, referral_id=referral_id)
    except NotFound:
        return not_found(request, staff)
    session.commit()
    resident = session.get(Resident, referral.resident_id)
    return render_page(
        request,
        "referral_sent.html",
        staff=staff,
        here="referrals",
        referral=referral,
        resident=resident,
        partner=referrals.org_name(session, referral.partner_org_id),
        words=WORDS,
    )


@router.post("/referrals/{referral_id}/close", dependencies=[CsrfChecked])
def close_referral(
    request: Request, session: SessionDep, staff: ActingStaff, referral_id: uuid.UUID
) -> Response:
    try:
        referrals.close(session=session, user=staff.user, referral_id=referral_id)
    except DomainError as error:
        session.rollback()
        return _refused(request, staff, error, f"{REFERRALS}/{referral_id}")
    session.commit()
    flash(request, "ok", N_("Referral closed. The partner can no longer see it."))
    return see_other(f"{REFERRALS}/{referral_id}")


# --- Referrals: the partner's side -----------------------------------------------------------


@router.get("/referrals/received/{referral_id}", response_class=HTMLResponse)
def received_referral(
    request: Request, session: SessionDep, staff: StaffDep, referral_id: uuid.UUID
) -> Response:
    try:
        referral = referrals.get_received(session=session, user=staff.user, referral_id=referral_id)
    except NotFound:
        return not_found(request, staff)
    session.commit()
    return render_page(
        request,
        "referral_received.html",
        staff=staff,
        here="referrals",
        referral=referral,
        person=dict(referral.shared),
        from_org=referrals.org_name(session, referral.organization_id),
        words=WORDS,
    )


@router.post("/referrals/received/{referral_id}/{action}", dependencies=[CsrfChecked])
def answer_referral(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    referral_id: uuid.UUID,
    action: str,
    contact_name: FormStr = "",
    contact_phone: FormStr = "",
    note: FormStr = "",
    outcome: FormStr = "",
) -> Response:
    back = f"{REFERRALS}/received/{referral_id}"
    common = {"session": session, "user": staff.user, "referral_id": referral_id}
    try:
        if action == "accept":
            answer = ReferralAnswer.model_validate(
                {"contact_name": contact_name, "contact_phone": contact_phone or None}
            )
            referrals.accept(
                **common, contact_name=answer.contact_name, contact_phone=answer.contact_phone
            )
        elif action == "decline":
            referrals.decline(**common, reason=note.strip()[:500] or None)
        elif action == "contact":
            referrals.record_contact(**common, note=note.strip()[:2000] or None)
        elif action == "outcome":
            if outcome not in OUTCOMES:
                flash(request, "error", N_("Choose an outcome."))
                return see_other(back)
            referrals.record_outcome(
                **common, outcome=ReferralOutcome(outcome), note=note.strip()[:2000] or None
            )
        else:
            return not_found(request, staff)
    except ValidationError as error:
        return _invalid_form(request, error, back)
    except DomainError as error:
        session.rollback()
        return _refused(request, staff, error, back)
    session.commit()
    flash(request, "ok", N_("Saved."))
    if action in ("decline", "outcome"):
        return see_other(REFERRALS)  # closed: the page is gone for this organization
    return see_other(back)

"""The registry screens: residents, their contacts (assignments) and sites.

Each action calls the registry commands the API calls (``service.registry.service`` and
``service.registry.commands``): the same validation, the same audit, one transaction that is
committed only when everything passed. A refused form is drawn again with what was typed and
one named message per field, in the staff member's language. Viewers see the lists and the
forms' contents; the POST routes refuse them (``ActingStaff``). Members are in
``service.web.member_screens``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from i18n.languages import LANGUAGES
from service.auth.deps import actor_for
from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.registry import commands
from service.registry import service as registry
from service.registry.models import (
    AssignmentCreate,
    Channel,
    Resident,
    ResidentCreate,
    ResidentStatus,
    ResidentUpdate,
    Site,
    SiteCreate,
    SiteUpdate,
)
from service.registry.phones import display_phone
from service.web.core import ActingStaff, CsrfChecked, Staff, StaffDep, flash, render_page
from service.web.registry_forms import (
    FormErrors,
    domain_errors,
    fields_of,
    local_day,
    render_form,
    resident_data,
    site_data,
    validation_errors,
)
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def not_found(request: Request, staff: Staff) -> HTMLResponse:
    return render_page(
        request,
        "error.html",
        staff=staff,
        status_code=404,
        title=N_("Not found"),
        message=N_("This page does not exist, or it belongs to another organization."),
    )


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def sites_of(session: Session, staff: Staff) -> list[Site]:
    return registry.list_sites(session=session, organization_id=staff.organization_id)


# --- The residents list -----------------------------------------------------------------------


@router.get("/registry", response_class=HTMLResponse)
@router.get("/registry/residents", response_class=HTMLResponse)
def residents_page(
    request: Request,
    session: SessionDep,
    staff: StaffDep,
    q: str = "",
    site: str = "",
    status: str = "",
    flag: str = "",
    language: str = "",
    page: int | None = None,
) -> HTMLResponse:
    """Residents in kana order, searched and filtered; the read is audited as the API's."""
    page_number = max(1, page or 1)
    statuses = {s.value for s in ResidentStatus}
    rows, count = commands.list_residents_read(
        session=session,
        organization_id=staff.organization_id,
        actor=actor_for(staff.user),
        site_id=parse_uuid(site),
        status=ResidentStatus(status) if status in statuses else None,
        flag=flag if flag in registry.RESIDENT_FLAGS else None,
        language=language or None,
        q=q[:100] or None,
        skip=(page_number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    sites = sites_of(session, staff)
    response = render_page(
        request,
        "residents.html",
        staff=staff,
        residents=rows,
        count=count,
        q=q,
        site=site,
        status=status,
        flag=flag,
        language=language,
        flags=registry.RESIDENT_FLAGS,
        languages=LANGUAGES,
        sites=sites,
        site_names={s.id: s.name for s in sites},
        page=page_number,
        pages=max(1, -(-count // PAGE_SIZE)),
    )
    session.commit()  # the audit entry of the read
    return response


# --- A resident's form ------------------------------------------------------------------------


def _resident_form(
    request: Request,
    session: Session,
    staff: Staff,
    *,
    resident: Resident | None,
    values: dict[str, Any],
    errors: FormErrors | None = None,
) -> HTMLResponse:
    return render_form(
        request,
        staff,
        "resident_form.html",
        values=values,
        errors=errors,
        resident=resident,
        sites=sites_of(session, staff),
        languages=LANGUAGES,
        channels=[c.value for c in Channel],
        statuses=[s.value for s in ResidentStatus],
        flags=registry.RESIDENT_FLAGS,
    )


def _resident_values(resident: Resident, timezone: str) -> dict[str, Any]:
    values = fields_of(resident)
    consent = local_day(resident.consent_at, timezone)
    values["consent_date"] = consent.isoformat() if consent else ""
    values["away_until"] = resident.away_until.isoformat() if resident.away_until else ""
    values["phone"] = display_phone(resident.phone) if resident.phone else ""
    values["phone2"] = display_phone(resident.phone2) if resident.phone2 else ""
    values["channels"] = ", ".join(resident.channels or [])
    return values


def _typed_values(form: Any) -> dict[str, Any]:
    """What was typed, to draw a refused form again."""
    values: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf_token"}
    for flag in registry.RESIDENT_FLAGS:
        values[flag] = flag in form
    return values


@router.get("/registry/residents/new", response_class=HTMLResponse)
def new_resident(request: Request, session: SessionDep, staff: ActingStaff) -> HTMLResponse:
    values = {"language": "ja", "preferred_channel": Channel.sms.value, "status": "active"}
    return _resident_form(request, session, staff, resident=None, values=values)


@router.post("/registry/residents", dependencies=[CsrfChecked])
async def create_resident(request: Request, session: SessionDep, staff: ActingStaff) -> Response:
    form = await request.form()
    errors = FormErrors()
    data = resident_data(form, staff.org.timezone, errors)
    created = None
    if not errors:
        try:
            created = registry.create_resident(
                session=session,
                organization_id=staff.organization_id,
                data=ResidentCreate.model_validate(data),
                actor=actor_for(staff.user),
            )
        except ValidationError as error:
            errors = validation_errors(error)
        except DomainError as error:
            errors = domain_errors(error, staff.text.language)
    if created is None:
        session.rollback()
        values = _typed_values(form)
        return _resident_form(request, session, staff, resident=None, values=values, errors=errors)
    session.commit()
    flash(request, "ok", N_("Resident %(name)s added."), name=created.name)
    return see_other(f"/residents/{created.id}")


@router.get("/residents/{resident_id}/edit", response_class=HTMLResponse)
def edit_resident(
    request: Request, session: SessionDep, staff: ActingStaff, resident_id: uuid.UUID
) -> HTMLResponse:
    try:
        resident = registry.get_resident(
            session=session,
            organization_id=staff.organization_id,
            resident_id=resident_id,
            actor=actor_for(staff.user),  # the form shows the whole record: a read
        )
    except NotFound:
        return not_found(request, staff)
    values = _resident_values(resident, staff.org.timezone)
    session.commit()
    return _resident_form(request, session, staff, resident=resident, values=values)


@router.post("/residents/{resident_id}/edit", dependencies=[CsrfChecked])
async def update_resident(
    request: Request, session: SessionDep, staff: ActingStaff, resident_id: uuid.UUID
) -> Response:
    form = await request.form()
    try:
        resident = registry.get_resident(
            session=session, organization_id=staff.organization_id, resident_id=resident_id
        )
    except NotFound:
        return not_found(request, staff)
    errors = FormErrors()
    data = resident_data(form, staff.org.timezone, errors)
    if not errors:
        try:
            registry.update_resident(
                session=session,
                organization_id=staff.organization_id,
                resident_id=resident_id,
                data=ResidentUpdate.model_validate(data),
                actor=actor_for(staff.user),
            )
        except ValidationError as error:
            errors = validation_errors(error)
        except DomainError as error:
            errors = domain_errors(error, staff.text.language)
    if errors:
        session.rollback()
        values = _typed_values(form)
        return _resident_form(
            request, session, staff, resident=resident, values=values, errors=errors
        )
    session.commit()
    flash(request, "ok", N_("Changes saved."))
    return see_other(f"/residents/{resident_id}")


@router.post("/residents/{resident_id}/deactivate", dependencies=[CsrfChecked])
async def deactivate_resident(
    request: Request, session: SessionDep, staff: ActingStaff, resident_id: uuid.UUID
) -> Response:
    """Moved out or opted out: no more check-ins, the record and its history are kept."""
    form = await request.form()
    status = form.get("status")
    try:
        commands.deactivate_resident(
            session=session,
            organization_id=staff.organization_id,
            resident_id=resident_id,
            status=ResidentStatus(status) if status in ("moved_out", "opted_out") else None,  # type: ignore[arg-type]
            actor=actor_for(staff.user),
        )
    except NotFound:
        session.rollback()
        return not_found(request, staff)
    except DomainError:
        session.rollback()
        flash(request, "error", N_("Choose moved out or opted out."))
        return see_other(f"/residents/{resident_id}")
    session.commit()
    flash(request, "ok", N_("No more check-ins will be sent to this resident."))
    return see_other(f"/residents/{resident_id}")


# --- A resident's contacts --------------------------------------------------------------------


def _flash_domain_error(request: Request, staff: Staff, error: DomainError) -> None:
    for _name, _label, message, values in domain_errors(error, staff.text.language).items():
        flash(request, "error", message, **values)


@router.post("/residents/{resident_id}/assignments", dependencies=[CsrfChecked])
async def add_assignment(
    request: Request, session: SessionDep, staff: ActingStaff, resident_id: uuid.UUID
) -> Response:
    """Add a member at the end of the resident's order of contacts."""
    form = await request.form()
    member_id = parse_uuid(str(form.get("member_id") or ""))
    try:
        registry.get_resident(
            session=session, organization_id=staff.organization_id, resident_id=resident_id
        )
    except NotFound:
        return not_found(request, staff)
    if member_id is None:
        flash(request, "error", N_("Choose a member from the list."))
        return see_other(f"/residents/{resident_id}#members-heading")
    try:
        registry.create_assignment(
            session=session,
            organization_id=staff.organization_id,
            data=AssignmentCreate(
                resident_id=resident_id,
                member_id=member_id,
                rank=commands.next_rank(session, staff.organization_id, resident_id),
            ),
            actor=actor_for(staff.user),
        )
    except DomainError as error:
        session.rollback()
        _flash_domain_error(request, staff, error)
        return see_other(f"/residents/{resident_id}#members-heading")
    session.commit()
    flash(request, "ok", N_("Member added to the contacts."))
    return see_other(f"/residents/{resident_id}#members-heading")


def _assignment_action(
    request: Request, session: Session, staff: Staff, assignment_id: uuid.UUID, action: Any
) -> Response:
    try:
        assignment = registry.get_assignment(
            session=session, organization_id=staff.organization_id, assignment_id=assignment_id
        )
    except NotFound:
        return not_found(request, staff)
    resident_id = assignment.resident_id
    try:
        action(assignment)
    except DomainError as error:
        session.rollback()
        _flash_domain_error(request, staff, error)
        return see_other(f"/residents/{resident_id}#members-heading")
    session.commit()
    return see_other(f"/residents/{resident_id}#members-heading")


@router.post("/assignments/{assignment_id}/move", dependencies=[CsrfChecked])
async def move_assignment(
    request: Request, session: SessionDep, staff: ActingStaff, assignment_id: uuid.UUID
) -> Response:
    """Up or down one place in the order of contacts."""
    form = await request.form()
    offset = -1 if form.get("direction") == "up" else 1

    def act(assignment: Any) -> None:
        commands.move_assignment(
            session=session,
            organization_id=staff.organization_id,
            assignment_id=assignment.id,
            offset=offset,
            actor=actor_for(staff.user),
        )
        flash(request, "ok", N_("Order of contacts changed."))

    return _assignment_action(request, session, staff, assignment_id, act)


@router.post("/assignments/{assignment_id}/delete", dependencies=[CsrfChecked])
def remove_assignment(
    request: Request, session: SessionDep, staff: ActingStaff, assignment_id: uuid.UUID
) -> Response:
    """Remove a member from the contacts; the others keep their order, closed up."""

    def act(assignment: Any) -> None:
        resident_id = assignment.resident_id
        registry.delete_assignment(
            session=session,
            organization_id=staff.organization_id,
            assignment_id=assignment.id,
            actor=actor_for(staff.user),
        )
        session.flush()
        rest = commands.resident_assignments(session, staff.organization_id, resident_id)
        commands.reorder_assignments(
            session=session,
            organization_id=staff.organization_id,
            resident_id=resident_id,
            assignment_ids=[a.id for a in rest],
            actor=actor_for(staff.user),
        )
        flash(request, "ok", N_("Member removed from the contacts."))

    return _assignment_action(request, session, staff, assignment_id, act)


# --- Sites ------------------------------------------------------------------------------------


@router.get("/registry/sites", response_class=HTMLResponse)
def sites_page(request: Request, session: SessionDep, staff: StaffDep) -> HTMLResponse:
    sites = sites_of(session, staff)
    counts = commands.residents_per_site(session, staff.organization_id)
    return render_page(request, "sites.html", staff=staff, sites=sites, counts=counts)


def _site_form(
    request: Request,
    staff: Staff,
    *,
    site: Site | None,
    values: dict[str, Any],
    errors: FormErrors | None = None,
) -> HTMLResponse:
    return render_form(
        request,
        staff,
        "site_form.html",
        values=values,
        errors=errors,
        site=site,
    )


@router.get("/registry/sites/new", response_class=HTMLResponse)
def new_site(request: Request, staff: ActingStaff) -> HTMLResponse:
    return _site_form(request, staff, site=None, values={})


@router.get("/registry/sites/{site_id}", response_class=HTMLResponse)
def site_page(
    request: Request, session: SessionDep, staff: StaffDep, site_id: uuid.UUID
) -> HTMLResponse:
    try:
        site = registry.get_site(
            session=session, organization_id=staff.organization_id, site_id=site_id
        )
    except NotFound:
        return not_found(request, staff)
    return _site_form(request, staff, site=site, values=fields_of(site))


@router.post("/registry/sites", dependencies=[CsrfChecked])
async def create_site(request: Request, session: SessionDep, staff: ActingStaff) -> Response:
    form = await request.form()
    try:
        site = registry.create_site(
            session=session,
            organization_id=staff.organization_id,
            data=SiteCreate.model_validate(site_data(form)),
            actor=actor_for(staff.user),
        )
    except (ValidationError, DomainError) as error:
        session.rollback()
        errors = (
            validation_errors(error)
            if isinstance(error, ValidationError)
            else domain_errors(error, staff.text.language)
        )
        return _site_form(request, staff, site=None, values=dict(form.items()), errors=errors)
    session.commit()
    flash(request, "ok", N_("Site %(name)s added."), name=site.name)
    return see_other("/registry/sites")


@router.post("/registry/sites/{site_id}", dependencies=[CsrfChecked])
async def update_site(
    request: Request, session: SessionDep, staff: ActingStaff, site_id: uuid.UUID
) -> Response:
    form = await request.form()
    try:
        site = registry.get_site(
            session=session, organization_id=staff.organization_id, site_id=site_id
        )
        registry.update_site(
            session=session,
            organization_id=staff.organization_id,
            site_id=site_id,
            data=SiteUpdate.model_validate(site_data(form)),
            actor=actor_for(staff.user),
        )
    except NotFound:
        session.rollback()
        return not_found(request, staff)
    except (ValidationError, DomainError) as error:
        session.rollback()
        errors = (
            validation_errors(error)
            if isinstance(error, ValidationError)
            else domain_errors(error, staff.text.language)
        )
        return _site_form(request, staff, site=site, values=dict(form.items()), errors=errors)
    session.commit()
    flash(request, "ok", N_("Changes saved."))
    return see_other("/registry/sites")

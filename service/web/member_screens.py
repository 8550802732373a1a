"""The members screens: the welfare committee members, supporters, interpreters and staff on
duty whom alerts go to. Listed, added, changed and deactivated through the registry
commands the API uses, with the same validation and audit."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from i18n.languages import LANGUAGES
from service.auth.deps import actor_for
from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.registry import commands
from service.registry import service as registry
from service.registry.models import Assignment, Member, MemberCreate, MemberKind, MemberUpdate
from service.registry.phones import display_phone
from service.web.core import ActingStaff, CsrfChecked, Staff, StaffDep, flash, render_page
from service.web.registry_forms import (
    FormErrors,
    domain_errors,
    fields_of,
    member_data,
    render_form,
    validation_errors,
)
from service.web.registry_screens import PAGE_SIZE, not_found, see_other
from service.web.translation import N_

router = APIRouter(include_in_schema=False)


@router.get("/registry/members", response_class=HTMLResponse)
def members_page(
    request: Request,
    session: SessionDep,
    staff: StaffDep,
    q: str = "",
    active: str = "",
    page: int | None = None,
) -> HTMLResponse:
    page_number = max(1, page or 1)
    rows, count = registry.list_members(
        session=session,
        organization_id=staff.organization_id,
        q=q[:100] or None,
        active={"1": True, "0": False}.get(active),
        skip=(page_number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    ids = [m.id for m in rows]
    watched = dict(
        session.execute(
            select(Assignment.member_id, func.count())
            .where(Assignment.member_id.in_(ids))  # type: ignore[attr-defined]
            .group_by(Assignment.member_id)
        ).all()
    )
    return render_page(
        request,
        "members.html",
        staff=staff,
        members=rows,
        watched=watched,
        count=count,
        q=q,
        active=active,
        page=page_number,
        pages=max(1, -(-count // PAGE_SIZE)),
    )


def _member_form(
    request: Request,
    staff: Staff,
    *,
    member: Member | None,
    values: dict[str, Any],
    errors: FormErrors | None = None,
) -> HTMLResponse:
    return render_form(
        request,
        staff,
        "member_form.html",
        values=values,
        errors=errors,
        member=member,
        kinds=[k.value for k in MemberKind],
        languages=LANGUAGES,
    )


def _typed(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf_token"}
    values["languages"] = form.getlist("languages")
    values["active"] = "active" in form
    return values


@router.get("/registry/members/new", response_class=HTMLResponse)
def new_member(request: Request, staff: ActingStaff) -> HTMLResponse:
    values = {"kind": MemberKind.welfare_committee.value, "languages": ["ja"], "active": True}
    return _member_form(request, staff, member=None, values=values)


@router.post("/registry/members", dependencies=[CsrfChecked])
async def create_member(request: Request, session: SessionDep, staff: ActingStaff) -> Response:
    form = await request.form()
    try:
        member = registry.create_member(
            session=session,
            organization_id=staff.organization_id,
            data=MemberCreate.model_validate(member_data(form)),
            actor=actor_for(staff.user),
        )
    except (ValidationError, DomainError) as error:
        session.rollback()
        errors = (
            validation_errors(error)
            if isinstance(error, ValidationError)
            else domain_errors(error, staff.text.language)
        )
        return _member_form(request, staff, member=None, values=_typed(form), errors=errors)
    session.commit()
    flash(request, "ok", N_("Member %(name)s added."), name=member.name)
    return see_other("/registry/members")


@router.get("/registry/members/{member_id}", response_class=HTMLResponse)
def member_page(
    request: Request, session: SessionDep, staff: StaffDep, member_id: uuid.UUID
) -> HTMLResponse:
    try:
        member = registry.get_member(
            session=session, organization_id=staff.organization_id, member_id=member_id
        )
    except NotFound:
        return not_found(request, staff)
    values = fields_of(member)
    values["phone"] = display_phone(member.phone)
    return _member_form(request, staff, member=member, values=values)


@router.post("/registry/members/{member_id}", dependencies=[CsrfChecked])
async def update_member(
    request: Request, session: SessionDep, staff: ActingStaff, member_id: uuid.UUID
) -> Response:
    form = await request.form()
    try:
        member = registry.get_member(
            session=session, organization_id=staff.organization_id, member_id=member_id
        )
    except NotFound:
        return not_found(request, staff)
    try:
        registry.update_member(
            session=session,
            organization_id=staff.organization_id,
            member_id=member_id,
            data=MemberUpdate.model_validate(member_data(form)),
            actor=actor_for(staff.user),
        )
    except (ValidationError, DomainError) as error:
        session.rollback()
        errors = (
            validation_errors(error)
            if isinstance(error, ValidationError)
            else domain_errors(error, staff.text.language)
        )
        return _member_form(request, staff, member=member, values=_typed(form), errors=errors)
    session.commit()
    flash(request, "ok", N_("Changes saved."))
    return see_other("/registry/members")


@router.post("/registry/members/{member_id}/active", dependencies=[CsrfChecked])
async def set_member_active(
    request: Request, session: SessionDep, staff: ActingStaff, member_id: uuid.UUID
) -> Response:
    """Deactivate (no more alerts; assignments kept) or reactivate a member."""
    form = await request.form()
    active = form.get("active") == "1"
    try:
        commands.set_member_active(
            session=session,
            organization_id=staff.organization_id,
            member_id=member_id,
            active=active,
            actor=actor_for(staff.user),
        )
    except NotFound:
        session.rollback()
        return not_found(request, staff)
    session.commit()
    if active:
        flash(request, "ok", N_("The member receives alerts again."))
    else:
        flash(request, "ok", N_("The member no longer receives alerts."))
    return see_other(f"/registry/members/{member_id}")

"""People: the organization's staff users, managed by its admins from the dashboard.

Admins list, add, change (name, role, active) and deactivate users. The commands are the
API's (``service.auth.service``): the same password policy, the same "the last admin stays"
rule, the same revocation and audit. One-time reset codes for a forgotten password are in
``service.web.password_reset``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from service.auth import service as auth_service
from service.auth.deps import actor_for
from service.auth.models import Role, User, UserCreate, UserUpdate
from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.web.account import WEAKNESS_TEXT
from service.web.core import (
    CsrfChecked,
    Forbidden,
    Staff,
    current_staff,
    flash,
    render_page,
)
from service.web.registry_forms import (
    FormErrors,
    domain_errors,
    fields_of,
    render_form,
    validation_errors,
)
from service.web.registry_screens import not_found, see_other
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form()]


def admin_staff(staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    if Role(staff.user.role) != Role.admin:
        raise Forbidden
    return staff


AdminStaff = Annotated[Staff, Depends(admin_staff)]
ROLES = [role.value for role in Role]


def _errors_of(error: Exception, language: str) -> FormErrors:
    if isinstance(error, auth_service.WeakPassword):
        errors = FormErrors()
        errors.add("password", WEAKNESS_TEXT[error.weakness])
        return errors
    if isinstance(error, auth_service.LastAdmin):
        errors = FormErrors()
        errors.add(
            error.field or "role",
            N_(
                "This is the organization's last active admin. Make another user an admin "
                "first, or nobody could manage users any more."
            ),
        )
        return errors
    if isinstance(error, ValidationError):
        return validation_errors(error)
    assert isinstance(error, DomainError)
    return domain_errors(error, language)


@router.get("/people", response_class=HTMLResponse)
def people_page(request: Request, session: SessionDep, staff: AdminStaff) -> HTMLResponse:
    users = auth_service.list_users(session=session, organization_id=staff.organization_id)
    return render_page(request, "people.html", staff=staff, users=users)


def person_form(
    request: Request,
    staff: Staff,
    *,
    person: User | None,
    values: dict[str, Any],
    errors: FormErrors | None = None,
    reset_code: str | None = None,
    reset_expires: Any = None,
) -> HTMLResponse:
    return render_form(
        request,
        staff,
        "person_form.html",
        values=values,
        errors=errors,
        person=person,
        roles=ROLES,
        reset_code=reset_code,
        reset_expires=reset_expires,
    )


@router.get("/people/new", response_class=HTMLResponse)
def new_person(request: Request, staff: AdminStaff) -> HTMLResponse:
    values = {"role": Role.viewer.value, "is_active": True}
    return person_form(request, staff, person=None, values=values)


@router.post("/people", dependencies=[CsrfChecked])
def create_person(
    request: Request,
    session: SessionDep,
    staff: AdminStaff,
    email: FormStr = "",
    full_name: FormStr = "",
    role: FormStr = "viewer",
    password: FormStr = "",
) -> Response:
    values = {"email": email, "full_name": full_name, "role": role, "is_active": True}
    try:
        created = auth_service.create_user(
            session=session,
            organization_id=staff.organization_id,
            data=UserCreate.model_validate(
                {**values, "full_name": full_name.strip(), "password": password}
            ),
            actor=actor_for(staff.user),
        )
    except (ValidationError, DomainError) as error:
        session.rollback()
        return person_form(
            request,
            staff,
            person=None,
            values=values,
            errors=_errors_of(error, staff.text.language),
        )
    session.commit()
    flash(request, "ok", N_("User %(name)s added."), name=created.full_name)
    return see_other("/people")


def find_person(session: Any, staff: Staff, user_id: uuid.UUID) -> User | None:
    try:
        return auth_service.get_user(
            session=session, organization_id=staff.organization_id, user_id=user_id
        )
    except NotFound:
        return None


@router.get("/people/{user_id}", response_class=HTMLResponse)
def person_page(
    request: Request, session: SessionDep, staff: AdminStaff, user_id: uuid.UUID
) -> HTMLResponse:
    person = find_person(session, staff, user_id)
    if person is None:
        return not_found(request, staff)
    return person_form(request, staff, person=person, values=fields_of(person))


@router.post("/people/{user_id}", dependencies=[CsrfChecked])
def update_person(
    request: Request,
    session: SessionDep,
    staff: AdminStaff,
    user_id: uuid.UUID,
    full_name: FormStr = "",
    role: FormStr = "",
    is_active: FormStr = "",
) -> Response:
    """Name, role and active; a new role or a deactivation ends the user's sessions."""
    person = find_person(session, staff, user_id)
    if person is None:
        return not_found(request, staff)
    values = {
        "email": person.email,
        "full_name": full_name,
        "role": role,
        "is_active": bool(is_active),
    }
    try:
        auth_service.update_user(
            session=session,
            organization_id=staff.organization_id,
            user_id=user_id,
            data=UserUpdate.model_validate(
                {"full_name": full_name.strip() or None, "role": role, "is_active": bool(is_active)}
            ),
            actor=actor_for(staff.user),
        )
    except (ValidationError, DomainError) as error:
        session.rollback()
        session.refresh(person)
        return person_form(
            request,
            staff,
            person=person,
            values=values,
            errors=_errors_of(error, staff.text.language),
        )
    session.commit()
    flash(request, "ok", N_("Changes saved."))
    return see_other("/people")


@router.post("/people/{user_id}/deactivate", dependencies=[CsrfChecked])
def deactivate_person(
    request: Request, session: SessionDep, staff: AdminStaff, user_id: uuid.UUID
) -> Response:
    """Deactivate: the user cannot log in any more and every session of theirs ends."""
    person = find_person(session, staff, user_id)
    if person is None:
        return not_found(request, staff)
    try:
        auth_service.update_user(
            session=session,
            organization_id=staff.organization_id,
            user_id=user_id,
            data=UserUpdate(is_active=False),
            actor=actor_for(staff.user),
        )
    except DomainError as error:
        session.rollback()
        session.refresh(person)
        return person_form(
            request,
            staff,
            person=person,
            values=fields_of(person),
            errors=_errors_of(error, staff.text.language),
        )
    session.commit()
    flash(request, "ok", N_("%(name)s can no longer log in."), name=person.full_name)
    return see_other("/people")

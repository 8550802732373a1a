"""A forgotten password: an admin issues a one-time code on the user's page (shown once,
never stored readable), and the user sets a new password with it at ``/password-reset``,
under the password policy. The rules are ``service.auth.reset``'s."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from service.auth import reset as resets
from service.auth import service as auth_service
from service.auth.deps import actor_for
from service.common import utcnow
from service.config import get_settings
from service.db import SessionDep
from service.web.account import WEAKNESS_TEXT
from service.web.core import CsrfChecked, flash, render_page
from service.web.people import AdminStaff, find_person, person_form
from service.web.registry_forms import fields_of
from service.web.registry_screens import not_found, see_other
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form()]


@router.post("/people/{user_id}/reset", response_class=HTMLResponse, dependencies=[CsrfChecked])
def issue_reset(
    request: Request, session: SessionDep, staff: AdminStaff, user_id: uuid.UUID
) -> HTMLResponse:
    """A one-time code, shown on this page only: it is not stored anywhere readable."""
    person = find_person(session, staff, user_id)
    if person is None:
        return not_found(request, staff)
    code, expires = resets.issue_reset(
        session=session,
        settings=get_settings(),
        organization_id=staff.organization_id,
        user_id=user_id,
        actor=actor_for(staff.user),
        now=utcnow(),
    )
    session.commit()
    return person_form(
        request,
        staff,
        person=person,
        values=fields_of(person),
        reset_code=code,
        reset_expires=expires,
    )


# --- Using a code -----------------------------------------------------------------------------


def _reset_form(
    request: Request, *, status_code: int = 200, error: str | None = None, **values: Any
) -> HTMLResponse:
    return render_page(
        request,
        "password_reset.html",
        status_code=status_code,
        error=error,
        error_values={k: str(v) for k, v in values.pop("error_values", {}).items()},
        email=values.get("email", ""),
        code=values.get("code", ""),
    )


@router.get("/password-reset", response_class=HTMLResponse)
def reset_form(request: Request) -> HTMLResponse:
    return _reset_form(request)


@router.post("/password-reset", response_class=HTMLResponse, dependencies=[CsrfChecked])
def use_reset(
    request: Request,
    session: SessionDep,
    email: FormStr = "",
    code: FormStr = "",
    new_password: FormStr = "",
) -> Response:
    try:
        resets.use_reset(
            session=session,
            settings=get_settings(),
            login=email,
            code=code,
            password=new_password,
            address=request.client.host if request.client else None,
            now=utcnow(),
        )
    except resets.ResetThrottled as error:
        response = _reset_form(
            request,
            status_code=429,
            error=N_("Too many failed attempts. Try again in %(seconds)s seconds."),
            error_values={"seconds": error.seconds},
            email=email,
        )
        response.headers["Retry-After"] = str(error.seconds)
        return response
    except resets.ResetRefused:
        return _reset_form(
            request,
            status_code=401,
            error=N_(
                "The login or the code is wrong, or the code has expired or was used "
                "already. Ask an admin for a new code."
            ),
            email=email,
        )
    except auth_service.WeakPassword as error:
        session.rollback()
        return _reset_form(
            request,
            status_code=422,
            error=WEAKNESS_TEXT[error.weakness],
            email=email,
            code=code,
        )
    session.commit()
    flash(request, "ok", N_("Your new password is set. Log in with it."))
    return see_other("/login")

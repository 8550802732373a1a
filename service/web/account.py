"""The dashboard's side of authentication: a refused or throttled login, logging out of
every session, and a staff member changing their own password under the password policy.

The rules themselves are the API's (service/auth): the same throttle, the same policy, the
same revocation. This module only says it in the staff member's language.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth import service as auth_service
from service.auth.deps import actor_for, is_current_version
from service.auth.models import User
from service.auth.passwords import Weakness
from service.auth.security import verify_password
from service.db import SessionDep
from service.web.core import CsrfChecked, StaffDep, flash, log_in, render_page
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form()]

# Why a new password is refused, in words staff read (catalogued in dashboard.po).
WEAKNESS_TEXT: dict[Weakness, str] = {
    Weakness.too_short: N_(
        "The password is too short: use at least 12 characters. A few unrelated words "
        "make a good one."
    ),
    Weakness.too_long: N_("The password is too long: use at most 200 characters."),
    Weakness.blank: N_("The password cannot be only spaces."),
    Weakness.common: N_(
        "This password is one of the most common or leaked passwords, or built from one. "
        "Choose another."
    ),
    Weakness.predictable: N_(
        "This password is too easy to guess: it repeats characters or follows the keyboard "
        "or the alphabet."
    ),
    Weakness.personal: N_(
        "The password is built from your login, your name or your organization's name. "
        "Choose one that is not."
    ),
}


def login_refused(request: Request, wait: int | None, *, next: str, email: str) -> HTMLResponse:
    """The login form again: 401 for a wrong login or password, 429 (with Retry-After)
    while the account or this address is locked out after too many failures."""
    if wait is None:
        return render_page(
            request,
            "login.html",
            status_code=401,
            next=next,
            error=N_("The login or the password is wrong."),
            error_values={},
            email=email,
        )
    if wait < 60:
        message, values = (
            N_("Too many failed logins. Try again in %(seconds)s seconds."),
            {"seconds": str(wait)},
        )
    else:
        message, values = (
            N_("Too many failed logins. Try again in %(minutes)s minutes."),
            {"minutes": str(math.ceil(wait / 60))},
        )
    response = render_page(
        request,
        "login.html",
        status_code=429,
        next=next,
        error=message,
        error_values=values,
        email=email,
    )
    response.headers["Retry-After"] = str(wait)
    return response


def end_all_sessions(request: Request, session: SessionDep) -> None:
    """On logout: if this session is still valid, raise the user's token version, which
    ends this session, every copy of its cookie, every other session and every API token."""
    try:
        user_id = uuid.UUID(str(request.session.get("uid")))
    except ValueError:
        return
    user = session.get(User, user_id)
    if user is None or not is_current_version(user, request.session.get("ver")):
        return
    auth_service.revoke_sessions(user)
    session.add(user)
    session.commit()


@router.get("/account/password", response_class=HTMLResponse)
def password_form(request: Request, staff: StaffDep) -> HTMLResponse:
    return render_page(request, "account_password.html", staff=staff, error=None)


@router.post("/account/password", response_class=HTMLResponse, dependencies=[CsrfChecked])
def change_password(
    request: Request,
    session: SessionDep,
    staff: StaffDep,
    current_password: FormStr = "",
    new_password: FormStr = "",
) -> Response:
    """A new password for oneself: the current one first, then the policy. Every other
    session and API token of this user ends; this browser is logged in again."""
    user = staff.user
    if not verify_password(current_password, user.hashed_password):
        error = N_("The current password is wrong.")
        return render_page(
            request, "account_password.html", staff=staff, status_code=422, error=error
        )
    try:
        auth_service.change_password(
            session=session, user=user, password=new_password, actor=actor_for(user)
        )
    except auth_service.WeakPassword as exc:
        return render_page(
            request,
            "account_password.html",
            staff=staff,
            status_code=422,
            error=WEAKNESS_TEXT[exc.weakness],
        )
    session.commit()
    log_in(request, user)
    flash(request, "ok", N_("Your password is changed. Every other session has ended."))
    return RedirectResponse("/", status_code=303)

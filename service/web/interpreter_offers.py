"""Shared interpreters on the dashboard (issue 21, item 3): what the organization offers
its partners, and what its partners offer it.

The screen calls the same commands as the API (``service.partners.interpreters``): an
admin offers or withdraws; a refused offer is a flashed, translated reason and nothing is
saved; another organization's offer is the ordinary 404 page.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import col, select

from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.partners import interpreters
from service.registry.models import Member
from service.web.core import ActingStaff, CsrfChecked, StaffDep, flash, render_page, ui_language
from service.web.registry_screens import not_found, see_other
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form()]
PAGE = "/partners/interpreters"


@router.get(PAGE, response_class=HTMLResponse)
def interpreter_offers_page(request: Request, session: SessionDep, staff: StaffDep) -> HTMLResponse:
    is_admin = staff.user.role == "admin"
    org_id = staff.organization_id
    own = interpreters.list_own_offers(session, organization_id=org_id) if is_admin else None
    offerable = []
    if is_admin:
        offerable = list(
            session.exec(
                select(Member)
                .where(
                    Member.organization_id == org_id,
                    col(Member.active).is_(True),
                    col(Member.kind).in_([k.value for k in interpreters.OFFERABLE_KINDS]),
                )
                .order_by(col(Member.name))
            ).all()
        )
    return render_page(
        request,
        "interpreter_offers.html",
        staff=staff,
        here="partners",
        own=own,
        offerable=offerable,
        from_partners=interpreters.list_partner_offers(session, organization_id=org_id),
        is_admin=is_admin,
    )


@router.post(f"{PAGE}/offer", dependencies=[CsrfChecked])
def offer_interpreter(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    member_id: FormStr = "",
    languages: FormStr = "",
) -> Response:
    codes = [code for code in re.split(r"[,、，;；/・\s]+", languages) if code]
    try:
        data = interpreters.InterpreterOfferCreate(member_id=member_id, languages=codes)  # type: ignore[arg-type]
        interpreters.offer_interpreter(session, actor=staff.user, data=data)
    except ValidationError:
        flash(request, "error", N_("Choose a member and at least one language."))
        return see_other(PAGE)
    except DomainError as error:
        session.rollback()
        return _refused(request, staff, error)
    session.commit()
    flash(request, "ok", N_("Offered to our partners."))
    return see_other(PAGE)


@router.post(f"{PAGE}/{{offer_id}}/withdraw", dependencies=[CsrfChecked])
def withdraw_offer(
    request: Request, session: SessionDep, staff: ActingStaff, offer_id: uuid.UUID
) -> Response:
    try:
        interpreters.withdraw_offer(session, actor=staff.user, offer_id=offer_id)
    except DomainError as error:
        session.rollback()
        return _refused(request, staff, error)
    session.commit()
    flash(request, "ok", N_("Offer withdrawn: partners no longer alert this member."))
    return see_other(PAGE)


def _refused(request: Request, staff: object, error: DomainError) -> Response:
    if isinstance(error, NotFound):
        return not_found(request, staff)  # type: ignore[arg-type]
    flash(
        request,
        "error",
        N_("Not saved: %(reason)s"),
        reason=error.text.render(ui_language(request)),
    )
    return see_other(PAGE)

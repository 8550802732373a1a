"""The visit list a member takes out on paper: whom they watch over (and any resident whose
case they hold), where, which language, when last heard from, and the case code to send
back with the visit's result ("A7 1").

Only what an alert SMS carries, plus the resident's phone: never notes, care flags or
anything about health. Printing it is an export of residents' data, audited as one entry
naming the member and the count, like the CSV export.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select
from sqlmodel import Session

from service.audit.service import record
from service.auth.deps import actor_for
from service.clock import get_clock
from service.db import SessionDep
from service.escalations.models import Escalation
from service.escalations.service import OPEN_STATES, last_contacts
from service.registry.models import Assignment, Member, Resident, ResidentStatus, Site
from service.web.core import Staff, StaffDep, render_page
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

_DIGITS = re.compile(r"(\d+)")


@dataclass
class VisitRow:
    """One line of the paper list. Every field is one an alert SMS may carry."""

    resident_id: uuid.UUID
    name: str
    name_kana: str | None
    site: str | None
    unit: str | None
    language: str
    needs_interpreter: bool
    phone: str | None
    away: bool
    rank: int | None  # the member's place in the resident's chain; None: a case they hold
    last_contact: datetime | None = None
    case_codes: list[str] = field(default_factory=list)


def _natural(text: str | None) -> tuple[tuple[int, int | str], ...]:
    """Digits compare as numbers ("A-7" before "A-10"); None sorts last."""
    if text is None:
        return ((2, ""),)
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(text))


def _sort_key(row: VisitRow) -> tuple[object, ...]:
    return (_natural(row.site), _natural(row.unit), _natural(row.name_kana), _natural(row.name))


def visit_rows(
    session: Session, organization_id: uuid.UUID, member_id: uuid.UUID
) -> list[VisitRow]:
    """The residents ``member_id`` watches over, and those whose open case they hold, in
    walking order (site, unit, kana). Moved-out residents are left off."""
    assigned = select(Assignment.resident_id).where(
        Assignment.organization_id == organization_id, Assignment.member_id == member_id
    )
    held = select(Escalation.resident_id).where(
        Escalation.organization_id == organization_id,
        Escalation.acknowledged_by == member_id,
        Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
    )
    rank = (
        select(func.min(Assignment.rank))
        .where(Assignment.resident_id == Resident.id, Assignment.member_id == member_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Resident.id,
            Resident.name,
            Resident.name_kana,
            Site.name,
            Resident.unit,
            Resident.language,
            Resident.needs_interpreter,
            Resident.phone,
            Resident.status,
            rank,
        )
        .outerjoin(Site, Site.id == Resident.site_id)
        .where(
            Resident.organization_id == organization_id,
            Resident.status != ResidentStatus.moved_out,
            or_(Resident.id.in_(assigned), Resident.id.in_(held)),  # type: ignore[union-attr]
        )
    ).all()
    found = {
        row[0]: VisitRow(
            resident_id=row[0],
            name=row[1],
            name_kana=row[2],
            site=row[3],
            unit=row[4],
            language=row[5],
            needs_interpreter=bool(row[6]),
            phone=row[7],
            away=row[8] == ResidentStatus.away,
            rank=row[9],
        )
        for row in rows
    }
    if not found:
        return []
    for resident_id, at in last_contacts(session, list(found)).items():
        found[resident_id].last_contact = at
    for resident_id, code in session.execute(
        select(Escalation.resident_id, Escalation.case_code)
        .where(
            Escalation.organization_id == organization_id,
            Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
            Escalation.resident_id.in_(list(found)),  # type: ignore[attr-defined]
        )
        .order_by(Escalation.created_at)
    ).all():
        found[resident_id].case_codes.append(code)
    return sorted(found.values(), key=_sort_key)


def _member(session: Session, staff: Staff, member_id: uuid.UUID) -> Member | None:
    member = session.get(Member, member_id)
    if member is None or member.organization_id != staff.organization_id:
        return None
    return member


@router.get("/visits", response_class=HTMLResponse)
def visit_lists(request: Request, session: SessionDep, staff: StaffDep) -> HTMLResponse:
    """The members, each with how many residents their list holds: pick one to print."""
    counts = dict(
        session.execute(
            select(Assignment.member_id, func.count())
            .join(Resident, Resident.id == Assignment.resident_id)
            .where(
                Assignment.organization_id == staff.organization_id,
                Resident.status != ResidentStatus.moved_out,
            )
            .group_by(Assignment.member_id)
        ).all()
    )
    members = session.execute(
        select(Member)
        .where(Member.organization_id == staff.organization_id, Member.active.is_(True))  # type: ignore[attr-defined]
        .order_by(Member.name_kana, Member.name)
    ).scalars()
    return render_page(
        request,
        "visits.html",
        staff=staff,
        members=[(member, counts.get(member.id, 0)) for member in members],
    )


@router.get("/visits/{member_id}", response_class=HTMLResponse)
def visit_list(
    request: Request, session: SessionDep, staff: StaffDep, member_id: uuid.UUID
) -> HTMLResponse:
    member = _member(session, staff, member_id)
    if member is None:
        return render_page(
            request,
            "error.html",
            staff=staff,
            status_code=404,
            title=N_("Not found"),
            message=N_("This page does not exist, or it belongs to another organization."),
        )
    rows = visit_rows(session, staff.organization_id, member.id)
    record(
        session=session,
        organization_id=staff.organization_id,
        actor=actor_for(staff.user),
        action="export",
        entity_type="resident",
        detail={"rows": len(rows), "format": "visit_list", "member_id": str(member.id)},
    )
    session.commit()
    return render_page(
        request, "visit_list.html", staff=staff, member=member, rows=rows, now=get_clock().now()
    )

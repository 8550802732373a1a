"""Registry commands that the API and the dashboard share, beyond plain create and update.

Each one validates, acts and audits inside the caller's transaction: the caller commits on
success and rolls back on a ``DomainError``, so nothing is ever applied halfway. The plain
create/update/delete commands are in ``service.registry.service``; both the API routes
(``service.registry.views``) and the dashboard (``service.web.registry_screens``) call those
and these, never each other's routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from service.audit.service import Actor, record
from service.errors import Invalid
from service.registry import service
from service.registry.models import (
    Assignment,
    Member,
    MemberUpdate,
    Resident,
    ResidentStatus,
    ResidentUpdate,
)
from service.texts import N_

# A rank above every real one (ranks are 1..20), used while ranks are swapped: the unique
# (resident, rank) constraint holds at every step of a reorder.
_PARKED_RANK = 1000


def list_residents_read(
    *,
    session: Session,
    organization_id: uuid.UUID,
    actor: Actor,
    site_id: uuid.UUID | None = None,
    language: str | None = None,
    status: ResidentStatus | None = None,
    member_id: uuid.UUID | None = None,
    q: str | None = None,
    flag: str | None = None,
    skip: int = 0,
    limit: int = 100,
) -> tuple[list[Resident], int]:
    """A page of residents, with the read recorded in the audit log (filters named, values
    never)."""
    rows, count = service.list_residents(
        session=session,
        organization_id=organization_id,
        site_id=site_id,
        language=language,
        status=status,
        member_id=member_id,
        q=q,
        flag=flag,
        skip=skip,
        limit=limit,
    )
    filters = {
        "site_id": site_id,
        "language": language,
        "status": status,
        "member_id": member_id,
        "q": q,
        "flag": flag,
    }
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="list",
        entity_type="resident",
        detail={"returned": len(rows), "filters": sorted(k for k, v in filters.items() if v)},
    )
    return rows, count


def deactivate_resident(
    *,
    session: Session,
    organization_id: uuid.UUID,
    resident_id: uuid.UUID,
    status: ResidentStatus,
    actor: Actor,
) -> Resident:
    """Stop check-ins for a resident who moved out or opted out; the record is kept."""
    if status not in (ResidentStatus.moved_out, ResidentStatus.opted_out):
        raise Invalid(N_("a resident is deactivated as moved out or opted out"), field="status")
    return service.update_resident(
        session=session,
        organization_id=organization_id,
        resident_id=resident_id,
        data=ResidentUpdate(status=status, away_until=None),
        actor=actor,
    )


def set_member_active(
    *,
    session: Session,
    organization_id: uuid.UUID,
    member_id: uuid.UUID,
    active: bool,
    actor: Actor,
) -> Member:
    """An inactive member keeps their assignments but is no longer alerted."""
    return service.update_member(
        session=session,
        organization_id=organization_id,
        member_id=member_id,
        data=MemberUpdate(active=active),
        actor=actor,
    )


def residents_per_site(session: Session, organization_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = session.exec(
        select(Resident.site_id, func.count())
        .where(Resident.organization_id == organization_id)
        .group_by(col(Resident.site_id))
    ).all()
    return {site_id: n for site_id, n in rows if site_id is not None}


def resident_assignments(
    session: Session, organization_id: uuid.UUID, resident_id: uuid.UUID
) -> list[Assignment]:
    return list(
        session.exec(
            select(Assignment)
            .where(
                Assignment.organization_id == organization_id,
                Assignment.resident_id == resident_id,
            )
            .order_by(col(Assignment.rank))
        ).all()
    )


def next_rank(session: Session, organization_id: uuid.UUID, resident_id: uuid.UUID) -> int:
    """The rank after the resident's last contact: a new member is added at the end."""
    ranks = [a.rank for a in resident_assignments(session, organization_id, resident_id)]
    return max(ranks, default=0) + 1


def reorder_assignments(
    *,
    session: Session,
    organization_id: uuid.UUID,
    resident_id: uuid.UUID,
    assignment_ids: Sequence[uuid.UUID],
    actor: Actor,
) -> list[Assignment]:
    """Give the resident's contacts ranks 1, 2, 3... in the order given.

    The order must name each of the resident's assignments exactly once; anything else is
    refused before a rank changes. One audit entry per assignment whose rank changed.
    """
    service.get_resident(session=session, organization_id=organization_id, resident_id=resident_id)
    current = resident_assignments(session, organization_id, resident_id)
    by_id = {a.id: a for a in current}
    if len(assignment_ids) != len(set(assignment_ids)) or set(assignment_ids) != set(by_id):
        raise Invalid(
            N_("the new order must list each of the resident's contacts exactly once"),
            field="assignment_ids",
        )
    wanted = {assignment_id: rank for rank, assignment_id in enumerate(assignment_ids, 1)}
    moving = [a for a in current if a.rank != wanted[a.id]]
    if not moving:
        return current
    for parked, assignment in enumerate(moving):
        assignment.rank = _PARKED_RANK + parked
        session.add(assignment)
    session.flush()
    for assignment in moving:
        assignment.rank = wanted[assignment.id]
        session.add(assignment)
        record(
            session=session,
            organization_id=organization_id,
            actor=actor,
            action="update",
            entity_type="assignment",
            entity_id=assignment.id,
            fields=["rank"],
        )
    session.flush()
    return sorted(current, key=lambda a: a.rank)


def move_assignment(
    *,
    session: Session,
    organization_id: uuid.UUID,
    assignment_id: uuid.UUID,
    offset: int,
    actor: Actor,
) -> list[Assignment]:
    """Move one contact up (``offset`` -1) or down (+1) in the resident's order."""
    assignment = service.get_assignment(
        session=session, organization_id=organization_id, assignment_id=assignment_id
    )
    order = [a.id for a in resident_assignments(session, organization_id, assignment.resident_id)]
    here = order.index(assignment.id)
    there = min(max(here + offset, 0), len(order) - 1)
    order.insert(there, order.pop(here))
    return reorder_assignments(
        session=session,
        organization_id=organization_id,
        resident_id=assignment.resident_id,
        assignment_ids=order,
        actor=actor,
    )

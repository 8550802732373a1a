"""Rounds, schedules, check-ins, escalations, tasks and timelines under /api/v1.

The routes are thin: what changes anything is in service.checkins.commands, which the
dashboard calls too; the routes add the HTTP shape (status codes, query limits)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import func, select

from service.auth.deps import Coordinator, CurrentUser, actor_for
from service.checkins import commands
from service.checkins.commands import (
    CheckInOrder,
    CheckInPublic,
    CloseTask,
    NoteCreate,
    build_timeline,
    checkin_urgency,
    escalation_public,
    find_escalation,
    find_round,
    round_public,
)
from service.checkins.models import (
    CheckInState,
    Round,
    RoundPublic,
    RoundStart,
    Schedule,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    StaffTask,
    StaffTaskPublic,
    TimelineEventPublic,
)
from service.common import Page, Skip
from service.db import SessionDep
from service.escalations import service as escalations
from service.escalations.models import (
    AcknowledgeRequest,
    Escalation,
    EscalationPublic,
    EscalationState,
    ReassignRequest,
    ResolveRequest,
)
from service.registry import service as registry

# The request and response models, and what tests and the dashboard used from here before
# the commands moved out, stay importable from this module.
__all__ = [
    "CheckInPublic",
    "CloseTask",
    "NoteCreate",
    "build_timeline",
    "checkin_urgency",
    "router",
]

router = APIRouter()

# --- Schedules ------------------------------------------------------------------------------------


@router.get("/schedules", response_model=Page[SchedulePublic], tags=["schedules"])
def list_schedules(session: SessionDep, user: CurrentUser) -> Page[SchedulePublic]:
    rows = (
        session.execute(
            select(Schedule)
            .where(Schedule.organization_id == user.organization_id)
            .order_by(Schedule.name)
        )
        .scalars()
        .all()
    )
    return Page(data=[SchedulePublic.model_validate(s) for s in rows], count=len(rows))


@router.post("/schedules", response_model=SchedulePublic, status_code=201, tags=["schedules"])
def create_schedule(session: SessionDep, user: Coordinator, data: ScheduleCreate) -> SchedulePublic:
    return commands.create_schedule(session=session, user=user, data=data)


@router.patch("/schedules/{schedule_id}", response_model=SchedulePublic, tags=["schedules"])
def update_schedule(
    session: SessionDep, user: Coordinator, schedule_id: uuid.UUID, data: ScheduleUpdate
) -> SchedulePublic:
    return commands.update_schedule(session=session, user=user, schedule_id=schedule_id, data=data)


@router.delete("/schedules/{schedule_id}", status_code=204, tags=["schedules"])
def delete_schedule(session: SessionDep, user: Coordinator, schedule_id: uuid.UUID) -> Response:
    commands.delete_schedule(session=session, user=user, schedule_id=schedule_id)
    return Response(status_code=204)


# --- Rounds ---------------------------------------------------------------------------------------


@router.post("/rounds", response_model=RoundPublic, status_code=201, tags=["rounds"])
def start_broadcast(session: SessionDep, user: Coordinator, data: RoundStart) -> RoundPublic:
    """Check on chosen sites (or residents) now. Quiet hours hold unless overridden here."""
    return commands.start_broadcast(session=session, user=user, data=data)


@router.get("/rounds", response_model=Page[RoundPublic], tags=["rounds"])
def list_rounds(
    session: SessionDep,
    user: CurrentUser,
    skip: Skip = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[RoundPublic]:
    query = select(Round).where(Round.organization_id == user.organization_id)
    count = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = (
        session.execute(
            query.order_by(Round.started_at.desc()).offset(skip).limit(limit)  # type: ignore[attr-defined]
        )
        .scalars()
        .all()
    )
    return Page(data=[round_public(session, r) for r in rows], count=count)


@router.get("/rounds/{round_id}", response_model=RoundPublic, tags=["rounds"])
def read_round(session: SessionDep, user: CurrentUser, round_id: uuid.UUID) -> RoundPublic:
    return round_public(session, find_round(session, user.organization_id, round_id))


@router.get("/checkins", response_model=Page[CheckInPublic], tags=["checkins"])
def list_checkins(
    session: SessionDep,
    user: CurrentUser,
    round_id: uuid.UUID | None = None,
    state: CheckInState | None = None,
    flagged: bool | None = None,
    site_id: uuid.UUID | None = None,
    sort: CheckInOrder = "urgency",
    skip: Skip = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[CheckInPublic]:
    """The organization's check-ins across rounds, most urgent first (or by name)."""
    return commands.list_checkins(
        session=session,
        user=user,
        round_id=round_id,
        state=state,
        flagged=flagged,
        site_id=site_id,
        sort=sort,
        skip=skip,
        limit=limit,
    )


@router.get("/rounds/{round_id}/checkins", response_model=Page[CheckInPublic], tags=["rounds"])
def list_round_checkins(
    session: SessionDep,
    user: CurrentUser,
    round_id: uuid.UUID,
    state: CheckInState | None = None,
    flagged: bool | None = None,
    sort: CheckInOrder = "name",
    skip: Skip = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[CheckInPublic]:
    """One round's check-ins, by name (its roster), or most urgent first."""
    return commands.list_round_checkins(
        session=session,
        user=user,
        round_id=round_id,
        state=state,
        flagged=flagged,
        sort=sort,
        skip=skip,
        limit=limit,
    )


# --- Escalations ----------------------------------------------------------------------------------


@router.get("/escalations", response_model=Page[EscalationPublic], tags=["escalations"])
def list_escalations(
    session: SessionDep,
    user: CurrentUser,
    state: EscalationState | None = None,
    open_only: bool = True,
    resident_id: uuid.UUID | None = None,
    skip: Skip = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[EscalationPublic]:
    query = select(Escalation).where(Escalation.organization_id == user.organization_id)
    if state is not None:
        query = query.where(Escalation.state == state)
    elif open_only:
        query = query.where(Escalation.state.in_(escalations.OPEN_STATES))  # type: ignore[attr-defined]
    if resident_id is not None:
        query = query.where(Escalation.resident_id == resident_id)
    count = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    order = (escalations.urgency(), Escalation.created_at, Escalation.id)
    rows = session.execute(query.order_by(*order).offset(skip).limit(limit)).scalars().all()
    return Page(data=[escalation_public(e) for e in rows], count=count)


@router.get("/escalations/{escalation_id}", response_model=EscalationPublic, tags=["escalations"])
def read_escalation(
    session: SessionDep, user: CurrentUser, escalation_id: uuid.UUID
) -> EscalationPublic:
    return escalation_public(find_escalation(session, user.organization_id, escalation_id))


@router.post(
    "/escalations/{escalation_id}/acknowledge",
    response_model=EscalationPublic,
    tags=["escalations"],
)
def acknowledge(
    session: SessionDep, user: Coordinator, escalation_id: uuid.UUID, data: AcknowledgeRequest
) -> EscalationPublic:
    """Acknowledge on a member's behalf (for example after a phone call with them)."""
    return commands.acknowledge(session=session, user=user, escalation_id=escalation_id, data=data)


@router.post(
    "/escalations/{escalation_id}/resolve", response_model=EscalationPublic, tags=["escalations"]
)
def resolve(
    session: SessionDep, user: Coordinator, escalation_id: uuid.UUID, data: ResolveRequest
) -> EscalationPublic:
    return commands.resolve(session=session, user=user, escalation_id=escalation_id, data=data)


@router.post(
    "/escalations/{escalation_id}/reassign", response_model=EscalationPublic, tags=["escalations"]
)
def reassign(
    session: SessionDep, user: Coordinator, escalation_id: uuid.UUID, data: ReassignRequest
) -> EscalationPublic:
    return commands.reassign(session=session, user=user, escalation_id=escalation_id, data=data)


# --- Tasks, inbox and timeline -------------------------------------------------------------


@router.get("/tasks", response_model=Page[StaffTaskPublic], tags=["tasks"])
def list_tasks(
    session: SessionDep, user: CurrentUser, open_only: bool = True, kind: str | None = None
) -> Page[StaffTaskPublic]:
    query = select(StaffTask).where(StaffTask.organization_id == user.organization_id)
    if open_only:
        query = query.where(StaffTask.closed_at.is_(None))  # type: ignore[union-attr]
    if kind:
        query = query.where(StaffTask.kind == kind)
    rows = session.execute(query.order_by(StaffTask.created_at)).scalars().all()
    return Page(data=[StaffTaskPublic.model_validate(t) for t in rows], count=len(rows))


@router.post("/tasks/{task_id}/close", response_model=StaffTaskPublic, tags=["tasks"])
def close_task(
    session: SessionDep, user: Coordinator, task_id: uuid.UUID, data: CloseTask
) -> StaffTaskPublic:
    return commands.close_task(session=session, user=user, task_id=task_id, data=data)


@router.get(
    "/residents/{resident_id}/timeline",
    response_model=list[TimelineEventPublic],
    tags=["residents"],
)
def resident_timeline(
    session: SessionDep, user: CurrentUser, resident_id: uuid.UUID
) -> list[TimelineEventPublic]:
    """Every message, call, reply, escalation step and note for a resident, in order."""
    registry.get_resident(
        session=session,
        organization_id=user.organization_id,
        resident_id=resident_id,
        actor=actor_for(user),
    )
    items = build_timeline(session, resident_id)
    session.commit()
    return items


@router.post("/residents/{resident_id}/notes", status_code=201, tags=["residents"])
def add_note(
    session: SessionDep, user: Coordinator, resident_id: uuid.UUID, data: NoteCreate
) -> dict[str, str]:
    return commands.add_note(session=session, user=user, resident_id=resident_id, data=data)

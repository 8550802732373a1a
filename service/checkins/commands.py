"""What staff do to rounds, schedules, check-ins, cases, tasks and notes: validate, act, audit.

The API routes (service.checkins.views) and the dashboard (service.web) both call these;
they take the session, the acting user, ids and the request body, and raise DomainError
(Invalid, NotFound) for anything refused, with nothing applied."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, case, func, select
from sqlmodel import Session, SQLModel

from service.audit.service import record
from service.auth.deps import actor_for
from service.auth.models import User
from service.checkins import flows
from service.checkins import service as checkins
from service.checkins.models import (
    CheckIn,
    CheckInState,
    Round,
    RoundKind,
    RoundPublic,
    RoundStart,
    Schedule,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    StaffTask,
    StaffTaskPublic,
    TimelineEvent,
    TimelineEventPublic,
    check_targets,
)
from service.clock import get_clock
from service.common import Page, aware
from service.db import get_engine
from service.errors import Invalid, NotFound
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
from service.registry.models import Organization, Resident
from service.telephony.models import InboundMessage, OutboxMessage
from service.texts import N_
from service.translation import service as translations

# --- Schedules ------------------------------------------------------------------------------------


def _schedule(session: Session, organization_id: uuid.UUID, schedule_id: uuid.UUID) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.organization_id != organization_id:
        raise NotFound(N_("schedule not found"))
    return schedule


def _refresh_next_run(session: Session, schedule: Schedule) -> None:
    org = session.get(Organization, schedule.organization_id)
    assert org is not None
    schedule.next_run_at = (
        checkins.next_run_after(schedule, get_clock().now(), org.timezone)
        if schedule.active
        else None
    )


def _check_targets(
    session: Session, organization_id: uuid.UUID, site_ids: list[str], resident_ids: list[str]
) -> None:
    """Every site and resident a schedule names is one of the organization's."""
    for site_id in site_ids:
        try:
            registry.get_site(
                session=session, organization_id=organization_id, site_id=uuid.UUID(site_id)
            )
        except (NotFound, ValueError):
            raise Invalid(
                N_("no such site %(id)s", id=str(site_id)), field="target_site_ids"
            ) from None
    wanted = {uuid.UUID(r) for r in resident_ids}
    found = set(
        session.execute(
            select(Resident.id).where(
                Resident.organization_id == organization_id,
                Resident.id.in_(wanted),  # type: ignore[attr-defined]
            )
        ).scalars()
    )
    for resident_id in resident_ids:
        if uuid.UUID(resident_id) not in found:
            raise Invalid(
                N_("no such resident %(id)s", id=str(resident_id)), field="target_resident_ids"
            )


def create_schedule(session: Session, user: User, data: ScheduleCreate) -> SchedulePublic:
    _check_targets(session, user.organization_id, data.target_site_ids, data.target_resident_ids)
    schedule = Schedule.model_validate(data, update={"organization_id": user.organization_id})
    _refresh_next_run(session, schedule)
    session.add(schedule)
    session.flush()
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        action="create",
        entity_type="schedule",
        entity_id=schedule.id,
        fields=data.model_fields_set,
    )
    session.commit()
    return SchedulePublic.model_validate(schedule)


def update_schedule(
    session: Session, user: User, schedule_id: uuid.UUID, data: ScheduleUpdate
) -> SchedulePublic:
    schedule = _schedule(session, user.organization_id, schedule_id)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name != "target_flag":  # only the flag can be cleared
            raise Invalid(N_("%(field)s cannot be null", field=name), field=name)
    targets = [
        changes[name] if name in changes else getattr(schedule, name)
        for name in ("target_kind", "target_site_ids", "target_flag", "target_resident_ids")
    ]
    try:
        check_targets(*targets)
    except ValueError as error:
        raise Invalid(str(error), field="target_kind") from None
    if "target_site_ids" in changes or "target_resident_ids" in changes:
        _check_targets(
            session,
            user.organization_id,
            changes.get("target_site_ids") or [],
            changes.get("target_resident_ids") or [],
        )
    schedule.sqlmodel_update(changes)
    _refresh_next_run(session, schedule)
    session.add(schedule)
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        action="update",
        entity_type="schedule",
        entity_id=schedule.id,
        fields=changes.keys(),
    )
    session.commit()
    return SchedulePublic.model_validate(schedule)


def delete_schedule(session: Session, user: User, schedule_id: uuid.UUID) -> None:
    schedule = _schedule(session, user.organization_id, schedule_id)
    session.delete(schedule)
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        action="delete",
        entity_type="schedule",
        entity_id=schedule_id,
    )
    session.commit()


# --- Rounds ---------------------------------------------------------------------------------------


def round_public(session: Session, round_: Round) -> RoundPublic:
    public = RoundPublic.model_validate(round_, from_attributes=True)
    public.counts = checkins.round_counts(session, round_.id)
    return public


def start_broadcast(session: Session, user: User, data: RoundStart) -> RoundPublic:
    for site_id in data.site_ids:
        try:
            registry.get_site(
                session=session, organization_id=user.organization_id, site_id=site_id
            )
        except NotFound:
            raise Invalid(N_("no such site %(id)s", id=str(site_id)), field="site_ids") from None
    for resident_id in data.resident_ids:
        try:
            registry.get_resident(
                session=session, organization_id=user.organization_id, resident_id=resident_id
            )
        except NotFound:
            raise Invalid(
                N_("no such resident %(id)s", id=str(resident_id)), field="resident_ids"
            ) from None
    kind = RoundKind.one_off if data.resident_ids and not data.site_ids else RoundKind.broadcast
    round_id = flows.start_broadcast(
        get_engine(),
        organization_id=user.organization_id,
        started_by=actor_for(user).label,
        now_fn=get_clock().now,
        site_ids=data.site_ids,
        resident_ids=data.resident_ids,
        override_quiet_hours=data.override_quiet_hours,
        plan=data.plan,
        cause=data.cause,
        kind=kind,
    )
    round_ = session.get(Round, round_id)
    assert round_ is not None
    return round_public(session, round_)


def find_round(session: Session, organization_id: uuid.UUID, round_id: uuid.UUID) -> Round:
    round_ = session.get(Round, round_id)
    if round_ is None or round_.organization_id != organization_id:
        raise NotFound(N_("round not found"))
    return round_


class CheckInPublic(SQLModel):
    id: uuid.UUID
    round_id: uuid.UUID
    resident_id: uuid.UUID
    resident_name: str
    state: CheckInState
    flagged: bool
    last_reply_kind: str | None
    replied_at: datetime | None
    next_action_at: datetime | None
    escalation_id: uuid.UUID | None


def checkin_urgency() -> Any:
    """Check-ins, most urgent first: calls for help, residents nobody could reach, silence to
    the end of the plan, the visit list; then those still waiting, a reply nobody could read
    first and the nearest deadline next; then call-back requests; the closed ones last."""
    return (
        case(
            (CheckIn.state == CheckInState.needs_help, 0),
            (CheckIn.state == CheckInState.unreachable, 1),
            (CheckIn.state == CheckInState.no_reply, 2),
            (CheckIn.state.in_([CheckInState.visit_list, CheckInState.opted_out]), 3),  # type: ignore[attr-defined]
            (and_(CheckIn.state == CheckInState.waiting, CheckIn.flagged.is_(True)), 4),  # type: ignore[attr-defined]
            (CheckIn.state == CheckInState.waiting, 5),
            (CheckIn.state == CheckInState.wants_talk, 6),
            else_=7,
        ),
        CheckIn.next_action_at.is_(None),  # type: ignore[union-attr]
        CheckIn.next_action_at,
    )


CheckInOrder = Literal["urgency", "name"]


def _list_checkins(
    session: Session,
    user: User,
    *,
    round_id: uuid.UUID | None,
    state: CheckInState | None,
    flagged: bool | None,
    site_id: uuid.UUID | None,
    sort: CheckInOrder,
    skip: int,
    limit: int,
) -> Page[CheckInPublic]:
    query = (
        select(CheckIn, Resident.name)
        .join(Resident, Resident.id == CheckIn.resident_id)
        .where(CheckIn.organization_id == user.organization_id)
    )
    if round_id is not None:
        query = query.where(CheckIn.round_id == round_id)
    if state is not None:
        query = query.where(CheckIn.state == state)
    if flagged is not None:
        query = query.where(CheckIn.flagged.is_(flagged))  # type: ignore[attr-defined]
    if site_id is not None:
        query = query.where(Resident.site_id == site_id)
    count = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    by_name = (Resident.name_kana, Resident.name, CheckIn.id)
    order = by_name if sort == "name" else (*checkin_urgency(), *by_name)
    rows = session.execute(query.order_by(*order).offset(skip).limit(limit)).all()
    # Residents' names and welfare states: a read of residents, audited as the resident
    # list is.
    filters = {"round_id": round_id, "state": state, "flagged": flagged, "site_id": site_id}
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        action="list",
        entity_type="checkin",
        detail={
            "returned": len(rows),
            "filters": sorted(k for k, v in filters.items() if v is not None),
        },
    )
    # The page is built before the commit, which would expire every row read for it.
    page = Page(
        data=[CheckInPublic.model_validate(c, update={"resident_name": name}) for c, name in rows],
        count=count,
    )
    session.commit()
    return page


def list_checkins(
    session: Session,
    user: User,
    round_id: uuid.UUID | None = None,
    state: CheckInState | None = None,
    flagged: bool | None = None,
    site_id: uuid.UUID | None = None,
    sort: CheckInOrder = "urgency",
    skip: int = 0,
    limit: int = 100,
) -> Page[CheckInPublic]:
    return _list_checkins(
        session,
        user,
        round_id=round_id,
        state=state,
        flagged=flagged,
        site_id=site_id,
        sort=sort,
        skip=skip,
        limit=limit,
    )


def list_round_checkins(
    session: Session,
    user: User,
    round_id: uuid.UUID,
    state: CheckInState | None = None,
    flagged: bool | None = None,
    sort: CheckInOrder = "name",
    skip: int = 0,
    limit: int = 100,
) -> Page[CheckInPublic]:
    find_round(session, user.organization_id, round_id)
    return _list_checkins(
        session,
        user,
        round_id=round_id,
        state=state,
        flagged=flagged,
        site_id=None,
        sort=sort,
        skip=skip,
        limit=limit,
    )


# --- Escalations ----------------------------------------------------------------------------------


def escalation_public(escalation: Escalation) -> EscalationPublic:
    public = EscalationPublic.model_validate(escalation, from_attributes=True)
    public.chain_length = len(escalation.chain)
    return public


def find_escalation(
    session: Session, organization_id: uuid.UUID, escalation_id: uuid.UUID
) -> Escalation:
    escalation = session.get(Escalation, escalation_id)
    if escalation is None or escalation.organization_id != organization_id:
        raise NotFound(N_("escalation not found"))
    return escalation


def acknowledge(
    session: Session, user: User, escalation_id: uuid.UUID, data: AcknowledgeRequest
) -> EscalationPublic:
    escalation = find_escalation(session, user.organization_id, escalation_id)
    if escalation.state == EscalationState.resolved:
        raise Invalid(N_("this case is already resolved"), field="escalation_id")
    member_id = data.member_id
    if member_id is None:
        raise Invalid(N_("say which member will visit"), field="member_id")
    registry.get_member(session=session, organization_id=user.organization_id, member_id=member_id)
    actor = actor_for(user)
    escalations.acknowledge(
        session,
        escalation=escalation,
        member_id=member_id,
        now=get_clock().now(),
        actor=actor.label,
        note=data.note,
    )
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor,
        action="acknowledge",
        entity_type="escalation",
        entity_id=escalation.id,
        detail={"member_id": str(member_id)},
    )
    session.commit()
    return escalation_public(escalation)


def resolve(
    session: Session, user: User, escalation_id: uuid.UUID, data: ResolveRequest
) -> EscalationPublic:
    escalation = find_escalation(session, user.organization_id, escalation_id)
    if escalation.state == EscalationState.resolved:
        raise Invalid(N_("this case is already resolved"), field="escalation_id")
    if data.member_id is not None:
        registry.get_member(
            session=session, organization_id=user.organization_id, member_id=data.member_id
        )
    actor = actor_for(user)
    escalations.resolve(
        session,
        escalation=escalation,
        outcome=data.outcome,
        now=get_clock().now(),
        actor=actor.label,
        member_id=data.member_id,
        note=data.note,
    )
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor,
        action="resolve",
        entity_type="escalation",
        entity_id=escalation.id,
        fields=["outcome"] + (["note"] if data.note else []),
    )
    session.commit()
    return escalation_public(escalation)


def reassign(
    session: Session, user: User, escalation_id: uuid.UUID, data: ReassignRequest
) -> EscalationPublic:
    escalation = find_escalation(session, user.organization_id, escalation_id)
    if escalation.state == EscalationState.resolved:
        raise Invalid(N_("this case is already resolved"), field="escalation_id")
    member = registry.get_member(
        session=session, organization_id=user.organization_id, member_id=data.member_id
    )
    actor = actor_for(user)
    escalations.reassign(
        session, escalation=escalation, member=member, now=get_clock().now(), actor=actor.label
    )
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor,
        action="reassign",
        entity_type="escalation",
        entity_id=escalation.id,
        detail={"member_id": str(member.id)},
    )
    session.commit()
    return escalation_public(escalation)


# --- Tasks, inbox and timeline -------------------------------------------------------------


class CloseTask(SQLModel):
    note: str | None = None


def close_task(
    session: Session, user: User, task_id: uuid.UUID, data: CloseTask
) -> StaffTaskPublic:
    task = session.get(StaffTask, task_id)
    if task is None or task.organization_id != user.organization_id:
        raise NotFound(N_("task not found"))
    actor = actor_for(user)
    task.closed_at = get_clock().now()
    task.closed_by = actor.label
    task.note = data.note
    session.add(task)
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor,
        action="close",
        entity_type="task",
        entity_id=task.id,
    )
    session.commit()
    return StaffTaskPublic.model_validate(task)


def build_timeline(session: Session, resident_id: uuid.UUID) -> list[TimelineEventPublic]:
    items: list[TimelineEventPublic] = []
    # Replies' Japanese translations, and translated answers' Japanese originals.
    translated = translations.timeline_details(session, resident_id)
    for event in session.execute(
        select(TimelineEvent).where(TimelineEvent.resident_id == resident_id)
    ).scalars():
        items.append(
            TimelineEventPublic(
                at=aware(event.at),
                kind=event.kind,
                actor=event.actor,  # type: ignore[arg-type]
                member_id=event.member_id,
                checkin_id=event.checkin_id,
                escalation_id=event.escalation_id,
                detail=event.detail or {},
            )
        )
    for message in session.execute(
        select(OutboxMessage).where(OutboxMessage.resident_id == resident_id)
    ).scalars():
        # "sms.out.checkin", "whatsapp.out.checkin", "line.out.resident_notice", "call.out".
        channel = str(getattr(message.channel, "value", message.channel))
        kind = "call.out" if channel == "call" else f"{channel}.out.{message.purpose}"
        items.append(
            TimelineEventPublic(
                at=aware(message.created_at),
                kind=kind,
                actor=None,  # type: ignore[arg-type]
                member_id=message.member_id,
                checkin_id=None,
                escalation_id=None,
                detail={
                    "body": message.body,
                    "to": message.to_phone,
                    "error_code": message.last_error_code,
                    **translated.get(message.id, {}),
                },
                delivery_status=message.status,
            )
        )
    for inbound in session.execute(
        select(InboundMessage).where(InboundMessage.resident_id == resident_id)
    ).scalars():
        items.append(
            TimelineEventPublic(
                at=aware(inbound.received_at),
                kind=f"{inbound.channel}.in",  # type: ignore[arg-type]
                actor=None,
                member_id=None,
                checkin_id=None,
                escalation_id=None,
                detail={
                    "body": inbound.body,
                    "class": inbound.classification,
                    **translated.get(inbound.id, {}),
                },
            )
        )
    items.sort(key=lambda item: item.at)
    return items


class NoteCreate(SQLModel):
    text: str


def add_note(
    session: Session, user: User, resident_id: uuid.UUID, data: NoteCreate
) -> dict[str, str]:
    text = data.text.strip()
    if not text:
        raise Invalid(N_("a note cannot be empty"), field="text")
    resident = registry.get_resident(
        session=session, organization_id=user.organization_id, resident_id=resident_id
    )
    actor = actor_for(user)
    escalations.timeline(
        session,
        resident_id=resident.id,
        organization_id=resident.organization_id,
        kind="note",
        at=get_clock().now(),
        actor=actor.label,
        detail={"text": text[:4000]},
    )
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor,
        action="note",
        entity_type="resident",
        entity_id=resident.id,
    )
    session.commit()
    return {"status": "ok"}

"""When a partnership ends, a shared interpreter's part in the other organization's cases
ends with it, and no case is left without someone.

The partners' domain (``service.partners``) sits below escalations and cannot call into
them; the escalation sweep asks here instead, every tick, for open cases that wait on, or
are held by, a member of an organization that is no longer a partner of the case's:

- an alert still waiting for their answer counts as their "2" (``AlertFailed``): the chain
  goes on to its next step, or runs out onto staff's list;
- a case they hold is handed on (``HandedOn``), as if they had handed it back.

Meanwhile their replies no longer reach the case (``service._member_cases``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from service.escalations import service as escalations
from service.escalations.alerts import audit_partner, partner_detail, partner_recipient
from service.escalations.models import Alert, AlertState, Escalation, EscalationState
from service.partners.service import are_partners
from service.registry.models import Member
from service.timeline import timeline

ACTOR = "partnership_ended"


def release_ended_partnerships(session: Session, now: datetime) -> int:
    """Release every open case's alert to, or hold by, a member of an organization that is
    no longer a partner of the case's organization. Returns how many were released; the
    caller commits."""
    waiting = session.execute(
        select(Alert.id, Escalation.id, Escalation.organization_id, Member.organization_id)
        .join(Escalation, Escalation.id == Alert.escalation_id)
        .join(Member, Member.id == Alert.member_id)
        .where(
            Alert.state == AlertState.sent,
            Escalation.state == EscalationState.alerting,
            Member.organization_id != Escalation.organization_id,
        )
    ).all()
    held = session.execute(
        select(Escalation.id, Escalation.organization_id, Member.organization_id)
        .join(Member, Member.id == Escalation.acknowledged_by)
        .where(
            Escalation.state == EscalationState.acknowledged,
            Member.organization_id != Escalation.organization_id,
        )
    ).all()
    partners: dict[tuple[uuid.UUID, uuid.UUID], bool] = {}

    def ended(case_org: uuid.UUID, member_org: uuid.UUID) -> bool:
        key = (case_org, member_org)
        if key not in partners:
            partners[key] = are_partners(session, case_org, member_org)
        return not partners[key]

    released = 0
    for alert_id, escalation_id, case_org, member_org in waiting:
        if ended(case_org, member_org):
            released += _release_alert(session, escalation_id, alert_id, now)
    for escalation_id, case_org, member_org in held:
        if ended(case_org, member_org):
            released += _release_hold(session, escalation_id, now)
    return released


def _locked(session: Session, escalation_id: uuid.UUID) -> Escalation | None:
    return session.get(Escalation, escalation_id, with_for_update=True, populate_existing=True)


def _note(session: Session, escalation: Escalation, member_id: uuid.UUID, now: datetime) -> None:
    recipient = partner_recipient(escalation, member_id)
    timeline(
        session,
        resident_id=escalation.resident_id,
        organization_id=escalation.organization_id,
        kind="escalation.partner_ended",
        at=now,
        escalation_id=escalation.id,
        member_id=member_id,
        detail=partner_detail(recipient),
    )
    if recipient is not None:
        audit_partner(session, escalation, recipient, "partner_released", ACTOR)


def _release_alert(
    session: Session, escalation_id: uuid.UUID, alert_id: uuid.UUID, now: datetime
) -> int:
    escalation = _locked(session, escalation_id)
    alert = session.get(Alert, alert_id, populate_existing=True)
    if (
        escalation is None
        or alert is None
        or alert.state != AlertState.sent
        or escalation.state != EscalationState.alerting
    ):
        return 0  # answered or moved on meanwhile
    _note(session, escalation, alert.member_id, now)
    escalations.decline(session, escalation=escalation, alert=alert, now=now)
    return 1


def _release_hold(session: Session, escalation_id: uuid.UUID, now: datetime) -> int:
    escalation = _locked(session, escalation_id)
    if escalation is None or escalation.state != EscalationState.acknowledged:
        return 0
    assert escalation.acknowledged_by is not None
    _note(session, escalation, escalation.acknowledged_by, now)
    escalations.hand_on(session, escalation=escalation, now=now, actor=ACTOR)
    return 1

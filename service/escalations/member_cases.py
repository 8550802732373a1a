"""Which open cases a member's reply can be about, across organizations: their own
organization's, and a partner's that alerted them as a shared interpreter, while the two
are partners (issue 21); and the audit of a partner member's answer in both logs."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlmodel import Session

from service.escalations.alerts import audit_partner, partner_recipient
from service.escalations.models import OPEN_STATES, Alert, AlertState, Escalation, EscalationState
from service.escalations.snapshot import Decision, Relation
from service.registry.models import Member


def member_cases(session: Session, member: Member) -> dict[str, tuple[uuid.UUID, Relation]]:
    """The member's open cases by code: those they were alerted about (an alert waiting for
    them, or a former one) and those they hold. A case of another organization (a partner's,
    through a shared interpreter) counts only while the two are partners. Case codes are
    chosen so that no two open cases of one member share one (``chains.new_case_code``);
    should two ever do, a case waiting for them or held by them wins over a former one."""
    cases: dict[str, tuple[uuid.UUID, Relation]] = {}
    rows = session.execute(
        select(
            Escalation.id,
            Escalation.case_code,
            Escalation.state,
            Alert.state,
            Escalation.organization_id,
        )
        .join(Alert, Alert.escalation_id == Escalation.id)
        .where(
            Alert.member_id == member.id,
            Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
        )
        .order_by(Alert.sent_at)
    ).all()
    partners = _partners_of(session, member, {row[4] for row in rows})

    def put(code: str, escalation_id: uuid.UUID, rel: Relation) -> None:
        known = cases.get(code)
        better = known is None or _RANK[rel] > _RANK[known[1]]
        if better or (known[0] != escalation_id and _RANK[rel] == _RANK[known[1]]):
            cases[code] = (escalation_id, rel)  # another case, as close to them: the latest

    for escalation_id, code, state, alert_state, org_id in rows:
        if org_id != member.organization_id and org_id not in partners:
            continue
        waiting = state == EscalationState.alerting and alert_state == AlertState.sent
        put(code, escalation_id, Relation.ALERTED if waiting else Relation.FORMER)
    held = session.execute(
        select(Escalation.id, Escalation.case_code, Escalation.organization_id).where(
            Escalation.acknowledged_by == member.id,
            Escalation.state == EscalationState.acknowledged,
        )
    ).all()
    partners |= _partners_of(session, member, {row[2] for row in held} - partners)
    for escalation_id, code, org_id in held:
        if org_id == member.organization_id or org_id in partners:
            put(code, escalation_id, Relation.HOLDER)
    return cases


_RANK = {Relation.FORMER: 0, Relation.ALERTED: 1, Relation.HOLDER: 2}


def _partners_of(session: Session, member: Member, org_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Of ``org_ids``, those the member's organization is an active partner of (asked only
    when the member has a case of another organization)."""
    if not org_ids - {member.organization_id}:
        return set()
    from service.partners.service import partner_org_ids

    return partner_org_ids(session, member.organization_id) & org_ids


def audit_partner_answer(
    session: Session, escalation: Escalation, member: Member, decision: Decision
) -> None:
    """A partner's member answered a case of another organization: in both logs."""
    if member.organization_id == escalation.organization_id or decision.audit is None:
        return
    recipient = partner_recipient(escalation, member.id)
    if recipient is None:
        return
    extra = {"answer": decision.audit.action, **dict(decision.audit.detail)}
    audit_partner(session, escalation, recipient, "partner_answer", f"member:{member.name}", extra)

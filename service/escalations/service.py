"""The escalation engine: a frozen chain of members, stepped by a sweep, never dropped.

The rules are in ``service.escalations.policy`` (pure functions over a frozen case); this
module loads a case, calls ``policy.decide`` and applies the decision: rows, alerts and
notices (``service.escalations.alerts``), timeline and audit.

- The chain (``service.escalations.chains``) is the resident's assigned members by rank,
  then the staff on duty, copied when the escalation starts.
- Each step alerts by SMS and waits ``ack_minutes``; no acknowledgement moves to the next.
- A member's answer follows member protocol v2 (see the policy): "1 A7" takes the case,
  "2 A7" declines or hands it back, and the result of the visit is sent code first, "A7 1".
- A member who acknowledged but sends no outcome is reminded after ``outcome_hours``, then
  un-acknowledged, and the chain goes on.
- When the chain runs out the escalation is "exhausted": it stays on staff's list and is
  never closed by itself.
- Stale-job guard: transitions happen under the row lock and only if the version the sweep
  read is still current, so duplicated or late sweeps are harmless.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, inspect, select, update
from sqlmodel import Session

from i18n.render import format_datetime, render
from service.audit.service import Actor, record
from service.common import aware
from service.escalations import policy
from service.escalations.alerts import (
    NOT_GIVEN,
    LastContact,
    alert_text,
    known_last_contact,
    last_contacts,
    member_notice,
    partner_detail,
    partner_recipient,
    resident_values,
    send_alert,
)
from service.escalations.chains import (
    build_chain,
    escalation_interpreter,
    interpreter_for,
    needs_interpreter,
    new_case_code,
    recipient_of,
)
from service.escalations.member_cases import audit_partner_answer, member_cases
from service.escalations.models import (
    OPEN_STATES,
    REASON_PRIORITY,
    Alert,
    AlertState,
    Escalation,
    EscalationReason,
    EscalationState,
    Outcome,
)
from service.escalations.snapshot import (
    AlertFact,
    AlertFailed,
    Case,
    Chain,
    Decision,
    Due,
    Event,
    HandedOn,
    KeypadAnswered,
    MemberAnswered,
    Recipient,
    ResidentReplied,
    StaffAcknowledged,
    StaffReassigned,
    StaffResolved,
    parse_reply,
)
from service.registry.models import Member, Organization, Resident
from service.timeline import timeline

__all__ = [
    "NOT_GIVEN",
    "OPEN_STATES",
    "SWEPT_STATES",
    "LastContact",
    "acknowledge",
    "advance_escalation",
    "alert_text",
    "answer_alert_by_keypad",
    "build_chain",
    "decline",
    "due_escalation_ids",
    "hand_on",
    "handle_member_reply",
    "interpreter_for",
    "last_contacts",
    "notify_late_reply",
    "open_escalation",
    "parse_member_reply",
    "reassign",
    "resolve",
    "timeline",
    "urgency",
]

# The states with a next step the sweep takes: the next alert, or the acknowledger's reminder.
SWEPT_STATES = (EscalationState.alerting, EscalationState.acknowledged)


def urgency() -> Any:
    """Open cases, most urgent first (the API's lists and the dashboard's board agree): calls
    for help (whoever holds them), then chains nobody took, then cases still waiting for a
    member, then residents nobody could reach; other cases a member has taken come last."""
    return case(
        (Escalation.reason == EscalationReason.needs_help, 0),
        (Escalation.state == EscalationState.exhausted, 1),
        (
            and_(
                Escalation.state == EscalationState.alerting,
                Escalation.reason != EscalationReason.unreachable,
            ),
            2,
        ),
        (Escalation.reason == EscalationReason.unreachable, 3),
        else_=4,
    )


def open_escalation(
    session: Session,
    *,
    resident: Resident,
    reason: EscalationReason,
    now: datetime,
    checkin_id: uuid.UUID | None = None,
    cause: str | None = None,
    last_contact: LastContact = NOT_GIVEN,
) -> Escalation:
    """Start (or raise the priority of) the resident's escalation, and alert step one.
    ``last_contact`` is passed by a caller that already knows it (a sweep escalating many
    residents at once); otherwise it is looked up."""
    existing = (
        session.execute(
            select(Escalation)
            .where(Escalation.resident_id == resident.id, Escalation.state.in_(OPEN_STATES))
            .with_for_update()
        )
        .scalars()
        .first()
    )  # type: ignore[attr-defined]
    if existing is not None:
        if REASON_PRIORITY[reason] < existing.priority:
            existing.priority = REASON_PRIORITY[reason]
            existing.reason = reason
            existing.updated_at = now
            session.add(existing)
            timeline(
                session,
                resident_id=resident.id,
                organization_id=resident.organization_id,
                kind="escalation.priority",
                at=now,
                escalation_id=existing.id,
                detail={"reason": reason.value},
            )
        if reason == EscalationReason.needs_help and existing.state == EscalationState.exhausted:
            # Nobody holds an exhausted case: a new call for help starts the chain again,
            # rather than only changing its place on the board.
            existing.chain = build_chain(
                session, resident, reason, case_code=existing.case_code, escalation_id=existing.id
            )
            _start_step(session, existing, resident, 0, now, last_contact)
        elif reason == EscalationReason.needs_help and existing.state == EscalationState.alerting:
            _add_interpreter(session, existing, resident, now, last_contact)
        return existing
    chain = build_chain(session, resident, reason)
    org = session.get(Organization, resident.organization_id)
    assert org is not None
    escalation = Escalation(
        organization_id=resident.organization_id,
        resident_id=resident.id,
        checkin_id=checkin_id,
        reason=reason,
        priority=REASON_PRIORITY[reason],
        chain=chain,
        case_code=new_case_code(session, resident.organization_id, chain),
        cause=cause,
        ack_minutes=org.ack_minutes,
        outcome_hours=org.outcome_hours,
        created_at=now,
        updated_at=now,
    )
    session.add(escalation)
    timeline(
        session,
        resident_id=resident.id,
        organization_id=resident.organization_id,
        kind="escalation.opened",
        at=now,
        escalation_id=escalation.id,
        checkin_id=checkin_id,
        detail={"reason": reason.value, "steps": len(chain)},
    )
    _start_step(session, escalation, resident, 0, now, last_contact)
    return escalation


def _start_step(
    session: Session,
    escalation: Escalation,
    resident: Resident,
    step: int,
    now: datetime,
    last_contact: LastContact = NOT_GIVEN,
) -> None:
    decision = policy.start(_snapshot(session, escalation), step, now)
    _apply(session, escalation, decision, now, resident=resident, last_contact=last_contact)


# --- Load, decide, apply ----------------------------------------------------------------------


def _snapshot(session: Session, escalation: Escalation) -> Case:
    """The case as the policy sees it: its row, its chain and all its alerts, oldest first
    (read fresh: another transaction may have answered one)."""
    alerts: list[Alert] = []
    if not (inspect(escalation).pending or inspect(escalation).transient):
        alerts = list(
            session.execute(
                select(Alert)
                .where(Alert.escalation_id == escalation.id)
                .order_by(Alert.sent_at, Alert.step_index)  # type: ignore[arg-type]
                .execution_options(populate_existing=True)
            ).scalars()
        )
    return Case(
        code=escalation.case_code,
        state=EscalationState(escalation.state),
        step=escalation.step_index,
        chain=Chain.of(
            escalation.chain,
            ack_minutes=escalation.ack_minutes,
            outcome_hours=escalation.outcome_hours,
        ),
        holder=escalation.acknowledged_by,
        taken_at=aware(escalation.acknowledged_at),
        reminded_at=aware(escalation.reminded_at),
        due_at=aware(escalation.next_action_at),
        outcome=escalation.outcome,
        outcome_note=escalation.outcome_note,
        resolved_at=aware(escalation.resolved_at),
        resolved_by=escalation.resolved_by,
        alerts=tuple(
            AlertFact(a.id, a.member_id, a.step_index, a.state == AlertState.sent) for a in alerts
        ),
    )


def _apply(
    session: Session,
    escalation: Escalation,
    decision: Decision,
    now: datetime,
    *,
    resident: Resident | None = None,
    last_contact: LastContact = NOT_GIVEN,
) -> None:
    """Carry out the policy's decision: the row, the alerts, the timeline, the members'
    SMS (notices first, then the new step's alerts) and the audit."""
    case = decision.case
    if case is not None:
        if case.chain != Chain.of(
            escalation.chain,
            ack_minutes=escalation.ack_minutes,
            outcome_hours=escalation.outcome_hours,
        ):
            escalation.chain = case.chain.to_json()  # a new list: saved as changed
        escalation.state = case.state
        escalation.step_index = case.step
        escalation.acknowledged_by = case.holder
        escalation.acknowledged_at = case.taken_at
        escalation.reminded_at = case.reminded_at
        escalation.next_action_at = case.due_at
        escalation.outcome = case.outcome
        escalation.outcome_note = case.outcome_note
        escalation.resolved_at = case.resolved_at
        escalation.resolved_by = case.resolved_by
        escalation.version += 1
        escalation.updated_at = now
        session.add(escalation)
    for alert_id, state in decision.alert_states.items():
        alert = session.get(Alert, alert_id)
        if alert is not None:
            alert.state = state
            alert.answered_at = alert.answered_at or now
            session.add(alert)
    for entry in decision.timeline:
        detail = dict(entry.detail)
        detail.update(partner_detail(partner_recipient(escalation, entry.member_id)))
        timeline(
            session,
            resident_id=escalation.resident_id,
            organization_id=escalation.organization_id,
            kind=entry.kind,
            at=now,
            escalation_id=escalation.id,
            member_id=entry.member_id,
            actor=entry.actor,
            detail=detail,
        )
    if decision.notices:
        _notify(session, escalation, decision, now)
    if decision.alerts:
        _send_alerts(session, escalation, decision, now, resident, last_contact)
    if decision.audit is not None:
        record(
            session=session,
            organization_id=escalation.organization_id,
            actor=Actor(label=decision.audit.actor),
            action=decision.audit.action,
            entity_type="escalation",
            entity_id=escalation.id,
            detail=dict(decision.audit.detail),
        )


def _notify(session: Session, escalation: Escalation, decision: Decision, now: datetime) -> None:
    values = resident_values(session, escalation)
    org = session.get(Organization, escalation.organization_id)
    assert org is not None
    for notice in decision.notices:
        member = session.get(Member, notice.member_id)
        if member is None:
            continue
        extra: dict[str, Any] = {}
        if notice.answer is not None:  # the resident's late answer, in the member's words
            locale = (member.languages or ["ja"])[0]
            extra = {
                "answer": render(notice.answer, locale),
                "time": format_datetime(now, locale, org.timezone, format="short"),
            }
        member_notice(
            session, escalation, notice.member_id, notice.message_id, now, **values, **extra
        )


def _send_alerts(
    session: Session,
    escalation: Escalation,
    decision: Decision,
    now: datetime,
    resident: Resident | None,
    last_contact: LastContact,
) -> None:
    resident = resident or session.get(Resident, escalation.resident_id)
    assert resident is not None
    # The escalation row must exist before its alerts: the unit of work orders inserts by
    # relationship, and there is none between these tables, only the foreign key.
    session.flush()
    org = session.get(Organization, resident.organization_id)
    assert org is not None
    # Every step's alerts say when the resident was last heard from, not only the first's.
    contact = known_last_contact(session, escalation, resident, last_contact)
    for new in decision.alerts:
        send_alert(
            session, escalation, resident, org, new.recipient.to_json(), new.step, now, contact
        )


def _answer(
    session: Session, escalation: Escalation, decision: Decision, locale: str
) -> str | None:
    """The reply the decision names, in the member's language (None: no reply)."""
    if not decision.answer:
        return None
    values = resident_values(session, escalation, locale)
    return " ".join(render(message_id, locale, **values) for message_id in decision.answer)


def _add_interpreter(
    session: Session,
    escalation: Escalation,
    resident: Resident,
    now: datetime,
    last_contact: LastContact,
) -> None:
    """A call for help on a case already asking its members (silent until then): as for a
    case opened by help, a supporter who speaks the resident's language joins, alerted now
    beside the step's members, unless they are in the chain already."""
    if not needs_interpreter(resident):
        return
    recipient = escalation_interpreter(
        session, resident, case_code=escalation.case_code, escalation_id=escalation.id
    )
    if recipient is None or any(
        r["member_id"] == recipient["member_id"] for step in escalation.chain for r in step
    ):
        return
    chain = [list(step) for step in escalation.chain]
    chain[escalation.step_index].append(recipient)
    escalation.chain = chain  # a new list: the JSON column is saved as changed
    session.add(escalation)
    org = session.get(Organization, resident.organization_id)
    assert org is not None
    contact = known_last_contact(session, escalation, resident, last_contact)
    send_alert(session, escalation, resident, org, recipient, escalation.step_index, now, contact)


# --- The sweep ------------------------------------------------------------------------------------


def due_escalation_ids(session: Session, now: datetime, limit: int) -> list[tuple[uuid.UUID, int]]:
    query = (
        select(Escalation.id, Escalation.version)
        .where(
            Escalation.state.in_(SWEPT_STATES),  # type: ignore[attr-defined]
            Escalation.next_action_at <= now,
        )
        .order_by(Escalation.priority, Escalation.next_action_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def advance_escalation(
    session: Session, escalation_id: uuid.UUID, expected_version: int, now: datetime
) -> bool:
    """Take the escalation's due step, if it is still the step the sweep saw.

    On PostgreSQL the row is read under its lock (``SKIP LOCKED``: a row another worker
    holds is left to it). SQLite has no row locks and takes its write lock only at a
    transaction's first write, so the step is first claimed by a guarded ``UPDATE``: a
    member's "1" that came in after the sweep listed the step, and bumped the version,
    makes the claim miss, instead of being written over by the next step."""
    query = select(Escalation).where(Escalation.id == escalation_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    else:
        claimed = session.execute(
            update(Escalation)
            .where(
                Escalation.id == escalation_id,  # type: ignore[arg-type]
                Escalation.version == expected_version,  # type: ignore[arg-type]
                Escalation.state.in_(SWEPT_STATES),  # type: ignore[attr-defined]
                Escalation.next_action_at <= now,  # type: ignore[arg-type,operator]
            )
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        query = query.execution_options(populate_existing=True)
    escalation = session.execute(query).scalars().first()
    if escalation is None or escalation.version != expected_version:
        return False
    decision = policy.decide(_snapshot(session, escalation), Due(), now)
    _apply(session, escalation, decision, now)
    return decision.case is not None


# --- Member replies -------------------------------------------------------------------------------


def parse_member_reply(text: str) -> tuple[str | None, str] | None:
    """ "1", "A7 1", "1 A7", "１　ａ７" -> (code, digit); anything else -> None. The order
    (code first or digit first) is in :func:`service.escalations.snapshot.parse_reply`."""
    reply = parse_reply(text)
    return None if reply is None else (reply.code, reply.digit)


def answer_alert_by_keypad(
    session: Session, *, alert_id: uuid.UUID, member: Member, digit: str, now: datetime
) -> str | None:
    """A member pressed 1 ("I'll go") or 2 ("I can't") on an alert call. Returns the SMS to
    send them (the address after a 1), or None if the alert no longer waits for them.

    Not routed through the SMS parser: a keypress answers this alert and nothing else (a
    "1" must never be read as a visit outcome). The escalation's row lock serializes it with
    an SMS answer to the same alert, which changes the escalation too.
    """
    alert = session.get(Alert, alert_id)
    if alert is None or alert.member_id != member.id:
        return None
    escalation = session.get(
        Escalation, alert.escalation_id, with_for_update=True, populate_existing=True
    )
    if escalation is None:
        return None
    event = KeypadAnswered(alert_id, member.id, digit, f"member:{member.name}")
    decision = policy.decide(_snapshot(session, escalation), event, now)
    if not decision.answer:
        return None
    _apply(session, escalation, decision, now)
    audit_partner_answer(session, escalation, member, decision)
    return _answer(session, escalation, decision, (member.languages or ["ja"])[0])


def handle_member_reply(
    session: Session,
    *,
    member: Member,
    text: str,
    now: datetime,
) -> str:
    """Apply a member's SMS reply; return the text to answer with, in their language.

    The reply is read from the parsed answer (digit, case code, which comes first) and the
    member's relation to the case it names (protocol v2, ``service.escalations.policy``),
    never from the member's other messages or the time since they took the case."""
    locale = (member.languages or ["ja"])[0]
    reply = parse_reply(text)
    if reply is None:
        return render("member.unclear", locale)
    cases = member_cases(session, member)
    route = policy.route(reply, {code: rel for code, (_id, rel) in cases.items()})
    if route.code is None:
        assert route.ask is not None
        return render(route.ask, locale, codes=", ".join(route.codes))
    escalation = session.get(
        Escalation, cases[route.code][0], with_for_update=True, populate_existing=True
    )
    assert escalation is not None
    event = MemberAnswered(member.id, reply, f"member:{member.name}")
    decision = policy.decide(_snapshot(session, escalation), event, now)
    _apply(session, escalation, decision, now)
    audit_partner_answer(session, escalation, member, decision)
    return _answer(session, escalation, decision, locale) or render("member.unclear", locale)


def _decide_and_apply(
    session: Session, escalation: Escalation, event: Event, now: datetime
) -> Decision:
    decision = policy.decide(_snapshot(session, escalation), event, now)
    _apply(session, escalation, decision, now)
    return decision


def hand_on(session: Session, *, escalation: Escalation, now: datetime, actor: str) -> None:
    """The member who acknowledged cannot go: the chain continues with the next step."""
    _decide_and_apply(session, escalation, HandedOn(actor), now)


def acknowledge(
    session: Session,
    *,
    escalation: Escalation,
    member_id: uuid.UUID,
    now: datetime,
    actor: str,
    note: str | None = None,
) -> None:
    """Staff take the case for a member (after a phone call with them, say)."""
    _decide_and_apply(session, escalation, StaffAcknowledged(member_id, actor, note), now)


def decline(session: Session, *, escalation: Escalation, alert: Alert, now: datetime) -> None:
    """The alert cannot reach its member: it counts as their "2"."""
    _decide_and_apply(session, escalation, AlertFailed(alert.id), now)


def resolve(
    session: Session,
    *,
    escalation: Escalation,
    outcome: Outcome,
    now: datetime,
    actor: str,
    member_id: uuid.UUID | None = None,
    note: str | None = None,
) -> None:
    event = StaffResolved(outcome, actor, member_id, note)
    _decide_and_apply(session, escalation, event, now)


def reassign(
    session: Session, *, escalation: Escalation, member: Member, now: datetime, actor: str
) -> None:
    """Staff hand the case to someone specific: alert them now, as a step of their own."""
    event = StaffReassigned(Recipient.of(recipient_of(member)), actor)
    _decide_and_apply(session, escalation, event, now)


def notify_late_reply(
    session: Session, *, escalation: Escalation, answer_id: str, now: datetime
) -> int:
    """The resident answered after the alert went out: tell whoever holds the case.
    Returns how many members were told (none when nobody holds it: an exhausted case)."""
    decision = _decide_and_apply(session, escalation, ResidentReplied(answer_id), now)
    return len(decision.notices)

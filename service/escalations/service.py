"""The escalation engine: a frozen chain of members, stepped by a sweep, never dropped.

- The chain is the resident's assigned members by rank, then the staff on duty, copied when
  the escalation starts; later edits to assignments do not change it.
- Each step alerts by SMS and waits ``ack_minutes``; no acknowledgement moves to the next.
- "1" acknowledges, "2" declines (the next step starts at once when everyone in the step has
  declined), and after the visit a digit 1-5 records the outcome.
- A member who acknowledged but sends no outcome is reminded after ``outcome_hours``, then
  un-acknowledged, and the chain goes on.
- When the chain runs out the escalation is "exhausted": it stays on staff's list and is
  never closed by itself.
- Stale-job guard: transitions happen under the row lock and only if the version the sweep
  read is still current, so duplicated or late sweeps are harmless.
"""

from __future__ import annotations

import random
import string
import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import and_, case, func, inspect, or_, select, update
from sqlmodel import Session

from i18n.languages import display_name
from i18n.names import LocalizedName
from i18n.render import format_datetime, render
from service.audit.service import Actor, record
from service.common import aware
from service.config import get_settings
from service.escalations import policy
from service.escalations.models import (
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
    Relation,
    ResidentReplied,
    StaffAcknowledged,
    StaffReassigned,
    StaffResolved,
    parse_reply,
)
from service.registry.models import (
    Assignment,
    Member,
    MemberKind,
    Organization,
    Resident,
    Site,
)
from service.registry.phones import PhoneKind
from service.telephony.models import OutboxChannel, OutboxPurpose
from service.telephony.outbox import enqueue
from service.timeline import timeline

OPEN_STATES = (EscalationState.alerting, EscalationState.acknowledged, EscalationState.exhausted)
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


class _NotGiven(Enum):
    NOT_GIVEN = "not given"


#: ``last_contact`` left for the escalation to look up (``None`` means "never heard from").
NOT_GIVEN = _NotGiven.NOT_GIVEN
LastContact = datetime | None | _NotGiven


def last_contacts(session: Session, resident_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each resident was last heard from: their latest message, by SMS or keypad.
    Residents never heard from are left out. The one place that says what "last contact"
    in an alert means, for a case's first step and for every later one."""
    from service.telephony.models import InboundMessage

    if not resident_ids:
        return {}
    rows = session.execute(
        select(InboundMessage.resident_id, func.max(InboundMessage.received_at))
        .where(InboundMessage.resident_id.in_(resident_ids))  # type: ignore[union-attr]
        .group_by(InboundMessage.resident_id)
    ).all()
    return {resident_id: aware(at) for resident_id, at in rows if at is not None}


def _recipient(member: Member) -> dict[str, Any]:
    return {
        "member_id": str(member.id),
        "name": member.name,
        "phone": member.phone,
        "language": (member.languages or ["ja"])[0],
        "kind": member.kind,
        "phone_kind": member.phone_kind,
    }


def build_chain(
    session: Session, resident: Resident, reason: EscalationReason
) -> list[list[dict[str, Any]]]:
    """Assigned members by rank, one step each, then one step with every staff on duty."""
    rows = (
        session.execute(
            select(Member)
            .join(Assignment, Assignment.member_id == Member.id)
            .where(Assignment.resident_id == resident.id, Member.active.is_(True))  # type: ignore[attr-defined]
            .order_by(Assignment.rank)
        )
        .scalars()
        .all()
    )
    chain = [[_recipient(m)] for m in rows]
    if reason == EscalationReason.needs_help and _needs_interpreter(resident):
        interpreter = interpreter_for(session, resident)
        if interpreter is not None:
            if not chain:
                chain.append([])
            if all(r["member_id"] != str(interpreter.id) for r in chain[0]):
                chain[0].append(_recipient(interpreter))
    cache = _transaction_cache(session)
    staff = cache.get(("staff", resident.organization_id))
    if staff is None:
        staff = cache[("staff", resident.organization_id)] = [
            _recipient(m)
            for m in session.execute(
                select(Member)
                .where(
                    Member.organization_id == resident.organization_id,
                    Member.kind == MemberKind.staff_on_duty,
                    Member.active.is_(True),
                )  # type: ignore[attr-defined]
                .order_by(Member.name)
            ).scalars()
        ]
    in_chain = {r["member_id"] for step in chain for r in step}
    staff_step = [dict(r) for r in staff if r["member_id"] not in in_chain]
    if staff_step:
        chain.append(staff_step)
    return chain


def _needs_interpreter(resident: Resident) -> bool:
    return bool(resident.needs_interpreter) and resident.language not in ("ja", "easy_ja")


def interpreter_for(session: Session, resident: Resident) -> Member | None:
    """A supporter or interpreter who speaks the resident's language."""
    candidates = (
        session.execute(
            select(Member)
            .where(
                Member.organization_id == resident.organization_id,
                Member.active.is_(True),  # type: ignore[attr-defined]
                Member.kind.in_([MemberKind.interpreter, MemberKind.supporter]),
            )  # type: ignore[attr-defined]
            .order_by(Member.kind, Member.name)
        )
        .scalars()
        .all()
    )
    for member in candidates:
        if resident.language in (member.languages or []):
            return member
    return None


def _transaction_cache(session: Session) -> dict[Any, Any]:
    """What one unit of work already knows (the staff on duty, the case codes in use, the
    members it alerted), kept for the rest of the session's current transaction: a sweep
    that opens hundreds of escalations in one batch reads them once, not once per
    escalation. A new transaction starts with an empty cache."""
    transaction = session.get_transaction()
    held = session.info.get("escalations.cache")
    if held is None or held[0] is not transaction:
        held = session.info["escalations.cache"] = (transaction, {})
    return held[1]


def _new_case_code(session: Session, organization_id: uuid.UUID) -> str:
    cache = _transaction_cache(session)
    used: set[str] | None = cache.get(("case_codes", organization_id))
    if used is None:
        used = cache[("case_codes", organization_id)] = set(
            session.execute(
                select(Escalation.case_code).where(
                    Escalation.organization_id == organization_id,
                    Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
                )
            ).scalars()
        )
    code = _free_code(used)
    used.add(code)
    return code


def _free_code(used: set[str]) -> str:
    """A letter and a number a member can type back ("A7 1"): short (1–99) while fewer than
    a few thousand cases are open, then up to 999. Only past 25,974 open cases would a code
    be one a member cannot answer with; staff still can, from the board."""
    for _ in range(64):
        code = f"{random.choice(string.ascii_uppercase)}{random.randint(1, 99)}"
        if code not in used:
            return code
    for top in (99, 999):
        free = [
            code
            for letter in string.ascii_uppercase
            for number in range(1, top + 1)
            if (code := f"{letter}{number}") not in used
        ]
        if free:
            return random.choice(free)
    return uuid.uuid4().hex[:6].upper()


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
            existing.chain = build_chain(session, resident, reason)
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
        case_code=_new_case_code(session, resident.organization_id),
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
        timeline(
            session,
            resident_id=escalation.resident_id,
            organization_id=escalation.organization_id,
            kind=entry.kind,
            at=now,
            escalation_id=escalation.id,
            member_id=entry.member_id,
            actor=entry.actor,
            detail=dict(entry.detail),
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
    values = _resident_values(session, escalation)
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
        _member_notice(
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
    contact = _known_last_contact(session, escalation, resident, last_contact)
    for new in decision.alerts:
        _alert(session, escalation, resident, org, new.recipient.to_json(), new.step, now, contact)


def _answer(
    session: Session, escalation: Escalation, decision: Decision, locale: str
) -> str | None:
    """The reply the decision names, in the member's language (None: no reply)."""
    if not decision.answer:
        return None
    values = _resident_values(session, escalation, locale)
    return " ".join(render(message_id, locale, **values) for message_id in decision.answer)


def _known_last_contact(
    session: Session, escalation: Escalation, resident: Resident, last_contact: LastContact
) -> datetime | None:
    if last_contact is not NOT_GIVEN:
        return last_contact
    if escalation.reason == EscalationReason.visit_list:
        return None  # a visit alert names no time: nobody can be reached by phone
    return last_contacts(session, [resident.id]).get(resident.id)


def _alert(
    session: Session,
    escalation: Escalation,
    resident: Resident,
    org: Organization,
    recipient: dict[str, Any],
    step: int,
    now: datetime,
    last_contact: datetime | None,
) -> None:
    """Alert one recipient of the step: the alert, its SMS (and call), the timeline."""
    member_id = uuid.UUID(recipient["member_id"])
    coded = _has_other_open_case(session, member_id, exclude=escalation.id)
    _transaction_cache(session).setdefault("alerted", {}).setdefault(member_id, set()).add(
        escalation.id
    )
    alert = Alert(
        organization_id=resident.organization_id,
        escalation_id=escalation.id,
        member_id=member_id,
        step_index=step,
        language=recipient["language"],
        sent_at=now,
    )
    session.add(alert)
    body = alert_text(
        session, escalation, resident, org, recipient["language"], coded, last_contact
    )
    calls = get_settings().alert_voice_calls
    # A landline cannot take the SMS: with calls on, its call is the alert itself.
    by_call_only = calls and recipient.get("phone_kind") == PhoneKind.landline.value
    if not by_call_only:
        enqueue(
            session,
            organization_id=resident.organization_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.alert,
            to_phone=recipient["phone"],
            body=body,
            locale=recipient["language"],
            resident_id=resident.id,
            member_id=member_id,
            alert_id=alert.id,
            now=now,
            deadline=timedelta(hours=2),
        )
    if calls:
        # Beside the SMS the call is only a nudge: the SMS carries the details and is the
        # alert of record, so a call that is not answered declines nothing. To a landline
        # the call is the alert, and one that cannot reach the member counts as a decline.
        enqueue(
            session,
            organization_id=resident.organization_id,
            channel=OutboxChannel.call,
            purpose=OutboxPurpose.alert if by_call_only else OutboxPurpose.alert_call,
            to_phone=recipient["phone"],
            locale=recipient["language"],
            resident_id=resident.id,
            member_id=member_id,
            alert_id=alert.id,
            now=now,
            deadline=timedelta(minutes=escalation.ack_minutes),
        )
    timeline(
        session,
        resident_id=resident.id,
        organization_id=resident.organization_id,
        kind="escalation.alert",
        at=now,
        escalation_id=escalation.id,
        member_id=member_id,
        detail={
            "step": step + 1,
            "member": recipient["name"],
            "language": recipient["language"],
        },
    )


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
    if not _needs_interpreter(resident):
        return
    interpreter = interpreter_for(session, resident)
    if interpreter is None or any(
        r["member_id"] == str(interpreter.id) for step in escalation.chain for r in step
    ):
        return
    recipient = _recipient(interpreter)
    chain = [list(step) for step in escalation.chain]
    chain[escalation.step_index].append(recipient)
    escalation.chain = chain  # a new list: the JSON column is saved as changed
    session.add(escalation)
    org = session.get(Organization, resident.organization_id)
    assert org is not None
    contact = _known_last_contact(session, escalation, resident, last_contact)
    _alert(session, escalation, resident, org, recipient, escalation.step_index, now, contact)


def _has_other_open_case(session: Session, member_id: uuid.UUID, exclude: uuid.UUID) -> bool:
    """Whether the member has another case open (an alert awaiting "1"/"2", or one they
    acknowledged): then their alert carries the case code. One query, stopping at the first;
    none when this transaction has already alerted them about another case (a sweep that
    alerts one member about many cases asks once)."""
    alerted = _transaction_cache(session).setdefault("alerted", {}).get(member_id, set())
    if alerted - {exclude}:
        return True
    pending = (
        select(Alert.id)
        .join(Escalation, Escalation.id == Alert.escalation_id)
        .where(
            Alert.member_id == member_id,
            Alert.state == AlertState.sent,
            Escalation.state == EscalationState.alerting,
            Escalation.id != exclude,
        )
    )
    held = select(Escalation.id).where(
        Escalation.acknowledged_by == member_id,
        Escalation.state == EscalationState.acknowledged,
        Escalation.id != exclude,
    )
    return bool(session.execute(select(or_(pending.exists(), held.exists()))).scalar_one())


def _where(session: Session, resident: Resident) -> tuple[LocalizedName | str, str]:
    """The resident's site (its names, to be named in the reader's language) and unit."""
    site = session.get(Site, resident.site_id) if resident.site_id else None
    return (LocalizedName.of(site) if site else "-"), (resident.unit or "")


def _in_language(values: dict[str, Any], locale: str) -> dict[str, Any]:
    """``values`` with the organization's and the site's names in the reader's language."""
    return {
        key: value.for_reader(locale) if isinstance(value, LocalizedName) else value
        for key, value in values.items()
    }


def alert_text(
    session: Session,
    escalation: Escalation,
    resident: Resident,
    org: Organization,
    locale: str,
    coded: bool,
    last_contact: datetime | None,
) -> str:
    """Only what a visitor needs: name, site, unit, language and last contact."""
    site, unit = _where(session, resident)
    values = {
        "org": LocalizedName.of(org).for_reader(locale),
        "name": resident.name,
        "site": site.for_reader(locale) if isinstance(site, LocalizedName) else site,
        "unit": unit,
        "language": display_name(resident.language, locale),
        "last_contact": format_datetime(last_contact, locale, org.timezone)
        if last_contact
        else "-",
        "code": escalation.case_code,
    }
    if escalation.reason == EscalationReason.visit_list:
        base = "member.alert.visit"
    elif escalation.reason == EscalationReason.needs_help:
        base = "member.alert.help"
    else:
        base = "member.alert"
    text = render(f"{base}.coded" if coded else base, locale, **values)
    if escalation.cause:
        text = render("member.alert.cause", locale, cause=escalation.cause) + " " + text
    return text


def _member_notice(
    session: Session,
    escalation: Escalation,
    member_id: uuid.UUID,
    message_id: str,
    now: datetime,
    **values: Any,
) -> None:
    member = session.get(Member, member_id)
    if member is None:
        return
    locale = (member.languages or ["ja"])[0]
    enqueue(
        session,
        organization_id=escalation.organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.member_notice,
        to_phone=member.phone,
        body=render(message_id, locale, **_in_language(values, locale)),
        locale=locale,
        resident_id=escalation.resident_id,
        member_id=member.id,
        now=now,
    )


def _resident_values(
    session: Session, escalation: Escalation, locale: str | None = None
) -> dict[str, Any]:
    """The values member texts name the resident with. The organization and the site are
    named in ``locale``; without one they stay :class:`LocalizedName` for ``_member_notice``
    to name in each member's language."""
    resident = session.get(Resident, escalation.resident_id)
    org = session.get(Organization, escalation.organization_id)
    assert resident is not None and org is not None
    site, unit = _where(session, resident)
    values = {
        "org": LocalizedName.of(org),
        "name": resident.name,
        "site": site,
        "unit": unit,
        "code": escalation.case_code,
    }
    return values if locale is None else _in_language(values, locale)


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
    cases = _member_cases(session, member)
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
    return _answer(session, escalation, decision, locale) or render("member.unclear", locale)


def _member_cases(session: Session, member: Member) -> dict[str, tuple[uuid.UUID, Relation]]:
    """The member's open cases by code: those they were alerted about (an alert waiting for
    them, or a former one) and those they hold."""
    cases: dict[str, tuple[uuid.UUID, Relation]] = {}
    rows = session.execute(
        select(Escalation.id, Escalation.case_code, Escalation.state, Alert.state)
        .join(Alert, Alert.escalation_id == Escalation.id)
        .where(
            Alert.member_id == member.id,
            Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
        )
    ).all()
    for escalation_id, code, state, alert_state in rows:
        waiting = state == EscalationState.alerting and alert_state == AlertState.sent
        if waiting or code not in cases:
            cases[code] = (escalation_id, Relation.ALERTED if waiting else Relation.FORMER)
    held = session.execute(
        select(Escalation.id, Escalation.case_code).where(
            Escalation.acknowledged_by == member.id,
            Escalation.state == EscalationState.acknowledged,
        )
    ).all()
    for escalation_id, code in held:
        cases[code] = (escalation_id, Relation.HOLDER)
    return cases


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
    event = StaffReassigned(Recipient.of(_recipient(member)), actor)
    _decide_and_apply(session, escalation, event, now)


def notify_late_reply(
    session: Session, *, escalation: Escalation, answer_id: str, now: datetime
) -> int:
    """The resident answered after the alert went out: tell whoever holds the case.
    Returns how many members were told (none when nobody holds it: an exhausted case)."""
    decision = _decide_and_apply(session, escalation, ResidentReplied(answer_id), now)
    return len(decision.notices)

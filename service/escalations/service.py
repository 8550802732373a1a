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
import re
import string
import unicodedata
import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlmodel import Session

from i18n.languages import display_name
from i18n.names import LocalizedName
from i18n.render import format_datetime, render
from service.audit.service import Actor, record
from service.common import aware
from service.config import get_settings
from service.escalations.models import (
    OUTCOME_BY_DIGIT,
    REASON_PRIORITY,
    Alert,
    AlertState,
    Escalation,
    EscalationReason,
    EscalationState,
    Outcome,
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


REMINDER_GRACE = timedelta(hours=1)


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
    escalation.step_index = step
    escalation.version += 1
    escalation.updated_at = now
    if step >= len(escalation.chain):
        escalation.state = EscalationState.exhausted
        escalation.next_action_at = None
        session.add(escalation)
        # An earlier step's alert left open (an interpreter beside a member who said "2")
        # waits for nothing now; its member's late "1" still takes the case.
        _expire_step(session, escalation, now)
        timeline(
            session,
            resident_id=resident.id,
            organization_id=resident.organization_id,
            kind="escalation.exhausted",
            at=now,
            escalation_id=escalation.id,
        )
        return
    escalation.state = EscalationState.alerting
    escalation.next_action_at = now + timedelta(minutes=escalation.ack_minutes)
    session.add(escalation)
    # The escalation row must exist before its alerts: the unit of work orders inserts by
    # relationship, and there is none between these tables, only the foreign key.
    session.flush()
    org = session.get(Organization, resident.organization_id)
    assert org is not None
    # Every step's alerts say when the resident was last heard from, not only the first's.
    contact = _known_last_contact(session, escalation, resident, last_contact)
    for recipient in escalation.chain[step]:
        _alert(session, escalation, resident, org, recipient, step, now, contact)


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
    due = aware(escalation.next_action_at)
    if due is None or due > now:
        return False
    resident = session.get(Resident, escalation.resident_id)
    assert resident is not None
    lateness = (now - due).total_seconds()
    if lateness > 60:
        record(
            session=session,
            organization_id=escalation.organization_id,
            actor=Actor(label="scheduler"),
            action="late",
            entity_type="escalation",
            entity_id=escalation.id,
            detail={"late_seconds": round(lateness)},
        )
    if escalation.state == EscalationState.alerting:
        _expire_step(session, escalation, now)
        _start_step(session, escalation, resident, escalation.step_index + 1, now)
        return True
    if escalation.state == EscalationState.acknowledged:
        holder = escalation.acknowledged_by
        assert holder is not None
        if escalation.reminded_at is None:
            escalation.reminded_at = now
            escalation.next_action_at = now + REMINDER_GRACE
            escalation.version += 1
            escalation.updated_at = now
            session.add(escalation)
            _member_notice(
                session,
                escalation,
                holder,
                "member.reminder",
                now,
                **_resident_values(session, escalation),
            )
            timeline(
                session,
                resident_id=resident.id,
                organization_id=resident.organization_id,
                kind="escalation.reminded",
                at=now,
                escalation_id=escalation.id,
                member_id=holder,
            )
            return True
        # Acknowledged, reminded, still silent: hand the case on.
        _member_notice(
            session,
            escalation,
            holder,
            "member.handed_on",
            now,
            **_resident_values(session, escalation),
        )
        hand_on(session, escalation=escalation, now=now, actor="scheduler")
        return True
    return False


def _expire_step(session: Session, escalation: Escalation, now: datetime) -> None:
    for alert in session.execute(
        select(Alert).where(Alert.escalation_id == escalation.id, Alert.state == AlertState.sent)
    ).scalars():
        alert.state = AlertState.expired
        alert.answered_at = now
        session.add(alert)


# --- Member replies -------------------------------------------------------------------------------

_REPLY = re.compile(r"^(?:([a-z]\d{1,3})\s*)?([1-5])(?:\s*([a-z]\d{1,3}))?$")


def parse_member_reply(text: str) -> tuple[str | None, str] | None:
    """ "1", "A7 1", "1 A7", "１　ａ７" -> (code, digit); anything else -> None."""
    normalized = unicodedata.normalize("NFKC", text).strip().lower()
    normalized = re.sub(r"[\s,.、。:;!！-]+", " ", normalized).strip()
    match = _REPLY.match(normalized)
    if not match:
        return None
    code = match.group(1) or match.group(3)
    return (code.upper() if code else None), match.group(2)


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
    session.refresh(alert)
    if (
        escalation is None
        or escalation.state != EscalationState.alerting
        or alert.state != AlertState.sent
    ):
        return None
    return _answer_alert(session, escalation, alert, member, digit, now, via="keypad")


def _answer_alert(
    session: Session,
    escalation: Escalation,
    alert: Alert,
    member: Member,
    digit: str,
    now: datetime,
    *,
    via: str,
) -> str | None:
    """A member's "1" (I'll go) or "2" (I can't) to an alert waiting for them, by SMS or on
    the keypad: acted on and audited. Returns the answer to send them; None for any other
    digit."""
    locale = (member.languages or ["ja"])[0]
    values = _resident_values(session, escalation, locale)
    actor = f"member:{member.name}"
    if digit == "1":
        acknowledge(session, escalation=escalation, member_id=member.id, now=now, actor=actor)
        action = "acknowledge"
        reply = (
            render("member.ack", locale, **values)
            + " "
            + render("member.outcome_request", locale, **values)
        )
    elif digit == "2":
        decline(session, escalation=escalation, alert=alert, now=now)
        action, reply = "decline", render("member.declined", locale, **values)
    else:
        return None
    _audit_answer(session, escalation, actor, action, via)
    return reply


def _audit_answer(
    session: Session, escalation: Escalation, actor: str, action: str, via: str, **detail: Any
) -> None:
    record(
        session=session,
        organization_id=escalation.organization_id,
        actor=Actor(label=actor),
        action=action,
        entity_type="escalation",
        entity_id=escalation.id,
        detail={"via": via, **detail},
    )


def handle_member_reply(
    session: Session,
    *,
    member: Member,
    text: str,
    now: datetime,
) -> str:
    """Apply a member's SMS reply; return the text to answer with, in their language.

    The reply is read from the parsed answer (digit and case code) and the state of the
    case it names, never from the member's other messages, so no interleaving of answers
    about other cases changes what it means."""
    locale = (member.languages or ["ja"])[0]
    parsed = parse_member_reply(text)
    if parsed is None:
        return render("member.unclear", locale)
    code, digit = parsed
    pending = session.execute(
        select(Escalation, Alert)
        .join(Alert, Alert.escalation_id == Escalation.id)
        .where(
            Alert.member_id == member.id,
            Alert.state == AlertState.sent,
            Escalation.state == EscalationState.alerting,
        )
    ).all()
    held = (
        session.execute(
            select(Escalation).where(
                Escalation.acknowledged_by == member.id,
                Escalation.state == EscalationState.acknowledged,
            )
        )
        .scalars()
        .all()
    )
    cases: dict[str, tuple[Escalation, Alert | None]] = {}
    for escalation, alert in pending:
        cases[escalation.case_code] = (escalation, alert)
    for escalation in held:
        cases[escalation.case_code] = (escalation, None)
    if (code is not None and code not in cases) or (code is None and not cases):
        return _answer_former_case(session, member, code, digit, now)
    if code is not None:
        target = cases[code]
    elif len(cases) == 1:
        target = next(iter(cases.values()))
    else:
        return render("member.which_case", locale, codes=", ".join(sorted(cases)))
    escalation, alert = target
    values = _resident_values(session, escalation, locale)
    actor = f"member:{member.name}"

    def audit(action: str, **detail: Any) -> None:
        _audit_answer(session, escalation, actor, action, "sms", **detail)

    if alert is not None:  # an alert awaiting "1" or "2"
        answer = _answer_alert(session, escalation, alert, member, digit, now, via="sms")
        return answer if answer is not None else render("member.unclear", locale)
    # A case this member holds: the reply is the result of the visit, except right after
    # they took it, when it is still their answer to the alert. Guarded this way because
    # a closed case leaves the board.
    if _just_taken(escalation, now):
        if digit == "2":
            # "2" (with the code or without) right after "1" is "I cannot go after all":
            # the case goes on to the next step at once.
            hand_on(session, escalation=escalation, now=now, actor=actor)
            audit("decline")
            return render("member.declined", locale, **values)
        if digit == "1":
            # A "1" about the case they have just taken is their acknowledgement again,
            # never a visit: resent because the phone seemed not to send it (however it is
            # written, "1 A7" or "A7 1", and whatever came in between), sent again by SMS
            # after pressing 1 on the alert call, or their own "I'll go" after staff took
            # the case for them.
            return render("member.outcome_request", locale, **values)
    if code is None:
        # Outcomes name their case ("1 A7"), as the outcome request asks.
        return render("member.outcome_request", locale, **values)
    outcome = OUTCOME_BY_DIGIT[digit]
    resolve(
        session, escalation=escalation, outcome=outcome, now=now, actor=actor, member_id=member.id
    )
    audit("resolve", outcome=outcome.value)
    return render("member.outcome_recorded", locale, **values)


def _answer_former_case(
    session: Session, member: Member, code: str | None, digit: str, now: datetime
) -> str:
    """A reply about an open case that no longer waits for this member's "1" or "2": their
    alert's window passed, the chain ran out, someone else took the case, they gave it
    back, it was handed on when no result came, or staff reassigned it. It is never
    dropped as "unclear", and it never closes the case:

    - "1" means "I'll go": it takes the case if nobody holds it (as it would have in time),
      and asks for the result after the visit; if someone holds it, the member is told.
    - "2" to "5" may be a visit's result (or, for "2", "I can't"), perhaps about an earlier
      run of the chain: it goes on the case's timeline for staff, who record the outcome.
      A member who holds the case sends their result as any holder does.
    """
    locale = (member.languages or ["ja"])[0]
    rows = session.execute(
        select(Escalation, Alert)
        .join(Alert, Alert.escalation_id == Escalation.id)
        .where(
            Alert.member_id == member.id,
            Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
        )
        .order_by(Alert.sent_at.desc(), Alert.step_index.desc())  # type: ignore[attr-defined]
    ).all()
    former: dict[str, tuple[Escalation, list[Alert]]] = {}
    for escalation, alert in rows:
        former.setdefault(escalation.case_code, (escalation, []))[1].append(alert)
    if code is not None:
        found = former.get(code)
    elif len(former) > 1:
        return render("member.which_case", locale, codes=", ".join(sorted(former)))
    else:
        found = next(iter(former.values()), None)
    if found is None:
        return render("member.unclear", locale)
    escalation, alerts = found
    escalation = session.get(
        Escalation, escalation.id, with_for_update=True, populate_existing=True
    )
    assert escalation is not None
    values = _resident_values(session, escalation, locale)
    actor = f"member:{member.name}"
    held_by_other = (
        escalation.state == EscalationState.acknowledged and escalation.acknowledged_by != member.id
    )
    if digit != "1":
        # A result ("2" needs support as well as "I can't"), perhaps from an earlier run of
        # the chain: it is kept for staff on the case's timeline, never closing the case.
        timeline(
            session,
            resident_id=escalation.resident_id,
            organization_id=escalation.organization_id,
            kind="escalation.outcome_reported",
            at=now,
            escalation_id=escalation.id,
            member_id=member.id,
            detail={
                "digit": digit,
                "outcome": OUTCOME_BY_DIGIT[digit].value,
                "held_by": str(escalation.acknowledged_by) if held_by_other else None,
            },
        )
        _audit_answer(session, escalation, actor, "report", "sms", digit=digit)
        if digit == "2":
            return render("member.declined", locale, **values)
        return render("member.outcome_recorded", locale, **values)
    if not held_by_other:
        # A "1" while nobody holds the case (still alerting someone, or the chain ran out):
        # this member goes, as if they had answered in time.
        acknowledge(session, escalation=escalation, member_id=member.id, now=now, actor=actor)
        latest = alerts[0]
        latest.state = AlertState.acknowledged
        latest.answered_at = latest.answered_at or now
        session.add(latest)
        _audit_answer(session, escalation, actor, "acknowledge", "sms", late=True)
        return (
            render("member.ack", locale, **values)
            + " "
            + render("member.outcome_request", locale, **values)
        )
    return render("member.already_taken", locale, **values)


ACK_GRACE = timedelta(minutes=15)


def _just_taken(escalation: Escalation, now: datetime) -> bool:
    """Whether the case was taken (by its holder's "1", or by staff for them) less than
    ``ACK_GRACE`` ago: what the holder sends then still answers the alert."""
    acknowledged_at = aware(escalation.acknowledged_at)
    return acknowledged_at is not None and now - acknowledged_at < ACK_GRACE


def hand_on(session: Session, *, escalation: Escalation, now: datetime, actor: str) -> None:
    """The member who acknowledged cannot go: the chain continues with the next step."""
    resident = session.get(Resident, escalation.resident_id)
    assert resident is not None
    member_id = escalation.acknowledged_by
    timeline(
        session,
        resident_id=resident.id,
        organization_id=resident.organization_id,
        kind="escalation.unacknowledged",
        at=now,
        escalation_id=escalation.id,
        member_id=member_id,
        actor=actor,
    )
    escalation.acknowledged_by = None
    escalation.acknowledged_at = None
    escalation.reminded_at = None
    _start_step(session, escalation, resident, escalation.step_index + 1, now)


def acknowledge(
    session: Session,
    *,
    escalation: Escalation,
    member_id: uuid.UUID,
    now: datetime,
    actor: str,
    note: str | None = None,
) -> None:
    if escalation.state not in (
        EscalationState.alerting,
        EscalationState.exhausted,
        EscalationState.acknowledged,
    ):
        return
    escalation.state = EscalationState.acknowledged
    escalation.acknowledged_by = member_id
    escalation.acknowledged_at = now
    escalation.reminded_at = None
    escalation.next_action_at = now + timedelta(hours=escalation.outcome_hours)
    escalation.version += 1
    escalation.updated_at = now
    session.add(escalation)
    for other in session.execute(
        select(Alert).where(Alert.escalation_id == escalation.id, Alert.state == AlertState.sent)
    ).scalars():
        other.state = (
            AlertState.acknowledged if other.member_id == member_id else AlertState.withdrawn
        )
        other.answered_at = now
        session.add(other)
    timeline(
        session,
        resident_id=escalation.resident_id,
        organization_id=escalation.organization_id,
        kind="escalation.acknowledged",
        at=now,
        escalation_id=escalation.id,
        member_id=member_id,
        actor=actor,
        detail={"note": bool(note)},
    )


def decline(session: Session, *, escalation: Escalation, alert: Alert, now: datetime) -> None:
    alert.state = AlertState.declined
    alert.answered_at = now
    session.add(alert)
    timeline(
        session,
        resident_id=escalation.resident_id,
        organization_id=escalation.organization_id,
        kind="escalation.declined",
        at=now,
        escalation_id=escalation.id,
        member_id=alert.member_id,
    )
    session.flush()
    still_waiting = session.execute(
        select(func.count())
        .select_from(Alert)
        .where(
            Alert.escalation_id == escalation.id,
            Alert.step_index == escalation.step_index,
            Alert.state == AlertState.sent,
        )
    ).scalar_one()
    # "2" starts the next step at once. When others in this step (an interpreter beside the
    # member) have not answered yet, their alerts stay open, and their "1" still takes the
    # case; only the last step waits for all of them before the chain runs out.
    # (A "2" to an earlier step's alert, the chain having moved on, moves nothing.)
    current = alert.step_index == escalation.step_index
    last_step = escalation.step_index + 1 >= len(escalation.chain)
    if (
        escalation.state == EscalationState.alerting
        and current
        and (still_waiting == 0 or not last_step)
    ):
        resident = session.get(Resident, escalation.resident_id)
        assert resident is not None
        _start_step(session, escalation, resident, escalation.step_index + 1, now)


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
    # "Could not find" is recorded, but nobody has seen the resident: the case stays open on
    # staff's list (exhausted) until someone records what happened.
    escalation.state = (
        EscalationState.exhausted if outcome == Outcome.not_found else EscalationState.resolved
    )
    escalation.outcome = outcome
    escalation.outcome_note = note
    escalation.resolved_at = now if escalation.state == EscalationState.resolved else None
    escalation.resolved_by = actor if escalation.state == EscalationState.resolved else None
    escalation.next_action_at = None
    escalation.version += 1
    escalation.updated_at = now
    session.add(escalation)
    for alert in session.execute(
        select(Alert).where(Alert.escalation_id == escalation.id, Alert.state == AlertState.sent)
    ).scalars():
        alert.state = AlertState.withdrawn
        alert.answered_at = now
        session.add(alert)
    timeline(
        session,
        resident_id=escalation.resident_id,
        organization_id=escalation.organization_id,
        kind="escalation.resolved",
        at=now,
        escalation_id=escalation.id,
        member_id=member_id,
        actor=actor,
        detail={"outcome": outcome.value},
    )


def reassign(
    session: Session, *, escalation: Escalation, member: Member, now: datetime, actor: str
) -> None:
    """Staff hand the case to someone specific: alert them now, as a step of their own."""
    resident = session.get(Resident, escalation.resident_id)
    assert resident is not None
    _expire_step(session, escalation, now)
    chain = [list(step) for step in escalation.chain]
    # The next step; for a chain that ran out (its step is past the end), a new last step.
    at = min(escalation.step_index + 1, len(chain))
    chain.insert(at, [_recipient(member)])
    escalation.chain = chain
    escalation.acknowledged_by = None
    escalation.acknowledged_at = None
    escalation.reminded_at = None
    timeline(
        session,
        resident_id=resident.id,
        organization_id=resident.organization_id,
        kind="escalation.reassigned",
        at=now,
        escalation_id=escalation.id,
        member_id=member.id,
        actor=actor,
    )
    _start_step(session, escalation, resident, at, now)


def notify_late_reply(
    session: Session, *, escalation: Escalation, answer_id: str, now: datetime
) -> int:
    """The resident answered after the alert went out: tell whoever holds the case.
    Returns how many members were told (none when nobody holds it: an exhausted case)."""
    holders: list[uuid.UUID] = []
    if escalation.state == EscalationState.acknowledged and escalation.acknowledged_by:
        holders = [escalation.acknowledged_by]
    elif escalation.state == EscalationState.alerting:
        holders = list(
            session.execute(
                select(Alert.member_id).where(
                    Alert.escalation_id == escalation.id, Alert.state == AlertState.sent
                )
            ).scalars()
        )
    org = session.get(Organization, escalation.organization_id)
    assert org is not None
    values = _resident_values(session, escalation)
    for member_id in holders:
        member = session.get(Member, member_id)
        if member is None:
            continue
        locale = (member.languages or ["ja"])[0]
        _member_notice(
            session,
            escalation,
            member_id,
            "member.resident_replied",
            now,
            answer=render(answer_id, locale),
            time=format_datetime(now, locale, org.timezone, format="short"),
            **values,
        )
    timeline(
        session,
        resident_id=escalation.resident_id,
        organization_id=escalation.organization_id,
        kind="escalation.late_reply",
        at=now,
        escalation_id=escalation.id,
        detail={"answer": answer_id, "notified": len(holders)},
    )
    return len(holders)

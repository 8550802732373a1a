"""A resident's reply to a check-in: the answer they get, and what it closes or opens."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    insert,
    select,
)
from sqlmodel import Session

from i18n.classifier import Classification, ReplyKind, classify
from i18n.languages import display_name, get_language
from i18n.names import LocalizedName
from i18n.render import render
from service.audit.service import Actor, record
from service.checkins import policy
from service.checkins.attempts import pick_number
from service.checkins.models import (
    CheckIn,
    CheckInState,
    Round,
    StaffTask,
    TaskKind,
)
from service.escalations import service as escalations
from service.escalations.models import Escalation
from service.registry.models import (
    Member,
    Organization,
    Resident,
    ResidentStatus,
)
from service.registry.phones import PhoneKind, display_phone
from service.telephony.models import (
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
)
from service.telephony.outbox import (
    enqueue,
    outbox_row,
)

# --- Replies -------------------------------------------------------------------------------------


def current_checkin(
    session: Session,
    resident_id: uuid.UUID,
    *,
    lock: bool = False,
    before: datetime | None = None,
) -> CheckIn | None:
    """The resident's newest check-in that a reply can still matter to (of those created
    no later than ``before``, if given).

    ``lock`` takes its row lock (and re-reads it): a reply then waits for a sweep that is
    escalating the same check-in, and sees the escalation, instead of closing the check-in
    as answered over it while the escalation it never saw stays open.
    """
    query = (
        select(CheckIn)
        .where(CheckIn.resident_id == resident_id, CheckIn.state != CheckInState.superseded)
        .order_by(CheckIn.created_at.desc())  # type: ignore[attr-defined]
        .limit(1)
    )
    if before is not None:
        query = query.where(CheckIn.created_at <= before)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.execute(query).scalars().first()


def open_escalation_for(session: Session, resident_id: uuid.UUID) -> Escalation | None:
    return (
        session.execute(
            select(Escalation).where(
                Escalation.resident_id == resident_id, Escalation.state.in_(escalations.OPEN_STATES)
            )
        )
        .scalars()
        .first()
    )  # type: ignore[attr-defined]


# What the member holding a case is told of a late reply (kept under its old name).
ANSWER_IDS = policy.HOLDER_NOTICE_IDS


def resident_reply_text(
    verdict: Classification, language: str, org: LocalizedName
) -> tuple[str, str]:
    """The answer to a resident's reply, and its language. It depends on what the reply says
    and nothing else (``policy.answer_id``), so the webhook answers at once and
    ``process_replies`` acts on it. The organization is named in the language of the
    answer (a language change answers in the new language)."""
    switching = verdict.kind == ReplyKind.CHANGE_LANGUAGE and verdict.language
    org_name = org.for_reader(verdict.language if switching else language)
    return _reply_text(verdict.kind, verdict.language, language, org_name)


@lru_cache(maxsize=4096)
def _reply_text(
    kind: ReplyKind, new_language: str | None, language: str, org_name: str
) -> tuple[str, str]:
    # A handful of texts per language and organization: rendered once per process.
    message_id = policy.answer_id(kind, new_language)
    if message_id == policy.LANGUAGE_CHANGED and new_language:
        new = get_language(new_language)
        text = render(
            message_id,
            new_language,
            org=org_name,
            language=new.native_name if new else new_language,
        )
        return text, new_language
    return render(message_id, language, org=org_name), language


def reply_situation(
    checkin: CheckIn | None, escalation: Escalation | None, resident: Resident
) -> policy.ReplySituation:
    """The resident's situation, as the reply rules read it."""
    if checkin is None:
        standing = policy.Standing.NONE
    elif checkin.state == CheckInState.waiting:
        standing = policy.Standing.WAITING
    else:
        standing = policy.Standing.CLOSED
    return policy.ReplySituation(
        checkin=standing,
        open_case=escalation is not None,
        opted_out=resident.status == ResidentStatus.opted_out,
        needs_interpreter=bool(resident.needs_interpreter),
    )


def handle_resident_reply(
    session: Session,
    *,
    resident: Resident,
    text: str,
    channel: str,
    now: datetime,
    inbound_id: uuid.UUID | None = None,
    verdict: Classification | None = None,
    received_at: datetime | None = None,
) -> str | None:
    """Classify a reply and act on it. Returns the answer to send back (or None).

    Loads the resident's situation, asks the reply rules (``policy.decide_reply``) and
    applies their decision: only a clear "fine" closes a check-in; when in doubt, nothing
    is closed. ``received_at`` is when the reply arrived, if it is acted on later
    (``now``): the timeline and the check-in show the reply at that time, while anything
    it starts (an escalation's deadlines) starts from ``now``.
    """
    if verdict is None:
        verdict = classify(text, resident.language)
    replied_at = received_at or now
    org = session.get(Organization, resident.organization_id)
    assert org is not None
    reply, _ = resident_reply_text(verdict, resident.language, LocalizedName.of(org))
    # The check-in the reply answers: the newest one that existed when it arrived. A round
    # started in between (before the reply was acted on) is not answered by it.
    checkin = current_checkin(session, resident.id, lock=True, before=received_at)
    escalation = open_escalation_for(session, resident.id)
    situation = reply_situation(checkin, escalation, resident)
    decision = policy.decide_reply(verdict.kind, situation, verdict.language)
    escalations.timeline(
        session,
        resident_id=resident.id,
        organization_id=org.id,
        kind=f"reply.{channel}",
        at=replied_at,
        inbound_id=inbound_id,
        checkin_id=checkin.id if checkin else None,
        detail={
            "class": verdict.kind.value,
            "matched": verdict.matched,
            "words": list(verdict.words),
            "why": verdict.reason,
        },
    )
    _apply_reply(
        session,
        decision,
        verdict.kind,
        resident=resident,
        checkin=checkin,
        escalation=escalation,
        inbound_id=inbound_id,
        replied_at=replied_at,
        now=now,
    )
    return reply


def _apply_reply(
    session: Session,
    decision: policy.ReplyDecision,
    kind: ReplyKind,
    *,
    resident: Resident,
    checkin: CheckIn | None,
    escalation: Escalation | None,
    inbound_id: uuid.UUID | None,
    replied_at: datetime,
    now: datetime,
) -> None:
    """Carry out a reply decision: the check-in, the resident, the case, tasks, audit."""
    org_id = resident.organization_id
    if checkin is not None and decision.record_reply:
        checkin.last_reply_kind = kind.value
        checkin.replied_at = replied_at
        checkin.updated_at = now
        session.add(checkin)
    _apply_resident_change(session, decision, resident, kind, now)
    if decision.tell_holder is not None and escalation is not None:
        # A late reply (or a reply while an older case is open): recorded, and whoever
        # holds the case is told. The case stays open until someone records a visit. When
        # nobody holds it (the chain ran out), staff are given the reply as a task.
        told = escalations.notify_late_reply(
            session, escalation=escalation, answer_id=decision.tell_holder, now=now
        )
        if not told:
            _task(session, org_id, TaskKind.late_reply, resident, checkin, inbound_id, now)
    for order in decision.tasks:
        task = _task(
            session,
            org_id,
            order.kind,
            resident,
            checkin,
            inbound_id,
            now,
            interpreter=order.interpreter,
        )
        if order.interpreter and task.assigned_member_id is not None:
            _ask_supporter_to_call(session, task.assigned_member_id, resident, now)
    if decision.close_as is not None:
        assert checkin is not None and checkin.state == CheckInState.waiting
        _close(checkin, decision.close_as, now)
        session.add(checkin)
    if decision.case is not None:
        # An escalation opened by this reply says what started the round (an earthquake).
        round_ = session.get(Round, checkin.round_id) if checkin is not None else None
        esc = escalations.open_escalation(
            session,
            resident=resident,
            reason=decision.case.reason,
            now=now,
            checkin_id=checkin.id if checkin else None,
            last_contact=replied_at if decision.case.reply_is_last_contact else None,
            cause=round_.cause if round_ is not None else None,
        )
        if checkin is not None and decision.case.link_checkin:
            checkin.escalation_id = esc.id
            session.add(checkin)
    if checkin is not None and decision.flag_checkin:
        checkin.flagged = True
        session.add(checkin)


def _apply_resident_change(
    session: Session,
    decision: policy.ReplyDecision,
    resident: Resident,
    kind: ReplyKind,
    now: datetime,
) -> None:
    """A language change, an opt-out or an opt-in, audited as the resident's own change."""
    if decision.set_language is not None:
        resident.language = decision.set_language
        field, source = "language", "reply"
    elif decision.set_status is not None:
        resident.status = decision.set_status
        field, source = "status", f"reply {kind.value.upper()}"
    else:
        return
    resident.updated_at = now
    session.add(resident)
    record(
        session=session,
        organization_id=resident.organization_id,
        actor=Actor(label="resident"),
        action="update",
        entity_type="resident",
        entity_id=resident.id,
        fields=[field],
        detail={"source": source},
    )


def _close(checkin: CheckIn, state: CheckInState, now: datetime) -> None:
    checkin.state = state
    checkin.next_action_at = None
    checkin.closed_at = now
    checkin.updated_at = now


def _task(
    session: Session,
    organization_id: uuid.UUID,
    kind: TaskKind,
    resident: Resident,
    checkin: CheckIn | None,
    inbound_id: uuid.UUID | None,
    now: datetime,
    interpreter: bool = False,
) -> StaffTask:
    assigned = None
    if interpreter:
        supporter = escalations.interpreter_for(session, resident)
        assigned = supporter.id if supporter is not None else None
    task = StaffTask(
        organization_id=organization_id,
        kind=kind,
        resident_id=resident.id,
        checkin_id=checkin.id if checkin else None,
        inbound_id=inbound_id,
        language=resident.language,
        assigned_member_id=assigned,
        created_at=now,
    )
    session.add(task)
    return task


def _ask_supporter_to_call(
    session: Session, member_id: uuid.UUID, resident: Resident, now: datetime
) -> None:
    """The call-back goes to the supporter who speaks the resident's language: they have
    no dashboard, so they are told by SMS, in their language, whom to call and at which
    number (nothing else: not what the resident said)."""
    member = session.get(Member, member_id)
    number = pick_number(resident, "voice")
    if member is None or not member.phone or member.phone_kind != PhoneKind.mobile or not number:
        return  # staff see the task, assigned to them, on the inbox
    locale = (member.languages or ["ja"])[0]
    body = render(
        "member.callback",
        locale,
        name=resident.name,
        language=display_name(resident.language, locale),
        phone=display_phone(number),
    )
    enqueue(
        session,
        organization_id=resident.organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.member_notice,
        to_phone=member.phone,
        body=body,
        locale=locale,
        resident_id=resident.id,
        member_id=member.id,
        now=now,
    )


def record_reply_sent(
    session: Session,
    *,
    organization_id: uuid.UUID | None,
    to_phone: str,
    body: str,
    locale: str,
    resident_id: uuid.UUID | None,
    member_id: uuid.UUID | None,
    now: datetime,
) -> None:
    """A TwiML reply is sent by Twilio as the webhook's answer; it is stored as an outbox
    row already sent, so the timeline shows it and it counts against the recipient's cap."""
    if organization_id is None:
        return
    row = reply_sent_row(
        organization_id=organization_id,
        to_phone=to_phone,
        body=body,
        locale=locale,
        resident_id=resident_id,
        member_id=member_id,
        now=now,
    )
    # A plain INSERT on the session's connection (the SMS webhook's hot path has no ORM
    # objects to flush); it commits or rolls back with the caller's transaction.
    session.connection().execute(insert(OutboxMessage.__table__), [row])  # type: ignore[attr-defined]


def reply_sent_row(
    *,
    organization_id: uuid.UUID,
    to_phone: str,
    body: str,
    locale: str,
    resident_id: uuid.UUID | None,
    member_id: uuid.UUID | None,
    now: datetime,
) -> dict[str, Any]:
    """The outbox row of a TwiML answer: an SMS already sent (``record_reply_sent``)."""
    row = outbox_row(
        organization_id=organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.resident_notice if resident_id else OutboxPurpose.member_notice,
        to_phone=to_phone,
        body=body,
        locale=locale,
        resident_id=resident_id,
        now=now,
    )
    row.update(member_id=member_id, status=OutboxStatus.sent.value, sent_at=now, final_at=now)
    return row

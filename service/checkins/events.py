"""What the telephony layer tells the rest of the service: deliveries, failures, replies."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from i18n.classifier import ReplyKind, classify
from i18n.names import LocalizedName
from service.checkins import routing
from service.checkins import service as checkins
from service.checkins.models import (
    Attempt,
    AttemptStatus,
    CheckIn,
    CheckInState,
    Round,
    StaffTask,
    TaskKind,
    TimelineEvent,
)
from service.checkins.policy import (
    PLAIN_FINE,
    ReplyDecision,
    ReplySituation,
    Standing,
    decide_reply,
)
from service.common import aware
from service.escalations.models import Alert, AlertState, Escalation, EscalationState
from service.escalations.snapshot import parse_reply
from service.registry.models import Member, Organization, Resident, ResidentStatus
from service.telephony.models import InboundMessage, OutboxMessage, OutboxPurpose, OutboxStatus

ATTEMPT_STATUS = {
    OutboxStatus.sent: AttemptStatus.sent,
    OutboxStatus.delivered: AttemptStatus.delivered,
    OutboxStatus.answered: AttemptStatus.answered,
    OutboxStatus.failed: AttemptStatus.failed,
    OutboxStatus.undelivered: AttemptStatus.failed,
    OutboxStatus.ambiguous: AttemptStatus.ambiguous,
    OutboxStatus.no_answer: AttemptStatus.no_answer,
    OutboxStatus.busy: AttemptStatus.no_answer,
    OutboxStatus.machine: AttemptStatus.machine,
}


def screen_checkin_messages(
    session: Session, message_ids: Collection[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """Of the check-in messages just claimed for sending, those not to send now. Returns
    their ids.

    - **Its step is over.** The check-in was answered, escalated or superseded, or has
      moved on to a later step, while the message waited in the queue: it is cancelled
      (and its attempt marked skipped), not sent late to someone already dealt with.
    - **Quiet hours.** A message of a round that keeps them, reached while they hold (queued
      at 20:59 and reached at 21:04, behind a long round or a rate limit), is put back
      until they end, with its window to be sent. Its check-in's next step is then no
      earlier than the step's full wait after that: the resident is never escalated for a
      message that was never sent, nor sent a reminder beside it at 08:00.
    """
    if not message_ids:
        return set()
    rows = session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.next_try_at,
            OutboxMessage.give_up_at,
            Attempt.id,
            Attempt.step_index,
            CheckIn.id,
            CheckIn.state,
            CheckIn.step_index,
            CheckIn.plan,
            Round.override_quiet_hours,
            Round.quiet_start,
            Round.quiet_end,
            Organization.timezone,
        )
        .join(Attempt, Attempt.id == OutboxMessage.attempt_id)  # type: ignore[arg-type]
        .join(CheckIn, CheckIn.id == Attempt.checkin_id)  # type: ignore[arg-type]
        .join(Round, Round.id == CheckIn.round_id)  # type: ignore[arg-type]
        .join(Organization, Organization.id == Round.organization_id)  # type: ignore[arg-type]
        .where(OutboxMessage.id.in_(message_ids))  # type: ignore[attr-defined]
    ).all()
    screened: set[uuid.UUID] = set()
    for (
        message_id,
        next_try_at,
        give_up_at,
        attempt_id,
        attempt_step,
        checkin_id,
        state,
        step_index,
        plan,
        override,
        quiet_start,
        quiet_end,
        timezone,
    ) in rows:
        if state != CheckInState.waiting or step_index != attempt_step:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)  # type: ignore[arg-type]
                .values(status=OutboxStatus.cancelled, final_at=now, updated_at=now)
            )
            session.execute(
                update(Attempt)
                .where(Attempt.id == attempt_id)  # type: ignore[arg-type]
                .values(status=AttemptStatus.skipped, updated_at=now)
            )
            screened.add(message_id)
            continue
        if override or not checkins.in_quiet_hours(now, timezone, quiet_start, quiet_end):
            continue
        morning = checkins.quiet_hours_end(now, timezone, quiet_end)
        window = aware(give_up_at) - (aware(next_try_at) or now)
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)  # type: ignore[arg-type]
            .values(
                status=OutboxStatus.pending,
                claimed_at=None,
                next_try_at=morning,
                give_up_at=morning + max(window, timedelta(0)),
                last_error="deferred: quiet hours",
                updated_at=now,
            )
        )
        # Never earlier than it is: a guard on the step, not on the value read, so a sweep
        # that deferred the step meanwhile (in another process) is not undone.
        later = morning + timedelta(minutes=int(plan[step_index]["wait_minutes"]))
        session.execute(
            update(CheckIn)
            .where(
                CheckIn.id == checkin_id,  # type: ignore[arg-type]
                CheckIn.state == CheckInState.waiting,  # type: ignore[arg-type]
                CheckIn.step_index == step_index,  # type: ignore[arg-type]
                CheckIn.next_action_at < later,  # type: ignore[arg-type,operator]
            )
            .values(next_action_at=later, updated_at=now)
        )
        screened.add(message_id)
    return screened


def on_outbox_failed(session: Session, message: OutboxMessage, now: datetime) -> None:
    """A message or call will not reach its recipient (or may not have: ambiguous)."""
    if message.attempt_id is not None:
        status = ATTEMPT_STATUS.get(OutboxStatus(message.status), AttemptStatus.failed)
        if message.status == OutboxStatus.ambiguous:
            # Not resent (see errors.py): the plan's next step, on schedule, is the retry.
            checkins.set_attempt_status(
                session, attempt_id=message.attempt_id, status=status, now=now
            )
            return
        checkins.attempt_failed(
            session,
            attempt_id=message.attempt_id,
            now=now,
            status=status,
            error_code=message.last_error_code,
        )
    elif message.alert_id is not None and message.purpose == OutboxPurpose.alert:
        # Only the SMS is the alert of record; an alert call that fails changes nothing.
        _alert_failed(session, message.alert_id, now)


# The timeline entry of an alert held back by the alert cap (``on_alerts_held``).
ALERT_HELD = "escalation.alert_held"


def on_alerts_held(
    session: Session, message_ids: list[uuid.UUID], until: datetime, cap: int, now: datetime
) -> None:
    """Alert SMS the dispatcher held back, over the alert cap (``dispatch._defer_capped``):
    not sent is not unanswered. The step's acknowledgement window is moved to run from
    when they may go (``until``), so the chain does not move on because of our own hold,
    and the case's timeline says why they wait (once per alert), for staff to see."""
    rows = session.execute(
        select(OutboxMessage.id, Alert.member_id, Alert.step_index, Escalation)
        .select_from(Alert)
        .join(OutboxMessage, OutboxMessage.alert_id == Alert.id)  # type: ignore[arg-type]
        .join(Escalation, Escalation.id == Alert.escalation_id)  # type: ignore[arg-type]
        .where(
            OutboxMessage.id.in_(message_ids),  # type: ignore[attr-defined]
            OutboxMessage.purpose == OutboxPurpose.alert,
            Alert.state == AlertState.sent,
        )
    ).all()
    for message_id, member_id, step, escalation in rows:
        window = until + timedelta(minutes=escalation.ack_minutes)
        # Guarded: only the step this alert belongs to, still waiting, and never earlier.
        session.execute(
            update(Escalation)
            .where(
                Escalation.id == escalation.id,  # type: ignore[arg-type]
                Escalation.state == EscalationState.alerting,  # type: ignore[arg-type]
                Escalation.step_index == step,  # type: ignore[arg-type]
                or_(
                    Escalation.next_action_at.is_(None),  # type: ignore[union-attr]
                    Escalation.next_action_at < window,  # type: ignore[arg-type,operator]
                ),
            )
            .values(next_action_at=window, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        noted = session.execute(
            select(TimelineEvent.id).where(
                TimelineEvent.resident_id == escalation.resident_id,  # type: ignore[arg-type]
                TimelineEvent.kind == ALERT_HELD,  # type: ignore[arg-type]
                TimelineEvent.outbox_id == message_id,  # type: ignore[arg-type]
            )
        ).first()
        if noted is None:
            session.add(
                TimelineEvent(
                    organization_id=escalation.organization_id,
                    resident_id=escalation.resident_id,
                    at=now,
                    kind=ALERT_HELD,
                    escalation_id=escalation.id,
                    outbox_id=message_id,
                    member_id=member_id,
                    detail={"held_cap": cap, "until": until.isoformat()},
                )
            )


def _alert_failed(session: Session, alert_id: uuid.UUID, now: datetime) -> None:
    """An alert that cannot reach its member counts as a decline: the chain moves on."""
    alert = session.get(Alert, alert_id)
    if alert is None or alert.state != AlertState.sent:
        return
    escalation = session.get(Escalation, alert.escalation_id)
    if escalation is None:
        return
    from service.escalations import service as escalations

    escalations.timeline(
        session,
        resident_id=escalation.resident_id,
        organization_id=escalation.organization_id,
        kind="escalation.alert_failed",
        at=now,
        escalation_id=escalation.id,
        member_id=alert.member_id,
    )
    if escalation.state == EscalationState.alerting:
        escalations.decline(session, escalation=escalation, alert=alert, now=now)


def on_outbox_status(
    session: Session, message: OutboxMessage, status: OutboxStatus, now: datetime
) -> None:
    if message.attempt_id is not None and status in ATTEMPT_STATUS:
        checkins.set_attempt_status(
            session,
            attempt_id=message.attempt_id,
            status=ATTEMPT_STATUS[status],
            now=now,
            sid=message.sid,
        )


def find_sender(
    session: Session, phone: str, to_phone: str | None = None, body: str | None = None
) -> tuple[Resident | None, Member | None]:
    """Who sent this? A household may share one phone: prefer the resident whose check-in
    is waiting for an answer; else one who still lives here (not moved out), registered
    with the organization that owns the number the message was sent to, the most recent
    first."""
    from service.checkins.models import CheckIn, CheckInState

    residents = list(
        session.execute(
            select(Resident).where(or_(Resident.phone == phone, Resident.phone2 == phone))
        ).scalars()
    )
    to_owner = _to_owner(session, to_phone) if len(residents) > 1 else None
    if len(residents) > 1:
        waiting = (
            session.execute(
                select(CheckIn.resident_id)
                .where(
                    CheckIn.resident_id.in_([r.id for r in residents]),  # type: ignore[attr-defined]
                    CheckIn.state == CheckInState.waiting,
                )
                .order_by(CheckIn.created_at.desc())  # type: ignore[attr-defined]
                .limit(1)
            )
            .scalars()
            .first()
        )
        chosen = next((r for r in residents if r.id == waiting), None)
        residents = [chosen] if chosen else sorted(residents, key=_resident_rank(to_owner))
    if residents:
        return residents[0], None
    return None, _member_sender(session, phone, body)


def _to_owner(session: Session, to_phone: str | None) -> uuid.UUID | None:
    return routing.sender_owners(session, [to_phone]).get(to_phone) if to_phone else None


def _resident_rank(to_owner: uuid.UUID | None) -> Any:
    def rank(resident: Resident) -> tuple[bool, bool, float]:
        updated = aware(resident.updated_at)
        return (
            resident.status == ResidentStatus.moved_out,
            to_owner is not None and resident.organization_id != to_owner,
            -(updated.timestamp() if updated else 0.0),
        )

    return rank


def _member_sender(session: Session, phone: str, body: str | None = None) -> Member | None:
    """The active member with this phone; of one person registered with several
    organizations, the record an open case is waiting on or held by, and of those, the
    one whose case the reply names ("1 A7"): an interpreter a partner shares, alerted about
    another organization's case while their own organization's case waits on them too,
    answers the case they name, through the record it was sent to."""
    members = list(
        session.execute(
            select(Member).where(Member.phone == phone, Member.active.is_(True))  # type: ignore[arg-type]
        ).scalars()
    )
    if len(members) <= 1:
        return members[0] if members else None
    busy = set(_members_with_open_cases(session, [m.id for m in members]))
    reply = parse_reply(body) if body else None
    if reply is not None and reply.code is not None and len(busy) > 1:
        naming = _members_with_open_code(session, list(busy), reply.code)
        if naming:
            return next(m for m in members if m.id in naming)
    return next((m for m in members if m.id in busy), members[0])


def _members_with_open_code(
    session: Session, member_ids: list[uuid.UUID], code: str
) -> set[uuid.UUID]:
    """Of these members, those alerted about, or holding, an open case of this code."""
    from service.escalations.models import OPEN_STATES

    alerted = (
        select(Alert.member_id)
        .join(Escalation, Escalation.id == Alert.escalation_id)  # type: ignore[arg-type]
        .where(
            Alert.member_id.in_(member_ids),  # type: ignore[attr-defined]
            Escalation.case_code == code,
            Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
        )
    )
    holding = select(Escalation.acknowledged_by).where(
        Escalation.acknowledged_by.in_(member_ids),  # type: ignore[union-attr]
        Escalation.case_code == code,
        Escalation.state == EscalationState.acknowledged,
    )
    return set(session.execute(alerted).scalars()) | set(session.execute(holding).scalars())


def _members_with_open_cases(session: Session, member_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Of these members, those an alert is waiting on or who hold a case."""
    if not member_ids:
        return []
    waiting = select(Alert.member_id).where(
        Alert.member_id.in_(member_ids),  # type: ignore[attr-defined]
        Alert.state == AlertState.sent,
    )
    holding = select(Escalation.acknowledged_by).where(
        Escalation.acknowledged_by.in_(member_ids),  # type: ignore[union-attr]
        Escalation.state == EscalationState.acknowledged,
    )
    found = set(session.execute(waiting).scalars()) | set(session.execute(holding).scalars())
    return [m for m in member_ids if m in found]


def _answering_as_member(session: Session, inbound: InboundMessage) -> Member | None:
    """A member who is also registered as a resident (a daughter's phone, or a member who
    lives in the same housing): while an alert waits on them or they hold a case, a reply
    in the member protocol's form is their answer as a member. Read as the resident's, a
    "1" would close a check-in nobody answered and a "2" open a case about the member."""
    if parse_reply(inbound.body or "") is None:
        return None
    member = _member_sender(session, inbound.from_phone, inbound.body)
    if member is None or not _members_with_open_cases(session, [member.id]):
        return None
    return member


# A reply in the member protocol's form from a member with a case (WhatsApp asks it too).
answering_as_member = _answering_as_member


def on_inbound_sms(
    session: Session, inbound: InboundMessage, now: datetime
) -> tuple[str | None, str]:
    """Route an inbound SMS. Returns (reply text or None, the reply's locale)."""
    member = _answering_as_member(session, inbound)
    resident = None
    if member is None:
        household = _household_waiting(session, inbound.from_phone)
        if len(household) > 1:
            return _household_reply(session, inbound, household, now)
        resident, member = find_sender(session, inbound.from_phone, inbound.to_phone, inbound.body)
    if resident is not None:
        reply = _act_on_resident_reply(session, inbound, resident, now)
        return reply, resident.language
    if member is not None:
        from service.escalations import service as escalations

        inbound.organization_id = member.organization_id
        inbound.member_id = member.id
        session.add(inbound)
        if parse_reply(inbound.body or "") is None:
            _member_words_for_staff(session, inbound, now)
        reply = escalations.handle_member_reply(session, member=member, text=inbound.body, now=now)
        return reply, (member.languages or ["ja"])[0]
    return _stranger_message(session, inbound, now)


def _member_words_for_staff(session: Session, inbound: InboundMessage, now: datetime) -> None:
    """A member's words that are no answer in the protocol ("R1さんが倒れていました。
    救急車を呼びました"): read by staff in the inbox, never only answered "unclear"."""
    inbound.classification = classify(inbound.body, None).kind.value
    inbound.needs_staff = True
    session.add(inbound)
    session.add(
        StaffTask(
            organization_id=inbound.organization_id,
            kind=TaskKind.member_message,
            inbound_id=inbound.id,
            created_at=now,
        )
    )


def _stranger_message(
    session: Session, inbound: InboundMessage, now: datetime
) -> tuple[str | None, str]:
    """An SMS from a number in no registry: the inbox of the organization that owns the
    number it was sent to, or every inbox as unrouted (``checkins.routing``). It is read
    as a resident's would be, without a language, so that a cry for help stands out; the
    sender is answered in Japanese and English."""
    inbound.organization_id = routing.organization_for_stranger(
        session, to_phone=inbound.to_phone, params=inbound.params or {}
    )
    inbound.classification = classify(inbound.body, None).kind.value
    inbound.needs_staff = True
    session.add(inbound)
    session.add(
        StaffTask(
            organization_id=inbound.organization_id,
            kind=TaskKind.unknown_sender,
            inbound_id=inbound.id,
            created_at=now,
        )
    )
    return routing.stranger_answer(), routing.STRANGER_LANGUAGES[0]


def _act_on_resident_reply(
    session: Session,
    inbound: InboundMessage,
    resident: Resident,
    now: datetime,
    received_at: datetime | None = None,
) -> str | None:
    inbound.organization_id = resident.organization_id
    inbound.resident_id = resident.id
    verdict = classify(inbound.body, inbound.language or resident.language)
    reply = checkins.handle_resident_reply(
        session,
        resident=resident,
        text=inbound.body,
        channel="sms",
        now=now,
        inbound_id=inbound.id,
        verdict=verdict,
        received_at=received_at,
    )
    session.flush()
    latest = checkins.current_checkin(session, resident.id, before=received_at)
    inbound.classification = verdict.kind.value
    inbound.needs_staff = bool(latest and latest.flagged)
    inbound.processed_at = now
    session.add(inbound)
    return reply


@dataclass(frozen=True, slots=True)
class SoleResident:
    """The only resident with a given number, as much as the webhook needs to answer them."""

    resident_id: uuid.UUID
    organization_id: uuid.UUID
    language: str
    org_name: str
    org_names: dict[str, str] = field(default_factory=dict)

    @property
    def org(self) -> LocalizedName:
        """The organization's names, to name it in the language of the answer."""
        return LocalizedName(self.org_name, self.org_names)


def sole_resident_sender(session: Session, phone: str) -> SoleResident | None:
    """The resident who sent an SMS, if exactly one has that number. None for a member, a
    stranger or a shared phone: whose reply it is, and so its answer, depends on who is
    waiting, and those are routed inside the request (``on_inbound_sms``)."""
    return sole_resident_senders(session.connection(), [phone]).get(phone)


def sole_resident_senders(
    connection: Connection, phones: Collection[str]
) -> dict[str, SoleResident]:
    """``sole_resident_sender`` for many numbers in one query per chunk: the numbers that
    exactly one resident has (as first or second phone), and who that is."""
    found: dict[str, list[SoleResident]] = {}
    ordered = sorted(phones)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for row in connection.execute(_SENDERS, {"phones": chunk}):
            sender = SoleResident(
                row.id, row.organization_id, row.language, row.name, row.names or {}
            )
            for phone in {row.phone, row.phone2} & set(chunk):
                found.setdefault(phone, []).append(sender)
        # A number a member answers alerts from is read inside the request, which knows
        # whether the message is their answer as a member (``on_inbound_sms``).
        for phone in connection.execute(_MEMBER_PHONES, {"phones": chunk}).scalars():
            found.pop(phone, None)
    return {phone: rows[0] for phone, rows in found.items() if len(rows) == 1}


_MEMBER_PHONES = select(Member.phone).where(
    Member.phone.in_(bindparam("phones", expanding=True)),  # type: ignore[attr-defined]
    Member.active.is_(True),  # type: ignore[attr-defined]
)

_SENDERS = (
    select(
        Resident.id,
        Resident.organization_id,
        Resident.language,
        Organization.name,
        Organization.names,
        Resident.phone,
        Resident.phone2,
    )
    .join(Organization, Organization.id == Resident.organization_id)
    .where(
        or_(
            Resident.phone.in_(bindparam("phones", expanding=True)),  # type: ignore[union-attr]
            Resident.phone2.in_(bindparam("phones", expanding=True)),  # type: ignore[union-attr]
        )
    )
)


def accept_resident_reply(
    session: Session, form: dict[str, str], sender: SoleResident, now: datetime
) -> tuple[str, str]:
    """Store a resident's SMS for ``process_replies`` and return the answer and its locale.

    The answer depends only on what the message says (``checkins.resident_reply_text``), so
    it is given at once; closing the check-in or opening an escalation follows within a
    second, in the scheduler. The stored row is that promise: it stays unprocessed, and is
    picked up again, until the transaction acting on it commits. A plain INSERT on the
    session's connection, in the caller's transaction.
    """
    row, reply, locale = resident_reply_row(form, sender, now)
    session.connection().execute(insert(InboundMessage.__table__), [row])  # type: ignore[attr-defined]
    return reply, locale


def resident_reply_row(
    form: dict[str, str], sender: SoleResident, now: datetime
) -> tuple[dict[str, Any], str, str]:
    """A resident's SMS as the row ``process_replies`` will act on, with its answer and the
    answer's locale (see ``accept_resident_reply``)."""
    body = form.get("Body", "")
    verdict = classify(body, sender.language)
    row = {
        "id": uuid.uuid4(),
        "organization_id": sender.organization_id,
        "channel": "sms",
        "message_sid": form["MessageSid"],
        "from_phone": form["From"],
        "to_phone": form.get("To"),
        "body": body,
        "received_at": now,
        "resident_id": sender.resident_id,
        "member_id": None,
        "classification": verdict.kind.value,
        "needs_staff": False,
        "params": form,
        "processed_at": None,
        "language": sender.language,
    }
    reply, locale = checkins.resident_reply_text(verdict, sender.language, sender.org)
    return row, reply, locale


def unprocessed_reply_ids(
    session: Session, limit: int, skip: Collection[uuid.UUID] = ()
) -> list[uuid.UUID]:
    """The replies still to act on, calls for help first, then the oldest; locked (rows
    another worker holds are skipped). In a burst of thousands of "1"s, a "2" does not wait
    its turn. Acting on a resident's "help" before an earlier "1" of theirs is safe: the
    "1" then reaches the member who holds the case as a late reply, and closes nothing."""
    help_first = case((InboundMessage.classification == ReplyKind.HELP.value, 0), else_=1)
    query = select(InboundMessage.id).where(InboundMessage.processed_at.is_(None))  # type: ignore[union-attr]
    if skip:
        query = query.where(InboundMessage.id.not_in(list(skip)))  # type: ignore[attr-defined]
    return list(
        session.execute(
            # A reply that failed before (flagged for staff) goes after the others.
            query.order_by(
                help_first,
                InboundMessage.needs_staff,
                InboundMessage.received_at,
                InboundMessage.id,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )


def process_reply_batch(session: Session, ids: list[uuid.UUID], now: datetime) -> int:
    """Act on stored replies in the caller's transaction; the number acted on.

    In a burst after a round, almost every reply is a plain "I'm fine" to a check-in that
    is still waiting, from a resident with no open case. Those are closed together, a few
    statements for the whole batch, with the same rows and values ``process_reply`` writes
    (``tests/checkins/test_deferred_replies.py`` compares the two). Everything else, and
    any "fine" whose situation is not that plain, goes through ``process_reply``, one at a
    time, in the order given.
    """
    closed = _close_plain_fine_replies(session, ids, now)
    return len(closed) + sum(process_reply(session, i, now) for i in ids if i not in closed)


def _close_plain_fine_replies(
    session: Session, ids: list[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """The bulk half of ``process_reply_batch``: the replies it acted on."""
    if not ids:
        return set()
    inbound = InboundMessage.__table__  # type: ignore[attr-defined]
    checkin = CheckIn.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(
            inbound.c.id,
            inbound.c.body,
            inbound.c.language,
            inbound.c.received_at,
            Resident.id.label("resident_id"),
            Resident.organization_id,
            Resident.language.label("resident_language"),
            Resident.status.label("resident_status"),
            Resident.needs_interpreter,
        )
        .join(Resident, Resident.id == inbound.c.resident_id)
        .where(inbound.c.id.in_(ids), inbound.c.processed_at.is_(None))
    ).all()
    # A resident with two replies in the batch is left to process_reply, which takes them
    # in the batch's order (a call for help before anything else).
    per_resident = Counter(row.resident_id for row in rows)
    replies: dict[uuid.UUID, tuple[Any, Any]] = {}
    for row in rows:
        if per_resident[row.resident_id] != 1:
            continue
        verdict = classify(row.body, row.language or row.resident_language)
        # Only a reply the rules would close plainly in the plainest situation (a waiting
        # check-in, no case open) is a candidate; its real situation is checked below.
        if _decide(row, verdict, open_case=False).is_plain_fine:
            replies[row.resident_id] = (row, verdict)
    if not replies:
        return set()
    # Claimed first, as process_reply claims (only if no one else has acted on it). The
    # claim is this transaction's first write: on SQLite it takes the database's write lock,
    # so nothing the reads below see can change before the commit (FOR UPDATE, which does
    # the same for the check-ins on PostgreSQL, is a no-op there).
    claimed = set(
        session.execute(
            update(inbound)
            .where(
                inbound.c.id.in_([reply.id for reply, _ in replies.values()]),
                inbound.c.processed_at.is_(None),
            )
            .values(processed_at=now)
            .returning(inbound.c.id)
        ).scalars()
    )
    replies = {key: value for key, value in replies.items() if value[0].id in claimed}
    if not replies:
        return set()
    residents = list(replies)
    # The waiting check-ins, locked as process_reply locks them: a sweep escalating one of
    # them is waited for, and the check-in is then no longer waiting, so it is left out.
    waiting = session.execute(
        select(checkin.c.id, checkin.c.resident_id, checkin.c.created_at, checkin.c.flagged)
        .where(
            checkin.c.resident_id.in_(residents),
            checkin.c.state == CheckInState.waiting.value,
        )
        .order_by(checkin.c.id)  # one lock order for every worker
        .with_for_update()
    ).all()
    by_resident: dict[uuid.UUID, list[Any]] = {}
    for row in waiting:
        by_resident.setdefault(row.resident_id, []).append(row)
    # Not plain: a newer check-in than the waiting one (the reply may belong to either), or
    # an open escalation (the reply is a late one, and its member must hear of it).
    newest: dict[uuid.UUID, datetime] = {}
    if waiting:
        for resident_id, created_at in session.execute(
            select(checkin.c.resident_id, checkin.c.created_at).where(
                checkin.c.resident_id.in_(residents),
                checkin.c.state.not_in([CheckInState.superseded.value, CheckInState.waiting.value]),
                checkin.c.created_at >= min(row.created_at for row in waiting),
            )
        ):
            newest[resident_id] = max(aware(created_at), newest.get(resident_id, aware(created_at)))
    from service.escalations import service as escalations

    escalated = set(
        session.execute(
            select(Escalation.resident_id).where(
                Escalation.resident_id.in_(residents),  # type: ignore[attr-defined]
                Escalation.state.in_(escalations.OPEN_STATES),  # type: ignore[attr-defined]
            )
        ).scalars()
    )
    plain: list[tuple[Any, Any, Any]] = []
    for resident_id, (reply, verdict) in replies.items():
        found = by_resident.get(resident_id, [])
        # Which check-in it answers is plain only with one waiting (and none newer below).
        if len(found) != 1:
            continue
        # The same rules as process_reply, in the situation loaded: an open case makes it
        # a late reply, for the member who holds the case to hear of.
        if not _decide(reply, verdict, open_case=resident_id in escalated).is_plain_fine:
            continue
        [current] = found
        created = aware(current.created_at)
        # ">=": a check-in of another round started in the same instant would leave it to
        # chance which of the two the reply answers; process_reply decides such a case.
        if resident_id in newest and newest[resident_id] >= created:
            continue
        if created > aware(reply.received_at):
            continue
        plain.append((reply, verdict, current))
    acted = {reply.id for reply, _, _ in plain}
    if claimed - acted:
        # Not plain after all: released within this transaction, for process_reply.
        session.execute(
            update(inbound).where(inbound.c.id.in_(list(claimed - acted))).values(processed_at=None)
        )
    if not plain:
        return set()
    closed = session.connection().execute(
        update(checkin)
        .where(
            checkin.c.id == bindparam("checkin_id"),
            checkin.c.state == CheckInState.waiting.value,
        )
        .values(
            state=PLAIN_FINE.close_as.value,  # type: ignore[union-attr]
            next_action_at=None,
            closed_at=now,
            updated_at=now,
            last_reply_kind=ReplyKind.FINE.value,
            replied_at=bindparam("replied_at"),
        ),
        [{"checkin_id": c.id, "replied_at": r.received_at} for r, _, c in plain],
    )
    if session.connection().dialect.supports_sane_multi_rowcount and closed.rowcount != len(plain):
        # Cannot happen under the locks above; if it does, nothing of the batch is kept and
        # process_replies acts on each reply alone.
        raise RuntimeError("a check-in closed in bulk was no longer waiting")
    session.connection().execute(
        update(inbound)
        .where(inbound.c.id == bindparam("inbound_id"))
        .values(
            classification=ReplyKind.FINE.value,
            needs_staff=bindparam("flagged"),
            organization_id=bindparam("organization_id"),
        ),
        [
            {"inbound_id": r.id, "flagged": bool(c.flagged), "organization_id": r.organization_id}
            for r, _, c in plain
        ],
    )
    # The timeline rows escalations.timeline would add, as one insert.
    session.connection().execute(
        insert(TimelineEvent.__table__),  # type: ignore[attr-defined]
        [
            {
                "id": uuid.uuid4(),
                "organization_id": reply.organization_id,
                "resident_id": reply.resident_id,
                "at": reply.received_at,
                "kind": "reply.sms",
                "checkin_id": current.id,
                "escalation_id": None,
                "outbox_id": None,
                "inbound_id": reply.id,
                "member_id": None,
                "actor": None,
                "detail": {
                    "class": verdict.kind.value,
                    "matched": verdict.matched,
                    "words": list(verdict.words),
                    "why": verdict.reason,
                },
            }
            for reply, verdict, current in plain
        ],
    )
    return acted


def _decide(row: Any, verdict: Any, *, open_case: bool) -> ReplyDecision:
    """The reply rules' decision for a reply of the bulk path, to a waiting check-in."""
    situation = ReplySituation(
        checkin=Standing.WAITING,
        open_case=open_case,
        opted_out=row.resident_status == ResidentStatus.opted_out.value,
        needs_interpreter=bool(row.needs_interpreter),
    )
    return decide_reply(verdict.kind, situation, verdict.language)


def process_reply(session: Session, inbound_id: uuid.UUID, now: datetime) -> bool:
    """Act on one stored reply, in the caller's transaction. False if there was nothing to do.

    The reply is claimed first (``processed_at`` set only if still unset), so two workers
    can never both act on it: on PostgreSQL the second waits for the first's row lock and
    then finds it claimed; on SQLite writers take turns and the second finds the same.
    """
    claimed = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id, InboundMessage.processed_at.is_(None))  # type: ignore[union-attr]
        .values(processed_at=now)
        .returning(InboundMessage.id)
    ).first()
    if claimed is None:
        return False
    inbound = session.get(InboundMessage, inbound_id, populate_existing=True)
    assert inbound is not None
    resident = session.get(Resident, inbound.resident_id) if inbound.resident_id else None
    if resident is None:
        # Deleted since it arrived: the message stays on staff's list.
        inbound.needs_staff = True
        inbound.processed_at = now
        session.add(inbound)
        return True
    _act_on_resident_reply(session, inbound, resident, now, received_at=inbound.received_at)
    return True


def unanswered_inbound_count(session: Session, organization_id: uuid.UUID) -> int:
    return session.execute(
        select(func.count())
        .select_from(InboundMessage)
        .where(
            InboundMessage.organization_id == organization_id, InboundMessage.needs_staff.is_(True)
        )
    ).scalar_one()  # type: ignore[attr-defined]


def _household_waiting(session: Session, phone: str) -> list[Resident]:
    """Residents who share this number and are each waiting for an answer."""
    from service.checkins.models import CheckIn, CheckInState

    # IN, not JOIN ... DISTINCT: PostgreSQL cannot compare the JSON columns (channels) of
    # a resident, which DISTINCT over the whole row would.
    waiting = select(CheckIn.resident_id).where(CheckIn.state == CheckInState.waiting)
    return list(
        session.execute(
            select(Resident)
            .where(
                or_(Resident.phone == phone, Resident.phone2 == phone),
                Resident.id.in_(waiting),  # type: ignore[attr-defined]
            )
            .order_by(Resident.id)
        ).scalars()
    )


def _household_reply(
    session: Session, inbound: InboundMessage, household: list[Resident], now: datetime
) -> tuple[str | None, str]:
    """One shared phone, several people asked: a reply cannot say who it speaks for.

    A call for help is taken for everyone (escalating too many is safe); anything else, a
    "fine" included, closes nobody's check-in: it goes to staff, who can call the household.
    """

    first = household[0]
    inbound.organization_id = first.organization_id
    verdict = classify(inbound.body, first.language)
    inbound.classification = verdict.kind.value
    shared = ReplySituation(checkin=Standing.WAITING, shared_phone=True)
    decision = decide_reply(verdict.kind, shared, verdict.language)
    if not decision.needs_staff:
        # A call for help: each resident's own situation decides what it opens.
        reply = None
        for resident in household:
            reply = checkins.handle_resident_reply(
                session,
                resident=resident,
                text=inbound.body,
                channel="sms",
                now=now,
                inbound_id=inbound.id,
            )
        session.add(inbound)
        return reply, first.language
    inbound.needs_staff = True
    session.add(inbound)
    for resident in household:
        for order in decision.tasks:
            session.add(
                StaffTask(
                    organization_id=resident.organization_id,
                    kind=order.kind,
                    resident_id=resident.id,
                    inbound_id=inbound.id,
                    language=resident.language,
                    created_at=now,
                    note=order.note,
                )
            )
    org = session.get(Organization, first.organization_id)
    from i18n.render import render

    org_name = LocalizedName.of(org).for_reader(first.language) if org else ""
    return render(decision.answer_id, first.language, org=org_name), (first.language)

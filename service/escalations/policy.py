"""The escalation policy as pure functions: given a case (``snapshot.Case``), an event and
the time, decide what happens. The service (``service.escalations.service``) loads the case,
calls :func:`decide` and applies the :class:`~service.escalations.snapshot.Decision`.

- Each step alerts its members and waits the acknowledgement window; then the next step.
- A member's "1" to their alert takes the case; "2" declines, and the next step starts at
  once (the last step waits for everyone in it before the chain runs out).
- The holder is reminded after the outcome time, then the case is handed on.
- When the chain runs out the case is "exhausted": on staff's list, never closed by time.
- Member protocol v2: an answer to an alert is DIGIT FIRST ("1 A7", "2 A7"); a visit's
  result is CODE FIRST ("A7 1" safe ... "A7 5" could not find), or "3 A7" to "5 A7". The
  holder's "1" again is the acknowledgement again, their "2" hands the case back.
  Only the holder's result, naming the case, closes it as anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from service.escalations.models import OUTCOME_BY_DIGIT, AlertState, EscalationState, Outcome
from service.escalations.snapshot import (
    AlertFact,
    AlertFailed,
    Audit,
    Case,
    Decision,
    Due,
    Entry,
    Event,
    HandedOn,
    KeypadAnswered,
    MemberAnswered,
    MemberReply,
    NewAlert,
    Notice,
    Order,
    Relation,
    ResidentReplied,
    Route,
    StaffAcknowledged,
    StaffReassigned,
    StaffResolved,
    relation,
)

__all__ = ["decide", "route", "start"]

ACK = ("member.ack", "member.outcome_request")
LATE_AUDIT_SECONDS = 60


class _Plan:
    """The decision being built: each rule below changes the case and adds what to do."""

    def __init__(self, case: Case, now: datetime) -> None:
        self.before, self.case, self.now = case, case, now
        self.alert_states: dict[uuid.UUID, AlertState] = {}
        self.alerts: list[NewAlert] = []
        self.notices: list[Notice] = []
        self.timeline: list[Entry] = []

    def set(self, **changes: object) -> None:
        self.case = replace(self.case, **changes)  # type: ignore[arg-type]

    def still_waiting(self) -> list[AlertFact]:
        return [a for a in self.case.waiting if a.alert_id not in self.alert_states]

    def close_waiting(self, state: AlertState, keep: uuid.UUID | None = None) -> None:
        for alert in self.still_waiting():
            is_kept = keep is not None and alert.member_id == keep
            self.alert_states[alert.alert_id] = AlertState.acknowledged if is_kept else state

    def done(self, answer: tuple[str, ...] = (), audit: Audit | None = None) -> Decision:
        return Decision(
            case=None if self.case == self.before else self.case,
            alert_states=self.alert_states,
            alerts=tuple(self.alerts),
            notices=tuple(self.notices),
            timeline=tuple(self.timeline),
            answer=answer,
            audit=audit,
        )


# --------------------------------------------------------------------------- transitions


def _start(plan: _Plan, step: int) -> None:
    """Alert the members of ``step``; past the last step the chain has run out."""
    chain = plan.case.chain
    if step >= len(chain):
        plan.set(step=step, state=EscalationState.exhausted, due_at=None)
        # An earlier step's alert left open (an interpreter beside a member who said "2")
        # waits for nothing now; its member's late "1" still takes the case.
        plan.close_waiting(AlertState.expired)
        plan.timeline.append(Entry("escalation.exhausted"))
        return
    due = plan.now + chain.ack_window
    plan.set(step=step, state=EscalationState.alerting, due_at=due)
    plan.alerts.extend(NewAlert(step, r) for r in chain.steps[step])


def _acknowledge(plan: _Plan, member_id: uuid.UUID, actor: str, note: bool = False) -> None:
    due = plan.now + plan.case.chain.outcome_time
    plan.set(
        state=EscalationState.acknowledged,
        holder=member_id,
        taken_at=plan.now,
        reminded_at=None,
        due_at=due,
    )
    plan.close_waiting(AlertState.withdrawn, keep=member_id)
    plan.timeline.append(Entry("escalation.acknowledged", member_id, actor, {"note": note}))


def _hand_on(plan: _Plan, actor: str) -> None:
    plan.timeline.append(Entry("escalation.unacknowledged", plan.case.holder, actor))
    plan.set(holder=None, taken_at=None, reminded_at=None)
    _start(plan, plan.case.step + 1)


def _decline(plan: _Plan, alert: AlertFact) -> None:
    """The alert's member cannot go. The next step starts at once; others in this step (an
    interpreter beside the member) keep their alerts open, and only the last step waits for
    all of them before the chain runs out. A "2" to an earlier step's alert moves nothing."""
    case = plan.case
    plan.alert_states[alert.alert_id] = AlertState.declined
    plan.timeline.append(Entry("escalation.declined", alert.member_id))
    others = [a for a in plan.still_waiting() if a.step == case.step]
    last_step = case.step + 1 >= len(case.chain)
    if case.state == EscalationState.alerting and alert.step == case.step:
        if not others or not last_step:
            _start(plan, case.step + 1)


def _resolve(
    plan: _Plan, outcome: Outcome, actor: str, member_id: uuid.UUID | None, note: str | None
) -> None:
    # "Could not find" is recorded, but nobody has seen the resident: the case stays open on
    # staff's list (exhausted) until someone records what happened.
    closed = outcome != Outcome.not_found
    plan.set(
        state=EscalationState.resolved if closed else EscalationState.exhausted,
        outcome=outcome,
        outcome_note=note,
        resolved_at=plan.now if closed else None,
        resolved_by=actor if closed else None,
        due_at=None,
    )
    plan.close_waiting(AlertState.withdrawn)
    plan.timeline.append(Entry("escalation.resolved", member_id, actor, {"outcome": outcome.value}))


# --------------------------------------------------------------------------- events


def decide(case: Case, event: Event, now: datetime) -> Decision:
    """What happens to ``case`` when ``event`` happens at ``now``."""
    plan = _Plan(case, now)
    if case.state == EscalationState.resolved:  # final: nothing changes it any more
        said = ("member.already_taken",) if isinstance(event, MemberAnswered) else ()
        return plan.done(said)
    match event:
        case Due():
            return _due(plan)
        case MemberAnswered():
            return _member(plan, event)
        case KeypadAnswered(alert_id=alert_id, member_id=member_id, digit=digit, actor=actor):
            alert = next((a for a in case.waiting if a.alert_id == alert_id), None)
            if alert is None or alert.member_id != member_id:
                return plan.done()  # settled meanwhile: the alert no longer waits
            if case.state != EscalationState.alerting or digit not in ("1", "2"):
                return plan.done()
            return _answer_alert(plan, alert, digit, actor, "keypad")
        case StaffAcknowledged(member_id=member_id, actor=actor, note=note):
            _acknowledge(plan, member_id, actor, note=bool(note))
        case StaffResolved(outcome=outcome, actor=actor, member_id=member_id, note=note):
            _resolve(plan, outcome, actor, member_id, note)
        case StaffReassigned(recipient=recipient, actor=actor):
            plan.close_waiting(AlertState.expired)
            at = min(case.step + 1, len(case.chain))  # past a chain that ran out: a new step
            plan.set(chain=case.chain.inserted(at, recipient), holder=None, taken_at=None)
            plan.set(reminded_at=None)
            plan.timeline.append(Entry("escalation.reassigned", recipient.member_id, actor))
            _start(plan, at)
        case AlertFailed(alert_id=alert_id):
            alert = next((a for a in case.waiting if a.alert_id == alert_id), None)
            if alert is not None:
                _decline(plan, alert)
        case ResidentReplied(answer=answer):
            holders = []
            if case.state == EscalationState.acknowledged and case.holder is not None:
                holders = [case.holder]
            elif case.state == EscalationState.alerting:
                holders = [a.member_id for a in case.waiting]
            plan.notices.extend(Notice(m, "member.resident_replied", answer) for m in holders)
            detail = {"answer": answer, "notified": len(holders)}
            plan.timeline.append(Entry("escalation.late_reply", detail=detail))
        case HandedOn(actor=actor) if case.state == EscalationState.acknowledged:
            _hand_on(plan, actor)
    return plan.done()


def start(case: Case, step: int, now: datetime) -> Decision:
    """Start ``step`` of the chain (a new case, or a call for help on a case that ran out)."""
    plan = _Plan(case, now)
    _start(plan, step)
    return plan.done()


def _due(plan: _Plan) -> Decision:
    case, now = plan.case, plan.now
    if case.due_at is None or case.due_at > now:
        return plan.done()
    late = (now - case.due_at).total_seconds()
    audit = (
        Audit("scheduler", "late", {"late_seconds": round(late)})
        if late > LATE_AUDIT_SECONDS
        else None
    )
    if case.state == EscalationState.alerting:
        plan.close_waiting(AlertState.expired)
        _start(plan, case.step + 1)
    elif case.state == EscalationState.acknowledged and case.holder is not None:
        if case.reminded_at is None:
            plan.set(reminded_at=now, due_at=now + case.chain.reminder_grace)
            plan.notices.append(Notice(case.holder, "member.reminder"))
            plan.timeline.append(Entry("escalation.reminded", case.holder))
        else:  # reminded and still silent: hand the case on
            plan.notices.append(Notice(case.holder, "member.handed_on"))
            _hand_on(plan, "scheduler")
    return plan.done(audit=audit)


# --------------------------------------------------------------------------- member replies


def route(reply: MemberReply, relations: Mapping[str, Relation]) -> Route:
    """Which case a member's reply is about, from their relation to each open case: the code
    if given; else their only case waiting for them or held by them; else their only former
    case. Otherwise they are asked which (or told the reply is unclear)."""
    active = sorted(c for c, r in relations.items() if r != Relation.FORMER)
    if reply.code is not None:
        known = reply.code in relations
        return Route(reply.code) if known else Route(None, "member.unclear")
    candidates = active or sorted(relations)
    if len(candidates) == 1:
        return Route(candidates[0])
    if not candidates:
        return Route(None, "member.unclear")
    return Route(None, "member.which_case", tuple(candidates))


def _member(plan: _Plan, event: MemberAnswered) -> Decision:
    reply, member_id, actor = event.reply, event.member_id, event.actor
    match relation(plan.case, member_id):
        case Relation.ALERTED:
            alerts = [a for a in plan.case.waiting if a.member_id == member_id]
            alert = max(alerts, key=lambda a: a.step)
            is_result = reply.digit in "345" or reply.order == Order.CODE_FIRST
            if reply.code is not None and reply.digit != "1" and is_result:
                # A result before taking the case ("A7 2", "3 A7"): the member went
                # already. Kept for staff; the alert still waits for their "1" or "2".
                return _report(plan, reply, actor, member_id)
            if reply.digit not in ("1", "2"):
                return plan.done(("member.unclear",))
            return _answer_alert(plan, alert, reply.digit, actor, "sms")
        case Relation.HOLDER:
            return _holder(plan, reply, actor, member_id)
    return _former(plan, reply, actor, member_id)


def _answer_alert(plan: _Plan, alert: AlertFact, digit: str, actor: str, via: str) -> Decision:
    if digit == "1":
        _acknowledge(plan, alert.member_id, actor)
        return plan.done(ACK, Audit(actor, "acknowledge", {"via": via}))
    _decline(plan, alert)
    return plan.done(("member.declined",), Audit(actor, "decline", {"via": via}))


def _holder(plan: _Plan, reply: MemberReply, actor: str, member_id: uuid.UUID) -> Decision:
    digit, coded = reply.digit, reply.code is not None
    if reply.order == Order.DIGIT_FIRST and digit == "1":
        return plan.done(("member.ack_again",))  # the acknowledgement again, however written
    if reply.order == Order.DIGIT_FIRST and digit == "2":
        _hand_on(plan, actor)
        return plan.done(("member.handed_back",), Audit(actor, "decline", {"via": "sms"}))
    if not coded:
        return plan.done(("member.outcome_request",))  # results name their case
    outcome = OUTCOME_BY_DIGIT[digit]
    _resolve(plan, outcome, actor, member_id, None)
    audit = Audit(actor, "resolve", {"via": "sms", "outcome": outcome.value})
    return plan.done(("member.outcome_recorded",), audit)


def _former(plan: _Plan, reply: MemberReply, actor: str, member_id: uuid.UUID) -> Decision:
    """A reply about an open case that no longer waits for this member: never dropped as
    unclear, never closing the case. "1" takes it if nobody holds it (as it would have in
    time); any other digit, and any result written code first ("A7 1" after the case was
    handed on), may be a result, perhaps of an earlier run of the chain: it goes on the
    case's timeline for staff, who record the outcome."""
    case = plan.case
    held_by_other = case.state == EscalationState.acknowledged and case.holder != member_id
    if reply.digit == "2" and reply.order == Order.DIGIT_FIRST:
        # "I cannot go", late: noted as such, never as a result ("needs support").
        plan.timeline.append(Entry("escalation.declined", member_id, detail={"late": True}))
        audit = Audit(actor, "decline", {"via": "sms", "late": True})
        return plan.done(("member.declined",), audit)
    if reply.digit != "1" or reply.order == Order.CODE_FIRST:
        return _report(plan, reply, actor, member_id)
    if held_by_other:
        return plan.done(("member.already_taken",))
    _acknowledge(plan, member_id, actor)
    theirs = [a for a in case.alerts if a.member_id == member_id]
    if theirs:  # their latest alert is the one answered
        plan.alert_states[theirs[-1].alert_id] = AlertState.acknowledged
    return plan.done(ACK, Audit(actor, "acknowledge", {"via": "sms", "late": True}))


def _report(plan: _Plan, reply: MemberReply, actor: str, member_id: uuid.UUID) -> Decision:
    """A result from a member who does not hold the case: on its timeline for staff, who
    record the outcome; it changes nothing else."""
    case = plan.case
    held_by_other = case.state == EscalationState.acknowledged and case.holder != member_id
    detail = {
        "digit": reply.digit,
        "outcome": OUTCOME_BY_DIGIT[reply.digit].value,
        "held_by": str(case.holder) if held_by_other else None,
    }
    plan.timeline.append(Entry("escalation.outcome_reported", member_id, detail=detail))
    audit = Audit(actor, "report", {"via": "sms", "digit": reply.digit})
    return plan.done(("member.outcome_recorded",), audit)

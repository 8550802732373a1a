"""The escalation policy, table by table: pure functions over plain data, no database.

They pin who is alerted when, who holds a case, which alert a member's message answers, and
the member protocol v2: an answer to an alert is digit first ("1 A7"), a visit's result
code first ("A7 1"); the holder's "1" again is the acknowledgement again, their "2" hands
the case back; only the holder's result, naming the case, closes it; time never does.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.escalations.models import AlertState, EscalationState, Outcome
from service.escalations.policy import decide, route, start
from service.escalations.snapshot import (
    AlertFact,
    AlertFailed,
    Case,
    Chain,
    Decision,
    Due,
    HandedOn,
    KeypadAnswered,
    MemberAnswered,
    MemberReply,
    Order,
    Recipient,
    Relation,
    ResidentReplied,
    Route,
    StaffAcknowledged,
    StaffReassigned,
    StaffResolved,
    parse_reply,
)

S = EscalationState
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
M1, M2, INTERPRETER, STAFF, M3 = (uuid.UUID(int=n) for n in (1, 2, 3, 4, 5))
NAMES = {M1: "M1", M2: "M2", INTERPRETER: "I", STAFF: "S", M3: "M3"}
A_M1, A_I, A_M2, A_S = (uuid.UUID(int=100 + n) for n in range(4))


def who(member_id: uuid.UUID) -> Recipient:
    return Recipient(member_id, NAMES[member_id], f"+8180{member_id.int:08d}")


# Step 1: M1 with an interpreter beside them; step 2: M2; step 3: the staff on duty.
CHAIN = Chain(((who(M1), who(INTERPRETER)), (who(M2),), (who(STAFF),)))


def alerting(step: int = 0, *, waiting: tuple[uuid.UUID, ...] | None = None) -> Case:
    """The case alerting ``step``: that step's alerts wait, earlier ones expired."""
    ids = {M1: A_M1, INTERPRETER: A_I, M2: A_M2, STAFF: A_S}
    alerts = []
    for n in range(step + 1):
        for r in CHAIN.steps[n]:
            is_waiting = n == step if waiting is None else r.member_id in waiting
            alerts.append(AlertFact(ids[r.member_id], r.member_id, n, is_waiting))
    return Case("A7", S.alerting, step, CHAIN, due_at=NOW + CHAIN.ack_window, alerts=tuple(alerts))


def held(by: uuid.UUID = M1, *, step: int = 0, reminded: bool = False) -> Case:
    case = alerting(step, waiting=())
    reminded_at = NOW - timedelta(hours=1) if reminded else None
    due = NOW + (CHAIN.reminder_grace if reminded else CHAIN.outcome_time)
    return replace(
        case, state=S.acknowledged, holder=by, taken_at=NOW, reminded_at=reminded_at, due_at=due
    )


def label(value: object) -> str | None:
    return f"{value.state}-step{value.step}" if isinstance(value, Case) else None


def exhausted() -> Case:
    return replace(alerting(2, waiting=()), state=S.exhausted, step=3, due_at=None)


def resolved() -> Case:
    return replace(held(), state=S.resolved, outcome=Outcome.safe, due_at=None)


def says(member: uuid.UUID, text: str) -> MemberAnswered:
    reply = parse_reply(text)
    assert reply is not None, text
    return MemberAnswered(member, reply, f"member:{NAMES[member]}")


def after(case: Case, decision: Decision) -> Case:
    return decision.case or case


def kinds(decision: Decision) -> list[str]:
    return [entry.kind for entry in decision.timeline]


def alerted(decision: Decision) -> set[tuple[uuid.UUID, int]]:
    return {(a.recipient.member_id, a.step) for a in decision.alerts}


def run(case: Case, *events) -> tuple[Case, list[Decision]]:  # type: ignore[no-untyped-def]
    """Events one after another, a minute apart, as the service would apply them."""
    decisions = []
    for n, event in enumerate(events, start=1):
        decision = decide(case, event, NOW + timedelta(minutes=n))
        decisions.append(decision)
        case = after(case, decision)
        if decision.alert_states:
            case = replace(
                case,
                alerts=tuple(
                    replace(a, waiting=a.waiting and a.alert_id not in decision.alert_states)
                    for a in case.alerts
                ),
            )
    return case, decisions


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1", ("1", None, Order.DIGIT_FIRST)),
        ("2", ("2", None, Order.DIGIT_FIRST)),
        ("1 A7", ("1", "A7", Order.DIGIT_FIRST)),
        ("1A7", ("1", "A7", Order.DIGIT_FIRST)),
        ("1-A7", ("1", "A7", Order.DIGIT_FIRST)),
        ("１　ａ７", ("1", "A7", Order.DIGIT_FIRST)),
        ("5 m98", ("5", "M98", Order.DIGIT_FIRST)),
        ("A7 1", ("1", "A7", Order.CODE_FIRST)),
        ("A7:1", ("1", "A7", Order.CODE_FIRST)),
        ("Ａ７　１", ("1", "A7", Order.CODE_FIRST)),
        ("s66, 2", ("2", "S66", Order.CODE_FIRST)),
        (" 3 ", ("3", None, Order.DIGIT_FIRST)),
        ("6", None),
        ("0 A7", None),
        ("A7", None),
        ("A7 1 B3", None),  # two codes: which one?
        # Direction marks from a right-to-left text (Urdu) are not part of the reply.
        ("\u200f1 A7", ("1", "A7", Order.DIGIT_FIRST)),
        ("\u200eA7\u200e 1\u061c", ("1", "A7", Order.CODE_FIRST)),
        ("\u20661\u2069 \u2066A7\u2069", ("1", "A7", Order.DIGIT_FIRST)),
        ("A1234 1", None),
        ("はい", None),
        ("", None),
    ],
)
def test_a_members_reply_is_read_with_its_order(text, parsed):
    reply = parse_reply(text)
    assert (reply if reply is None else (reply.digit, reply.code, reply.order)) == parsed


# --------------------------------------------------------------------------- which case


def reply(text: str) -> MemberReply:
    parsed = parse_reply(text)
    assert parsed is not None
    return parsed


ALERTED, HOLDER, FORMER = Relation.ALERTED, Relation.HOLDER, Relation.FORMER
WHICH, UNCLEAR = "member.which_case", "member.unclear"


@pytest.mark.parametrize(
    ("relations", "text", "expected"),
    [
        ({"A7": ALERTED}, "1", Route("A7")),
        ({"A7": HOLDER}, "A7 1", Route("A7")),
        ({"A7": FORMER}, "2", Route("A7")),  # their one former case
        ({"A7": HOLDER, "B3": FORMER}, "1", Route("A7")),  # a case they hold comes first
        ({"A7": HOLDER, "B3": ALERTED}, "1", Route(None, WHICH, ("A7", "B3"))),
        ({"A7": FORMER, "B3": FORMER}, "1", Route(None, WHICH, ("A7", "B3"))),
        ({"A7": HOLDER, "B3": ALERTED}, "B3 1", Route("B3")),
        ({"A7": FORMER}, "1 A7", Route("A7")),
        ({"A7": HOLDER}, "1 Z9", Route(None, UNCLEAR)),  # a code they never had
        ({}, "1", Route(None, UNCLEAR)),
        ({}, "A7 1", Route(None, UNCLEAR)),
    ],
)
def test_which_case_a_reply_is_about(relations, text, expected):
    assert route(reply(text), relations) == expected


# --------------------------------------------------------------------------- due (the sweep)


def test_an_unanswered_step_expires_and_the_next_is_alerted():
    decision = decide(alerting(0), Due(), NOW + CHAIN.ack_window)
    case = decision.case
    assert case is not None and (case.state, case.step) == (S.alerting, 1)
    assert case.due_at == NOW + 2 * CHAIN.ack_window
    assert decision.alert_states == {A_M1: AlertState.expired, A_I: AlertState.expired}
    assert alerted(decision) == {(M2, 1)}
    assert decision.audit is None and not decision.answer


def test_the_last_unanswered_step_leaves_the_case_on_staffs_list():
    decision = decide(alerting(2), Due(), NOW + CHAIN.ack_window)
    case = decision.case
    assert case is not None and (case.state, case.step, case.due_at) == (S.exhausted, 3, None)
    assert decision.alert_states == {A_S: AlertState.expired}
    assert kinds(decision) == ["escalation.exhausted"] and not decision.alerts


def test_a_late_sweep_is_audited_and_an_early_one_does_nothing():
    assert decide(alerting(0), Due(), NOW + CHAIN.ack_window - timedelta(seconds=1)) == Decision()
    late = decide(alerting(0), Due(), NOW + CHAIN.ack_window + timedelta(minutes=5))
    assert late.audit is not None and late.audit.action == "late"
    assert late.audit.detail == {"late_seconds": 300}


def test_the_holder_is_reminded_then_the_case_is_handed_on():
    reminder = decide(held(), Due(), NOW + CHAIN.outcome_time)
    case = reminder.case
    assert case is not None and case.state == S.acknowledged and case.holder == M1
    assert case.reminded_at == NOW + CHAIN.outcome_time
    assert case.due_at == NOW + CHAIN.outcome_time + CHAIN.reminder_grace
    assert [(n.member_id, n.message_id) for n in reminder.notices] == [(M1, "member.reminder")]
    assert kinds(reminder) == ["escalation.reminded"] and not reminder.alerts
    then = NOW + CHAIN.outcome_time + CHAIN.reminder_grace
    handed = decide(case, Due(), then)
    case = handed.case
    assert case is not None and (case.state, case.holder, case.step) == (S.alerting, None, 1)
    assert (case.taken_at, case.reminded_at) == (None, None)
    assert [(n.member_id, n.message_id) for n in handed.notices] == [(M1, "member.handed_on")]
    assert kinds(handed) == ["escalation.unacknowledged"] and alerted(handed) == {(M2, 1)}
    assert handed.timeline[0].actor == "scheduler"


@pytest.mark.parametrize("case", [exhausted(), resolved()], ids=["exhausted", "resolved"])
def test_time_alone_moves_nothing_on_a_case_nobody_is_asked_about(case):
    assert decide(case, Due(), NOW + timedelta(days=30)) == Decision()


# --------------------------------------------------------------------------- member replies


def outcome_of(case: Case, event, at=NOW) -> tuple:  # type: ignore[no-untyped-def]
    decision = decide(case, event, at)
    new = after(case, decision)
    return decision, new


@pytest.mark.parametrize("text", ["1", "1 A7", "A7 1", "１ Ａ７", "1-A7"])
def test_alerted_1_in_any_order_takes_the_case(text):
    decision, case = outcome_of(alerting(0), says(M1, text))
    assert (case.state, case.holder, case.taken_at) == (S.acknowledged, M1, NOW)
    assert case.due_at == NOW + CHAIN.outcome_time
    assert decision.alert_states == {A_M1: AlertState.acknowledged, A_I: AlertState.withdrawn}
    assert decision.answer == ("member.ack", "member.outcome_request")
    assert decision.audit is not None and decision.audit.action == "acknowledge"
    assert kinds(decision) == ["escalation.acknowledged"]


@pytest.mark.parametrize("text", ["2", "2 A7", "２　ａ７"])
def test_alerted_2_digit_first_declines_and_the_chain_moves_on_at_once(text):
    decision, case = outcome_of(alerting(0), says(M1, text))
    assert (case.state, case.step, case.holder) == (S.alerting, 1, None)
    assert decision.alert_states == {A_M1: AlertState.declined}  # the interpreter's stays
    assert alerted(decision) == {(M2, 1)}
    assert decision.answer == ("member.declined",)
    assert decision.audit is not None and decision.audit.action == "decline"


@pytest.mark.parametrize("text", ["3", "5"])
def test_alerted_bare_3_to_5_changes_nothing_and_is_unclear(text):
    decision = decide(alerting(0), says(M1, text), NOW)
    assert decision == Decision(answer=("member.unclear",))


@pytest.mark.parametrize(
    ("text", "outcome"),
    [("A7 2", "needs_support"), ("4 A7", "moved"), ("A7 5", "not_found"), ("3 A7", "hospitalised")],
)
def test_alerted_result_naming_the_case_goes_to_staff_and_the_alert_still_waits(text, outcome):
    """A member who went before answering the alert sends a result: it is kept for staff,
    never lost as unclear and never read as "I cannot go"; their alert still waits."""
    decision = decide(alerting(0), says(M1, text), NOW)
    assert decision.case is None and not decision.alert_states and not decision.alerts
    assert decision.answer == ("member.outcome_recorded",)
    [entry] = decision.timeline
    assert (entry.kind, entry.member_id, entry.detail["outcome"]) == (
        "escalation.outcome_reported",
        M1,
        outcome,
    )


@pytest.mark.parametrize("text", ["1", "1 A7", "１ Ａ７", "1-A7", "1A7"])
@pytest.mark.parametrize("reminded", [False, True])
def test_holder_digit_first_1_is_the_acknowledgement_again(text, reminded):
    decision = decide(held(reminded=reminded), says(M1, text), NOW + timedelta(days=1))
    assert decision == Decision(answer=("member.ack_again",))


@pytest.mark.parametrize("text", ["2", "2 A7", "２　ａ７"])
def test_holder_digit_first_2_hands_the_case_back_at_once(text):
    decision, case = outcome_of(held(), says(M1, text), NOW + timedelta(minutes=1))
    assert (case.state, case.holder, case.step, case.outcome) == (S.alerting, None, 1, None)
    assert alerted(decision) == {(M2, 1)}
    assert decision.answer == ("member.handed_back",)
    assert kinds(decision) == ["escalation.unacknowledged"]
    assert decision.audit is not None and decision.audit.action == "decline"


@pytest.mark.parametrize(
    ("text", "state", "outcome"),
    [
        ("A7 1", S.resolved, Outcome.safe),
        ("A7 2", S.resolved, Outcome.needs_support),
        ("A7 3", S.resolved, Outcome.hospitalised),
        ("A7 4", S.resolved, Outcome.moved),
        ("A7 5", S.exhausted, Outcome.not_found),  # nobody has seen them: open for staff
        ("3 A7", S.resolved, Outcome.hospitalised),  # no alert reading exists for 3-5
        ("4 A7", S.resolved, Outcome.moved),
        ("5 A7", S.exhausted, Outcome.not_found),
        ("Ａ７　２", S.resolved, Outcome.needs_support),
    ],
)
def test_holder_result_naming_the_case_is_recorded(text, state, outcome):
    at = NOW + timedelta(minutes=1)
    decision, case = outcome_of(held(), says(M1, text), at)
    assert (case.state, case.outcome) == (state, outcome)
    assert case.resolved_at == (at if state == S.resolved else None)
    assert case.resolved_by == ("member:M1" if state == S.resolved else None)
    assert decision.answer == ("member.outcome_recorded",)
    assert decision.audit is not None and decision.audit.action == "resolve"
    assert decision.audit.detail["outcome"] == outcome.value
    assert [(e.kind, e.member_id) for e in decision.timeline] == [("escalation.resolved", M1)]


@pytest.mark.parametrize("text", ["3", "4", "5"])
def test_holder_bare_3_to_5_asks_for_the_result_with_its_case(text):
    assert decide(held(), says(M1, text), NOW) == Decision(answer=("member.outcome_request",))


def test_former_1_takes_the_case_nobody_holds_and_marks_their_latest_alert():
    """M1's window passed; M2 is asked. M1's "1" takes the case, as in time."""
    decision, case = outcome_of(alerting(1), says(M1, "1 A7"))
    assert (case.state, case.holder) == (S.acknowledged, M1)
    assert decision.alert_states == {A_M2: AlertState.withdrawn, A_M1: AlertState.acknowledged}
    assert decision.answer == ("member.ack", "member.outcome_request")
    assert decision.audit is not None and decision.audit.detail == {"via": "sms", "late": True}


@pytest.mark.parametrize("case", [held(M2, step=1), held(STAFF, step=2)], ids=["M2", "staff"])
def test_former_1_when_someone_else_holds_it_is_told_so(case):
    assert decide(case, says(M1, "1 A7"), NOW) == Decision(answer=("member.already_taken",))


@pytest.mark.parametrize(
    ("case", "text", "said", "held_by"),
    [
        (held(M2, step=1), "A7 3", "member.outcome_recorded", str(M2)),
        # Written code first, a former member's digit is a result, "A7 1" (safe) included:
        # kept for staff, never taking the case back or closing it.
        (alerting(1), "A7 2", "member.outcome_recorded", None),
        (held(M2, step=1), "A7 1", "member.outcome_recorded", str(M2)),
        (exhausted(), "A7 1", "member.outcome_recorded", None),
        (exhausted(), "5", "member.outcome_recorded", None),
    ],
)
def test_former_results_go_to_staff_and_close_nothing(case, text, said, held_by):
    decision = decide(case, says(M1, text), NOW)
    assert decision.case is None and not decision.alert_states and not decision.alerts
    assert decision.answer == (said,)
    [entry] = decision.timeline
    assert (entry.kind, entry.member_id) == ("escalation.outcome_reported", M1)
    assert entry.detail["held_by"] == held_by
    assert decision.audit is not None and decision.audit.action == "report"


def test_former_1_on_a_chain_that_ran_out_takes_it():
    decision, case = outcome_of(exhausted(), says(M2, "1"))
    assert (case.state, case.holder) == (S.acknowledged, M2)
    assert decision.alert_states == {A_M2: AlertState.acknowledged}


@pytest.mark.parametrize("text", ["1", "A7 1", "2", "A7 3"])
def test_any_reply_about_a_closed_case_changes_nothing(text):
    assert decide(resolved(), says(M1, text), NOW) == Decision(answer=("member.already_taken",))


# --------------------------------------------------------------------------- keypad


@pytest.mark.parametrize(
    ("case", "alert", "member", "digit", "answered"),
    [
        (alerting(0), A_M1, M1, "1", True),
        (alerting(0), A_I, INTERPRETER, "2", True),
        (alerting(0), A_M1, M2, "1", False),  # not their alert
        (alerting(0), A_M1, M1, "3", False),
        (alerting(1), A_M1, M1, "1", False),  # expired: the window passed
        (held(M1), A_M1, M1, "1", False),
        (exhausted(), A_S, STAFF, "1", False),
    ],
)
def test_a_keypress_answers_its_own_waiting_alert_only(case, alert, member, digit, answered):
    decision = decide(case, KeypadAnswered(alert, member, digit, "member:x"), NOW)
    assert bool(decision.answer) is answered
    if not answered:
        assert decision == Decision()
    else:
        assert decision.audit is not None and decision.audit.detail == {"via": "keypad"}


def test_a_keypress_1_takes_the_case():
    decision, case = outcome_of(alerting(0), KeypadAnswered(A_M1, M1, "1", "member:M1"))
    assert (case.state, case.holder) == (S.acknowledged, M1)
    assert decision.answer == ("member.ack", "member.outcome_request")


# --------------------------------------------------------------------------- staff


@pytest.mark.parametrize(
    "case", [alerting(0), alerting(1), held(M2, step=1), exhausted()], ids=label
)
def test_staff_take_the_case_for_a_member_in_any_open_state(case):
    decision, new = outcome_of(case, StaffAcknowledged(M1, "staff:A", note="phoned"))
    assert (new.state, new.holder, new.taken_at) == (S.acknowledged, M1, NOW)
    assert new.reminded_at is None and new.due_at == NOW + CHAIN.outcome_time
    assert decision.alert_states == {
        a.alert_id: AlertState.acknowledged if a.member_id == M1 else AlertState.withdrawn
        for a in case.waiting
    }
    [entry] = decision.timeline
    assert (entry.kind, entry.actor, entry.detail) == (
        "escalation.acknowledged",
        "staff:A",
        {"note": True},
    )


@pytest.mark.parametrize("outcome", list(Outcome))
@pytest.mark.parametrize("case", [alerting(0), held(), exhausted()], ids=label)
def test_staff_record_an_outcome(case, outcome):
    decision, new = outcome_of(case, StaffResolved(outcome, "staff:A", M2, "note"))
    closed = outcome != Outcome.not_found
    assert new.state == (S.resolved if closed else S.exhausted)
    assert (new.outcome, new.outcome_note, new.due_at) == (outcome, "note", None)
    assert new.resolved_by == ("staff:A" if closed else None)
    assert set(decision.alert_states.values()) <= {AlertState.withdrawn}
    assert len(decision.alert_states) == len(case.waiting)


@pytest.mark.parametrize(
    ("case", "at"),
    [(alerting(0), 1), (alerting(1), 2), (held(M2, step=1), 2), (exhausted(), 3)],
    ids=label,
)
def test_staff_reassign_alerts_the_member_as_a_step_of_their_own(case, at):
    decision, new = outcome_of(case, StaffReassigned(who(M3), "staff:A"))
    assert (new.state, new.step, new.holder, new.taken_at) == (S.alerting, at, None, None)
    assert new.chain.steps[at] == (who(M3),) and len(new.chain) == len(CHAIN) + 1
    assert alerted(decision) == {(M3, at)}
    assert set(decision.alert_states) == {a.alert_id for a in case.waiting}
    assert kinds(decision)[0] == "escalation.reassigned"


@pytest.mark.parametrize(
    "event",
    [
        StaffAcknowledged(M1, "staff:A"),
        StaffResolved(Outcome.moved, "staff:A"),
        StaffReassigned(who(M3), "staff:A"),
        HandedOn("staff:A"),
        AlertFailed(A_M1),
        KeypadAnswered(A_M1, M1, "1", "member:M1"),
        Due(),
        ResidentReplied("answer.fine"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_resolved_case_is_final(event):
    assert decide(resolved(), event, NOW + timedelta(days=1)) == Decision()


# --------------------------------------------------------------------------- alert failed


@pytest.mark.parametrize(
    ("case", "alert", "state", "step", "new_alerts"),
    [
        (alerting(0), A_M1, S.alerting, 1, {(M2, 1)}),  # the interpreter's stays open
        (alerting(1, waiting=(INTERPRETER, M2)), A_I, S.alerting, 1, set()),  # earlier step
        (alerting(2), A_S, S.exhausted, 3, set()),
        # Only the last step's own members hold it: an earlier step's interpreter does not.
        (alerting(2, waiting=(INTERPRETER, STAFF)), A_S, S.exhausted, 3, set()),
    ],
)
def test_an_alert_that_cannot_reach_its_member_counts_as_their_2(
    case, alert, state, step, new_alerts
):
    decision, new = outcome_of(case, AlertFailed(alert))
    assert decision.alert_states[alert] == AlertState.declined
    assert (new.state, new.step) == (state, step)
    assert alerted(decision) == new_alerts
    assert kinds(decision)[0] == "escalation.declined"


def test_a_failure_of_an_alert_no_longer_waiting_changes_nothing():
    assert decide(alerting(1), AlertFailed(A_M1), NOW) == Decision()


def test_the_last_step_waits_for_everyone_in_it_before_the_chain_runs_out():
    two_staff = Chain(((who(M1),), (who(STAFF), who(M3))))
    alerts = (
        AlertFact(A_M1, M1, 0, waiting=False),
        AlertFact(A_S, STAFF, 1),
        AlertFact(A_I, M3, 1),
    )
    case = Case("A7", S.alerting, 1, two_staff, due_at=NOW, alerts=alerts)
    case, [decision] = run(case, AlertFailed(A_S))
    assert (case.state, case.step) == (S.alerting, 1) and not decision.alerts
    case, [decision] = run(case, says(M3, "2 A7"))
    assert case.state == S.exhausted and kinds(decision) == [
        "escalation.declined",
        "escalation.exhausted",
    ]


# --------------------------------------------------------------------------- resident replied


@pytest.mark.parametrize(
    ("case", "told"),
    [(alerting(0), [M1, INTERPRETER]), (held(M2, step=1), [M2]), (exhausted(), [])],
    ids=label,
)
def test_a_late_reply_tells_whoever_holds_or_is_asked(case, told):
    decision = decide(case, ResidentReplied("answer.fine"), NOW)
    assert decision.case is None
    assert [(n.member_id, n.message_id, n.answer) for n in decision.notices] == [
        (m, "member.resident_replied", "answer.fine") for m in told
    ]
    [entry] = decision.timeline
    assert entry.detail == {"answer": "answer.fine", "notified": len(told)}


# --------------------------------------------------------------------------- handed on


def test_handed_on_moves_the_chain_and_at_its_end_runs_out():
    case, [decision] = run(held(M1), HandedOn("staff:A"))
    assert (case.state, case.holder, case.step) == (S.alerting, None, 1)
    case, [decision] = run(held(STAFF, step=2), HandedOn("staff:A"))
    assert (case.state, case.step) == (S.exhausted, 3)
    assert kinds(decision) == ["escalation.unacknowledged", "escalation.exhausted"]


@pytest.mark.parametrize("case", [alerting(0), exhausted()], ids=label)
def test_only_a_held_case_is_handed_on(case):
    assert decide(case, HandedOn("scheduler"), NOW) == Decision()


def test_starting_a_step_alerts_its_members():
    fresh = Case("A7", S.alerting, 0, CHAIN)
    decision = start(fresh, 0, NOW)
    assert alerted(decision) == {(M1, 0), (INTERPRETER, 0)}
    assert decision.case is not None and decision.case.due_at == NOW + CHAIN.ack_window


# --------------------------------------------------------------------------- protocol v2


def test_item_1_a_bare_2_two_minutes_after_a_bare_1_hands_the_case_on():
    case, [_, decision] = run(alerting(0), says(M1, "1"), says(M1, "2"))
    assert (case.state, case.holder, case.step, case.outcome) == (S.alerting, None, 1, None)
    assert decision.answer == ("member.handed_back",)


def test_item_2_a_resent_acknowledgement_never_closes_the_case():
    case, decisions = run(alerting(0), says(M1, "1 A7"), says(M1, "1 A7"), says(M1, "1"))
    assert (case.state, case.holder, case.outcome) == (S.acknowledged, M1, None)
    assert [d.answer for d in decisions[1:]] == [("member.ack_again",)] * 2


@pytest.mark.parametrize("again", ["1M98", "１ Ｍ９８", "1-M98", "1 m98"])
def test_item_3_the_same_reading_written_differently_is_the_same_acknowledgement(again):
    case = replace(alerting(0), code="M98")
    case, [_, decision] = run(case, says(M1, "1 M98"), says(M1, again))
    assert (case.state, case.outcome) == (S.acknowledged, None)
    assert decision.answer == ("member.ack_again",)


@pytest.mark.parametrize("own", ["1", "1 A7", "１ Ａ７", "1-A7"])
def test_item_4_a_members_own_1_after_staff_took_the_case_for_them_closes_nothing(own):
    case, [_, decision] = run(alerting(0), StaffAcknowledged(M1, "staff:A"), says(M1, own))
    assert (case.state, case.holder, case.outcome) == (S.acknowledged, M1, None)
    assert decision.answer == ("member.ack_again",)


def test_item_8_needs_support_one_minute_after_acknowledging():
    case = replace(alerting(0), code="S66")
    case, [_, decision] = run(case, says(M1, "1 S66"), says(M1, "S66 2"))
    assert (case.state, case.outcome) == (S.resolved, Outcome.needs_support)
    assert decision.answer == ("member.outcome_recorded",)


def test_item_8_a_hand_back_one_minute_after_acknowledging():
    case = replace(alerting(0), code="S66")
    case, [_, decision] = run(case, says(M1, "1 S66"), says(M1, "2 S66"))
    assert (case.state, case.holder, case.step, case.outcome) == (S.alerting, None, 1, None)
    assert decision.answer == ("member.handed_back",)


def test_the_simulated_days_result_right_after_taking_the_case_is_safe():
    case, _ = run(alerting(0), says(M1, "1 A7"), says(M1, "A7 1"))
    assert (case.state, case.outcome) == (S.resolved, Outcome.safe)


# --------------------------------------------------------------------------- every event, every state

STATES = {
    "alerting": alerting(0),
    "alerting-later": alerting(1),
    "held": held(M1),
    "held-reminded": held(M1, reminded=True),
    "held-by-other": held(M2, step=1),
    "exhausted": exhausted(),
    "resolved": resolved(),
}
EVENTS = {
    "due": Due(),
    **{f"M1 {t!r}": says(M1, t) for t in ("1", "2", "3", "1 A7", "2 A7", "5 A7", "A7 1", "A7 2")},
    "keypad": KeypadAnswered(A_M1, M1, "1", "member:M1"),
    "staff-ack": StaffAcknowledged(M1, "staff:A"),
    "staff-resolve": StaffResolved(Outcome.safe, "staff:A"),
    "reassign": StaffReassigned(who(M3), "staff:A"),
    "failed": AlertFailed(A_M1),
    "resident": ResidentReplied("answer.help"),
    "handed-on": HandedOn("staff:A"),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", EVENTS)
def test_every_event_in_every_state_closes_only_by_a_person_naming_the_case(state, event):
    """Only staff recording an outcome, or the holder's result naming the case (code first,
    or 3-5), ever closes a case; an answer changes only its own case; time closes nothing."""
    case, happening = STATES[state], EVENTS[event]
    at = NOW + timedelta(days=1)  # long after everything was due
    decision = decide(case, happening, at)
    new = after(case, decision)
    if new.outcome != case.outcome or new.state == S.resolved != case.state:
        is_staff = isinstance(happening, StaffResolved)
        is_result = (
            isinstance(happening, MemberAnswered)
            and case.state == S.acknowledged
            and case.holder == happening.member_id
            and happening.reply.code == case.code
            and (happening.reply.order == Order.CODE_FIRST or happening.reply.digit in "345")
        )
        assert is_staff or is_result, (state, event, new)
    if new.state in (S.alerting, S.acknowledged):
        assert new.due_at is not None  # never dropped: the sweep comes back to it
    if isinstance(happening, MemberAnswered):
        assert decision.answer, "a member is always answered"
    for new_alert in decision.alerts:
        assert new_alert.step == new.step and new.state == S.alerting


@pytest.mark.parametrize(
    "case", [held(M2, step=1), alerting(1), exhausted()], ids=["held", "alerting", "exhausted"]
)
@pytest.mark.parametrize("text", ["2", "2 A7"])
def test_former_2_digit_first_is_a_late_decline_never_a_result(case, text):
    """M1's window passed: their "2" says they cannot go. Staff see that, not "needs
    support" from someone who never visited; nothing else changes."""
    decision = decide(case, says(M1, text), NOW)
    assert decision.case is None and not decision.alert_states and not decision.alerts
    assert decision.answer == ("member.declined",)
    [entry] = decision.timeline
    assert (entry.kind, entry.member_id, entry.detail) == (
        "escalation.declined",
        M1,
        {"late": True},
    )


@pytest.mark.parametrize("text", ["A71", "a71", "Ａ７１", "M981"])
def test_a_code_alone_is_never_read_as_another_code_and_a_digit(text):
    """ "A71" is case A71 without an answer, not "A7 1" (safe for case A7)."""
    assert parse_reply(text) is None

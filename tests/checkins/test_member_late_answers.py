"""Members' answers about a case that no longer waits for them: an alert whose window
passed, a case someone else took, a case handed on when no result came. None of them is
dropped as "unclear"; none takes a case from the member who holds it."""

from __future__ import annotations

from sqlmodel import select

from service.checkins.models import TimelineEvent
from service.escalations.models import Alert, AlertState, Escalation
from service.registry.models import MemberKind

from .conftest import ONE_MESSAGE

M1, M2 = "+818030000001", "+818030000002"
MEMBER, STAFF = MemberKind.welfare_committee, MemberKind.staff_on_duty
ALREADY_TAKEN = "すでに別の方が対応しています"
RECORDED = "結果を記録しました"


def _escalated(world) -> Escalation:
    """R1 stayed silent: the case alerts M1 first, then M2."""
    world.silent_case()  # R1 silent: a case alerting M1, then M2
    return _case(world)


def _case(world) -> Escalation:
    with world.session() as s:
        return s.exec(select(Escalation)).one()


def _waiting(world) -> set[tuple[str, int]]:
    names = {v: k for k, v in world.members.items()}
    with world.session() as s:
        alerts = s.exec(select(Alert).where(Alert.state == AlertState.sent)).all()
    return {(names[a.member_id], a.step_index) for a in alerts}


def _handed_on(world) -> Escalation:
    """M1 took the case, then sent no result: reminded, then handed on to M2."""
    case = _escalated(world)
    world.sms(M1, f"1 {case.case_code}")
    world.tick(case.outcome_hours * 60 + 1)  # reminded
    world.tick(61)  # handed on
    case = _case(world)
    assert case.state == "alerting" and case.acknowledged_by is None and case.step_index == 1
    assert _waiting(world) == {("M2", 1)}
    return case


def _taken_by_staff_for_m1(world) -> Escalation:
    """R1's case alerts M1; staff acknowledge on M1's behalf (after a phone call, say)."""
    from service.escalations import service as escalations

    case = _escalated(world)
    with world.session() as s:
        escalations.acknowledge(
            s,
            escalation=s.get(Escalation, case.id),
            member_id=world.members["M1"],
            now=world.clock.now(),
            actor="staff:test",
        )
        s.commit()
    return case


def _help_with_interpreter(world, *members: tuple[str, str]) -> Escalation:
    """R1 (Vietnamese, needs an interpreter) asks for help: the first step alerts the first
    of ``members`` (key, kind) and the Vietnamese-speaking supporter I-vi."""
    for n, (key, kind) in enumerate(members, start=1):
        number = "080-3000-0009" if kind == MemberKind.staff_on_duty else f"080-3000-{n:04d}"
        world.member(key, number, kind=kind)
    world.member("I-vi", "080-3000-0300", ["vi", "ja"], kind=MemberKind.interpreter)
    world.resident("R1", "090-1000-0001", language="vi", needs_interpreter=True)
    rank = 0
    for key, kind in members:
        if kind != MemberKind.staff_on_duty:
            rank += 1
            world.assign("R1", key, rank)
    world.broadcast()
    world.tick()
    world.sms("+819010000001", "2")  # help
    return _case(world)


def test_a_member_handed_on_who_says_1_takes_the_case_back_and_is_asked_for_the_result(world):
    """M1 took the case, sent no result, and it was handed on to M2. M1's "1", written as an
    answer to an alert (digit first), takes the case back: M1 is asked for the result,
    which then closes it. A "1" from a former member never closes a case."""
    case = _handed_on(world)
    answer = world.sms(M1, f"1 {case.case_code}")
    assert RECORDED not in answer and case.case_code in answer
    case = _case(world)
    assert (case.state, case.outcome) == ("acknowledged", None)
    assert case.acknowledged_by == world.members["M1"]
    assert _waiting(world) == set()  # M2 is no longer asked
    assert RECORDED in world.sms(M1, f"{case.case_code} 1")  # the result, code first
    assert (_case(world).state, _case(world).outcome) == ("resolved", "safe")


def test_what_a_member_handed_on_found_is_kept_for_staff_and_closes_nothing(world):
    """M1, handed on, reports "3" (hospitalised). It may be about this run of the chain or
    an earlier one: it goes on the case's timeline for staff, who record the outcome; the
    case stays open and M2 is still asked."""
    case = _handed_on(world)
    assert RECORDED in world.sms(M1, f"{case.case_code} 3")
    assert RECORDED in world.sms(M1, "5")  # without the code: their one former case
    assert (_case(world).state, _case(world).outcome) == ("alerting", None)
    assert _waiting(world) == {("M2", 1)}
    with world.session() as s:
        reported = s.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "escalation.outcome_reported")
        ).all()
    assert sorted(r.detail["outcome"] for r in reported) == ["hospitalised", "not_found"]
    assert {r.member_id for r in reported} == {world.members["M1"]}


def test_a_bare_yes_from_a_member_handed_on_takes_their_one_case_back(world):
    case = _handed_on(world)
    answer = world.sms(M1, "1")
    assert case.case_code in answer  # the outcome request, naming the code
    case = _case(world)
    assert case.state == "acknowledged" and case.acknowledged_by == world.members["M1"]


def test_what_the_member_handed_on_found_goes_to_staff_while_the_next_holds_it(world):
    case = _handed_on(world)
    world.sms(M2, f"1 {case.case_code}")
    assert _case(world).acknowledged_by == world.members["M2"]
    assert ALREADY_TAKEN in world.sms(M1, f"1 {case.case_code}")
    assert RECORDED in world.sms(M1, f"{case.case_code} 3")
    case = _case(world)
    assert case.state == "acknowledged" and case.acknowledged_by == world.members["M2"]
    with world.session() as s:
        [reported] = s.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "escalation.outcome_reported")
        ).all()
    assert reported.member_id == world.members["M1"]
    assert reported.detail["outcome"] == "hospitalised"


def test_a_result_written_code_first_by_a_member_handed_on_is_kept_for_staff(world):
    """"A7 1" is how a visit's result is written (safe). From M1, whose case was handed on,
    it is never lost and never closes or takes anything: it goes on the case's timeline for
    staff, whether M2 is still asked or has taken the case."""
    case = _handed_on(world)
    assert RECORDED in world.sms(M1, f"{case.case_code} 1")
    assert (_case(world).state, _case(world).acknowledged_by) == ("alerting", None)
    assert _waiting(world) == {("M2", 1)}
    world.sms(M2, f"1 {case.case_code}")
    assert RECORDED in world.sms(M1, f"{case.case_code} 1")
    case = _case(world)
    assert (case.state, case.outcome) == ("acknowledged", None)
    assert case.acknowledged_by == world.members["M2"]
    with world.session() as s:
        reported = s.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "escalation.outcome_reported")
        ).all()
    assert [(r.member_id, r.detail["outcome"]) for r in reported] == [
        (world.members["M1"], "safe"),
        (world.members["M1"], "safe"),
    ]


def test_a_former_members_1_never_closes_a_new_call_for_help(world):
    """M2 took the case after M1's window, sent nothing, and it was handed on; the chain
    ran out. R1 asks for help again: the chain starts again with M1. M2's "1" now takes
    the case (M2 goes), it does not close it as safe."""
    case = _escalated(world)
    world.tick(case.ack_minutes)  # M1's window passes: M2 is asked
    world.sms(M2, f"1 {case.case_code}")
    world.tick(case.outcome_hours * 60 + 1)  # M2 reminded
    world.tick(61)  # handed on: nobody left, the chain runs out
    assert _case(world).state == "exhausted"
    world.sms("+819010000001", "2")  # R1: help
    assert _waiting(world) == {("M1", 0)}
    world.sms(M2, f"1 {case.case_code}")
    case = _case(world)
    assert (case.state, case.outcome) == ("acknowledged", None)
    assert case.acknowledged_by == world.members["M2"]


def test_a_members_first_1_after_staff_took_the_case_for_them_is_not_a_result(world):
    """Staff acknowledge on M1's behalf (after a phone call); a minute later M1 answers the
    alert SMS with "1 CODE". That is M1 saying they will go (digit first), not the visit's
    result, which they send code first whenever they like."""
    case = _taken_by_staff_for_m1(world)
    world.clock.advance(minutes=1)
    answer = world.sms(M1, f"1 {case.case_code}")
    assert RECORDED not in answer and case.case_code in answer
    assert (_case(world).state, _case(world).outcome) == ("acknowledged", None)
    assert RECORDED in world.sms(M1, f"{case.case_code} 1")


def test_a_members_2_after_staff_took_the_case_for_them_hands_it_on(world):
    """Staff acknowledge on M1's behalf; M1 then answers the alert with "2" (can't go):
    the case goes on to M2 at once."""
    case = _taken_by_staff_for_m1(world)
    world.clock.advance(minutes=1)
    world.sms(M1, f"2 {case.case_code}")
    case = _case(world)
    assert case.state == "alerting" and case.acknowledged_by is None
    assert _waiting(world) == {("M2", 1)}


def test_staff_reassigning_a_case_whose_chain_ran_out_alerts_the_member(world):
    from service.escalations import service as escalations
    from service.registry.models import Member

    case = _escalated(world)
    world.tick(case.ack_minutes)
    world.tick(case.ack_minutes)
    assert _case(world).state == "exhausted"
    world.member("M3", "080-3000-0003")
    with world.session() as s:
        escalations.reassign(
            s,
            escalation=s.get(Escalation, case.id),
            member=s.get(Member, world.members["M3"]),
            now=world.clock.now(),
            actor="staff:test",
        )
        s.commit()
    assert _case(world).state == "alerting"
    assert _waiting(world) == {("M3", 2)}
    assert [m for m in world.sent_to("+818030000003") if m.purpose == "alert"]


def test_a_yes_after_the_window_takes_the_case_while_nobody_has(world):
    case = _escalated(world)
    world.tick(case.ack_minutes)  # M1's window passed: M2 is asked
    assert _waiting(world) == {("M2", 1)}
    answer = world.sms(M1, f"1 {case.case_code}")
    assert ALREADY_TAKEN not in answer and case.case_code in answer
    case = _case(world)
    assert case.state == "acknowledged" and case.acknowledged_by == world.members["M1"]
    assert _waiting(world) == set()
    # The result M1 sends (code first) closes it, as for any case they hold.
    assert RECORDED in world.sms(M1, f"{case.case_code} 1")
    assert _case(world).state == "resolved"


def test_a_yes_after_the_window_when_someone_else_took_the_case_is_told_so(world):
    case = _escalated(world)
    world.tick(case.ack_minutes)
    world.sms(M2, f"1 {case.case_code}")
    assert ALREADY_TAKEN in world.sms(M1, f"1 {case.case_code}")
    assert ALREADY_TAKEN in world.sms(M1, "1")  # their one former case, without the code
    case = _case(world)
    assert case.acknowledged_by == world.members["M2"]


def test_a_code_the_member_never_had_is_still_unclear(world):
    case = _escalated(world)
    world.tick(case.ack_minutes)
    world.sms(M2, f"1 {case.case_code}")
    world.member("M3", "080-3000-0003")
    answer = world.sms("+818030000003", f"1 {case.case_code}")
    assert "内容がわかりませんでした" in answer
    assert "内容がわかりませんでした" in world.sms(M1, "1 Z999")
    assert _case(world).acknowledged_by == world.members["M2"]


def test_a_no_from_the_member_moves_on_at_once_while_the_interpreter_may_still_go(world):
    """A call for help from R1 (Vietnamese, needs an interpreter): the first step alerts M1
    and the Vietnamese-speaking supporter. M1 answers "2": the next member is asked at
    once, without waiting for the supporter, whose alert stays open; their "1" then takes
    the case. A "2" from an earlier step, the chain having moved on, moves nothing."""
    case = _help_with_interpreter(world, ("M1", MEMBER), ("M2", MEMBER), ("S1", STAFF))
    assert _waiting(world) == {("M1", 0), ("I-vi", 0)}
    world.sms(M1, f"2 {case.case_code}")
    assert _waiting(world) == {("I-vi", 0), ("M2", 1)}
    assert _case(world).step_index == 1
    world.sms("+818030000300", f"2 {case.case_code}")  # an earlier step's "2"
    assert _case(world).step_index == 1 and _waiting(world) == {("M2", 1)}


def test_the_interpreter_left_open_still_takes_the_case(world):
    case = _help_with_interpreter(world, ("M1", MEMBER), ("M2", MEMBER))
    world.sms(M1, f"2 {case.case_code}")
    world.sms("+818030000300", f"1 {case.case_code}")
    case = _case(world)
    assert case.state == "acknowledged" and case.acknowledged_by == world.members["I-vi"]
    assert _waiting(world) == set()  # M2's alert withdrawn


def test_a_yes_after_giving_the_case_back_takes_it_again_never_closes_it(world):
    """M1 says "1" (I'll go), then "2" (I can't after all): the case goes to M2. Then M1
    says "1" again. That is "I can go after all", not a visit found safe: M1 takes the case
    back, and it stays open until M1 sends the result."""
    case = _escalated(world)
    world.sms(M1, f"1 {case.case_code}")
    world.sms(M1, f"2 {case.case_code}")
    assert _waiting(world) == {("M2", 1)}
    world.sms(M1, f"1 {case.case_code}")
    case = _case(world)
    assert (case.state, case.outcome) == ("acknowledged", None)
    assert case.acknowledged_by == world.members["M1"]
    assert _waiting(world) == set()


def test_a_late_yes_to_a_chain_started_again_is_never_read_as_the_old_visits_result(world):
    """M1 took the case, sent nothing, and it was handed on; the chain ran out. R1 then
    asks for help: the chain starts again and M1's new alert passes unanswered. M1's "1"
    now answers that alert (I'll go), not the visit they once took."""
    case = _handed_on(world)
    world.tick(case.ack_minutes)  # M2 does not answer either: the chain runs out
    assert _case(world).state == "exhausted"
    world.sms("+819010000001", "2")  # R1: help. The chain starts again.
    assert _waiting(world) == {("M1", 0)}
    world.tick(case.ack_minutes)  # M1's new alert passes
    world.sms(M1, f"1 {case.case_code}")
    case = _case(world)
    assert (case.state, case.outcome) == ("acknowledged", None)
    assert case.acknowledged_by == world.members["M1"]


def test_a_bare_yes_from_a_member_with_several_former_cases_is_asked_which(world):
    world.member("M1", "080-3000-0001")
    world.member("M2", "080-3000-0002")
    for key, phone in (("R1", "090-1000-0001"), ("R2", "090-1000-0002")):
        world.resident(key, phone)
        world.assign(key, "M1", 1)
        world.assign(key, "M2", 2)
    world.broadcast(plan=ONE_MESSAGE)
    world.tick()
    world.tick(60)
    world.tick(30)  # M1's windows pass: M2 is asked about both
    with world.session() as s:
        codes = sorted(e.case_code for e in s.exec(select(Escalation)).all())
    answer = world.sms(M1, "1")
    assert all(code in answer for code in codes)
    with world.session() as s:
        assert {e.state for e in s.exec(select(Escalation)).all()} == {"alerting"}


def test_an_interpreters_1_still_takes_the_case_after_the_chain_ran_out_by_2s(world):
    """Chain: M1 and the interpreter, then staff on duty. M1 says "2" (staff asked at
    once), staff say "2": the chain has run out. The interpreter's "1" still takes it."""
    case = _help_with_interpreter(world, ("M1", MEMBER), ("S1", STAFF))
    world.sms(M1, f"2 {case.case_code}")
    world.sms("+818030000009", f"2 {case.case_code}")
    assert _case(world).state == "exhausted"
    assert _waiting(world) == set()  # the interpreter's open alert expired with the chain
    world.sms("+818030000300", f"1 {case.case_code}")
    case = _case(world)
    assert case.state == "acknowledged" and case.acknowledged_by == world.members["I-vi"]

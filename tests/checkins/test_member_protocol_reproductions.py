"""Plain reproductions of the four ways a member's message closed a case as safe, or failed
to hand it on (issue 17, items 1-4), each as the issue states it, and the rule behind it.

The alert asks "1 if you can go, 2 if you cannot"; after the visit the member sends the
result with the case code ("1 A7" safe, "2 A7" needs support, ...). Right after taking a
case, a "2" is "I cannot go after all" and a "1" about that case is the acknowledgement
again: neither closes anything.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from service.escalations.models import Alert, AlertState, Escalation

from .conftest import ONE_MESSAGE

M1, M2 = "+818030000001", "+818030000002"
R1 = "+819010000001"
RECORDED = "結果を記録しました"


def _cases(world) -> dict[str, Escalation]:
    """The open and closed cases, by the resident's external id."""
    names = {v: k for k, v in world.residents.items()}
    with world.session() as s:
        return {names[e.resident_id]: e for e in s.exec(select(Escalation)).all()}


def _waiting(world) -> set[tuple[str, int]]:
    names = {v: k for k, v in world.members.items()}
    with world.session() as s:
        alerts = s.exec(select(Alert).where(Alert.state == AlertState.sent)).all()
    return {(names[a.member_id], a.step_index) for a in alerts}


def _one_case(world, reason: str) -> Escalation:
    """R1's case, alerting M1 first, then M2: R1 stayed silent, or asked for help."""
    if reason == "no_reply":
        world.silent_case()
    else:
        world.member("M1", "080-3000-0001")
        world.member("M2", "080-3000-0002")
        world.resident("R1", "090-1000-0001")
        world.assign("R1", "M1", 1)
        world.assign("R1", "M2", 2)
        world.broadcast(plan=ONE_MESSAGE)
        world.tick()
        world.sms(R1, "2")  # help
        world.tick()
    [case] = _cases(world).values()
    assert case.reason == reason and case.state == "alerting"
    assert _waiting(world) == {("M1", 0)}
    return case


def _two_cases(world) -> tuple[str, str]:
    """R1 and R2 both stayed silent: two cases alerting M1 (then M2). Their codes."""
    world.member("M1", "080-3000-0001")
    world.member("M2", "080-3000-0002")
    for key, phone in (("R1", "090-1000-0001"), ("R2", "090-1000-0002")):
        world.resident(key, phone)
        world.assign(key, "M1", 1)
        world.assign(key, "M2", 2)
    world.broadcast(plan=ONE_MESSAGE)
    world.tick()
    world.tick(60)
    cases = _cases(world)
    assert {c.state for c in cases.values()} == {"alerting"}
    return cases["R1"].case_code, cases["R2"].case_code


def _say(world, phone: str, text: str, minutes: float = 1) -> str:
    world.clock.advance(minutes=minutes)
    return world.sms(phone, text)


@pytest.mark.parametrize("reason", ["no_reply", "needs_help"])
def test_1_a_bare_2_right_after_a_bare_1_hands_the_case_on_at_once(world, reason):
    """Issue 17, item 1: "1", then "2" two minutes later. The "2" is "I cannot go after
    all": the next member is alerted now, not after the four-hour reminder."""
    case = _one_case(world, reason)
    _say(world, M1, "1")
    assert _cases(world)["R1"].acknowledged_by == world.members["M1"]
    answer = _say(world, M1, "2", minutes=2)
    case = _cases(world)["R1"]
    assert (case.state, case.acknowledged_by, case.outcome) == ("alerting", None, None)
    assert case.step_index == 1 and _waiting(world) == {("M2", 1)}
    assert RECORDED not in answer


@pytest.mark.parametrize("second", ["2", "2 {code}", "{code} 2"])
def test_1_any_2_about_the_case_just_taken_hands_it_on(world, second):
    case = _one_case(world, "no_reply")
    _say(world, M1, f"1 {case.case_code}")
    _say(world, M1, second.format(code=case.case_code), minutes=2)
    case = _cases(world)["R1"]
    assert (case.state, case.outcome) == ("alerting", None)
    assert _waiting(world) == {("M2", 1)}


def test_2_a_resent_acknowledgement_is_never_a_visit_whatever_came_in_between(world):
    """Issue 17, item 2: "1 A", "1 B", then "1 A" again, a minute apart. The third is the
    first sent again, not case A's result: A stays with M1, open."""
    a, b = _two_cases(world)
    _say(world, M1, f"1 {a}")
    _say(world, M1, f"1 {b}")
    answer = _say(world, M1, f"1 {a}")
    cases = _cases(world)
    assert (cases["R1"].state, cases["R1"].outcome) == ("acknowledged", None)
    assert (cases["R2"].state, cases["R2"].outcome) == ("acknowledged", None)
    assert RECORDED not in answer and a in answer  # asked for the result, naming A


def test_2_a_resent_acknowledgement_after_other_words_about_the_same_case(world):
    """Sent "1 A", "1 B", "1" (unclear: two cases), "1 B", then "A 1": each "1" about A so soon
    after taking it repeats the acknowledgement."""
    a, b = _two_cases(world)
    for text in (f"1 {a}", f"1 {b}", "1", f"1 {b}", f"{a} 1"):
        _say(world, M1, text)
    assert {(c.state, c.outcome) for c in _cases(world).values()} == {("acknowledged", None)}


@pytest.mark.parametrize(("first", "again"), [("1 {code}", "{code} 1"), ("{code} 1", "1 {code}")])
def test_3_the_same_acknowledgement_with_the_code_on_the_other_side_is_a_resend(
    world, first, again
):
    """Issue 17, item 3: "1 M98", then "M98 1". The same reply (digit and case code), written
    the other way round: not a visit."""
    case = _one_case(world, "no_reply")
    _say(world, M1, first.format(code=case.case_code))
    answer = _say(world, M1, again.format(code=case.case_code))
    case = _cases(world)["R1"]
    assert (case.state, case.outcome) == ("acknowledged", None)
    assert RECORDED not in answer


def test_3_a_full_width_resend_is_the_same_acknowledgement(world):
    case = _one_case(world, "no_reply")
    _say(world, M1, f"1 {case.case_code}")
    wide = case.case_code.translate(
        {ord(c): ord(c) + 0xFEE0 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}
    )
    _say(world, M1, f"{wide}　１")  # a Japanese keyboard's full-width reply
    assert (_cases(world)["R1"].state, _cases(world)["R1"].outcome) == ("acknowledged", None)


def test_4_a_members_own_1_after_staff_took_the_case_for_them_never_closes_it(world):
    """Issue 17, item 4: staff take case A for M1 (after a phone call); M1 then answers
    about case B, and then answers A's alert with "1 A". That is M1's "I'll go" to A's
    alert, not A's result: the check looks for a word about A, not any word since."""
    from service.escalations import service as escalations

    a, b = _two_cases(world)
    with world.session() as s:
        escalations.acknowledge(
            s,
            escalation=s.get(Escalation, _cases(world)["R1"].id),
            member_id=world.members["M1"],
            now=world.clock.now(),
            actor="staff:test",
        )
        s.commit()
    _say(world, M1, f"1 {b}")
    answer = _say(world, M1, f"1 {a}")
    cases = _cases(world)
    assert (cases["R1"].state, cases["R1"].outcome) == ("acknowledged", None)
    assert cases["R1"].acknowledged_by == world.members["M1"]
    assert RECORDED not in answer and a in answer


def test_the_result_after_the_acknowledgement_window_still_closes_the_case(world):
    """The guards above are about the minutes after taking a case: the visit's result,
    sent later, closes it (and only the case it names)."""
    a, b = _two_cases(world)
    _say(world, M1, f"1 {a}")
    _say(world, M1, f"1 {b}")
    _say(world, M1, f"1 {a}")  # resent
    assert RECORDED in _say(world, M1, f"{a} 1", minutes=20)
    cases = _cases(world)
    assert (cases["R1"].state, cases["R1"].outcome) == ("resolved", "safe")
    assert (cases["R2"].state, cases["R2"].outcome) == ("acknowledged", None)

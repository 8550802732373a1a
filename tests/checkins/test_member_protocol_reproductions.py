"""Plain reproductions of the ways a member's message closed a case as safe, or failed to
hand it on (issue 17, items 1-4), and of item 8 (a result right after taking the case), each
as the issue states it, in the terms of member protocol v2:

- an answer to an alert is DIGIT FIRST: "1 A7" I'll go, "2 A7" I cannot go;
- a visit's result is CODE FIRST: "A7 1" safe, "A7 2" needs support ... "A7 5" not found;
- the holder's digit-first "1" is the acknowledgement again, however written and whatever
  came in between; their digit-first "2" hands the case back at once.

No timer decides what a message means: each message here comes a minute or two after the
one before, over the real webhook, service and database.
"""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from sqlmodel import select

from i18n.render import render
from service.escalations import service as escalations
from service.escalations.alerts import resident_values
from service.escalations.models import Alert, AlertState, Escalation

from .conftest import ONE_MESSAGE

M1, M2 = "+818030000001", "+818030000002"
R1 = "+819010000001"


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
    """The member sends ``text`` after ``minutes``; the text of the SMS answering them."""
    world.clock.advance(minutes=minutes)
    return ElementTree.fromstring(world.sms(phone, text)).findtext("Message") or ""


def _text(world, message_id: str, resident: str) -> str:
    """What a Japanese member is told with ``message_id`` about the resident's case."""
    with world.session() as s:
        case = s.get(Escalation, _cases(world)[resident].id)
        return render(message_id, "ja", **resident_values(s, case, "ja"))


def _full_width(text: str) -> str:
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"})


@pytest.mark.parametrize("reason", ["no_reply", "needs_help"])
def test_1_a_bare_2_two_minutes_after_a_bare_1_hands_the_case_on_at_once(world, reason):
    """Issue 17, item 1: "1", then "2" two minutes later. The "2" hands the case back: the
    next member is alerted now, not after the four-hour reminder, and the member is told how
    to send "needs support" if that is what they meant."""
    _one_case(world, reason)
    _say(world, M1, "1")
    assert _cases(world)["R1"].acknowledged_by == world.members["M1"]
    answer = _say(world, M1, "2", minutes=2)
    case = _cases(world)["R1"]
    assert (case.state, case.acknowledged_by, case.outcome) == ("alerting", None, None)
    assert case.step_index == 1 and _waiting(world) == {("M2", 1)}
    assert answer == _text(world, "member.handed_back", "R1")


def test_2_a_resent_acknowledgement_never_closes_the_case_whatever_came_in_between(world):
    """Issue 17, item 2: "1 A", "1 B", then "1 A" again, a minute apart. The third is the
    acknowledgement of A again (digit first), never A's result: both stay with M1, open."""
    a, b = _two_cases(world)
    _say(world, M1, f"1 {a}")
    _say(world, M1, f"1 {b}")
    answer = _say(world, M1, f"1 {a}")
    cases = _cases(world)
    assert (cases["R1"].state, cases["R1"].outcome) == ("acknowledged", None)
    assert (cases["R2"].state, cases["R2"].outcome) == ("acknowledged", None)
    assert answer == _text(world, "member.ack_again", "R1")  # spells out both readings


@pytest.mark.parametrize("again", ["1{code}", "full-width", "1-{code}", "1 {lower}"])
def test_3_the_same_acknowledgement_written_differently_closes_nothing(world, again):
    """Issue 17, item 3, in the new terms: "1 M98" then "1M98", "１ Ｍ９８" or "1-M98" is the
    same reading (digit first: the acknowledgement), not the same text, and closes nothing."""
    code = _one_case(world, "no_reply").case_code
    _say(world, M1, f"1 {code}")
    text = (
        _full_width(f"1 {code}").replace(" ", "　")
        if again == "full-width"
        else again.format(code=code, lower=code.lower())
    )
    answer = _say(world, M1, text)
    case = _cases(world)["R1"]
    assert (case.state, case.outcome) == ("acknowledged", None)
    assert case.acknowledged_by == world.members["M1"]
    assert answer == _text(world, "member.ack_again", "R1")


@pytest.mark.parametrize("own", ["1 {code}", "1", "{wide}", "1-{code}"])
def test_4_a_members_own_1_after_staff_took_the_case_for_them_never_closes_it(world, own):
    """Issue 17, item 4: staff take case A for M1 (after a phone call); M1 then answers
    takes case B, visits and reports it, and then answers A's alert with their own "1"
    (digit first, however written, or bare: A is their one case now): that is their
    acknowledgement, never A's result."""
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
    _say(world, M1, f"1 {b}")  # M1 takes B,
    _say(world, M1, f"{b} 3")  # visits, and reports B: hospitalised
    answer = _say(world, M1, own.format(code=a, wide=_full_width(f"1 {a}")))
    cases = _cases(world)
    assert (cases["R1"].state, cases["R1"].outcome) == ("acknowledged", None)
    assert cases["R1"].acknowledged_by == world.members["M1"]
    assert answer == _text(world, "member.ack_again", "R1")


def test_8_needs_support_one_minute_after_acknowledging_is_recorded(world):
    """Issue 17, item 8 (acceptance): neighbours visit in five minutes. "1 S66", then
    "S66 2" one minute later: code first, the result "needs support"."""
    code = _one_case(world, "no_reply").case_code
    _say(world, M1, f"1 {code}")
    answer = _say(world, M1, f"{code} 2")
    case = _cases(world)["R1"]
    assert (case.state, case.outcome) == ("resolved", "needs_support")
    assert answer == _text(world, "member.outcome_recorded", "R1")
    assert _waiting(world) == set()  # nobody else is asked


def test_8_a_hand_back_one_minute_after_acknowledging_moves_the_chain_on(world):
    """Issue 17, item 8 (acceptance): "1 S66", then "2 S66" one minute later: digit first,
    "I cannot go after all". The case goes to M2 at once; nothing is recorded."""
    code = _one_case(world, "no_reply").case_code
    _say(world, M1, f"1 {code}")
    answer = _say(world, M1, f"2 {code}")
    case = _cases(world)["R1"]
    assert (case.state, case.acknowledged_by, case.outcome) == ("alerting", None, None)
    assert _waiting(world) == {("M2", 1)}
    assert answer == _text(world, "member.handed_back", "R1")


def test_the_result_right_after_taking_the_case_closes_it_as_the_simulated_day_sends_it(world):
    """ "1 CODE" then "CODE 1" at once: the result (code first), safe. Only the case it names
    closes."""
    a, b = _two_cases(world)
    _say(world, M1, f"1 {a}")
    _say(world, M1, f"1 {b}")
    assert _say(world, M1, f"{a} 1", minutes=0) == _text(world, "member.outcome_recorded", "R1")
    cases = _cases(world)
    assert (cases["R1"].state, cases["R1"].outcome) == ("resolved", "safe")
    assert (cases["R2"].state, cases["R2"].outcome) == ("acknowledged", None)

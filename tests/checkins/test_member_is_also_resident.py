"""A member's phone may also be a resident's: her mother's second number, or her own, when
she lives in the same temporary housing. While an alert waits on her or she holds a case,
a reply in the member protocol's form is her answer as a member: read as the resident's, a
"1" would close a check-in nobody answered, and a "2" open a case about the member herself.
"""

from __future__ import annotations

from sqlmodel import select

from service.checkins.models import CheckIn
from service.escalations.models import Escalation

M1 = "+818030000001"


def _cases(world) -> dict[str, Escalation]:
    names = {v: k for k, v in world.residents.items()}
    with world.session() as s:
        return {names[e.resident_id]: e for e in s.exec(select(Escalation)).all()}


def _checkin_states(world, key: str) -> list[str]:
    with world.session() as s:
        rows = s.exec(select(CheckIn).where(CheckIn.resident_id == world.residents[key])).all()
    return sorted(str(c.state) for c in rows)


def _member_also_resident(world, phone2: bool):
    """R1 stayed silent: her case alerts M1. R2's check-in is waiting, and R2's phone (or
    second phone) is M1's."""
    world.silent_case()
    if phone2:
        world.resident("R2", "090-1000-0002", phone2="080-3000-0001")
    else:
        world.resident("R2", "080-3000-0001")  # M1 herself lives here
    world.broadcast()
    world.tick()
    return _cases(world)["R1"]


def test_a_members_1_takes_the_case_and_closes_no_residents_check_in(world):
    case = _member_also_resident(world, phone2=True)
    before = _checkin_states(world, "R2")
    world.sms(M1, "1")
    taken = _cases(world)["R1"]
    assert (taken.state, taken.acknowledged_by) == ("acknowledged", world.members["M1"])
    assert _checkin_states(world, "R2") == before  # R2 never answered
    assert "R2" not in _cases(world)
    assert "記録しました" in world.sms(M1, f"{case.case_code} 2")  # R1 needs support
    done = _cases(world)["R1"]
    assert (done.state, done.outcome) == ("resolved", "needs_support")
    assert "R2" not in _cases(world)  # no case about the member's own household


def test_a_member_who_lives_here_can_hand_a_case_back_without_asking_for_help(world):
    _member_also_resident(world, phone2=False)
    world.sms(M1, "1")
    world.sms(M1, "2")  # cannot go after all
    case = _cases(world)["R1"]
    assert (case.state, case.acknowledged_by, case.step_index) == ("alerting", None, 1)
    assert "R2" not in _cases(world)  # "2" was her answer as a member, not a call for help


def test_her_own_words_are_still_hers_as_a_resident(world):
    """Free words are no member answer: they are read as the resident's reply."""
    _member_also_resident(world, phone2=False)
    world.sms(M1, "助けてください")
    assert "R2" in _cases(world)


def test_a_members_own_words_reach_staff_and_change_no_case(world):
    """"R1さんが倒れていました。救急車を呼びました" is no answer in the protocol: the member
    is asked again in its terms, and staff find the words in the inbox."""
    from service.checkins.models import StaffTask, TaskKind
    from service.telephony.models import InboundMessage

    world.silent_case()
    world.sms(M1, "1")
    words = "R1さんが倒れていました。救急車を呼びました"
    world.sms(M1, words)
    case = _cases(world)["R1"]
    assert (case.state, case.acknowledged_by) == ("acknowledged", world.members["M1"])
    with world.session() as s:
        inbound = s.exec(select(InboundMessage).where(InboundMessage.body == words)).one()
        task = s.exec(select(StaffTask).where(StaffTask.inbound_id == inbound.id)).one()
    assert inbound.needs_staff and inbound.member_id == world.members["M1"]
    assert (task.kind, task.organization_id, task.closed_at) == (
        TaskKind.member_message,
        world.org_id,
        None,
    )
    assert not world.sms(M1, "1 " + case.case_code).startswith("R1")  # protocol still works


def test_a_member_registered_with_two_councils_answers_the_one_that_alerted_her(world):
    """M1 is also an interpreter for another council, registered there first: her "1"
    answers the alert that waits on her, never "unclear"."""
    from service.audit.service import Actor
    from service.auth.service import get_or_create_organization
    from service.registry import service as registry
    from service.registry.models import MemberCreate, MemberKind

    with world.session() as s:
        other = get_or_create_organization(session=s, name="珠洲市社会福祉協議会")
        registry.create_member(
            session=s,
            organization_id=other.id,
            data=MemberCreate(
                external_id="I-1",
                name="委員 M1",
                phone="080-3000-0001",
                languages=["ja", "vi"],
                kind=MemberKind.interpreter,
            ),
            actor=Actor(label="test"),
        )
        s.commit()
    world.silent_case()
    case = _cases(world)["R1"]
    world.sms(M1, f"1 {case.case_code}")
    taken = _cases(world)["R1"]
    assert (taken.state, taken.acknowledged_by) == ("acknowledged", world.members["M1"])

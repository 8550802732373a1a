"""Every alert says when the resident was last heard from, whichever step sends it
(issue 17, item 7: the second and later members read "…から-に助けを求める連絡がありました").

R1 asks for help; the case alerts M1, then M2. However the case reaches M2 (M1's window
passes, M1 says "2", M1 takes it and gives it back, M1 sends no result, staff reassign it),
M2's alert names the time R1 asked, as M1's did.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from i18n.render import format_datetime
from service.escalations import service as escalations
from service.escalations.models import Escalation
from service.registry.models import Member, Organization

from .conftest import ONE_MESSAGE

M1, M2, M3 = "+818030000001", "+818030000002", "+818030000003"
R1 = "+819010000001"


def _alerts(world, phone: str) -> list[str]:
    return [m.body for m in world.sent_to(phone) if m.purpose == "alert"]


def _case(world) -> Escalation:
    with world.session() as s:
        return s.exec(select(Escalation)).one()


def _asked_for_help(world) -> str:
    """R1 asks for help in the morning round; returns the time as the alerts must write it."""
    for key, phone in (("M1", "080-3000-0001"), ("M2", "080-3000-0002")):
        world.member(key, phone)
    world.resident("R1", "090-1000-0001")
    world.assign("R1", "M1", 1)
    world.assign("R1", "M2", 2)
    world.broadcast(plan=ONE_MESSAGE)
    world.tick()
    world.clock.advance(minutes=7)
    asked_at = world.clock.now()
    world.sms(R1, "2")  # help
    world.tick()
    with world.session() as s:
        org = s.get(Organization, world.org_id)
        when = format_datetime(asked_at, "ja", org.timezone)
    [first] = _alerts(world, M1)
    assert when in first and "から-に" not in first
    assert not _alerts(world, M2)
    return when


def _window_passes(world) -> None:
    world.tick(_case(world).ack_minutes)


def _declined(world) -> None:
    world.sms(M1, f"2 {_case(world).case_code}")


def _taken_then_given_back(world) -> None:
    world.sms(M1, "1")
    world.clock.advance(minutes=2)
    world.sms(M1, "2")


def _no_result_after_taking(world) -> None:
    case = _case(world)
    world.sms(M1, f"1 {case.case_code}")
    world.tick(case.outcome_hours * 60 + 1)  # reminded
    world.tick(61)  # handed on


@pytest.mark.parametrize(
    "reach_m2",
    [_window_passes, _declined, _taken_then_given_back, _no_result_after_taking],
    ids=["advance", "decline", "hand-on-by-2", "hand-on-by-sweep"],
)
def test_the_next_members_alert_names_when_the_resident_asked(world, reach_m2):
    when = _asked_for_help(world)
    reach_m2(world)
    assert _case(world).step_index == 1
    [alert] = _alerts(world, M2)
    assert when in alert and "から-に" not in alert


def test_a_member_staff_reassign_the_case_to_reads_when_the_resident_asked(world):
    when = _asked_for_help(world)
    world.member("M3", "080-3000-0003")
    with world.session() as s:
        escalations.reassign(
            s,
            escalation=s.get(Escalation, _case(world).id),
            member=s.get(Member, world.members["M3"]),
            now=world.clock.now(),
            actor="staff:test",
        )
        s.commit()
    [alert] = _alerts(world, M3)
    assert when in alert and "から-に" not in alert


def test_an_english_speaking_member_reads_the_time_as_english_writes_it(world):
    _asked_for_help(world)
    with world.session() as s:
        asked_at = s.get(Escalation, _case(world).id).created_at
        tz = s.get(Organization, world.org_id).timezone
    world.member("M3", "080-3000-0003", ["en"])
    with world.session() as s:
        escalations.reassign(
            s,
            escalation=s.get(Escalation, _case(world).id),
            member=s.get(Member, world.members["M3"]),
            now=world.clock.now(),
            actor="staff:test",
        )
        s.commit()
    [alert] = _alerts(world, M3)
    assert f"asked for help at {format_datetime(asked_at, 'en', tz)}." in alert


def test_a_silent_residents_later_alerts_name_their_last_message(world):
    """R1 answered an earlier round, then stayed silent: every step's alert names the
    earlier answer's time; a resident never heard from reads "-" at every step."""
    world.member("M1", "080-3000-0001")
    world.member("M2", "080-3000-0002")
    world.resident("R1", "090-1000-0001")
    world.assign("R1", "M1", 1)
    world.assign("R1", "M2", 2)
    world.broadcast(plan=ONE_MESSAGE)
    world.tick()
    world.clock.advance(minutes=3)
    answered_at = world.clock.now()
    world.sms(R1, "1")  # fine, in the first round
    world.tick(120)
    world.broadcast(plan=ONE_MESSAGE)  # the next round: silence
    world.tick()
    world.tick(60)
    world.tick(_case(world).ack_minutes)  # M1 does not answer: M2 is asked
    with world.session() as s:
        when = format_datetime(answered_at, "ja", s.get(Organization, world.org_id).timezone)
    [first] = _alerts(world, M1)
    [second] = _alerts(world, M2)
    assert when in first and when in second

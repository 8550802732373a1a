"""Who a round asks and how, and who a case goes to: targets by flag and by name, the
preferred channel, the chain frozen when the case opens, and case codes in the alerts of a
member with several cases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from i18n.render import render
from service.checkins.models import CheckIn, Schedule
from service.escalations.models import Alert, Escalation
from service.registry import service as registry

from .conftest import ACTOR, ONE_MESSAGE


def _asked(world) -> set[str]:
    names = {v: k for k, v in world.residents.items()}
    with world.session() as s:
        return {names[c.resident_id] for c in s.exec(select(CheckIn)).all()}


def _schedule(world, **targets) -> None:
    with world.session() as s:
        s.add(
            Schedule(
                organization_id=world.org_id,
                name="毎朝の見守り",
                time_of_day="10:00",
                next_run_at=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),  # 10:00 in Tokyo
                **targets,
            )
        )
        s.commit()
    world.tick(1)


def test_a_schedule_for_a_flag_asks_only_the_residents_with_it(world):
    world.resident("R1", "090-1000-0001", lives_alone=True)
    world.resident("R2", "090-1000-0002")
    world.resident("R3", "090-1000-0003", lives_alone=True)
    _schedule(world, target_kind="flag", target_flag="lives_alone")
    assert _asked(world) == {"R1", "R3"}


def test_a_schedule_for_named_residents_asks_only_them(world):
    world.resident("R1", "090-1000-0001")
    r2 = world.resident("R2", "090-1000-0002")
    world.resident("R3", "090-1000-0003")
    _schedule(world, target_kind="residents", target_resident_ids=[str(r2)])
    assert _asked(world) == {"R2"}


def test_a_resident_who_prefers_voice_is_called_where_the_plan_says_sms(world):
    world.resident("R1", "090-1000-0001", preferred_channel="voice")
    world.resident("R2", "090-1000-0002")
    world.broadcast()
    world.tick()
    assert [m.channel for m in world.sent_to("+819010000001")] == ["call"]
    assert [m.channel for m in world.sent_to("+819010000002")] == ["sms"]
    with world.session() as s:
        plans = {c.resident_id: c.plan for c in s.exec(select(CheckIn)).all()}
    assert {step["channel"] for step in plans[world.residents["R1"]]} == {"voice"}


def test_the_chain_is_frozen_when_the_case_opens(world):
    """After R1's case opened (M1, then M2), staff change R1's members: M2 leaves, M3 comes
    in second. The case keeps going to the members it started with."""
    world.silent_case()  # escalated: M1 alerted, M2 next
    world.member("M3", "080-3000-0003")
    with world.session() as s:
        ack_minutes = s.exec(select(Escalation)).one().ack_minutes
        assignments, _count = registry.list_assignments(
            session=s, organization_id=world.org_id, resident_id=world.residents["R1"]
        )
        for assignment in assignments:
            if assignment.member_id == world.members["M2"]:
                registry.delete_assignment(
                    session=s,
                    organization_id=world.org_id,
                    assignment_id=assignment.id,
                    actor=ACTOR,
                )
        s.commit()
    world.assign("R1", "M3", 2)
    world.tick(ack_minutes)
    with world.session() as s:
        step_two = s.exec(select(Alert.member_id).where(Alert.step_index == 1)).all()
    assert step_two == [world.members["M2"]]
    assert not world.sent_to("+818030000003")


def test_a_member_with_two_cases_gets_codes_and_is_asked_which_one_a_bare_1_is(world):
    world.member("M1", "080-3000-0001")
    for key, phone in (("R1", "090-1000-0001"), ("R2", "090-1000-0002")):
        world.resident(key, phone)
        world.assign(key, "M1", 1)
    world.broadcast(plan=ONE_MESSAGE)
    world.tick()
    world.tick(60)
    with world.session() as s:
        codes = sorted(e.case_code for e in s.exec(select(Escalation)).all())
    alerts = [m for m in world.sent_to("+818030000001") if m.purpose == "alert"]
    assert len(alerts) == 2
    # However the two were ordered, the second alert names its case's code.
    assert any(code in alerts[1].body for code in codes)
    answer = world.sms("+818030000001", "1")
    assert render("member.which_case", "ja", codes=", ".join(codes)) in answer
    with world.session() as s:
        assert {e.state for e in s.exec(select(Escalation)).all()} == {"alerting"}
    world.sms("+818030000001", f"1 {codes[0]}")
    with world.session() as s:
        states = {e.case_code: e.state for e in s.exec(select(Escalation)).all()}
    assert states == {codes[0]: "acknowledged", codes[1]: "alerting"}

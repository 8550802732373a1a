"""Reply handling through the signed SMS webhook: only a clear "fine" closes a check-in."""

from __future__ import annotations

from sqlmodel import select

from service.checkins import flows
from service.checkins.models import CheckIn, StaffTask
from service.escalations.models import Escalation
from service.registry.models import Resident


def _setup(world, *residents):
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    for key, phone, lang in residents:
        world.resident(key, phone, language=lang, site="A団地")
        world.assign(key, "M1", 1)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()


def _checkin(world, key):
    with world.session() as s:
        return s.exec(select(CheckIn).where(CheckIn.resident_id == world.residents[key])).one()


def test_negated_ok_is_never_safe(world):
    _setup(world, ("R1", "090-1000-0001", "ja"), ("R2", "090-1000-0002", "vi"))
    world.sms("+819010000001", "大丈夫じゃない")
    world.sms("+819010000002", "khong on")
    for key in ("R1", "R2"):
        checkin = _checkin(world, key)
        assert checkin.state == "needs_help"
        assert checkin.escalation_id is not None


def test_unclear_reply_asks_again_and_flags_without_closing(world):
    _setup(world, ("R1", "090-1000-0001", "ja"))
    reply = world.sms("+819010000001", "明日は雨かな")
    assert "1" in reply and "2" in reply and "3" in reply
    checkin = _checkin(world, "R1")
    assert checkin.state == "waiting" and checkin.flagged
    with world.session() as s:
        assert [t.kind for t in s.exec(select(StaffTask)).all()] == ["unclear"]


def test_stop_opts_out_confirms_flags_staff_and_puts_resident_on_the_visit_list(world):
    _setup(world, ("R1", "090-1000-0001", "ja"))
    reply = world.sms("+819010000001", "STOP")
    assert "START" in reply
    with world.session() as s:
        resident = s.get(Resident, world.residents["R1"])
        assert resident.status == "opted_out"
        assert [t.kind for t in s.exec(select(StaffTask)).all()] == ["opt_out"]
        escalation = s.exec(select(Escalation)).one()
        assert escalation.reason == "visit_list"
    assert _checkin(world, "R1").state == "opted_out"
    again = world.sms("+819010000001", "START")
    assert "STOP" in again
    with world.session() as s:
        assert s.get(Resident, world.residents["R1"]).status == "active"


def test_language_change_switches_and_confirms_in_the_new_language(world):
    _setup(world, ("R1", "090-1000-0001", "ja"))
    reply = world.sms("+819010000001", "Tiếng Việt")
    assert "Tiếng Việt" in reply
    with world.session() as s:
        assert s.get(Resident, world.residents["R1"]).language == "vi"
    assert _checkin(world, "R1").state == "waiting"


def test_a_shared_household_phone_answers_for_the_resident_who_was_asked(world):
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001", site="A団地")
    world.resident("R2", "090-1000-0001", site="A団地", name="同じ電話の家族")
    flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        resident_ids=[world.residents["R2"]],
    )
    world.tick()
    world.sms("+819010000001", "1")
    assert _checkin(world, "R2").state == "ok"


def test_help_from_someone_with_no_open_check_in_still_escalates(world):
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001", site="A団地")
    world.assign("R1", "M1", 1)
    reply = world.sms("+819010000001", "たすけて")
    assert reply
    with world.session() as s:
        escalation = s.exec(select(Escalation)).one()
    assert escalation.reason == "needs_help" and escalation.priority == 0
    world.tick()
    alerts = [m for m in world.sent_to("+818030000001") if m.purpose == "alert"]
    assert len(alerts) == 1


def _silent_escalation(world):
    from service.checkins.models import CheckIn

    _setup(world, ("R1", "090-1000-0001", "ja"))
    with world.session() as s:
        c = s.exec(select(CheckIn)).one()
        c.next_action_at = world.clock.now()
        c.plan = c.plan[:1]
        s.add(c)
        s.commit()
    world.tick()
    with world.session() as s:
        return s.exec(select(Escalation)).one()


def test_a_resent_acknowledgement_does_not_close_the_case_as_safe(world):
    esc = _silent_escalation(world)
    world.sms("+818030000001", f"1 {esc.case_code}")
    world.sms("+818030000001", f"1 {esc.case_code}")  # the same text again
    world.sms("+818030000001", "1")  # and without the case code
    with world.session() as s:
        assert s.get(Escalation, esc.id).state == "acknowledged"
    world.sms("+818030000001", f"{esc.case_code} 1")
    with world.session() as s:
        assert s.get(Escalation, esc.id).state == "resolved"


def test_two_right_after_acknowledging_hands_the_case_on(world):
    esc = _silent_escalation(world)
    world.sms("+818030000001", f"1 {esc.case_code}")
    world.sms("+818030000001", f"2 {esc.case_code}")
    with world.session() as s:
        again = s.get(Escalation, esc.id)
    assert again.state != "resolved" and again.acknowledged_by is None


def test_could_not_find_keeps_the_case_open_for_staff(world):
    esc = _silent_escalation(world)
    world.sms("+818030000001", f"1 {esc.case_code}")
    world.clock.advance(minutes=30)
    world.sms("+818030000001", f"5 {esc.case_code}")
    with world.session() as s:
        again = s.get(Escalation, esc.id)
    assert again.state == "exhausted" and again.outcome == "not_found"


def test_help_after_an_exhausted_case_alerts_the_chain_again(world):
    esc = _silent_escalation(world)
    world.tick(31)  # M1 never answers: the chain (one member) runs out
    with world.session() as s:
        assert s.get(Escalation, esc.id).state == "exhausted"
    before = len([m for m in world.sent_to("+818030000001") if m.purpose == "alert"])
    world.sms("+819010000001", "2")
    world.tick()
    after = [m for m in world.sent_to("+818030000001") if m.purpose == "alert"]
    assert len(after) == before + 1
    with world.session() as s:
        again = s.get(Escalation, esc.id)
    assert again.state == "alerting" and again.priority == 0


def test_a_late_fine_on_a_case_nobody_holds_becomes_a_task_for_staff(world):
    """The chain ran out: there is no member to tell of the resident's late "1", so staff
    get it as a task. The case stays open (exhausted) until someone records a visit."""
    esc = _silent_escalation(world)
    world.tick(31)
    world.sms("+819010000001", "1")
    with world.session() as s:
        tasks = s.exec(select(StaffTask).where(StaffTask.kind == "late_reply")).all()
        assert s.get(Escalation, esc.id).state == "exhausted"
    assert [t.resident_id for t in tasks] == [esc.resident_id]
    assert tasks[0].closed_at is None


def test_a_late_fine_on_a_case_a_member_holds_tells_them_and_makes_no_task(world):
    esc = _silent_escalation(world)
    world.sms("+818030000001", f"1 {esc.case_code}")
    world.sms("+819010000001", "1")
    notices = [m for m in world.sent_to("+818030000001") if m.purpose == "member_notice"]
    assert notices
    with world.session() as s:
        assert s.exec(select(StaffTask).where(StaffTask.kind == "late_reply")).all() == []


def test_help_on_a_case_already_asking_its_members_brings_in_an_interpreter(world):
    """R1 (Vietnamese, needs an interpreter) was silent, so M1 is being asked. Then R1
    writes "không ổn" (not ok): the case becomes a call for help, and a supporter who speaks
    Vietnamese is alerted at once, beside M1, as for a case opened by help."""
    from service.registry.models import MemberKind

    world.member("M1", "080-3000-0001")
    world.member("I-vi", "080-3000-0300", ["vi", "ja"], kind=MemberKind.interpreter)
    world.resident("R1", "090-1000-0001", language="vi", needs_interpreter=True)
    world.assign("R1", "M1", 1)
    flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        plan=[{"channel": "sms", "message": "prompt", "wait_minutes": 60}],
    )
    world.tick()
    world.tick(60)
    with world.session() as s:
        case = s.exec(select(Escalation)).one()
    assert case.reason == "no_reply" and [len(step) for step in case.chain] == [1]
    assert not [m for m in world.sent_to("+818030000300") if m.purpose == "alert"]
    world.clock.advance(minutes=5)
    world.sms("+819010000001", "không ổn")
    with world.session() as s:
        case = s.get(Escalation, case.id)
    assert case.reason == "needs_help" and case.priority == 0 and case.step_index == 0
    assert [r["member_id"] for r in case.chain[0]] == [
        str(world.members["M1"]),
        str(world.members["I-vi"]),
    ]
    [alert] = [m for m in world.sent_to("+818030000300") if m.purpose == "alert"]
    assert alert.locale == "vi"
    # A second call for help does not alert them twice.
    world.sms("+819010000001", "2")
    assert len([m for m in world.sent_to("+818030000300") if m.purpose == "alert"]) == 1


def test_a_call_back_request_reaches_the_supporter_who_speaks_the_language_by_sms(world):
    """R1 (Vietnamese, needs an interpreter) replies 3. The call-back task is the
    Vietnamese-speaking supporter's; they have no dashboard, so an SMS in their language
    tells them whom to call and at which number. R2 (Japanese) replying 3 is a task for
    staff, and no supporter is messaged."""
    from i18n.languages import display_name
    from i18n.render import render
    from service.registry.models import MemberKind

    world.member("M1", "080-3000-0001")
    world.member("I-vi", "080-3000-0300", ["vi", "ja"], kind=MemberKind.interpreter)
    world.resident(
        "R1", "090-1000-0001", language="vi", needs_interpreter=True, name="Nguyen Van An"
    )
    world.resident("R2", "090-1000-0002")
    world.assign("R1", "M1", 1)
    world.assign("R2", "M1", 1)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()
    world.sms("+819010000001", "3")
    world.sms("+819010000002", "3")
    world.tick()
    with world.session() as s:
        tasks = {t.resident_id: t for t in s.exec(select(StaffTask)).all()}
    assert tasks[world.residents["R1"]].assigned_member_id == world.members["I-vi"]
    assert tasks[world.residents["R2"]].assigned_member_id is None
    [notice] = [m for m in world.sent_to("+818030000300") if m.purpose == "member_notice"]
    assert notice.status == "sent" and notice.locale == "vi"
    assert notice.body == render(
        "member.callback",
        "vi",
        name="Nguyen Van An",
        language=display_name("vi", "vi"),
        phone="090-1000-0001",
    )
    assert not [m for m in world.sent_to("+818030000001") if m.purpose == "member_notice"]


def test_escalation_is_not_held_back_by_quiet_hours(world):
    from datetime import timedelta

    from service.checkins.models import CheckIn

    _setup(world, ("R1", "090-1000-0001", "ja"))
    # 23:00 in Tokyo: the plan of this routine round is exhausted at night.
    night = world.clock.now().replace(hour=14, minute=0) + timedelta(days=0)
    world.clock.set(night)
    with world.session() as s:
        c = s.exec(select(CheckIn)).one()
        c.next_action_at = night
        c.plan = c.plan[:1]
        s.add(c)
        s.commit()
    world.tick()
    with world.session() as s:
        assert s.exec(select(Escalation)).one().reason == "no_reply"


def test_a_fine_from_a_phone_two_waiting_people_share_closes_neither(world):
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001", site="A団地")
    world.resident("R2", "090-1000-0001", site="A団地", name="同じ電話の家族")
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()
    world.sms("+819010000001", "1")
    assert _checkin(world, "R1").state == "waiting"
    assert _checkin(world, "R2").state == "waiting"
    with world.session() as s:
        tasks = s.exec(select(StaffTask).where(StaffTask.kind == "unclear")).all()
    assert {t.resident_id for t in tasks} == {world.residents["R1"], world.residents["R2"]}
    world.sms("+819010000001", "2")
    assert _checkin(world, "R1").state == "needs_help"
    assert _checkin(world, "R2").state == "needs_help"

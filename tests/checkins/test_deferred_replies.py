"""A resident's SMS is answered by the webhook at once and acted on by ``process_replies``.

What must hold: the answer is the same as if it had been acted on in the request; the
stored row is the promise of the effect (nothing is lost when acting on it fails or the
scheduler is down); a reply is acted on once; and it answers the check-in that existed when
it arrived, before any deadline that passed while it waited.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from i18n.render import render
from service.checkins import events, flows
from service.checkins.models import CheckIn, CheckInState, Round, StaffTask, TimelineEvent
from service.checkins.service import REPLY_HOLD, advance_checkins, due_checkin_ids
from service.common import aware
from service.escalations.models import Alert, Escalation
from service.registry.models import Resident
from service.telephony.models import InboundMessage, OutboxMessage

ORG = "輪島市社会福祉協議会"
R1 = "+819010000001"


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


def _checkins(world, key):
    with world.session() as s:
        return list(
            s.exec(
                select(CheckIn)
                .where(CheckIn.resident_id == world.residents[key])
                .order_by(CheckIn.created_at)
            ).all()
        )


def _inbound(world):
    with world.session() as s:
        return list(s.exec(select(InboundMessage).order_by(InboundMessage.received_at)).all())


def test_help_is_answered_at_once_and_escalated_by_the_next_run(world):
    _setup(world, ("R1", "090-1000-0001", "vi"))
    received = world.clock.now()
    reply = world.sms(R1, "2", act=False)
    assert reply.count("<Message>") == 1
    assert render("resident.reply.help", "vi", org=ORG) in reply

    # Stored, read and answered; nothing acted on yet.
    [inbound] = _inbound(world)
    assert inbound.processed_at is None
    assert (inbound.classification, inbound.language) == ("help", "vi")
    assert [c.state for c in _checkins(world, "R1")] == [CheckInState.waiting]
    with world.session() as s:
        assert s.exec(select(Escalation)).all() == []
        # The TwiML answer is on record (and counts against the cap) already.
        answers = s.exec(select(OutboxMessage).where(OutboxMessage.purpose == "resident_notice"))
        assert [m.body for m in answers] == [render("resident.reply.help", "vi", org=ORG)]

    # The scheduler runs a moment later: the reply keeps its time, the escalation starts now.
    world.clock.advance(seconds=3)
    assert flows.process_replies(world.engine, world.clock.now) == 1
    [inbound] = _inbound(world)
    assert aware(inbound.processed_at) == world.clock.now()
    [checkin] = _checkins(world, "R1")
    assert checkin.state == CheckInState.needs_help
    assert aware(checkin.replied_at) == received
    with world.session() as s:
        escalation = s.exec(select(Escalation)).one()
        assert checkin.escalation_id == escalation.id
        assert aware(escalation.created_at) == world.clock.now()
        [event] = s.exec(select(TimelineEvent).where(TimelineEvent.kind == "reply.sms")).all()
        assert aware(event.at) == received
        assert event.inbound_id == inbound.id
    # Acted on once: another run finds nothing.
    assert flows.process_replies(world.engine, world.clock.now) == 0


def test_every_reply_kind_gets_the_answer_it_got_when_acted_on_in_the_request(world):
    """The webhook's answer comes from what the message says, in the resident's language;
    for each kind it is the answer ``handle_resident_reply`` gives while acting on it."""
    _setup(world, ("R1", "090-1000-0001", "ne"))
    cases = [
        ("???", "resident.reply.unclear", "ne"),
        ("3", "resident.reply.talk", "ne"),
        ("1", "resident.reply.ok", "ne"),
        ("STOP", "resident.optout", "ne"),
        ("START", "resident.optin", "ne"),
    ]
    status_after = {"STOP": "opted_out", "START": "active"}
    for body, message_id, language in cases:
        reply = world.sms(R1, body, act=False)
        assert render(message_id, language, org=ORG) in reply, body
        assert flows.process_replies(world.engine, world.clock.now) == 1
        if body in status_after:
            with world.session() as s:
                assert s.get(Resident, world.residents["R1"]).status == status_after[body]
    # The talk request closed the check-in; the "1" after it changed nothing.
    assert _checkins(world, "R1")[0].state == CheckInState.wants_talk
    changed = world.sms(R1, "English", act=False)
    assert render("resident.language_changed", "en", org=ORG, language="English") in changed
    flows.process_replies(world.engine, world.clock.now)
    with world.session() as s:
        assert s.get(Resident, world.residents["R1"]).language == "en"
    with world.session() as s:
        answers = [
            (m.body, m.locale)
            for m in s.exec(
                select(OutboxMessage)
                .where(OutboxMessage.purpose == "resident_notice")
                .order_by(OutboxMessage.created_at)
            )
        ]
    assert answers[-1][1] == "en"
    assert all(row.processed_at is not None for row in _inbound(world))


def test_a_reply_waiting_to_be_acted_on_is_not_a_silence_when_its_deadline_passes(world):
    _setup(world, ("R1", "090-1000-0001", "ja"))
    [checkin] = _checkins(world, "R1")
    world.clock.advance(minutes=59, seconds=59)
    world.sms(R1, "1", act=False)
    # The deadline passes before the scheduler gets to the reply; its run acts on replies first.
    world.tick(minutes=1)
    [checkin] = _checkins(world, "R1")
    assert checkin.state == CheckInState.ok
    assert len(world.sent_to(R1)) == 2  # the check-in and the TwiML thanks: no reminder


def test_a_reply_answers_the_checkin_that_existed_when_it_arrived(world):
    """A "1" that arrived before an aftershock broadcast, acted on after that round started,
    does not close the new check-in: the resident is asked again."""
    _setup(world, ("R1", "090-1000-0001", "ja"))
    world.clock.advance(minutes=5)
    world.sms(R1, "1", act=False)
    world.clock.advance(seconds=1)
    with world.session() as s:
        [first] = s.exec(select(Round)).all()
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    flows.process_replies(world.engine, world.clock.now)
    old, new = _checkins(world, "R1")
    assert old.round_id == first.id and old.state == CheckInState.superseded
    assert new.state == CheckInState.waiting
    with world.session() as s:
        [event] = s.exec(select(TimelineEvent).where(TimelineEvent.kind == "reply.sms")).all()
        assert event.checkin_id is None  # it answered no open check-in
    # Its own answer then closes the new one.
    world.sms(R1, "1")
    assert _checkins(world, "R1")[1].state == CheckInState.ok


def test_a_reply_that_cannot_be_acted_on_stays_flagged_and_is_retried(world, monkeypatch):
    _setup(world, ("R1", "090-1000-0001", "ja"), ("R2", "090-1000-0002", "ja"))
    world.sms(R1, "2", act=False)
    world.sms("+819010000002", "1", act=False)
    real = events._act_on_resident_reply

    def broken(session, inbound, resident, now, received_at=None):
        if inbound.from_phone == R1:
            raise RuntimeError("simulated fault while acting on a reply")
        return real(session, inbound, resident, now, received_at)

    monkeypatch.setattr(events, "_act_on_resident_reply", broken)
    # The batch fails, then each reply is tried alone: R2's is acted on, R1's is kept.
    assert flows.process_replies(world.engine, world.clock.now) == 1
    rows = {row.from_phone: row for row in _inbound(world)}
    help_row, fine_row = rows[R1], rows["+819010000002"]
    assert help_row.processed_at is None and help_row.needs_staff
    assert fine_row.processed_at is not None
    assert _checkins(world, "R2")[0].state == CheckInState.ok
    assert _checkins(world, "R1")[0].state == CheckInState.waiting

    # The watchdog counts it once it is older than its grace period.
    world.clock.advance(minutes=3)
    assert flows.overdue_counts(world.engine, world.clock.now())["replies"] == 1

    # Mended (or a transient fault gone): the next run escalates it.
    monkeypatch.setattr(events, "_act_on_resident_reply", real)
    assert flows.process_replies(world.engine, world.clock.now) == 1
    assert _checkins(world, "R1")[0].state == CheckInState.needs_help
    with world.session() as s:
        assert s.exec(select(Escalation)).one().resident_id == world.residents["R1"]
        [alert] = s.exec(select(Alert)).all()
        assert alert.member_id == world.members["M1"]
    assert flows.overdue_counts(world.engine, world.clock.now())["replies"] == 0


@pytest.mark.parametrize("who", ["member", "stranger", "shared phone"])
def test_replies_whose_answer_depends_on_the_cases_are_acted_on_in_the_request(world, who):
    _setup(world, ("R1", "090-1000-0001", "ja"))
    if who == "shared phone":
        world.resident("R9", "090-1000-0001", site="A団地", name="同じ電話の家族")
    phone = {"member": "+818030000001", "stranger": "+819099999999", "shared phone": R1}[who]
    world.sms(phone, "1", act=False)
    [inbound] = _inbound(world)
    assert inbound.processed_at is not None
    assert flows.process_replies(world.engine, world.clock.now) == 0


def test_keypad_digits_are_acted_on_in_the_request_and_never_again(world):
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    world.resident("R1", "0768-22-0001", site="A団地")  # a landline: called
    world.assign("R1", "M1", 1)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()
    with world.session() as s:
        call = s.exec(select(OutboxMessage).where(OutboxMessage.channel == "call")).one()
    response = world.post(
        f"/twilio/voice/gather?attempt={call.id}",
        {"CallSid": call.sid, "Digits": "2", "To": call.to_phone},
    )
    assert response.status_code == 200
    [inbound] = _inbound(world)
    assert inbound.channel == "keypad" and inbound.processed_at is not None
    assert flows.process_replies(world.engine, world.clock.now) == 0
    with world.session() as s:
        assert len(s.exec(select(Escalation)).all()) == 1


def test_the_reply_of_a_resident_deleted_before_it_was_acted_on_stays_for_staff(world):
    _setup(world, ("R1", "090-1000-0001", "ja"))
    world.sms(R1, "2", act=False)
    with world.session() as s:
        [inbound] = s.exec(select(InboundMessage)).all()
        inbound.resident_id = None  # what ON DELETE SET NULL leaves
        s.add(inbound)
        s.commit()
    assert flows.process_replies(world.engine, world.clock.now) == 1
    [inbound] = _inbound(world)
    assert inbound.needs_staff and inbound.processed_at is not None


def test_processing_later_keeps_the_arrival_time_after_a_night_of_downtime(world):
    """The scheduler was down for the night: the reply is acted on when it starts, and the
    escalation's first alert gets its whole acknowledgement window from then."""
    _setup(world, ("R1", "090-1000-0001", "ja"))
    received = world.clock.now()
    world.sms(R1, "助けて", act=False)
    world.clock.advance(hours=8)
    world.tick()
    with world.session() as s:
        escalation = s.exec(select(Escalation)).one()
        [alert] = s.exec(select(Alert)).all()
    assert aware(escalation.created_at) == world.clock.now()
    assert aware(escalation.next_action_at) >= world.clock.now() + timedelta(minutes=29)
    assert alert.member_id == world.members["M1"]
    assert aware(_checkins(world, "R1")[0].replied_at) == received


def test_a_call_for_help_is_acted_on_before_older_replies(world):
    """After an earthquake round thousands of "1"s arrive at once; a "2" is not queued
    behind them."""
    _setup(
        world,
        ("R1", "090-1000-0001", "ja"),
        ("R2", "090-1000-0002", "ja"),
        ("R3", "090-1000-0003", "ja"),
    )
    world.sms(R1, "1", act=False)
    world.sms("+819010000002", "1", act=False)
    world.clock.advance(seconds=1)
    world.sms("+819010000003", "助けて", act=False)
    # One reply per run: the call for help goes first.
    assert flows.process_replies(world.engine, world.clock.now, batch=1, max_batches=1) == 1
    assert _checkins(world, "R3")[0].state == CheckInState.needs_help
    assert {_checkins(world, k)[0].state for k in ("R1", "R2")} == {CheckInState.waiting}
    assert flows.process_replies(world.engine, world.clock.now) == 2
    assert {_checkins(world, k)[0].state for k in ("R1", "R2")} == {CheckInState.ok}


def test_two_workers_act_on_one_reply_once(world, monkeypatch):
    """The process_replies job and the sweep's own call run at once in the scheduler's
    thread pool; whichever claims the reply first acts on it, the other finds it claimed."""
    _setup(world, ("R1", "090-1000-0001", "ja"))
    world.sms(R1, "3", act=False)  # a call-back request: one staff task per reply acted on
    [inbound] = _inbound(world)
    real = events._act_on_resident_reply
    inside = threading.Event()

    def slow(session, inbound, resident, now, received_at=None):
        inside.set()
        time.sleep(0.5)  # the other worker tries to claim it meanwhile
        return real(session, inbound, resident, now, received_at)

    monkeypatch.setattr(events, "_act_on_resident_reply", slow)
    results: list[bool] = []

    def worker() -> None:
        with world.session() as s:
            results.append(events.process_reply(s, inbound.id, world.clock.now()))
            s.commit()

    first = threading.Thread(target=worker)
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=worker)
    second.start()
    first.join(30)
    second.join(30)
    assert sorted(results) == [False, True]
    with world.session() as s:
        assert len(s.exec(select(StaffTask).where(StaffTask.kind == "callback")).all()) == 1
        events_ = s.exec(select(TimelineEvent).where(TimelineEvent.kind == "reply.sms")).all()
        assert len(events_) == 1


def test_the_sweep_leaves_a_checkin_whose_reply_is_being_acted_on(world):
    """A "1" stored a second before the deadline, still held by another worker when the
    sweep runs: the check-in is not moved on as silent. A reply that stays unacted-on (it
    keeps failing) holds it only for REPLY_HOLD: then the plan goes on."""
    _setup(world, ("R1", "090-1000-0001", "ja"))
    [checkin] = _checkins(world, "R1")
    world.clock.set(aware(checkin.next_action_at) - timedelta(seconds=1))
    world.sms(R1, "1", act=False)
    world.clock.advance(seconds=2)
    with world.session() as s:
        assert due_checkin_ids(s, world.clock.now(), 100) == []
    assert flows.sweep_checkins(world.engine, world.clock.now) == 0
    assert _checkins(world, "R1")[0].step_index == 0

    world.clock.advance(seconds=REPLY_HOLD.total_seconds())
    with world.session() as s:
        assert due_checkin_ids(s, world.clock.now(), 100) == [checkin.id]
    assert flows.sweep_checkins(world.engine, world.clock.now) == 1
    assert _checkins(world, "R1")[0].step_index == 1


def test_a_reply_stored_after_the_sweep_listed_the_checkin_holds_it_too(world):
    """The sweep lists R1's check-in as due; before it moves it, R1's "1" is stored. The
    check-in is left to the reply, exactly as if the reply had come before the listing."""
    _setup(world, ("R1", "090-1000-0001", "ja"))
    [checkin] = _checkins(world, "R1")
    world.clock.set(aware(checkin.next_action_at) + timedelta(seconds=1))
    with world.session() as s:
        assert due_checkin_ids(s, world.clock.now(), 100) == [checkin.id]
    world.sms(R1, "1", act=False)
    with world.session() as s:
        assert advance_checkins(s, [checkin.id], world.clock.now()) == 0
        s.commit()
    assert _checkins(world, "R1")[0].step_index == 0
    assert flows.process_replies(world.engine, world.clock.now) == 1
    assert _checkins(world, "R1")[0].state == CheckInState.ok


def test_replies_that_keep_failing_hold_up_no_other(world, monkeypatch):
    _setup(world, ("R1", "090-1000-0001", "ja"), ("R2", "090-1000-0002", "ja"))
    world.sms("+819010000002", "2", act=False)
    world.sms("+819010000002", "助けて", act=False)
    world.clock.advance(seconds=1)
    world.sms(R1, "2", act=False)
    real = events._act_on_resident_reply

    def broken_for_r2(session, inbound, resident, now, received_at=None):
        if inbound.from_phone == "+819010000002":
            raise RuntimeError("simulated fault while acting on a reply")
        return real(session, inbound, resident, now, received_at)

    monkeypatch.setattr(events, "_act_on_resident_reply", broken_for_r2)
    # A batch of two holds just the two failing replies; the run goes on past them.
    assert flows.process_replies(world.engine, world.clock.now, batch=2) == 1
    assert _checkins(world, "R1")[0].state == CheckInState.needs_help
    failing = [r for r in _inbound(world) if r.from_phone == "+819010000002"]
    assert [(r.processed_at, r.needs_staff) for r in failing] == [(None, True), (None, True)]


def _acted_on(world, key):
    """What acting on a resident's replies left behind, without ids or the resident."""
    resident_id = world.residents[key]
    [checkin] = _checkins(world, key)
    with world.session() as s:
        replies = s.exec(
            select(InboundMessage)
            .where(InboundMessage.resident_id == resident_id)
            .order_by(InboundMessage.received_at)
        ).all()
        timeline = s.exec(
            select(TimelineEvent)
            .where(TimelineEvent.resident_id == resident_id)
            .order_by(TimelineEvent.at, TimelineEvent.kind)
        ).all()
        others = [
            len(s.exec(select(model).where(model.resident_id == resident_id)).all())
            for model in (Escalation, StaffTask, OutboxMessage)
        ]
    own = {None, checkin.id} | {r.id for r in replies}
    assert all(e.checkin_id in own and e.inbound_id in own for e in timeline)
    return {
        "checkin": (
            checkin.state,
            checkin.step_index,
            checkin.next_action_at,
            checkin.closed_at,
            checkin.replied_at,
            checkin.last_reply_kind,
            checkin.flagged,
            checkin.escalation_id,
            checkin.updated_at,
        ),
        "replies": [
            (r.body, r.classification, r.needs_staff, r.processed_at, r.organization_id)
            for r in replies
        ],
        "timeline": [
            (e.kind, e.at, e.detail, e.checkin_id is not None, e.inbound_id is not None)
            for e in timeline
        ],
        "others": others,
    }


def test_plain_fine_replies_closed_together_leave_what_one_at_a_time_leaves(world, monkeypatch):
    """The bulk close of plain "fine" replies writes the same rows and values as
    ``process_reply``: R1 and R3 go through it, R2 and R4 (the same story) one at a time."""
    residents = [(f"R{n}", f"090-1000-000{n}", "ja") for n in (1, 2, 3, 4)]
    _setup(world, *residents)
    phones = {f"R{n}": f"+81901000000{n}" for n in (1, 2, 3, 4)}
    for key in ("R3", "R4"):  # an unclear reply first: the check-in is flagged for staff
        world.sms(phones[key], "えーと", act=False)
    flows.process_replies(world.engine, world.clock.now)
    world.clock.advance(minutes=2)
    for key in ("R1", "R2", "R3", "R4"):
        world.sms(phones[key], "1", act=False)
    world.clock.advance(seconds=2)
    ids = {row.from_phone: row.id for row in _inbound(world) if row.processed_at is None}

    one_at_a_time: list[str] = []
    real = events.process_reply

    def spy(session, inbound_id, now):
        one_at_a_time.append(inbound_id)
        return real(session, inbound_id, now)

    with world.session() as s:
        for key in ("R2", "R4"):
            assert events.process_reply(s, ids[phones[key]], world.clock.now())
        s.commit()
    monkeypatch.setattr(events, "process_reply", spy)
    with world.session() as s:
        together = [ids[phones["R1"]], ids[phones["R3"]]]
        assert events.process_reply_batch(s, together, world.clock.now()) == 2
        s.commit()
    assert one_at_a_time == []  # both were closed by the bulk path

    assert _acted_on(world, "R1")["checkin"][0] == CheckInState.ok
    assert _acted_on(world, "R3")["replies"][-1][2] is True  # still flagged for staff
    assert _acted_on(world, "R1") == _acted_on(world, "R2")
    assert _acted_on(world, "R3") == _acted_on(world, "R4")


def test_a_fine_after_a_call_for_help_in_one_batch_does_not_close_the_checkin(world):
    """Two replies of one resident in one batch are not closed in bulk: the call for help
    is acted on first, and the "1" after it is a late reply to the case."""
    _setup(world, ("R1", "090-1000-0001", "ja"), ("R2", "090-1000-0002", "ja"))
    world.sms(R1, "1", act=False)
    world.clock.advance(seconds=5)
    world.sms(R1, "2", act=False)
    world.sms("+819010000002", "1", act=False)
    assert flows.process_replies(world.engine, world.clock.now) == 3
    assert _checkins(world, "R1")[0].state == CheckInState.needs_help
    assert _checkins(world, "R2")[0].state == CheckInState.ok
    with world.session() as s:
        [escalation] = s.exec(select(Escalation)).all()
        assert escalation.resident_id == world.residents["R1"]
        replies = s.exec(
            select(TimelineEvent)
            .where(TimelineEvent.kind == "reply.sms")
            .where(TimelineEvent.resident_id == world.residents["R1"])
        ).all()
        assert sorted(e.detail["class"] for e in replies) == ["fine", "help"]


def test_a_fine_reply_to_a_resident_with_an_open_case_tells_the_member(world):
    """Not plain: the resident's case is open, so the "1" is a late reply; the check-in of a
    new round is still closed by it, and the member who holds the case hears of it."""
    _setup(world, ("R1", "090-1000-0001", "ja"))
    world.sms(R1, "2")  # help: escalated, the member alerted
    world.clock.advance(minutes=1)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick(minutes=1)
    before = len(world.sent_to("+818030000001"))
    world.clock.advance(minutes=1)
    world.sms(R1, "1")
    assert [c.state for c in _checkins(world, "R1")] == [CheckInState.needs_help, CheckInState.ok]
    assert len(world.sent_to("+818030000001")) == before + 1  # the late-reply notice


def test_a_sweep_cannot_escalate_a_checkin_between_the_bulk_close_reading_and_writing_it(world):
    """The sweep listed the check-in as due just before the resident's "1" was stored, and
    escalates it while the bulk close is deciding. Either may go first, but never both: a
    check-in closed as fine with an open case for the same silence (on SQLite the bulk
    close holds the write lock from its claim on; on PostgreSQL, the check-in's row lock)."""
    from sqlalchemy import update as sql_update

    from service.checkins.service import advance_checkins

    _setup(world, ("R1", "090-1000-0001", "ja"))
    [checkin] = _checkins(world, "R1")
    now = world.clock.now()
    with world.session() as s:  # on its last step and due: the sweep's next step escalates
        s.execute(
            sql_update(CheckIn)
            .where(CheckIn.id == checkin.id)
            .values(step_index=len(checkin.plan) - 1, next_action_at=now - timedelta(seconds=1))
        )
        s.commit()
    world.sms(R1, "1", act=False)
    [reply] = _inbound(world)

    swept: list[int] = []

    def sweep() -> None:
        with world.session() as s:
            swept.append(advance_checkins(s, [checkin.id], now))
            s.commit()

    sweeper = threading.Thread(target=sweep)
    session = world.session()
    real_execute = session.execute

    def execute(statement, *args, **kwargs):
        result = real_execute(statement, *args, **kwargs)
        if "FROM escalation" in str(statement) and not sweeper.is_alive() and not swept:
            sweeper.start()  # the sweep runs now, in its own thread and transaction
            sweeper.join(1.0)  # it finishes, or waits for this transaction's locks
        return result

    session.execute = execute  # type: ignore[method-assign]
    try:
        acted = events.process_reply_batch(session, [reply.id], now)
        session.commit()
    finally:
        session.close()
    sweeper.join(30)
    assert acted == 1
    [after] = _checkins(world, "R1")
    with world.session() as s:
        open_cases = s.exec(select(Escalation).where(Escalation.resident_id == after.resident_id))
        cases = [e for e in open_cases if e.state in ("alerting", "acknowledged", "exhausted")]
    if after.state == CheckInState.ok:
        assert cases == [] and swept == [0]  # the reply went first; the sweep found it closed
    else:
        assert after.state == CheckInState.no_reply and len(cases) == 1  # the sweep went first


def test_a_reply_that_keeps_failing_is_tried_again_after_a_growing_rest(world, monkeypatch):
    """1 s after the first failure, then 2 s, 4 s, … at most 15 s: the job runs four
    times a second, and one broken reply must not fill the log at that rate. It stays
    flagged and unprocessed all along; once mended it is acted on at its next try."""
    _setup(world, ("R1", "090-1000-0001", "ja"))
    world.sms(R1, "2", act=False)
    real = events._act_on_resident_reply
    tries: list = []

    def broken(session, inbound, resident, now, received_at=None):
        tries.append(now)
        raise RuntimeError("simulated fault while acting on a reply")

    monkeypatch.setattr(events, "_act_on_resident_reply", broken)

    def run_for(seconds: float) -> int:
        """The job four times a second for ``seconds``; how many tries it made."""
        before = len(tries)
        for _ in range(int(seconds * 4)):
            flows.process_replies(world.engine, world.clock.now)
            world.clock.advance(seconds=0.25)
        return len(tries) - before

    assert run_for(0.25) == 2  # the batch, then the reply alone
    assert run_for(0.75) == 0  # resting for 1 s
    assert run_for(0.25) == 2
    assert run_for(1.75) == 0  # then 2 s
    assert run_for(0.25) == 2
    assert run_for(60) == 2 * 5  # after 4, 8, 15, 15 and 15 s
    assert [row.processed_at for row in _inbound(world)] == [None]
    assert _inbound(world)[0].needs_staff

    monkeypatch.setattr(events, "_act_on_resident_reply", real)
    run_for(60)
    assert _checkins(world, "R1")[0].state == CheckInState.needs_help


def _reply_while_the_sweep_works(world, plan) -> None:
    """R1's "1" comes in and is acted on just as the sweep, having found R1's check-in due,
    works out its next step: once the sweep has read the check-in (it then reads the
    resident), the reply is acted on, on another thread, given half a second to finish.

    On PostgreSQL the sweep holds the check-in's row lock, so the reply waits for it (half a
    second, then the sweep goes on). On SQLite the reply finishes first: nothing holds the
    database's write lock yet, so it is waited for as long as it takes."""
    from sqlalchemy import event

    world.site("A団地")
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001", site="A団地")
    world.assign("R1", "M1", 1)
    flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        plan=plan,
    )
    world.tick()
    world.clock.advance(minutes=plan[0]["wait_minutes"])
    replied: list[threading.Thread] = []

    def reply_now(conn, cursor, statement, parameters, context, executemany) -> None:
        if replied or not statement.lstrip().startswith("SELECT resident."):
            return
        thread = threading.Thread(target=world.sms, args=(R1, "1"))
        replied.append(thread)
        thread.start()
        thread.join(30 if world.engine.dialect.name == "sqlite" else 0.5)

    event.listen(world.engine, "before_cursor_execute", reply_now)
    try:
        flows.sweep_checkins(world.engine, world.clock.now)
    finally:
        event.remove(world.engine, "before_cursor_execute", reply_now)
    [thread] = replied
    thread.join(30)
    assert not thread.is_alive()


def test_a_fine_reply_acted_on_while_the_sweep_escalates_is_never_lost(world):
    """The plan has run out: the sweep escalates. Whichever goes first, the other sees it:
    either the "1" closes the check-in and nothing is escalated, or the escalation stands
    and the "1" reaches its member as a late reply. Never a closed check-in written back
    over."""
    _reply_while_the_sweep_works(
        world, [{"channel": "sms", "message": "prompt", "wait_minutes": 60}]
    )
    [checkin] = _checkins(world, "R1")
    with world.session() as s:
        escalations = s.exec(select(Escalation)).all()
        late = s.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "escalation.late_reply")
        ).all()
    if checkin.state == CheckInState.ok:
        assert escalations == []
    else:
        assert checkin.state == CheckInState.no_reply
        assert len(escalations) == 1 and len(late) == 1
    if world.engine.dialect.name == "sqlite":
        assert checkin.state == CheckInState.ok  # the reply went first (see the helper)


def test_a_fine_reply_acted_on_while_the_sweep_sends_a_reminder_stops_it(world):
    """The sweep is about to send the reminder. Either the "1" closes the check-in first
    and no reminder goes out, or the reminder goes out and the "1" then closes the
    check-in. Never a reminder to a resident whose "1" was already taken, with the closed
    check-in set waiting for its next step."""
    _reply_while_the_sweep_works(
        world,
        [
            {"channel": "sms", "message": "prompt", "wait_minutes": 60},
            {"channel": "sms", "message": "reminder", "wait_minutes": 60},
        ],
    )
    [checkin] = _checkins(world, "R1")
    prompts = [m for m in world.sent_to(R1) if m.purpose == "checkin"]
    assert checkin.state == CheckInState.ok
    assert checkin.next_action_at is None
    assert len(prompts) == checkin.step_index + 1
    if world.engine.dialect.name == "sqlite":
        assert len(prompts) == 1  # the reply went first (see the helper)

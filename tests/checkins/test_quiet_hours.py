"""Quiet hours (21:00-08:00 by default) hold for routine rounds: nothing is sent to a resident
at night, neither the first message nor a reminder. A broadcast waits too, unless it says
explicitly that it overrides quiet hours; then it sends at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session
from typer.testing import CliRunner

from service.checkins.models import Attempt, CheckIn, Round, Schedule
from service.common import aware
from service.escalations.models import Escalation
from service.telephony.models import OutboxMessage

TOKYO = ZoneInfo("Asia/Tokyo")
PHONES = {"R1": "+819011110001", "R2": "+819011110002", "R3": "+81768221234"}


def tokyo(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=TOKYO)


def residents(world) -> None:
    world.site("A団地")
    world.resident("R1", "090-1111-0001", site="A団地")
    world.resident("R2", "090-1111-0002", language="vi", site="A団地")
    world.resident("R3", "(0768) 22-1234", site="A団地")  # a landline: voice calls only
    world.member("M1", "080-9999-0001")
    for key in ("R1", "R2", "R3"):
        world.assign(key, "M1", 1)


def sent(world) -> list:
    """What the console provider was asked to send, to residents (not to members)."""
    return [record for record in world.provider.sent if record.to in PHONES.values()]


def local_now(world) -> datetime:
    return world.clock.now().astimezone(TOKYO)


def run_until(world, until: datetime, step_minutes: int = 30) -> None:
    """Tick the scheduler every ``step_minutes`` up to ``until`` (inclusive)."""
    while world.clock.now() + _minutes(step_minutes) <= until:
        world.tick(step_minutes)


def _minutes(n: int):
    from datetime import timedelta

    return timedelta(minutes=n)


def test_a_scheduled_round_at_2200_sends_nothing_until_0800(world):
    residents(world)
    world.clock.set(tokyo(1, 21, 59).astimezone(UTC))
    with Session(world.engine) as s:
        s.add(
            Schedule(
                organization_id=world.org_id,
                name="夜の見守り",
                time_of_day="22:00",
                next_run_at=tokyo(1, 22, 0).astimezone(UTC),
            )
        )
        s.commit()
    world.tick(1)  # 22:00: the round starts
    with Session(world.engine) as s:
        round_ = s.execute(select(Round)).scalar_one()
        assert round_.kind == "scheduled" and not round_.override_quiet_hours
        checkins = s.execute(select(CheckIn)).scalars().all()
        assert len(checkins) == 3 and {c.state for c in checkins} == {"waiting"}
        # The first step waits for the end of quiet hours, and so does its deadline.
        assert {aware(c.next_action_at) for c in checkins} == {tokyo(2, 9, 0)}
        queued = s.execute(select(OutboxMessage)).scalars().all()
        assert len(queued) == 3
        assert {aware(m.next_try_at) for m in queued} == {tokyo(2, 8, 0)}

    run_until(world, tokyo(2, 7, 59), step_minutes=29)  # the whole night, every 29 minutes
    assert local_now(world) >= tokyo(2, 7, 30)
    assert sent(world) == []
    with Session(world.engine) as s:
        assert {m.status for m in s.execute(select(OutboxMessage)).scalars()} == {"pending"}
        assert s.execute(select(func.count()).select_from(Attempt)).scalar_one() == 3
        assert s.execute(select(func.count()).select_from(Escalation)).scalar_one() == 0

    world.clock.set(tokyo(2, 8, 0).astimezone(UTC))
    world.tick()
    assert sorted((r.kind, r.to) for r in sent(world)) == [
        ("call", PHONES["R3"]),
        ("sms", PHONES["R1"]),
        ("sms", PHONES["R2"]),
    ]
    # The reminder follows the plan from 08:00, not from 22:00.
    world.tick(59)
    assert len(sent(world)) == 3
    world.tick(1)  # 09:00
    assert len(sent(world)) == 6


def test_a_reminder_that_falls_due_at_night_waits_for_the_morning(world):
    residents(world)
    world.clock.set(tokyo(1, 20, 29).astimezone(UTC))
    with Session(world.engine) as s:
        s.add(
            Schedule(
                organization_id=world.org_id,
                name="夕方の見守り",
                time_of_day="20:30",
                next_run_at=tokyo(1, 20, 30).astimezone(UTC),
            )
        )
        s.commit()
    world.tick(1)  # 20:30: outside quiet hours, the first messages go at once
    assert len(sent(world)) == 3
    run_until(world, tokyo(2, 7, 59), step_minutes=15)
    assert len(sent(world)) == 3, "a reminder went out during quiet hours"
    with Session(world.engine) as s:
        checkins = s.execute(select(CheckIn)).scalars().all()
        assert {c.step_index for c in checkins} == {0}
        assert {aware(c.next_action_at) for c in checkins} == {tokyo(2, 8, 0)}
    world.clock.set(tokyo(2, 8, 0).astimezone(UTC))
    world.tick()
    assert len(sent(world)) == 6
    with Session(world.engine) as s:
        assert {c.step_index for c in s.execute(select(CheckIn)).scalars()} == {1}


def broadcast(world, coordinator, **body):
    response = world.client.post(
        "/api/v1/rounds",
        json={"site_ids": [str(world.sites["A団地"])], "cause": "余震", **body},
        headers=coordinator.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_broadcast_at_night_waits_unless_it_overrides_quiet_hours(world, coordinator):
    residents(world)
    world.clock.set(tokyo(1, 23, 0).astimezone(UTC))
    waiting = broadcast(world, coordinator)  # override_quiet_hours defaults to false
    assert waiting["override_quiet_hours"] is False
    world.tick()
    world.tick(60)
    assert sent(world) == []
    with Session(world.engine) as s:
        rows = s.execute(
            select(OutboxMessage.next_try_at).where(OutboxMessage.status == "pending")
        ).scalars()
        assert {aware(t) for t in rows} == {tokyo(2, 8, 0)}


def test_a_broadcast_that_overrides_quiet_hours_sends_at_once_and_keeps_going(world, coordinator):
    residents(world)
    world.clock.set(tokyo(1, 23, 0).astimezone(UTC))
    round_ = broadcast(world, coordinator, override_quiet_hours=True)
    assert round_["override_quiet_hours"] is True
    world.tick()
    assert len(sent(world)) == 3
    world.tick(60)  # midnight: the reminder is not held back either
    assert len(sent(world)) == 6
    with Session(world.engine) as s:
        audit = s.execute(select(Round).where(Round.id == uuid.UUID(round_["id"]))).scalar_one()
        assert audit.override_quiet_hours is True


def test_messages_queued_before_quiet_hours_and_reached_after_it_wait_for_the_morning(
    world, coordinator
):
    """A round started at 20:59 whose messages reach the front of the queue at 21:01 (a long
    round ahead of them, a rate limit): they are not sent at night. Each waits for 08:00,
    and its check-in's next step moves with it: the full wait from the morning."""
    residents(world)
    world.clock.set(tokyo(1, 20, 59).astimezone(UTC))
    broadcast(world, coordinator)  # fanned out at 20:59; nothing dispatched yet
    with Session(world.engine) as s:
        waits = {
            c.id: aware(c.next_action_at) - world.clock.now()
            for c in s.execute(select(CheckIn)).scalars()
        }
    world.clock.set(tokyo(1, 21, 1).astimezone(UTC))
    world.tick()
    assert sent(world) == []
    with Session(world.engine) as s:
        queued = s.execute(select(OutboxMessage)).scalars().all()
        assert {(m.status, aware(m.next_try_at)) for m in queued} == {("pending", tokyo(2, 8))}
        for checkin in s.execute(select(CheckIn)).scalars():
            assert aware(checkin.next_action_at) == tokyo(2, 8) + waits[checkin.id]
    run_until(world, tokyo(2, 7, 59), step_minutes=29)
    assert sent(world) == []
    with Session(world.engine) as s:
        assert s.execute(select(func.count()).select_from(Escalation)).scalar_one() == 0
        assert {c.step_index for c in s.execute(select(CheckIn)).scalars()} == {0}
    world.clock.set(tokyo(2, 8, 0).astimezone(UTC))
    world.tick()
    assert len(sent(world)) == 3


def test_a_message_held_for_the_morning_after_its_step_was_deferred_too_is_not_delayed_twice(
    world, coordinator
):
    """The scheduler was down from 20:00 to 21:01: the round's first messages were queued,
    never sent, and their step's wait ran out meanwhile. The sweep defers the step to 08:00
    (quiet hours); the dispatcher holds the message until 08:00. The resident still gets
    the message at 08:00 and the plan's hour after it, not another night."""
    residents(world)
    world.clock.set(tokyo(1, 20, 0).astimezone(UTC))
    broadcast(world, coordinator)
    with Session(world.engine) as s:
        waits = {
            c.id: aware(c.next_action_at) - world.clock.now()
            for c in s.execute(select(CheckIn)).scalars()
        }
    world.clock.set(tokyo(1, 21, 1).astimezone(UTC))
    world.tick()  # the sweep, then the dispatcher
    assert sent(world) == []
    with Session(world.engine) as s:
        for checkin in s.execute(select(CheckIn)).scalars():
            assert checkin.step_index == 0
            assert aware(checkin.next_action_at) == tokyo(2, 8) + waits[checkin.id]
    world.clock.set(tokyo(2, 8, 0).astimezone(UTC))
    world.tick()
    assert len(sent(world)) == 3
    world.tick(max(waits.values()).total_seconds() / 60)
    with Session(world.engine) as s:
        assert {c.step_index for c in s.execute(select(CheckIn)).scalars()} == {1}
        assert s.execute(select(func.count()).select_from(Escalation)).scalar_one() == 0


def test_a_held_message_whose_check_in_was_answered_meanwhile_is_not_sent(world, coordinator):
    residents(world)
    world.clock.set(tokyo(1, 20, 59).astimezone(UTC))
    broadcast(world, coordinator)
    world.clock.set(tokyo(1, 21, 1).astimezone(UTC))
    world.tick()  # held until 08:00
    world.clock.set(tokyo(1, 22, 0).astimezone(UTC))
    world.sms(PHONES["R1"], "1")  # R1 answers anyway (a message from a neighbour, say)
    world.clock.set(tokyo(2, 8, 0).astimezone(UTC))
    world.tick()
    assert sorted(r.to for r in sent(world)) == sorted([PHONES["R2"], PHONES["R3"]])
    with Session(world.engine) as s:
        r1 = world.residents["R1"]
        status = s.execute(
            select(OutboxMessage.status, Attempt.status)
            .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
            .join(CheckIn, CheckIn.id == Attempt.checkin_id)
            .where(CheckIn.resident_id == r1)
        ).one()
    assert tuple(status) == ("cancelled", "skipped")


def test_an_overriding_round_reached_after_2100_still_sends(world, coordinator):
    residents(world)
    world.clock.set(tokyo(1, 20, 59).astimezone(UTC))
    broadcast(world, coordinator, override_quiet_hours=True)
    world.clock.set(tokyo(1, 21, 1).astimezone(UTC))
    world.tick()
    assert len(sent(world)) == 3


def test_round_start_on_the_command_line_holds_quiet_hours_unless_told(world):
    from service.cli import app

    residents(world)
    world.clock.set(tokyo(1, 23, 30).astimezone(UTC))
    runner = CliRunner()
    quiet = runner.invoke(app, ["round", "start", "--site", "A団地", "--cause", "余震"])
    assert quiet.exit_code == 0, quiet.output
    world.tick()
    assert sent(world) == []
    world.clock.advance(minutes=1)
    loud = runner.invoke(
        app, ["round", "start", "--site", "A団地", "--override-quiet-hours", "--cause", "津波"]
    )
    assert loud.exit_code == 0, loud.output
    world.tick()
    # The second round supersedes the first one's waiting check-ins and sends at once.
    assert sorted(r.to for r in sent(world)) == sorted(PHONES.values())
    with Session(world.engine) as s:
        states = s.execute(
            select(Round.override_quiet_hours, CheckIn.state).join(
                CheckIn, CheckIn.round_id == Round.id
            )
        ).all()
    assert sorted(states) == [(False, "superseded")] * 3 + [(True, "waiting")] * 3
    # The superseded round's first messages, still held for the morning, never go out:
    # nobody gets two first check-ins.
    world.clock.set(tokyo(2, 8, 0).astimezone(UTC))
    world.tick()
    with Session(world.engine) as s:
        first_messages = s.execute(
            select(OutboxMessage.to_phone, OutboxMessage.status)
            .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
            .where(Attempt.step_index == 0, OutboxMessage.status != "cancelled")
        ).all()
    assert sorted(to for to, _status in first_messages) == sorted(PHONES.values())


def test_a_broadcast_names_sites_or_residents_not_both(world, coordinator):
    residents(world)
    response = world.client.post(
        "/api/v1/rounds",
        json={
            "site_ids": [str(world.sites["A団地"])],
            "resident_ids": [str(world.residents["R1"])],
        },
        headers=coordinator.headers,
    )
    assert response.status_code == 422, response.text
    assert "not both" in response.text
    with Session(world.engine) as s:
        assert s.execute(select(func.count()).select_from(Round)).scalar_one() == 0

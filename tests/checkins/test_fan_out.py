"""Fan-out of rounds that overlap: a resident is asked by one round at a time."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.checkins import flows
from service.checkins import service as checkins
from service.checkins.models import Attempt, CheckIn, CheckInState, Round, RoundKind, Schedule
from service.common import aware
from service.escalations.models import Escalation
from service.registry.models import Resident
from service.telephony.models import OutboxMessage


def _fan_out_at_once(world, round_ids, chunk: int) -> None:
    """Fan the rounds out on one thread each, started together, in chunks of ``chunk``."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(round_ids))

    def fan_out(round_id) -> None:
        try:
            start.wait(10)
            checkins.fan_out_round(lambda: Session(world.engine), round_id, world.clock.now, chunk)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fan_out, args=(r,)) for r in round_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


def test_two_rounds_fanning_out_at_once_leave_each_resident_one_waiting_checkin(world):
    """The morning round and an earthquake broadcast fan out at the same moment, in small
    chunks, on two threads. Chunk by chunk they take turns (the organization's fan-out
    lock), so every resident ends with one waiting check-in and one first message queued:
    the other round's is superseded, and its queued message cancelled."""
    world.site("A団地")
    for n in range(40):
        world.resident(f"R{n:02d}", f"090-2000-{n:04d}", site="A団地")
    rounds = [_round(world), _round(world)]
    _fan_out_at_once(world, rounds, chunk=3)

    with Session(world.engine) as s:
        states = s.exec(select(CheckIn.resident_id, CheckIn.round_id, CheckIn.state)).all()
        pending = s.exec(
            select(OutboxMessage.resident_id).where(
                OutboxMessage.purpose == "checkin", OutboxMessage.status == "pending"
            )
        ).all()
    assert len(states) == 80  # each round has a check-in for each resident
    waiting = Counter(resident for resident, _, state in states if state == CheckInState.waiting)
    assert sorted(waiting.values()) == [1] * 40
    superseded = [state for _, _, state in states if state == CheckInState.superseded]
    assert len(superseded) == 40
    assert sorted(Counter(pending).values()) == [1] * 40  # one first message each, never two


def _round(world, kind=RoundKind.broadcast, **extra):
    with Session(world.engine) as s:
        round_ = checkins.start_round(
            s,
            organization_id=world.org_id,
            kind=kind,
            started_by="test",
            now=world.clock.now(),
            override_quiet_hours=True,
            **extra,
        )
        s.commit()
        return round_.id


def _first_chunk(world, round_id, size):
    with Session(world.engine) as s:
        round_ = s.get(Round, round_id)
        done = checkins.fan_out_chunk(s, round_, world.clock.now(), size)
        s.commit()
    return done


def _by_round(world):
    """{round id: {resident id: state}}, and the residents with a first message pending."""
    with Session(world.engine) as s:
        rows = s.exec(select(CheckIn.round_id, CheckIn.resident_id, CheckIn.state)).all()
        pending = s.exec(
            select(Attempt.checkin_id, OutboxMessage.resident_id)
            .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
            .where(OutboxMessage.purpose == "checkin", OutboxMessage.status == "pending")
        ).all()
    states: dict = {}
    for round_id, resident_id, state in rows:
        states.setdefault(round_id, {})[resident_id] = state
    return states, pending


def test_an_older_round_resumed_late_leaves_a_newer_broadcast_its_checkins(world):
    """The morning round stops after its first chunk (a crash); an earthquake broadcast
    starts and fans out; then the morning round resumes. The broadcast, being newer, keeps
    every resident: its check-ins stay waiting and its messages queued, the morning round's
    first-chunk check-ins are superseded, and the rest of the morning round is closed as
    superseded without a message."""
    world.site("A団地")
    for n in range(12):
        world.resident(f"R{n:02d}", f"090-2100-{n:04d}", site="A団地")
    world.resident("NOPHONE", None, site="A団地")  # on the visit list of whichever round
    morning = _round(world, kind=RoundKind.scheduled)
    assert _first_chunk(world, morning, 5) == 5
    world.clock.advance(minutes=2)
    quake = _round(world, cause="能登半島沖 M6.2")
    checkins.fan_out_round(lambda: Session(world.engine), quake, world.clock.now, 4)
    world.clock.advance(minutes=1)
    checkins.fan_out_round(lambda: Session(world.engine), morning, world.clock.now, 4)

    states, pending = _by_round(world)
    residents = set(world.residents.values())
    assert set(states[morning]) == set(states[quake]) == residents
    # Residents are taken in id order: the first chunk's five got the morning's check-ins
    # (closed since: superseded, or on the visit list), the rest were taken over.
    first_chunk = sorted(residents)[:5]
    nophone = world.residents["NOPHONE"]
    assert states[morning] == {
        r: (
            CheckInState.visit_list
            if r == nophone and r in first_chunk
            else CheckInState.superseded
        )
        for r in residents
    }
    assert sorted(states[quake].values()) == [CheckInState.visit_list] + [CheckInState.waiting] * 12
    # One first message per contactable resident, each the broadcast's.
    with Session(world.engine) as s:
        quake_checkins = set(s.exec(select(CheckIn.id).where(CheckIn.round_id == quake)).all())
        [escalation] = s.exec(select(Escalation)).all()
    assert sorted(Counter(resident for _, resident in pending).values()) == [1] * 12
    assert {checkin for checkin, _ in pending} <= quake_checkins
    assert escalation.resident_id == world.residents["NOPHONE"]


def test_a_resident_who_answered_a_newer_broadcast_is_not_asked_again_by_an_older_round(world):
    world.site("A団地")
    world.resident("R1", "090-2200-0001", site="A団地")
    world.resident("R2", "090-2200-0002", site="A団地")
    morning = _round(world, kind=RoundKind.scheduled)
    world.clock.advance(minutes=1)
    quake = _round(world)
    checkins.fan_out_round(lambda: Session(world.engine), quake, world.clock.now)
    world.tick()  # the broadcast's messages go out
    world.sms("+819022000001", "1")
    checkins.fan_out_round(lambda: Session(world.engine), morning, world.clock.now)
    world.tick()

    states, _ = _by_round(world)
    r1, r2 = world.residents["R1"], world.residents["R2"]
    assert states[quake] == {r1: CheckInState.ok, r2: CheckInState.waiting}
    assert states[morning] == {r1: CheckInState.superseded, r2: CheckInState.superseded}
    with Session(world.engine) as s:
        morning_messages = s.exec(
            select(OutboxMessage.id)
            .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
            .join(CheckIn, CheckIn.id == Attempt.checkin_id)
            .where(CheckIn.round_id == morning)
        ).all()
    assert morning_messages == []
    # Each was asked once, by the broadcast; R1 was thanked for the answer.
    assert len(world.sent_to("+819022000001")) == 2
    assert len(world.sent_to("+819022000002")) == 1


def test_rounds_fanning_out_at_once_leave_every_resident_to_the_newer_one(world):
    """Whichever round's chunk reaches a resident first, the round started later keeps the
    resident; run both ways round, on two threads, in chunks small enough to interleave."""
    world.site("A団地")
    for n in range(30):
        world.resident(f"R{n:02d}", f"090-2300-{n:04d}", site="A団地")
    older = _round(world, kind=RoundKind.scheduled)
    world.clock.advance(seconds=1)
    newer = _round(world)
    _fan_out_at_once(world, [newer, older], chunk=2)
    states, pending = _by_round(world)
    assert set(states[newer].values()) == {CheckInState.waiting}
    assert set(states[older].values()) == {CheckInState.superseded}
    assert len(states[newer]) == len(states[older]) == 30
    with Session(world.engine) as s:
        newer_checkins = set(s.exec(select(CheckIn.id).where(CheckIn.round_id == newer)).all())
    assert {checkin for checkin, _ in pending} == newer_checkins


def _daily_round_at_ten(world):
    with world.session() as s:
        s.add(
            Schedule(
                organization_id=world.org_id,
                name="毎朝",
                time_of_day="10:00",
                target_kind="all",
                next_run_at=world.clock.now() + timedelta(minutes=1),  # 10:00 in Tokyo
            )
        )
        s.commit()


def _checkin_messages(world, phone):
    """(round id, outbox status) of each check-in message to ``phone``."""
    with world.session() as s:
        return s.exec(
            select(CheckIn.round_id, OutboxMessage.status)
            .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
            .join(CheckIn, CheckIn.id == Attempt.checkin_id)
            .where(OutboxMessage.to_phone == phone, OutboxMessage.purpose == "checkin")
        ).all()


def test_a_daily_round_started_late_after_downtime_leaves_a_noon_broadcast_its_checkins(world):
    """The scheduler is down from before 10:00 until 14:00. Staff broadcast at noon (the
    server fans it out; its messages wait for the scheduler). At 14:00 the 10:00 round
    starts late: it is the older round, so the broadcast keeps the resident."""
    world.site("A団地")
    world.resident("R1", "090-2400-0001", site="A団地")
    _daily_round_at_ten(world)
    world.clock.advance(hours=3, minutes=1)  # 12:00
    quake = flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        cause="余震 M5.1",
    )
    world.clock.advance(hours=2)  # 14:00: the scheduler is back
    world.tick()
    with world.session() as s:
        [daily] = s.exec(select(Round.id).where(Round.kind == RoundKind.scheduled)).all()
    states, _ = _by_round(world)
    r1 = world.residents["R1"]
    assert states[quake] == {r1: CheckInState.waiting}
    assert states[daily] == {r1: CheckInState.superseded}
    # Only the broadcast's messages (its first, and the reminder now overdue) went out.
    messages = _checkin_messages(world, "+819024000001")
    assert messages and {round_id for round_id, _ in messages} == {quake}


def test_a_daily_round_supersedes_a_broadcast_started_before_it(world):
    """The other way round, the daily round is the newer one and takes over."""
    world.site("A団地")
    world.resident("R1", "090-2400-0001", site="A団地")
    _daily_round_at_ten(world)
    quake = flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )  # 09:59, queued: the scheduler has not dispatched it yet
    world.tick(1)  # 10:00
    with world.session() as s:
        [daily] = s.exec(select(Round.id).where(Round.kind == RoundKind.scheduled)).all()
    states, _ = _by_round(world)
    r1 = world.residents["R1"]
    assert states == {quake: {r1: CheckInState.superseded}, daily: {r1: CheckInState.waiting}}
    assert sorted(_checkin_messages(world, "+819024000001")) == sorted(
        [(quake, "cancelled"), (daily, "sent")]
    )


def test_fan_out_rows_are_stored_exactly_as_a_core_insert_stores_them(world):
    """``insert_rows`` (a driver-level executemany on SQLite, COPY on PostgreSQL) stores
    every value, UUIDs, zoned timestamps, JSON plans, booleans and NULLs, in the same form
    as SQLAlchemy's own Core insert of the same rows."""
    world.site("A団地")
    for n in range(3):
        world.resident(f"R{n}", f"090-2500-{n:04d}", site="A団地", language=("ja", "vi", "ne")[n])
    world.resident("LANDLINE", "0768-22-0001", site="A団地")
    round_id = _round(world)
    world.clock.advance(minutes=1)
    checkins.fan_out_round(lambda: Session(world.engine), round_id, world.clock.now)
    tables = [CheckIn.__table__, Attempt.__table__, OutboxMessage.__table__]

    def stored() -> list[list[tuple]]:
        with world.engine.connect() as connection:
            return [
                [
                    tuple(row)
                    for row in connection.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY id")
                ]
                for table in tables
            ]

    by_insert_rows = stored()
    assert [len(rows) for rows in by_insert_rows] == [4, 4, 4]
    with world.engine.begin() as connection:
        rows = [
            [dict(row._mapping) for row in connection.execute(select(table))] for table in tables
        ]
        for table in reversed(tables):
            connection.execute(table.delete())
        for table, data in zip(tables, rows, strict=True):
            connection.execute(table.insert(), data)
    assert stored() == by_insert_rows


def test_a_plan_that_ran_out_during_downtime_escalates_rather_than_being_superseded(world):
    """The scheduler is down while R1's last step waits out (no reply) and R2 is only due
    a reminder. A new round then starts before the sweep has caught up: R1 is escalated to
    their member, as the sweep would have done; R2's check-in is superseded as usual."""
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-2600-0001", site="A団地")
    world.resident("R2", "090-2600-0002", site="A団地")
    world.assign("R1", "M1", 1)
    world.assign("R2", "M1", 1)
    sms = {"channel": "sms", "message": "prompt", "wait_minutes": 60}
    reminder = {**sms, "message": "reminder"}
    last_step = flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        resident_ids=[world.residents["R1"]],
        plan=[sms],
    )
    mid_plan = flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        resident_ids=[world.residents["R2"]],
        plan=[sms, reminder],
    )
    world.tick()  # both first messages go out
    world.clock.advance(minutes=90)  # down: nothing sweeps
    new = flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    states, _ = _by_round(world)
    r1, r2 = world.residents["R1"], world.residents["R2"]
    assert states[last_step] == {r1: CheckInState.no_reply}
    assert states[mid_plan] == {r2: CheckInState.superseded}
    assert states[new] == {r1: CheckInState.waiting, r2: CheckInState.waiting}
    with world.session() as s:
        [r2_old] = s.exec(select(CheckIn).where(CheckIn.round_id == mid_plan)).all()
        steps = s.exec(select(Attempt.step_index).where(Attempt.checkin_id == r2_old.id)).all()
    assert r2_old.step_index == 0 and steps == [0]  # R2's reminder was never taken
    with world.session() as s:
        [escalation] = s.exec(select(Escalation)).all()
    assert escalation.resident_id == r1 and escalation.reason == "no_reply"
    world.tick()
    alerts = [m for m in world.sent_to("+818030000001") if m.purpose == "alert"]
    assert len(alerts) == 1


def test_the_count_of_residents_away_adds_up_over_chunks_and_concurrent_writers(world):
    """Each chunk adds its residents who are away to the round's count in the database:
    a chunk that read the round before another fan-out of it committed loses nothing."""
    world.site("A団地")
    for n in range(5):
        world.resident(
            f"AWAY{n}", f"090-2700-{n:04d}", site="A団地", status="away", away_until="2026-12-31"
        )
    world.resident("HOME", "090-2700-0099", site="A団地")
    round_id = _round(world)
    with Session(world.engine) as stale, Session(world.engine) as other:
        stale_round = stale.get(Round, round_id)  # read, as fan_out_round reads it
        other.get(Round, round_id).skipped_away = 7  # someone else's chunks, committed first
        other.commit()
        checkins.fan_out_chunk(stale, stale_round, world.clock.now(), 3)
        stale.commit()
    checkins.fan_out_round(lambda: Session(world.engine), round_id, world.clock.now, 2)
    with Session(world.engine) as s:
        assert s.get(Round, round_id).skipped_away == 7 + 5


def test_a_daily_round_after_days_of_downtime_is_for_today_and_asks_everyone(world):
    """Down from day 1, 09:59 to day 3, 14:00, with a noon broadcast on day 1 that R1
    answered. The missed runs make one round, for day 3's 10:00: it is newer than the
    broadcast, so R1 is asked again (their "fine" is two days old)."""
    from zoneinfo import ZoneInfo

    world.site("A団地")
    world.resident("R1", "090-2400-0001", site="A団地")
    _daily_round_at_ten(world)
    world.clock.advance(hours=2, minutes=1)  # day 1, 12:00
    quake = flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.sms("+819024000001", "1")
    world.clock.advance(days=2, hours=2)  # day 3, 14:00
    flows.start_due_rounds(world.engine, world.clock.now)
    with world.session() as s:
        [daily] = s.exec(select(Round).where(Round.kind == RoundKind.scheduled)).all()
        [late] = s.exec(select(AuditEntry).where(AuditEntry.action == "late")).all()
    tokyo = ZoneInfo("Asia/Tokyo")
    assert aware(daily.scheduled_for).astimezone(tokyo).strftime("%d %H:%M") == "03 10:00"
    assert late.detail["runs"] == 3  # day 1, day 2 and day 3 at 10:00, in one round
    assert late.detail["late_seconds"] == 2 * 86400 + 4 * 3600  # since the first missed
    states, _ = _by_round(world)
    r1 = world.residents["R1"]
    assert states == {quake: {r1: CheckInState.ok}, daily.id: {r1: CheckInState.waiting}}


def test_a_resident_away_during_a_newer_broadcast_is_asked_by_an_older_round_resumed(world):
    """R1 was away when the broadcast fanned out (its check-in closed at once, nobody
    asked); back home, they are asked by the morning round that resumes afterwards."""
    world.site("A団地")
    r1 = world.resident("R1", "090-2800-0001", site="A団地", status="away", away_until="2026-12-31")
    world.resident("R2", "090-2800-0002", site="A団地")
    morning = _round(world, kind=RoundKind.scheduled)
    world.clock.advance(minutes=1)
    quake = _round(world)
    checkins.fan_out_round(lambda: Session(world.engine), quake, world.clock.now)
    with Session(world.engine) as s:
        resident = s.get(Resident, r1)
        resident.status, resident.away_until = "active", None
        s.commit()
    checkins.fan_out_round(lambda: Session(world.engine), morning, world.clock.now)
    states, _ = _by_round(world)
    r2 = world.residents["R2"]
    assert states[quake] == {r1: CheckInState.superseded, r2: CheckInState.waiting}
    assert states[morning] == {r1: CheckInState.waiting, r2: CheckInState.superseded}


@pytest.mark.parametrize("first", ["older", "newer"])
def test_chunks_of_two_rounds_taking_turns_leave_every_resident_to_the_newer(world, first):
    """The two rounds' chunks alternate, in either order: a chunk of the older round
    after the newer's closes its check-ins at once; a chunk of the newer round after the
    older's supersedes them and cancels their messages."""
    world.site("A団地")
    for n in range(9):
        world.resident(f"R{n}", f"090-2900-{n:04d}", site="A団地")
    older = _round(world, kind=RoundKind.scheduled)
    world.clock.advance(seconds=1)
    newer = _round(world)
    order = [older, newer] if first == "older" else [newer, older]
    cursors: dict = {older: None, newer: None}
    for _ in range(5):  # 9 residents in chunks of 2
        for round_id in order:
            with Session(world.engine) as s:
                round_ = s.get(Round, round_id)
                _, cursors[round_id] = checkins._fan_out_chunk(
                    s, round_, world.clock.now(), 2, cursors[round_id]
                )
                s.commit()
    states, pending = _by_round(world)
    assert len(states[newer]) == len(states[older]) == 9
    assert set(states[newer].values()) == {CheckInState.waiting}
    assert set(states[older].values()) == {CheckInState.superseded}
    with Session(world.engine) as s:
        newer_checkins = set(s.exec(select(CheckIn.id).where(CheckIn.round_id == newer)).all())
    assert {checkin for checkin, _ in pending} == newer_checkins

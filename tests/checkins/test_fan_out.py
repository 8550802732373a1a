"""Fan-out of rounds that overlap: a resident is asked by one round at a time."""

from __future__ import annotations

import threading
from collections import Counter

from sqlmodel import Session, select

from service.checkins import service as checkins
from service.checkins.models import CheckIn, CheckInState, RoundKind
from service.telephony.models import OutboxMessage


def test_two_rounds_fanning_out_at_once_leave_each_resident_one_waiting_checkin(world):
    """The morning round and an earthquake broadcast fan out at the same moment, in small
    chunks, on two threads. Chunk by chunk they take turns (the organization's fan-out
    lock), so every resident ends with one waiting check-in and one first message queued:
    the other round's is superseded, and its queued message cancelled."""
    world.site("A団地")
    for n in range(40):
        world.resident(f"R{n:02d}", f"090-2000-{n:04d}", site="A団地")
    rounds = []
    with Session(world.engine) as s:
        for kind in (RoundKind.broadcast, RoundKind.broadcast):
            round_ = checkins.start_round(
                s,
                organization_id=world.org_id,
                kind=kind,
                started_by="test",
                now=world.clock.now(),
                override_quiet_hours=True,
            )
            rounds.append(round_.id)
        s.commit()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def fan_out(round_id) -> None:
        try:
            start.wait(10)
            checkins.fan_out_round(lambda: Session(world.engine), round_id, world.clock.now, 3)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fan_out, args=(r,)) for r in rounds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []

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

"""The escalation sweep's stale-step guard: a member's answer that comes in while the sweep
is moving the same case on is never written over, on either database."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import event
from sqlmodel import select

from service.checkins import flows
from service.common import aware
from service.escalations.models import Alert, AlertState, Escalation, EscalationState

M1, M2 = "+818030000001", "+818030000002"


def test_a_members_yes_while_the_sweep_moves_the_case_on_is_never_written_over(world):
    """M1's "1" arrives just as the sweep, M1's window over, expires M1's alert and alerts
    M2. Whichever goes first, the case ends consistent: acknowledged by M1 with no alert
    still waiting, or alerting M2 at the next step. Never acknowledged while M2 is still
    being asked, nor alerting with M1's acknowledgement half applied."""
    world.silent_case()  # R1 silent: a case alerting M1, then M2
    with world.session() as s:
        [escalation] = s.exec(select(Escalation)).all()
        assert escalation.state == EscalationState.alerting and escalation.step_index == 0
    world.clock.advance(minutes=escalation.ack_minutes)
    replied: list[threading.Thread] = []

    def answer_now(conn, cursor, statement, parameters, context, executemany) -> None:
        # The sweep has read the due case (it now reads its resident): M1 answers, on
        # another thread, given half a second to finish.
        if replied or not statement.lstrip().startswith("SELECT resident."):
            return
        thread = threading.Thread(target=world.sms, args=(M1, "1"))
        replied.append(thread)
        thread.start()
        thread.join(0.5)

    event.listen(world.engine, "before_cursor_execute", answer_now)
    try:
        flows.sweep_escalations(world.engine, world.clock.now)
    finally:
        event.remove(world.engine, "before_cursor_execute", answer_now)
    [thread] = replied
    thread.join(30)
    assert not thread.is_alive()
    with world.session() as s:
        [escalation] = s.exec(select(Escalation)).all()
        waiting = {
            (a.member_id, a.step_index)
            for a in s.exec(select(Alert).where(Alert.state == AlertState.sent)).all()
        }
    if escalation.state == EscalationState.acknowledged:
        assert escalation.acknowledged_by == world.members["M1"]
        assert waiting == set()
        # Its next step is the outcome reminder, not another acknowledgement window.
        assert aware(escalation.next_action_at) == aware(escalation.acknowledged_at) + timedelta(
            hours=escalation.outcome_hours
        )
    else:
        assert escalation.state == EscalationState.alerting
        assert escalation.step_index == 1 and escalation.acknowledged_by is None
        assert waiting == {(world.members["M2"], 1)}

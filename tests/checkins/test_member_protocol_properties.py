"""The member protocol under every order of answers: hypothesis drives the real webhook,
the real escalation service and the real database with members' messages about two cases
(the code before or after the digit, bare digits, repeats), staff taking a case for a
member, time passing, and the scheduler's sweeps, and checks after every step:

- a case closes only by the result its holder sent, naming it (code first, or "3 A7"), after
  taking it: never by a resent acknowledgement (digit first, however written), an answer
  about another case, or a bare digit;
- an answer changes only the case it names (a bare one, at most one case);
- the holder's digit-first "1" about their case changes nothing (the acknowledgement again);
- the holder's digit-first "2" about their case hands it on at once (member protocol v2);
- time alone (a sweep: the chain moving on, a reminder, a hand-on) never closes a case.

Each example is a new organization (its own members, residents and case codes) in the
test's database, so examples do not see each other's cases. The seed is fixed
(``derandomize``) and the number of examples bounded, so the run is the same every time.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from service.auth.service import get_or_create_organization
from service.common import aware
from service.escalations import service as escalations
from service.escalations.models import (
    Alert,
    AlertState,
    Escalation,
    EscalationReason,
    Outcome,
)
from service.registry.models import Resident

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Case:
    """What a step may change about a case, read before and after it."""

    code: str
    state: str
    holder: uuid.UUID | None
    taken_at: datetime | None
    step: int
    outcome: str | None


class Protocol:
    """Two residents who stayed silent, each case alerting M1, then M2."""

    def __init__(self, world) -> None:
        n = next(_numbers)
        with world.session() as s:
            org = get_or_create_organization(session=s, name=f"協議会 {n} {uuid.uuid4().hex[:6]}")
            s.commit()
            org_id = org.id
        self.world = replace(world, org_id=org_id, sites={}, residents={}, members={})
        self.phones = {}
        for key in ("M1", "M2"):
            number = next(_numbers)
            self.world.member(key, f"080-{4000 + number // 10000:04d}-{number % 10000:04d}")
            self.phones[key] = f"+8180{4000 + number // 10000:04d}{number % 10000:04d}"
        for key in ("R1", "R2"):
            self.world.resident(key, None)
            self.world.assign(key, "M1", 1)
            self.world.assign(key, "M2", 2)
        with self.world.session() as s:
            for key in ("R1", "R2"):
                escalations.open_escalation(
                    s,
                    resident=s.get(Resident, self.world.residents[key]),
                    reason=EscalationReason.no_reply,
                    now=world.clock.now(),
                )
            s.commit()
        cases = self.cases()
        self.codes = {"A": cases["R1"].code, "B": cases["R2"].code}

    def cases(self) -> dict[str, Case]:
        names = {v: k for k, v in self.world.residents.items()}
        with self.world.session() as s:
            rows = s.exec(
                select(Escalation).where(Escalation.organization_id == self.world.org_id)
            ).all()
            return {
                names[e.resident_id]: Case(
                    e.case_code,
                    e.state,
                    e.acknowledged_by,
                    aware(e.acknowledged_at),
                    e.step_index,
                    e.outcome,
                )
                for e in rows
            }

    def open_to(self, member: str) -> set[str]:
        """The codes of the cases waiting for this member's "1"/"2", or held by them."""
        member_id = self.world.members[member]
        with self.world.session() as s:
            waiting = s.exec(
                select(Escalation.case_code)
                .join(Alert, Alert.escalation_id == Escalation.id)
                .where(
                    Alert.member_id == member_id,
                    Alert.state == AlertState.sent,
                    Escalation.state == "alerting",
                    Escalation.organization_id == self.world.org_id,
                )
            ).all()
            held = s.exec(
                select(Escalation.case_code).where(
                    Escalation.acknowledged_by == member_id,
                    Escalation.state == "acknowledged",
                )
            ).all()
        return set(waiting) | set(held)

    def close_all(self) -> None:
        """Staff record the example's open cases, so later examples' sweeps skip them."""
        with self.world.session() as s:
            for escalation in s.exec(
                select(Escalation).where(
                    Escalation.organization_id == self.world.org_id,
                    Escalation.state != "resolved",
                )
            ).all():
                escalations.resolve(
                    s,
                    escalation=escalation,
                    outcome=Outcome.moved,
                    now=self.world.clock.now(),
                    actor="staff:test",
                )
            s.commit()

    # --- steps --------------------------------------------------------------------------
    def say(self, member: str, text: str) -> None:
        self.world.clock.advance(minutes=1)
        self.world.sms(self.phones[member], text, sid="SM" + uuid.uuid4().hex)

    def staff_take(self, case: str, member: str) -> None:
        """Staff take the case for the member (after a phone call), if it is still open."""
        with self.world.session() as s:
            escalation = s.exec(
                select(Escalation).where(
                    Escalation.case_code == self.codes[case],
                    Escalation.organization_id == self.world.org_id,
                )
            ).one()
            escalations.acknowledge(
                s,
                escalation=escalation,
                member_id=self.world.members[member],
                now=self.world.clock.now(),
                actor="staff:test",
            )
            s.commit()


# A message: who sends it, the digit, and where the case code goes (none, before, after).
# Mostly M1 (alerted first) and "1", the answers the reproductions are made of.
MESSAGE = st.tuples(
    st.just("say"),
    st.sampled_from(["M1", "M1", "M1", "M2"]),
    st.sampled_from(["1", "1", "2", "3"]),
    st.sampled_from([None, "A", "A", "B"]),
    st.booleans(),  # the code before the digit
)
STEP = st.one_of(
    MESSAGE,
    MESSAGE,
    MESSAGE,
    MESSAGE,
    st.tuples(st.just("wait"), st.sampled_from([5, 20])),
    st.tuples(st.just("staff"), st.sampled_from(["A", "B"]), st.sampled_from(["M1", "M2"])),
    # The scheduler's sweeps after an alert's window (30 minutes) or a holder's time to
    # report (4 hours): the chain moves on, the holder is reminded, then handed on.
    st.tuples(st.just("sweep"), st.sampled_from([30, 241])),
)
# The messages of the four reproductions, to be tried in every order.
CORE = [
    ("say", "M1", "1", None, False),
    ("say", "M1", "2", None, False),
    ("say", "M1", "1", "A", False),
    ("say", "M1", "1", "A", True),
    ("say", "M1", "1", "B", False),
    ("staff", "A", "M1"),
    ("wait", 20),
]


def _text(digit: str, code: str | None, first: bool) -> str:
    if code is None:
        return digit
    return f"{code} {digit}" if first else f"{digit} {code}"


def _run(world, steps) -> None:
    protocol = Protocol(world)
    try:
        for step in steps:
            _step(world, protocol, step)
    finally:
        protocol.close_all()


def _step(world, protocol: Protocol, step: tuple) -> None:
    before = protocol.cases()
    if step[0] == "wait":
        world.clock.advance(minutes=step[1])
        return
    if step[0] == "sweep":
        world.tick(step[1])
        after = protocol.cases()
        for key, was in before.items():
            # Time alone never closes a case, nor records an outcome.
            assert (after[key].state == "resolved") == (was.state == "resolved"), step
            assert after[key].outcome == was.outcome, (step, was)
        return
    if step[0] == "staff":
        protocol.staff_take(step[1], step[2])
        _only_named_changed(before, protocol.cases(), {protocol.codes[step[1]]}, step)
        return
    _, member, digit, case, first = step
    code = protocol.codes[case] if case else None
    open_to = protocol.open_to(member)
    protocol.say(member, _text(digit, code, first))
    sent_at = world.clock.now()
    after = protocol.cases()
    member_id = protocol.world.members[member]
    if code:
        _only_named_changed(before, after, {code}, step)
    else:  # a bare digit: about the member's one case, if they have one
        assert sum(after[key] != was for key, was in before.items()) <= 1, step
    named = {code} if code else open_to if len(open_to) == 1 else set()
    code_first = code is not None and first
    for key, was in before.items():
        is_ = after[key]
        holds = was.holder == member_id and was.state == "acknowledged"
        if is_.state == "resolved" and was.state != "resolved":
            # Closed by this message: its holder's result, naming it, after taking it. A
            # result is code first ("A7 1"), or "3 A7" (no alert reading exists for 3).
            assert holds, (step, was, is_)
            assert code == was.code and (code_first or digit == "3"), (step, was, is_)
            assert (is_.outcome, digit) in {
                ("safe", "1"),
                ("needs_support", "2"),
                ("hospitalised", "3"),
            }, (step, was, is_)
            assert was.taken_at is not None and was.taken_at <= sent_at
        if holds and was.code in named and not code_first and digit == "1":
            # "1" again, digit first, however written: the acknowledgement again.
            assert is_ == was, (step, was, is_)
        if holds and was.code in named and not code_first and digit == "2":
            # "I cannot go after all": the case moves on at once.
            assert is_.holder is None and is_.state in ("alerting", "exhausted"), step
            assert is_.step > was.step, step


def _only_named_changed(before: dict[str, Case], after: dict[str, Case], named, step) -> None:
    for key, was in before.items():
        if was.code not in named:
            assert after[key] == was, (step, was, after[key])


COMMON = dict(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(max_examples=30, **COMMON)
@given(steps=st.permutations(CORE))
def test_the_reproductions_messages_in_any_order_close_nothing_by_mistake(world, steps):
    _run(world, steps)


@settings(max_examples=100, **COMMON)
@given(steps=st.lists(STEP, min_size=1, max_size=10))
def test_members_answers_in_any_order_close_only_what_their_holder_reported(world, steps):
    _run(world, steps)

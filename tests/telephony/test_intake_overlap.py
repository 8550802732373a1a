"""Overlapping batches in the SMS intake (service/telephony/intake.py, issue #20).

Two writers overlap their batches: while one commits, the next reads and writes its keys.
What a single writer promised must still hold: no answer before its reply is committed,
commits in arrival order, the per-recipient cap counting the answers of a batch still in
flight, and a batch that fails anywhere writes nothing and hands its requests to the route,
without holding up the batch after it.
"""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from i18n import classifier
from service.app import create_app
from service.checkins import service as checkins
from service.config import get_settings
from service.telephony import intake
from service.telephony.models import (
    InboundMessage,
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
)
from service.telephony.outbox import enqueue
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.test_intake import form, phone
from tests.telephony.worlds import messages_in, signed_headers, start_round_for


def stored_sids(world: World) -> set[str]:
    with Session(world.engine) as s:
        return set(s.execute(select(InboundMessage.message_sid)).scalars())


class HeldTurn(intake.Turn):
    """A real turn whose commit waits until the test lets it go."""

    def __init__(self, turn: intake.Turn) -> None:
        super().__init__(turn._order, turn._number)
        self.at_commit = threading.Event()
        self.go = threading.Event()

    @contextmanager
    def commit(self) -> Iterator[None]:
        with super().commit():
            self.at_commit.set()
            assert self.go.wait(10)
            yield


def residents(world: World, count: int) -> None:
    for n in range(count):
        world.resident(f"R{n}", phone(n)[0])
    start_round_for(world, *[f"R{n}" for n in range(count)])
    world.tick()


def in_thread(target: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, out


def test_the_next_batch_commits_only_after_the_one_before(world: World):
    """Commits stay in arrival order: the scheduler never sees a later reply of a resident
    without the earlier one, even when the later batch is ready first."""
    residents(world, 4)
    order = intake.Order()
    first, second = HeldTurn(order.next_turn()), order.next_turn()
    a, a_out = in_thread(intake.take_replies, [form("SM-a", phone(0)[1], "1")], turn=first)
    assert first.at_commit.wait(10)
    b, b_out = in_thread(
        intake.take_replies,
        [form("SM-b1", phone(1)[1], "1"), form("SM-b2", phone(0)[1], "2")],
        turn=second,
    )
    b.join(0.5)
    assert b.is_alive()  # ready, and waiting for the first batch's commit
    assert stored_sids(world) == set()  # nothing committed, so nothing answered yet
    first.go.set()
    a.join(10)
    b.join(10)
    [a_result], [b_result] = a_out, b_out
    assert (a_result.stored, b_result.stored) == (1, 2)
    assert stored_sids(world) == {"SM-a", "SM-b1", "SM-b2"}


def test_a_retry_in_the_next_batch_waits_for_the_first_and_is_a_duplicate(world: World):
    residents(world, 3)
    order = intake.Order()
    first, second = HeldTurn(order.next_turn()), order.next_turn()
    a, a_out = in_thread(
        intake.take_replies, [form("SM-a0", phone(0)[1], "1"), form("SM-a1", phone(1)[1], "1")],
        turn=first,
    )  # fmt: skip
    assert first.at_commit.wait(10)
    b, b_out = in_thread(
        intake.take_replies,
        [form("SM-b2", phone(2)[1], "1"), form("SM-a1", phone(1)[1], "1")],  # a retry of a1
        turn=second,
    )
    b.join(0.5)
    first.go.set()
    a.join(10)
    b.join(10)
    assert not a.is_alive() and not b.is_alive()  # no deadlock between the two
    [a_result], [b_result] = a_out, b_out
    assert (a_result.stored, b_result.stored, b_result.duplicates) == (2, 1, 1)
    assert messages_in(b_result.answers[1] or "") == []  # the retry: stored once, by a
    assert stored_sids(world) == {"SM-a0", "SM-a1", "SM-b2"}


def test_a_batch_in_flight_counts_against_the_cap_of_the_next(world: World):
    residents(world, 1)  # the check-in SMS: one sent this hour
    cap = get_settings().sms_per_recipient_per_hour
    now = world.clock.now()
    with Session(world.engine) as s:
        for i in range(cap - 2):
            message = enqueue(
                s,
                organization_id=world.org_id,
                channel=OutboxChannel.sms,
                purpose=OutboxPurpose.resident_notice,
                to_phone=phone(0)[1],
                body=f"notice {i}",
                now=now - timedelta(minutes=30),
            )
            message.status = OutboxStatus.sent
            message.sent_at = now - timedelta(minutes=30)
        s.commit()
    order = intake.Order()
    first, second = HeldTurn(order.next_turn()), order.next_turn()
    a, a_out = in_thread(intake.take_replies, [form("SM-a", phone(0)[1], "?")], turn=first)
    assert first.at_commit.wait(10)
    b, b_out = in_thread(intake.take_replies, [form("SM-b", phone(0)[1], "1")], turn=second)
    b.join(0.5)
    first.go.set()
    a.join(10)
    b.join(10)
    [a_result], [b_result] = a_out, b_out
    assert messages_in(a_result.answers[0] or "") != []  # the last answer under the cap
    assert b_result.capped == [phone(0)[1]]  # a's answer was not committed when b counted
    assert messages_in(b_result.answers[0] or "") == []
    with Session(world.engine) as s:
        sms = s.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.to_phone == phone(0)[1], OutboxMessage.channel == "sms")
        ).scalar_one()
    assert sms == cap
    assert order.in_flight == {}  # nothing left counted once both committed


def test_a_batch_that_fails_at_its_commit_writes_nothing_and_the_next_goes_on(world: World):
    residents(world, 3)
    order = intake.Order()
    first, second = HeldTurn(order.next_turn()), order.next_turn()
    a, a_out = in_thread(
        _failing_at_commit,
        [form("SM-a0", phone(0)[1], "1"), form("SM-a1", phone(1)[1], "1")],
        first,
    )
    assert first.at_commit.wait(10)
    b, b_out = in_thread(intake.take_replies, [form("SM-b2", phone(2)[1], "1")], turn=second)
    first.go.set()
    a.join(10)
    b.join(10)
    assert a_out == ["failed"]
    [b_result] = b_out
    assert b_result.stored == 1
    assert stored_sids(world) == {"SM-b2"}  # the failed batch wrote nothing, not even keys
    # Twilio's retry (or the route, which the intake hands a failed batch to) stores them.
    again = intake.take_replies([form("SM-a0", phone(0)[1], "1"), form("SM-a1", phone(1)[1], "1")])
    assert again.stored == 2
    assert stored_sids(world) == {"SM-a0", "SM-a1", "SM-b2"}
    assert order.in_flight == {}


def _failing_at_commit(forms: list[dict[str, str]], turn: HeldTurn) -> str:
    real = Session.commit

    def broken(self: Session) -> None:
        if threading.current_thread() is me:
            raise RuntimeError("the connection broke at the commit")
        real(self)

    me = threading.current_thread()
    Session.commit = broken  # type: ignore[method-assign]
    try:
        intake.take_replies(forms, turn=turn)
    except RuntimeError:
        return "failed"
    finally:
        Session.commit = real  # type: ignore[method-assign]
    return "committed"


def test_two_writers_answer_only_what_is_committed(world: World, monkeypatch: pytest.MonkeyPatch):
    """Through the intake's own writers: when a batch's answers are handed back, each reply
    answered can already be read from another connection (it is committed)."""
    residents(world, 40)
    writer = intake.SmsIntake(writers=2)
    real_take = intake.take_replies
    checked: list[str] = []

    def take_and_check(forms: list[dict[str, str]], *args: Any, **kwargs: Any) -> Any:
        result = real_take(forms, *args, **kwargs)
        visible = stored_sids(world)  # another connection: what is committed
        for f, answer in zip(forms, result.answers, strict=True):
            assert answer is not None and f["MessageSid"] in visible
            checked.append(f["MessageSid"])
        return result

    monkeypatch.setattr(intake, "take_replies", take_and_check)

    async def burst() -> list[str | None]:
        tasks = []
        for n in range(40):
            tasks.append(asyncio.ensure_future(writer.take(form(f"SM-{n}", phone(n)[1], "1"))))
            if n % 5 == 0:
                await asyncio.sleep(0.002)  # several batches, overlapping
        return await asyncio.gather(*tasks)

    answers = asyncio.run(burst())
    assert all(messages_in(answer or "") != [] for answer in answers)
    assert sorted(checked) == sorted(f"SM-{n}" for n in range(40))  # each checked once
    assert stored_sids(world) == {f"SM-{n}" for n in range(40)}
    assert len(writer._threads) == 2 and writer.batches > 1


def test_the_app_warms_the_classifier_and_starts_the_writers_at_start_up(engine: Engine):
    """Starting the app (its lifespan) builds the reply classifier's tables and starts the
    writers, before any resident replies."""
    classifier._tables.cache_clear()
    with TestClient(create_app()):
        assert classifier._tables.cache_info().currsize == 1
        assert intake.INTAKE._threads and all(t.is_alive() for t in intake.INTAKE._threads)


@pytest.mark.parametrize("signature", [b"", b"not-base64", "s\u00e9gn\u00e9".encode("latin-1")])
def test_a_bad_signature_header_is_refused_by_the_route(world: World, signature: bytes):
    """The intake's quicker signature check still sends a bad signature (empty, wrong, or
    not ASCII) to the route, which refuses it with 403; nothing is stored."""
    residents(world, 1)
    params = form("SM-a", phone(0)[1], "1")
    response = world.client.post(
        "/twilio/sms", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403
    assert stored_sids(world) == set()


def test_a_genuine_signature_is_taken_by_the_intake(world: World):
    residents(world, 1)
    batches = intake.INTAKE.batches
    params = form("SM-a", phone(0)[1], "1")
    response = world.client.post(
        "/twilio/sms", data=params, headers=signed_headers("/twilio/sms", params)
    )
    assert response.status_code == 200 and messages_in(response.text) != []
    assert intake.INTAKE.batches == batches + 1  # the intake answered, not the route
    assert stored_sids(world) == {"SM-a"}


def test_a_row_the_database_refuses_fails_the_whole_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    """On PostgreSQL the inserts and the commit go out together (pipeline mode), so the
    database's refusal comes at the commit: still nothing of the batch is written."""
    residents(world, 2)
    real = checkins.reply_sent_row

    def refused(**kwargs: Any) -> dict[str, Any]:
        row = real(**kwargs)
        return {**row, "channel": None} if kwargs["to_phone"] == phone(1)[1] else row

    monkeypatch.setattr(checkins, "reply_sent_row", refused)
    with pytest.raises(IntegrityError):
        intake.take_replies([form("SM-a0", phone(0)[1], "1"), form("SM-a1", phone(1)[1], "1")])
    assert stored_sids(world) == set()
    monkeypatch.undo()
    assert intake.take_replies([form("SM-a0", phone(0)[1], "1")]).stored == 1  # keys not kept

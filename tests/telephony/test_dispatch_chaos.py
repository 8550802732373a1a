"""SIGKILL the dispatcher while it sends a round: nobody is left out, nobody hears twice (#16).

A real ``mimamori scheduler`` process sends a round's first check-in SMS to a
Twilio-compatible server of our own on loopback (``tests/support/fake_twilio``), at a low
rate cap so that sending takes many seconds. The test kills it with SIGKILL at random
moments while it sends (a crash, an out-of-memory kill, a failed node: no clean-up, no
rollback, requests cut off in flight) and starts a new one each time. The server, in a
process of its own, keeps the record of what Twilio would have accepted; the assertions
are made on that record, where a resident would see the result:

- every resident got exactly one first check-in SMS, and nothing was sent twice;
- all of them within a minute of the last kill;
- the outbox knows each message's SID, the same one the server gave (a request cut off in
  flight was reconciled with the server's list resource, not guessed).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from tests.support.dispatch_harness import (
    Dispatchers,
    outbox_sids,
    outbox_statuses,
    sigkill,
    start_round,
    wait_until,
)
from tests.support.fake_twilio import FakeConfig, FakeTwilioProcess


@pytest.fixture
def twilio(tmp_path: Path) -> Iterator[FakeTwilioProcess]:
    with FakeTwilioProcess(FakeConfig(latency_ms=100), log=tmp_path / "fake-twilio.log") as fake:
        yield fake


@pytest.fixture
def dispatchers(
    database_url: str, twilio: FakeTwilioProcess, tmp_path: Path
) -> Iterator[Dispatchers]:
    handle = Dispatchers(database_url=database_url, twilio=twilio, folder=tmp_path)
    yield handle
    handle.stop_all()


RESIDENTS = 300
RATE = 20  # SMS per second: 300 first messages take 15 s of sending
KILLS = 5
AFTER_LAST_KILL = 60.0  # seconds: the bound


def reconciliations(engine: Engine) -> dict[str, int]:
    """How uncertain rows were resolved (the outbox's ``reconciliation`` column, if any)."""
    with engine.connect() as connection:
        if "reconciliation" not in {c["name"] for c in inspect(connection).get_columns("outbox")}:
            return {}
        rows = connection.execute(
            text("SELECT reconciliation, count(*) FROM outbox GROUP BY reconciliation")
        ).all()
    return {str(kind): n for kind, n in rows if kind is not None}


@pytest.mark.slow
def test_sigkill_during_dispatch_loses_and_duplicates_nobody(engine, twilio, dispatchers):
    rng = random.Random(int(os.environ.get("MIMAMORI_CHAOS_SEED", "16")))
    org_id, phones = start_round(engine, RESIDENTS)
    assert outbox_statuses(engine, org_id) == {"pending": RESIDENTS}

    kills: list[dict[str, Any]] = []
    for _kill in range(KILLS):
        process = dispatchers.start(sms_per_second=str(RATE))
        before = twilio.stats()["messages"]
        # Wait until this one sends (it must first win the leader lock the last one held),
        # then let it send for a random while and kill it mid-flow. A dispatcher that sends
        # nothing at all is killed anyway after a while: that is a finding too.
        sending = wait_until(lambda before=before: twilio.stats()["messages"] > before, 30)
        time.sleep(rng.uniform(0.3, 2.0))
        at_kill = twilio.stats()
        sigkill(process)
        kills.append(
            {
                "at": time.time(),
                "sent_by_it": at_kill["messages"] - before,
                "in_flight": at_kill["in_flight"],
                "statuses": dict(outbox_statuses(engine, org_id)),
                "was_sending": sending,
            }
        )
    last_kill = kills[-1]["at"]
    final = dispatchers.start(sms_per_second=str(RATE))

    def everyone_once() -> bool:
        sids = outbox_sids(engine, org_id)
        return len(twilio.messages_per_recipient()) == RESIDENTS and all(sids.values())

    done = wait_until(everyone_once, AFTER_LAST_KILL, every=0.5)
    messages = twilio.messages()
    per_phone = Counter(m["to"] for m in messages)
    reconciled = reconciliations(engine)
    report = (
        f"kills: {kills}\nreconciled: {reconciled}\n"
        f"at the server: {len(messages)} messages to {len(per_phone)} of {RESIDENTS} residents; "
        f"outbox: {dict(outbox_statuses(engine, org_id))}\n{dispatchers.tails()}"
    )
    final.stop()
    print(
        f"\nchaos: {KILLS} kills, {sum(k['in_flight'] for k in kills)} requests in flight at "
        f"them; last resident's SMS {max(m['created'] for m in messages) - last_kill:.1f} s "
        f"after the last kill; {len(messages)} messages to {len(per_phone)} residents; "
        f"reconciled: {reconciled}"
    )

    # Every resident got exactly one first SMS; nothing was sent twice.
    missing = sorted(set(phones) - set(per_phone))
    twice = {phone: n for phone, n in per_phone.items() if n > 1}
    strangers = set(per_phone) - set(phones)
    assert (len(missing), twice, strangers) == (0, {}, set()), report
    # All of them within a minute of the last kill.
    latest = max(m["created"] for m in messages)
    assert done and latest - last_kill <= AFTER_LAST_KILL, report
    # The outbox holds the SID each message got at the server: requests cut off in flight
    # were reconciled with Twilio's record, not left uncertain or sent again.
    sids = outbox_sids(engine, org_id)
    assert sids == {m["to"]: m["sid"] for m in messages}, report
    assert all(k["was_sending"] for k in kills), report

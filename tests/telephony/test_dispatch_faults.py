"""Twilio failing a third of the time still gets every message exactly once, on time (#16).

A real ``mimamori scheduler`` sends a round to the fake Twilio server
(``tests/support/fake_twilio``) while the server answers 30 % of requests with 500 or 503
(nothing created), lets 10 % time out *after* creating the message, and answers bursts of
429 with ``Retry-After``. The server's record of every request is the evidence:

- every resident has exactly one message, and the outbox has its SID (the timed-out ones
  were found in Twilio's list resource, not sent again);
- every retry came when its backoff or ``Retry-After`` said, within about a second;
- a round's first step takes at most twice as long with these faults as without them, at
  the same rate cap.

Timeouts. The dispatcher's read timeout is 30 s; these tests cannot wait that long for
each. Unless the service lets the timeout be set, the server drops the connection after
``HANG_SECONDS`` instead of answering: the request was sent and no answer came, which the
dispatcher must treat exactly as its own read timeout (an uncertain send, reconciled).

Scale. The two-times bound is tested at the issue's own size (2,000 residents at 50 SMS/s)
and not scaled down, because it does not scale down fairly. With a share p of failed
requests, a step of N messages at rate r takes about N / (r (1 - p)) for the requests
themselves (failed ones use the cap too), plus a tail: the unluckiest of N residents
fails about log(N) / log(1/p) times in a row (5 for 400, 6.3 for 2,000, at p = 0.3) and
waits a backoff each time. The tail grows with log N, the step with N: a 10 s round of
400 would leave a dispatcher 1.4 s of tail where 2,000 at 50/s leave it about 20 s, so
the small round would demand much more than the issue does. Retry timing, which does not
depend on size, is tested on a small round.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.telephony.outbox import BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS
from tests.support.dispatch_harness import (
    READ_TIMEOUT_SETTING,
    Dispatchers,
    outbox_sids,
    outbox_statuses,
    start_round,
    wait_until,
)
from tests.support.fake_twilio import FakeConfig, FakeTwilioProcess

RETRY_TOLERANCE = 1.0  # seconds: "within about a second" of what the backoff says
LATENCY = 0.1  # the server's answer time: a backoff starts when the answer arrives


def faults(hang_seconds: float, **more: Any) -> dict[str, Any]:
    """30 % server errors and 10 % timeouts after the message was created."""
    config: dict[str, Any] = {
        "error_5xx": 0.3,
        "timeout_after_create": 0.1,
        "hang_seconds": hang_seconds,
        "hang_then": "answer" if READ_TIMEOUT_SETTING else "drop",
    }
    if READ_TIMEOUT_SETTING:
        config["hang_seconds"] = 120.0  # the client gives up first, at its own timeout
    config.update(more)
    return config


def timeout_settings(hang_seconds: float) -> dict[str, str]:
    return {READ_TIMEOUT_SETTING: str(hang_seconds)} if READ_TIMEOUT_SETTING else {}


@pytest.fixture
def twilio(tmp_path: Path) -> Iterator[FakeTwilioProcess]:
    config = FakeConfig(latency_ms=LATENCY * 1000, seed=16)
    with FakeTwilioProcess(config, log=tmp_path / "fake-twilio.log") as fake:
        yield fake


@pytest.fixture
def dispatchers(
    database_url: str, twilio: FakeTwilioProcess, tmp_path: Path
) -> Iterator[Dispatchers]:
    handle = Dispatchers(database_url=database_url, twilio=twilio, folder=tmp_path)
    yield handle
    handle.stop_all()


def backoff_window(failures: int, retry_after: float | None) -> tuple[float, float]:
    """When the retry after the ``failures``-th failed attempt may come, measured between
    the two requests' arrivals: the dispatcher's backoff (full jitter between half the
    ceiling and the ceiling; ``Retry-After`` a floor), from the answer."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 1))
    floor = max(ceiling / 2, retry_after or 0.0)
    return floor + LATENCY - 0.05, max(ceiling, retry_after or 0.0) + LATENCY + RETRY_TOLERANCE


def check_requests(
    requests: dict[str, list[dict[str, Any]]], phones: set[str]
) -> tuple[list[str], list[float]]:
    """Each resident's requests, in order: failures (5xx, 429) followed by one accepted
    request (created, or timed out after creating), and nothing after it; every retry in
    its window. Returns what is wrong, and how late each retry came past the latest time its
    backoff could have said (negative: before it)."""
    wrong: list[str] = []
    lateness: list[float] = []
    for phone in sorted(phones):
        seen = requests.get(phone, [])
        outcomes = [r["outcome"] for r in seen]
        accepted = [n for n, o in enumerate(outcomes) if o in ("created", "timeout")]
        if len(accepted) != 1 or accepted[0] != len(seen) - 1:
            wrong.append(f"{phone}: {outcomes}")
            continue
        for n, (failed, retry) in enumerate(itertools.pairwise(seen), start=1):
            low, high = backoff_window(n, failed.get("retry_after"))
            gap = retry["t"] - failed["t"]
            lateness.append(gap - (high - RETRY_TOLERANCE))
            if not low <= gap <= high:
                wrong.append(
                    f"{phone}: retry {n} after {failed['outcome']} came {gap:.2f} s later, "
                    f"not within [{low:.2f}, {high:.2f}]"
                )
    return wrong, lateness


RECONCILED_WITHIN = 10.0  # seconds from a cut-off request to its row resolved, at most


def wait_for_every_sid(
    twilio: FakeTwilioProcess, engine: Any, org_id: Any, phones: set[str], hang: float
) -> bool:
    """Wait until the outbox has every resident's SID, for as long as the dispatcher's own
    backoff can make the unluckiest resident wait: each time, until the latest moment any
    pending retry may come (or a cut-off request be resolved), plus a little. With 30 %
    errors a few residents fail four or five times in a row, and the doubling backoff then
    takes longer than any fixed wait a test would pick."""
    give_up = time.monotonic() + 180

    def resolved() -> bool:
        sids = outbox_sids(engine, org_id)
        return len(sids) == len(phones) and all(sids.values())

    while not resolved():
        latest = 0.0
        for phone, seen in twilio.requests_by_recipient().items():
            last = seen[-1]
            if last["outcome"] in ("created", "timeout"):
                due = last["t"] + hang + RECONCILED_WITHIN
            else:
                due = last["t"] + backoff_window(len(seen), last.get("retry_after"))[1]
            if phone in phones:
                latest = max(latest, due)
        if time.time() > latest + 3.0 or time.monotonic() > give_up:
            return resolved()
        time.sleep(0.5)
    return True


@pytest.mark.slow
def test_every_message_once_and_every_retry_on_time(engine, twilio, dispatchers):
    residents, hang = 150, 3.0
    twilio.configure(**faults(hang, burst_429=0.005, burst_seconds=0.5, retry_after=3))
    org_id, phones = start_round(engine, residents)
    # Headroom under the rate cap: a retry that fell due waits for nobody.
    scheduler = dispatchers.start(sms_per_second="100", **timeout_settings(hang))
    wait_until(lambda: twilio.stats()["requests"] > 0, 30)
    done = wait_for_every_sid(twilio, engine, org_id, set(phones), hang)
    messages = twilio.messages()
    requests = twilio.requests_by_recipient()
    statuses = outbox_statuses(engine, org_id)
    sids = outbox_sids(engine, org_id)
    scheduler.stop()
    stats = twilio.stats()
    unsent = {
        phone: [(round(r["t"] - requests[phone][0]["t"], 2), r["outcome"]) for r in requests[phone]]
        for phone in set(phones) - {m["to"] for m in messages}
    }
    report = (
        f"server: {stats}\noutbox: {dict(statuses)}\nno message yet: {unsent}\n"
        f"{dispatchers.tails()}"
    )

    # The faults really happened, in about the shares asked for (of the requests that
    # were not refused by a burst of 429).
    outcomes = stats["outcomes"]
    drawn = stats["requests"] - outcomes.get("429", 0)
    assert 0.2 <= (outcomes.get("500", 0) + outcomes.get("503", 0)) / drawn <= 0.4, report
    assert 0.05 <= outcomes.get("timeout", 0) / drawn <= 0.15, report
    assert outcomes.get("429", 0) >= 1, report

    # Exactly once, and the outbox learned every SID, the timed-out ones from Twilio's list.
    per_phone = twilio.messages_per_recipient()
    assert done, report
    assert dict(per_phone) == dict.fromkeys(phones, 1), report
    assert sids == {m["to"]: m["sid"] for m in messages}, report

    # Every retry on time, and no request after the one that created the message.
    wrong, lateness = check_requests(requests, set(phones))
    assert wrong == [], "\n".join(wrong[:20]) + "\n" + report
    print(
        f"\nfaults: {stats['requests']} requests for {residents} messages, outcomes {outcomes}; "
        f"{len(lateness)} retries, the latest {max(lateness):+.2f} s past the latest time its "
        "backoff could say"
    )


def first_request_at(twilio: FakeTwilioProcess, phones: set[str]) -> float:
    return min(r["t"] for r in twilio.requests() if r["to"] in phones)


def last_message_at(twilio: FakeTwilioProcess, phones: set[str]) -> float:
    return max(m["created"] for m in twilio.messages() if m["to"] in phones)


@pytest.mark.slow
def test_with_faults_a_2000_resident_first_step_takes_at_most_twice_as_long(
    engine, twilio, dispatchers
):
    """The issue's own case: 2,000 residents at 50 SMS/s, 30 % 5xx and 10 % timeouts.

    The step is timed where residents see it: from the round's first request to the last
    resident's message at Twilio. It is held to twice the clean step, and the clean step is
    taken at its best, the rate cap's own N / rate (40 s; a clean run cannot be faster, so
    the bound is stricter than comparing with a measured one, and costs no second run).
    When the outbox has learned every SID (the timed-out sends reconciled, 30 s after they
    were cut off) is reported beside it."""
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "a 2,000-resident step's duration is the dispatcher's, not the database's: "
            "timed once, on PostgreSQL (production); the faults test above runs on both"
        )
    residents, rate, hang = 2000, 50, 30.0
    best_clean = residents / rate
    twilio.configure(**faults(hang))
    org_id, phones = start_round(engine, residents, members=20)
    scheduler = dispatchers.start(sms_per_second=str(rate), **timeout_settings(hang))

    def delivered() -> bool:
        return len(twilio.messages_per_recipient()) >= residents

    def resolved() -> bool:
        return all(outbox_sids(engine, org_id).values())

    wait_until(lambda: twilio.stats()["requests"] > 0, 30)
    in_time = wait_until(delivered, 2 * best_clean + 5, every=0.5)
    start = first_request_at(twilio, set(phones))
    per_phone = twilio.messages_per_recipient()
    assert {p: n for p, n in per_phone.items() if n != 1} == {}
    # Fail fast, without waiting for the stragglers' backoff: the bound is what is tested.
    assert in_time, (
        f"{len(set(phones) - set(per_phone))} of {residents} residents still without a "
        f"message {2 * best_clean + 5:.0f} s after the first request; server {twilio.stats()}"
    )
    at_twilio = last_message_at(twilio, set(phones)) - start
    settled = wait_until(resolved, hang + 30, every=0.5)
    stats = twilio.stats()
    scheduler.stop()
    print(
        f"\nfirst step of {residents} residents at {rate}/s with 30 % 5xx and 10 % timeouts: "
        f"{at_twilio:.1f} s (ratio {at_twilio / best_clean:.2f} to the cap's {best_clean:.0f} s); "
        f"every SID known after {time.time() - start:.1f} s; server {stats}"
    )
    assert at_twilio <= 2 * best_clean, (at_twilio, stats)
    assert settled, dispatchers.tails()

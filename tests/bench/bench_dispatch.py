"""Dispatch benchmark of issue #16: how fast a real ``mimamori scheduler`` sends a round.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_dispatch                               # 20,000 SMS, PostgreSQL
    python -m tests.bench.bench_dispatch --rows 5000 --concurrency 400
    python -m tests.bench.bench_dispatch --faults                      # the 2,000-resident step
    python -m tests.bench.bench_dispatch --database-url postgresql://postgres@127.0.0.1:5432/bench

It DROPS and recreates the ``public`` schema of the database it is given (default
``postgresql://postgres@127.0.0.1:5432/bench_dispatch``; never point it at data you keep).

throughput (the default)
    The fake Twilio server (``tests/support/fake_twilio``, aiohttp in a process of its own)
    answers every create after 100 ms. A round of N residents is fanned out (N check-in SMS
    in the outbox), then a real ``mimamori scheduler`` process sends it with the rate cap out
    of the way. Reported: messages/s where Twilio sees them (first to last arrival) and end
    to end (first request to every SID recorded), duplicates (per recipient at the server,
    and distinct SIDs in the outbox), CPU per message of the scheduler, of the server and
    of PostgreSQL's backends.

    Beside it, in the same run, a bare aiohttp client sends the same N requests (same form
    fields, same Basic auth, as many in flight as the dispatcher's concurrency) to the same
    server, once before and once after the dispatcher: the ratio says what the database
    work and the dispatcher's bookkeeping cost against HTTP alone. The server's CPU share
    during each run shows whether it, rather than what is measured, was the limit.
faults (``--faults``)
    The issue's case: 2,000 residents at 50 SMS/s, once clean and once with 30 % 5xx and
    10 % timeouts after the message was created (the connection dropped after 30 s, the
    client's own read timeout); the first step timed from the first request to the last
    resident's message at Twilio, and to every SID known.

It prints the load average at the start and the end (the machine may be shared), the
figures and whether each target is met, and exits with status 1 when one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from sqlalchemy import text
from sqlmodel import Session, func, select

from tests.bench.bench_telephony import Database, Verdicts, fresh_database, process_tree_cpu
from tests.support.dispatch_harness import (
    FROM_NUMBER,
    Dispatchers,
    outbox_sids,
    start_round,
    wait_until,
)
from tests.support.fake_twilio import FakeConfig, FakeTwilioProcess

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_dispatch"
GOAL_PER_S = 1550.0  # SECOM's pace at Noto: 1,486,614 messages in about 16 minutes
FLOOR_PER_S = 1000.0
RATIO_GOAL = 0.8
NO_CAP = "1000000"


def pg_backend_cpu(db: Database) -> float:
    """CPU seconds used so far by this database's PostgreSQL backends on this machine, read
    from /proc (the server runs here, on loopback). 0 on SQLite or when not readable."""
    if db.engine.dialect.name != "postgresql":
        return 0.0
    with db.engine.connect() as connection:
        pids = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return sum(process_tree_cpu(pid) for pid in pids)


@dataclass
class Bare:
    sent: int
    elapsed: float
    cpu: float
    server_cpu: float
    statuses: Counter[int]

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed else math.nan


async def _bare_send(
    url: str, twilio: FakeTwilioProcess, forms: list[dict[str, str]], inflight: int
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    credentials = f"{twilio.config.account_sid}:{twilio.config.auth_token}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
    connector = aiohttp.TCPConnector(limit=inflight)
    queue = iter(forms)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for form in queue:
                async with session.post(url, data=form) as response:
                    await response.json()
                    statuses[response.status] += 1

        await asyncio.gather(*(worker() for _ in range(inflight)))
    return statuses


def bare_client(twilio: FakeTwilioProcess, phones: list[str], inflight: int) -> Bare:
    """The same requests as the dispatcher's, from a bare aiohttp client on the default
    asyncio loop (the dispatcher's), with as many in flight as the dispatcher may have."""
    url = f"{twilio.url}/2010-04-01/Accounts/{twilio.config.account_sid}/Messages.json"
    forms = [
        {
            "To": phone,
            "From": FROM_NUMBER,
            "Body": f"見守りの確認です。大丈夫なら 1、助けが必要なら 2 を返信してください。#{n}",
            "StatusCallback": f"https://mimamori.example.org/twilio/status?attempt={n:08d}",
        }
        for n, phone in enumerate(phones)
    ]
    twilio.reset()
    server0, cpu0, t0 = twilio.cpu_seconds(), time.process_time(), time.perf_counter()
    statuses = asyncio.run(_bare_send(url, twilio, forms, inflight))
    elapsed = time.perf_counter() - t0
    return Bare(
        sent=statuses[201],
        elapsed=elapsed,
        cpu=time.process_time() - cpu0,
        server_cpu=twilio.cpu_seconds() - server0,
        statuses=statuses,
    )


@dataclass
class Dispatched:
    rows: int
    at_twilio: float  # first to last arrival at the server
    end_to_end: float  # first request to every SID recorded
    scheduler_cpu: float
    server_cpu: float
    postgres_cpu: float
    requests: int
    duplicates: int
    unsent: int
    distinct_sids: int
    mean_in_flight: float = math.nan  # requests at the server at once, sampled
    p99_at_twilio: float = math.nan  # when 99 % of the residents had their message
    most_attempts: int = 0  # the most requests one resident needed

    @property
    def per_second(self) -> float:
        return (self.rows - 1) / self.at_twilio if self.at_twilio else math.nan

    @property
    def end_to_end_per_second(self) -> float:
        return self.rows / self.end_to_end if self.end_to_end else math.nan


def dispatch_round(
    db: Database, twilio: FakeTwilioProcess, folder: Path, *, rows: int, settings: dict[str, str]
) -> Dispatched:
    """Fan out a round of ``rows`` residents, then let one scheduler process send it."""
    org_id, phones = start_round(db.engine, rows, members=max(5, rows // 100))
    twilio.reset()
    dispatchers = Dispatchers(database_url=db.url, twilio=twilio, folder=folder)
    try:
        scheduler = dispatchers.start(**settings)
        if not wait_until(lambda: twilio.stats()["requests"] > 0, 60, every=0.01):
            raise SystemExit("the scheduler sent nothing in 60 s:\n" + dispatchers.tails())
        cpu0, server0, pg0 = (
            process_tree_cpu(scheduler.pid),
            twilio.cpu_seconds(),
            pg_backend_cpu(db),
        )
        limit = max(120.0, rows / 200)
        in_flight: list[int] = []

        def all_sent() -> bool:
            stats = twilio.stats()
            in_flight.append(stats["in_flight"])
            return stats["messages"] >= rows

        wait_until(all_sent, limit, every=0.05)
        wait_until(lambda: all(outbox_sids(db.engine, org_id).values()), limit, every=0.1)
        recorded = time.time()
        cpu, server, pg = (
            process_tree_cpu(scheduler.pid) - cpu0,
            twilio.cpu_seconds() - server0,
            pg_backend_cpu(db) - pg0,
        )
        scheduler.stop()
    finally:
        dispatchers.stop_all()
    requests = twilio.requests()
    messages = twilio.messages()
    per_phone = Counter(m["to"] for m in messages)
    first = min(r["t"] for r in requests)
    with Session(db.engine) as s:
        distinct = s.execute(
            text("SELECT count(DISTINCT sid) FROM outbox WHERE purpose = 'checkin'")
        ).scalar_one()
    sids = outbox_sids(db.engine, org_id)
    return Dispatched(
        rows=rows,
        at_twilio=max(m["created"] for m in messages) - first,
        end_to_end=recorded - first,
        scheduler_cpu=cpu,
        server_cpu=server,
        postgres_cpu=pg,
        requests=len(requests),
        duplicates=sum(n - 1 for n in per_phone.values()),
        unsent=len(set(phones) - set(per_phone)) + sum(1 for sid in sids.values() if not sid),
        distinct_sids=distinct,
        mean_in_flight=sum(in_flight) / max(1, len(in_flight)),
        p99_at_twilio=sorted(m["created"] for m in messages)[int(0.99 * (len(messages) - 1))]
        - first,
        most_attempts=max(Counter(r["to"] for r in requests).values()),
    )


def throughput(args: argparse.Namespace, db: Database, folder: Path, verdicts: Verdicts) -> None:
    print(
        f"\n== throughput: {args.rows} check-in SMS, server latency {args.latency_ms:.0f} ms, "
        f"concurrency {args.concurrency}, {db.engine.dialect.name}"
    )
    config = FakeConfig(latency_ms=args.latency_ms, deliver_after_ms=500)
    with FakeTwilioProcess(config, log=folder / "fake-twilio.log") as twilio:
        phones = [f"+8170{n:08d}" for n in range(args.rows)]
        before = bare_client(twilio, phones, args.concurrency)
        run = dispatch_round(
            db,
            twilio,
            folder,
            rows=args.rows,
            settings={"sms_per_second": NO_CAP, "dispatch_concurrency": str(args.concurrency)},
        )
        after = bare_client(twilio, phones, args.concurrency)
    for name, bare in (("bare aiohttp, before", before), ("bare aiohttp, after", after)):
        print(
            f"  {name}: {bare.sent} in {bare.elapsed:.2f} s = {bare.per_second:.0f}/s; client CPU "
            f"{bare.cpu / bare.sent * 1000:.2f} ms/msg; server CPU {bare.server_cpu / bare.sent * 1000:.2f} "
            f"ms/msg ({bare.server_cpu / bare.elapsed:.0%} of a core); statuses {dict(bare.statuses)}"
        )
    span = run.at_twilio
    print(
        f"  dispatcher: {run.per_second:.0f}/s at Twilio ({run.rows} over {span:.2f} s), "
        f"{run.end_to_end_per_second:.0f}/s end to end (every SID recorded after "
        f"{run.end_to_end:.2f} s); on average {run.mean_in_flight:.0f} of its "
        f"{args.concurrency} requests were at the server at once"
    )
    print(
        f"  CPU per message: scheduler {run.scheduler_cpu / run.rows * 1000:.2f} ms "
        f"({run.scheduler_cpu / run.end_to_end:.0%} of a core), PostgreSQL backends "
        f"{run.postgres_cpu / run.rows * 1000:.2f} ms, server {run.server_cpu / run.rows * 1000:.2f} ms "
        f"({run.server_cpu / run.end_to_end:.0%} of a core)"
    )
    print(
        f"  server saw {run.requests} requests for {run.rows} residents: {run.duplicates} "
        f"duplicates, {run.unsent} unsent; outbox: {run.distinct_sids} distinct SIDs"
    )
    bare_rate = max(before.per_second, after.per_second)
    ratio = run.per_second / bare_rate
    print(f"  ratio to the bare client (the faster of its two runs): {ratio:.2f}")
    verdicts.check(
        f"floor: >= {FLOOR_PER_S:.0f}/s ({run.per_second:.0f}/s)", run.per_second >= FLOOR_PER_S
    )
    verdicts.check(
        f"goal: >= {GOAL_PER_S:.0f}/s ({run.per_second:.0f}/s)", run.per_second >= GOAL_PER_S
    )
    verdicts.check(f"ratio to bare aiohttp >= {RATIO_GOAL} ({ratio:.2f})", ratio >= RATIO_GOAL)
    verdicts.check(
        "zero duplicates, every row sent once with its own SID",
        run.duplicates == 0 and run.unsent == 0 and run.distinct_sids == run.rows,
    )


def faults(args: argparse.Namespace, db: Database, folder: Path, verdicts: Verdicts) -> None:
    residents, rate = args.fault_rows, args.fault_rate
    print(
        f"\n== faults: a first step of {residents} residents at {rate:.0f}/s, clean and with "
        f"30 % 5xx and 10 % timeouts after create (dropped after {args.hang:.0f} s)"
    )
    timings: dict[str, tuple[float, float, int]] = {}
    with FakeTwilioProcess(
        FakeConfig(latency_ms=args.latency_ms, seed=16), log=folder / "fake-twilio.log"
    ) as twilio:
        for name, config in (
            ("clean", {}),
            (
                "faulty",
                {
                    "error_5xx": 0.3,
                    "timeout_after_create": 0.1,
                    "hang_seconds": args.hang,
                    "hang_then": "drop",
                },
            ),
        ):
            twilio.configure(**config)
            run = dispatch_round(
                db, twilio, folder, rows=residents, settings={"sms_per_second": str(rate)}
            )
            timings[name] = (run.at_twilio, run.end_to_end, run.requests)
            print(
                f"  {name}: last resident's message at Twilio after {run.at_twilio:.1f} s (99 % of "
                f"them after {run.p99_at_twilio:.1f} s), every SID known after {run.end_to_end:.1f} s; "
                f"{run.requests} requests, at most {run.most_attempts} for one resident, "
                f"{run.duplicates} duplicates, {run.unsent} unsent"
            )
            verdicts.check(
                f"{name}: zero duplicates, none unsent", run.duplicates == 0 and run.unsent == 0
            )
    ratio = timings["faulty"][0] / timings["clean"][0]
    verdicts.check(f"first step with faults <= 2 x clean ({ratio:.2f} x)", ratio <= 2)


def python_loop_seconds() -> float:
    """How fast this machine runs Python right now, to compare runs across machines."""
    started = time.perf_counter()
    for _ in range(10_000_000):
        pass
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL)
    )
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=200,
        help="MIMAMORI_DISPATCH_CONCURRENCY and the bare client's",
    )
    parser.add_argument("--faults", action="store_true", help="the fault scenario instead")
    parser.add_argument("--fault-rows", type=int, default=2000)
    parser.add_argument("--fault-rate", type=float, default=50.0)
    parser.add_argument(
        "--hang", type=float, default=30.0, help="seconds before a timed-out request is dropped"
    )
    args = parser.parse_args(argv)

    load = os.getloadavg()
    print(
        f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start (the machine may be shared); "
        f"a 10-million-iteration Python loop takes {python_loop_seconds():.2f} s"
    )
    verdicts = Verdicts()
    folder = Path(tempfile.mkdtemp(prefix="bench_dispatch_"))
    db = fresh_database(args.database_url)
    try:
        with Session(db.engine) as s:  # the schema is there and empty
            assert s.execute(select(func.count()).select_from(text("outbox"))).scalar_one() == 0
        (faults if args.faults else throughput)(args, db, folder, verdicts)
    finally:
        db.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("all targets met" if verdicts.ok else "SOME TARGETS NOT MET")
    return 0 if verdicts.ok else 1


if __name__ == "__main__":
    sys.exit(main())

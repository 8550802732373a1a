"""Check-in benchmarks of issue #5: starting a 100,000-resident round, and the deadline sweep.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_rounds                       # SQLite file + PostgreSQL `bench_rel`
    python -m tests.bench.bench_rounds --database-url sqlite --residents 20000
    python -m tests.bench.bench_rounds --database-url postgresql://postgres@127.0.0.1:5432/bench_rel

For each database it creates a fresh schema (a temporary SQLite file, or for PostgreSQL it
DROPS and recreates the ``public`` schema of the given database, so never point it at data you
want to keep), migrates it, seeds an organization with residents (consented, mobile phones,
six languages, one member each) by bulk insert, and measures:

1. **Fan-out.** ``flows.start_broadcast`` for every resident: the round, one check-in, one
   attempt and one outbox row per resident, in chunks of ``service.FANOUT_CHUNK``, each chunk
   its own transaction. Target: ≤ 10 s for 100,000 residents. Beside it, the same rows (read
   back from the database, then deleted) inserted again with plain SQLAlchemy Core
   ``insert(table)`` executemany in one transaction: the floor the database sets. The ratio
   says how much the service adds (eligibility, plan fitting, rendering each SMS in the
   resident's language, superseding older check-ins, the visit list).
2. **The sweep.** With every check-in of that round open, 10,000 of them are given the same
   deadline, and ``flows.sweep_checkins`` runs at that deadline (each one takes its next step:
   the reminder SMS, a new attempt and outbox row). Target: all 10,000 processed within 5 s of
   the deadline. The scheduler runs the sweep every few seconds (``scheduler.jobs.JOBS``), so
   the figure checked is the sweep's own time plus that interval: the worst case, a deadline
   that passes just after a run.
3. **Escalating a batch.** 2,000 of the same check-ins (``--escalate``) made due again, now
   past the end of the two-step plan: each one opens an escalation, freezes its chain and
   alerts its member (informational, no target).

It prints the figures and whether each target is met, and exits with status 1 when one is not.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Engine

from tests.bench.bench_registry import fresh_database

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_rel"
SEED = 20240101
ORG_NAME = "ベンチ市社会福祉協議会"
LANGUAGES = ["ja", "ja", "ja", "easy_ja", "vi", "id", "fil", "pt_BR", "zh_Hans", "ne"]

FANOUT_TARGET_S = 10.0
SWEEP_TARGET_S = 5.0


# --- Databases ---------------------------------------------------------------------------------


# fresh_database: the same migrated, empty database as bench_registry's (imported above).


def seed(engine: Engine, residents: int, rng: random.Random) -> uuid.UUID:
    """An organization, 50 sites, one member per 100 residents, staff on duty, and the
    residents, all by bulk insert (the registry's own import is benchmarked elsewhere)."""
    from service.registry.models import Assignment, Member, Organization, Resident, Site

    now = datetime.now(UTC)
    org_id = uuid.uuid4()
    site_ids = [uuid.uuid4() for _ in range(50)]
    members = max(1, residents // 100)
    member_ids = [uuid.uuid4() for _ in range(members)]
    with engine.begin() as connection:
        connection.execute(
            insert(Organization),
            [{"id": org_id, "name": ORG_NAME, "timezone": "Asia/Tokyo", "created_at": now}],
        )
        connection.execute(
            insert(Site),
            [
                {
                    "id": site_id,
                    "organization_id": org_id,
                    "name": f"第{i + 1}団地",
                    "address": None,
                    "municipality_code": None,
                    "jma_area_code": "390",
                    "tsunami_area_code": None,
                    "notes": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, site_id in enumerate(site_ids)
            ],
        )
        member_rows = [
            {
                "id": member_id,
                "organization_id": org_id,
                "external_id": f"M{i:05d}",
                "name": f"委員 {i}",
                "name_kana": None,
                "phone": f"+81803{i:07d}",
                "phone_kind": "mobile",
                "kind": "welfare_committee",
                "languages": ["ja"],
                "active": True,
                "notes": None,
                "created_at": now,
                "updated_at": now,
            }
            for i, member_id in enumerate(member_ids)
        ]
        member_rows.append(
            {
                **member_rows[0],
                "id": uuid.uuid4(),
                "external_id": "STAFF",
                "name": "当直 職員",
                "phone": "+818099999999",
                "kind": "staff_on_duty",
            }
        )
        connection.execute(insert(Member), member_rows)
        resident_rows: list[dict[str, Any]] = []
        assignment_rows: list[dict[str, Any]] = []
        for i in range(residents):
            resident_id = uuid.uuid4()
            resident_rows.append(
                {
                    "id": resident_id,
                    "organization_id": org_id,
                    "external_id": f"R{i:06d}",
                    "name": f"住民 {i}",
                    "name_kana": None,
                    "phone": f"+81902{i:07d}",
                    "phone_kind": "mobile",
                    "phone2": None,
                    "phone2_kind": None,
                    "language": rng.choice(LANGUAGES),
                    "preferred_channel": "sms",
                    "site_id": site_ids[i % len(site_ids)],
                    "unit": f"{i % 20 + 1}-{i % 7 + 101}",
                    "household": None,
                    "lives_alone": i % 3 == 0,
                    "elderly": i % 2 == 0,
                    "disability": False,
                    "pregnancy": False,
                    "needs_interpreter": False,
                    "consent_at": now,
                    "consent_method": "paper",
                    "status": "active",
                    "away_until": None,
                    "notes": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            assignment_rows.append(
                {
                    "id": uuid.uuid4(),
                    "organization_id": org_id,
                    "resident_id": resident_id,
                    "member_id": member_ids[i % members],
                    "rank": 1,
                    "created_at": now,
                }
            )
        for start in range(0, residents, 10_000):
            connection.execute(insert(Resident), resident_rows[start : start + 10_000])
            connection.execute(insert(Assignment), assignment_rows[start : start + 10_000])
    return org_id


def analyze(engine: Engine) -> None:
    """Fresh statistics, as autovacuum would have after a bulk load."""
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))


# --- Results -------------------------------------------------------------------------------------


@dataclass
class Result:
    url: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, what: str, ok: bool, figure: str) -> None:
        self.checks.append((what, ok, figure))
        print(f"  [{'met' if ok else 'MISSED'}] {what}: {figure}", flush=True)

    def note(self, line: str) -> None:
        self.notes.append(line)
        print(f"  {line}", flush=True)


@contextmanager
def maybe_profile(enabled: bool, label: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        print(f"--- profile: {label}")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


# --- 1. Fan-out ----------------------------------------------------------------------------------


def bench_fan_out(engine: Engine, org_id: uuid.UUID, result: Result, profile: bool) -> uuid.UUID:
    from service.checkins import flows
    from service.checkins.models import Attempt, CheckIn, Round
    from service.common import utcnow
    from service.telephony.models import OutboxMessage

    plan = [
        {"channel": "sms", "message": "prompt", "wait_minutes": 60},
        {"channel": "sms", "message": "reminder", "wait_minutes": 60},
    ]
    start = time.perf_counter()
    with maybe_profile(profile, "fan-out"):
        round_id = flows.start_broadcast(
            engine,
            organization_id=org_id,
            started_by="bench",
            now_fn=utcnow,
            override_quiet_hours=True,
            plan=plan,
            cause="bench",
        )
    service_s = time.perf_counter() - start

    with engine.connect() as connection:
        checkins = [
            dict(r._mapping)
            for r in connection.execute(select(CheckIn).where(CheckIn.round_id == round_id))
        ]
        attempts = [dict(r._mapping) for r in connection.execute(select(Attempt))]
        outbox = [dict(r._mapping) for r in connection.execute(select(OutboxMessage))]
        status = connection.execute(select(Round.status).where(Round.id == round_id)).scalar_one()
    rows = len(checkins) + len(attempts) + len(outbox)
    result.note(
        f"fan-out: {len(checkins):,} check-ins, {len(attempts):,} attempts, "
        f"{len(outbox):,} outbox rows; round {status}"
    )
    assert status == "open" and len(checkins) == len(attempts) == len(outbox)

    # The same rows through plain Core: delete them, then insert them again, timed.
    with engine.begin() as connection:
        connection.execute(delete(OutboxMessage))
        connection.execute(delete(Attempt))
        connection.execute(delete(CheckIn).where(CheckIn.round_id == round_id))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE checkin, checkin_attempt, outbox"))
    start = time.perf_counter()
    with engine.begin() as connection:
        for table, data in ((CheckIn, checkins), (Attempt, attempts), (OutboxMessage, outbox)):
            for offset in range(0, len(data), 10_000):
                connection.execute(insert(table), data[offset : offset + 10_000])
    core_s = time.perf_counter() - start
    result.note(f"plain Core bulk insert of the same {rows:,} rows: {core_s:.2f} s")
    result.check(
        f"fan-out of {len(checkins):,} residents ≤ {FANOUT_TARGET_S:.0f} s",
        service_s <= FANOUT_TARGET_S,
        f"{service_s:.2f} s ({len(checkins) / service_s:,.0f} residents/s; "
        f"{service_s / core_s:.1f}× the Core insert)",
    )
    return round_id


# --- 2. The sweep --------------------------------------------------------------------------------


def make_due(engine: Engine, round_id: uuid.UUID, due: int, deadline: datetime) -> list[uuid.UUID]:
    """Give ``due`` of the round's open check-ins the same deadline."""
    from service.checkins.models import CheckIn

    with engine.begin() as connection:
        ids = list(
            connection.execute(
                select(CheckIn.id)
                .where(CheckIn.round_id == round_id, CheckIn.state == "waiting")
                .order_by(CheckIn.id)
                .limit(due)
            ).scalars()
        )
        for offset in range(0, len(ids), 5_000):
            connection.execute(
                update(CheckIn)
                .where(CheckIn.id.in_(ids[offset : offset + 5_000]))
                .values(next_action_at=deadline)
            )
    if engine.dialect.name == "postgresql":
        analyze(engine)
    return ids


def bench_sweep(
    engine: Engine, round_id: uuid.UUID, due: int, escalate: int, result: Result, profile: bool
) -> None:
    from scheduler.jobs import JOBS
    from service.checkins import flows
    from service.checkins.models import Attempt, CheckIn
    from service.common import utcnow
    from service.escalations.models import Escalation

    with engine.connect() as connection:
        open_count = connection.execute(
            select(func.count()).select_from(CheckIn).where(CheckIn.state == "waiting")
        ).scalar_one()
    deadline = utcnow()
    ids = make_due(engine, round_id, due, deadline)
    result.note(f"sweep: {open_count:,} open check-ins, {len(ids):,} due at the same moment")
    start = time.perf_counter()
    with maybe_profile(profile, "sweep"):
        moved = flows.sweep_checkins(engine, utcnow)
    sweep_s = time.perf_counter() - start
    with engine.connect() as connection:
        reminders = connection.execute(
            select(func.count()).select_from(Attempt).where(Attempt.step_index == 1)
        ).scalar_one()
    assert moved == len(ids) == reminders, (moved, len(ids), reminders)
    interval = next(seconds for name, _f, seconds in JOBS if name == "sweep_due_deadlines")
    result.check(
        f"all {len(ids):,} due check-ins processed ≤ {SWEEP_TARGET_S:.0f} s after the deadline",
        sweep_s + interval <= SWEEP_TARGET_S,
        f"{sweep_s:.2f} s of sweep ({len(ids) / sweep_s:,.0f} check-ins/s) + at most "
        f"{interval} s until the job's next run = {sweep_s + interval:.2f} s",
    )

    # Some of the same check-ins, due again: the plan (two steps) is exhausted, so each
    # escalates (informational: an escalation is much more work than a reminder).
    if not escalate:
        return
    deadline = utcnow()
    ids = make_due(engine, round_id, escalate, deadline)
    start = time.perf_counter()
    with maybe_profile(profile, "escalate"):
        moved = flows.sweep_checkins(engine, utcnow)
    escalate_s = time.perf_counter() - start
    with engine.connect() as connection:
        escalations = connection.execute(select(func.count()).select_from(Escalation)).scalar_one()
    assert moved == escalations == len(ids), (moved, escalations)
    result.note(
        f"escalating {len(ids):,} exhausted check-ins (escalation + first alert each): "
        f"{escalate_s:.2f} s ({len(ids) / escalate_s:,.0f}/s) [no target]"
    )


# --- Main ----------------------------------------------------------------------------------------


def run_one(
    url: str, residents: int, due: int, escalate: int, seed_value: int, profile: bool
) -> Result:
    from service.db import make_engine

    print(f"\n== {url}", flush=True)
    with fresh_database(url) as real_url:
        result = Result(url=real_url if url == "sqlite" else url)
        engine = make_engine(real_url)
        start = time.perf_counter()
        org_id = seed(engine, residents, random.Random(seed_value))
        if engine.dialect.name == "postgresql":
            analyze(engine)
        result.note(f"seeded {residents:,} residents in {time.perf_counter() - start:.1f} s")
        round_id = bench_fan_out(engine, org_id, result, profile)
        bench_sweep(engine, round_id, due, escalate, result, profile)
        engine.dispose()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_rounds", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url",
        action="append",
        dest="urls",
        metavar="URL",
        help="repeatable; `sqlite` means a temporary file. A PostgreSQL database's public "
        f"schema is dropped. Default: sqlite and {DEFAULT_PG_URL}",
    )
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000, help="check-ins due at once")
    parser.add_argument(
        "--escalate", type=int, default=2_000, help="check-ins then escalated (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--profile", action="store_true", help="cProfile each measured step")
    args = parser.parse_args(argv)
    urls = args.urls or ["sqlite", DEFAULT_PG_URL]
    print(
        f"{args.residents:,} residents, {args.due:,} due at once; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores",
        flush=True,
    )
    results = [
        run_one(url, args.residents, args.due, args.escalate, args.seed, args.profile)
        for url in urls
    ]

    print("\n== summary")
    failed = 0
    for result in results:
        print(result.url)
        for line in result.notes:
            print(f"  {line}")
        for what, ok, figure in result.checks:
            failed += not ok
            print(f"  [{'met' if ok else 'MISSED'}] {what}: {figure}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak_mb:.0f} MB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

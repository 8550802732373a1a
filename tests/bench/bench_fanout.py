"""Issue 20: a round's fan-out to 100,000 residents on PostgreSQL, beside the floor of plain COPY.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite), one
benchmark at a time on the shared machine:

    flock /tmp/bench.lock python -m tests.bench.bench_fanout \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench --residents 100000

It DROPS and recreates the ``public`` schema of the given database (never point it at data
you want to keep), migrates it, seeds an organization with residents by bulk insert (the same
registry as ``bench_rounds.py``: consented, mobile phones, ten languages) and measures:

1. **Fan-out.** ``flows.start_broadcast`` to every resident (quiet hours overridden, a two-step
   SMS plan): per resident a check-in, its first attempt and its message, in chunks of
   ``fanout.FANOUT_CHUNK``, each its own transaction. Wall time, and the CPU time of this
   process (the Python side; the rest is PostgreSQL's, or waiting for it).
2. **Before, in the same run.** First of all, the same fan-out as it was before issue 20
   (psycopg formatting each COPY value, ``uuid4`` ids), then its rows and round deleted.
3. **The floor, in the same run.** The same rows read back, deleted (then ``VACUUM ANALYZE``),
   and written again by psycopg's own ``COPY ... write_row``, the three tables in one
   transaction, with every index and foreign key of the fan-out: what the database alone
   costs for these rows. The ratio says what the service adds (eligibility, plans, rendering
   each SMS, superseding older check-ins, its own COPY formatting).

Targets: 100,000 residents in ≤ 5 s (goal 3 s). The load average is printed at the start and
the end: on a busy machine both figures grow, their ratio much less.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Engine

from tests.bench.bench_registry import fresh_database
from tests.bench.bench_rounds import SEED, analyze, maybe_profile, seed

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_rel"
TARGET_S = 5.0
GOAL_S = 3.0


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _tables() -> list[Any]:
    from service.checkins.models import Attempt, CheckIn
    from service.telephony.models import OutboxMessage

    return [CheckIn.__table__, Attempt.__table__, OutboxMessage.__table__]  # type: ignore[attr-defined]


def index_entries(engine: Engine) -> str:
    """How many indexes each of the fan-out's tables has (read from the catalog, so the
    figure follows the migrations; some are partial, and a fan-out row skips those)."""
    counts = []
    with engine.connect() as connection:
        for table in _tables():
            rows = connection.execute(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = :t"
                ),
                {"t": table.name},
            ).scalars()
            counts.append((table.name, list(rows)))
    return ", ".join(f"{name}: {len(defs)} indexes" for name, defs in counts)


def fan_out(engine: Engine, org_id: Any, profile: bool) -> tuple[Any, float, float]:
    from service.checkins import flows
    from service.common import utcnow

    plan = [
        {"channel": "sms", "message": "prompt", "wait_minutes": 60},
        {"channel": "sms", "message": "reminder", "wait_minutes": 60},
    ]
    cpu, start = time.process_time(), time.perf_counter()
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
    return round_id, time.perf_counter() - start, time.process_time() - cpu


def _insert_rows_before(session: Any, table: Any, rows: Any) -> None:
    """``bulk.insert_rows`` on PostgreSQL as it was before issue 20: psycopg's ``write_row``
    for each row (its own formatting of every value), for the comparison in the same run."""
    import itertools

    from sqlalchemy import JSON

    from service.checkins.bulk import _by_identity, _json

    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return
    names = list(first)
    columns = ", ".join(f'"{n}"' for n in names)
    as_json = {c.name for c in table.columns if isinstance(c.type, JSON)} & set(names)
    to_json = _by_identity(_json)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
        for row in itertools.chain((first,), iterator):
            if as_json:
                row = {**row, **{n: to_json(row[n]) for n in as_json}}
            copy.write_row([row[n] for n in names])


@contextmanager
def before_issue_20() -> Iterator[None]:
    """The fan-out as it was before issue 20: psycopg's COPY formatting and uuid4 ids."""
    from service.checkins import attempts, fanout
    from service.telephony import outbox

    saved = (fanout.insert_rows, fanout.uuid7, attempts.uuid7, outbox.uuid7)
    fanout.insert_rows = _insert_rows_before
    fanout.uuid7 = attempts.uuid7 = outbox.uuid7 = uuid.uuid4
    try:
        yield
    finally:
        fanout.insert_rows, fanout.uuid7, attempts.uuid7, outbox.uuid7 = saved


def forget_fan_out(engine: Engine) -> None:
    """Delete every round and its rows, so the next fan-out starts as the first did."""
    from service.checkins.models import Round

    with engine.begin() as connection:
        for table in reversed(_tables()):
            connection.execute(delete(table))
        connection.execute(delete(Round.__table__))  # type: ignore[attr-defined]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE checkin, checkin_attempt, outbox, round"))


def copy_floor(engine: Engine) -> tuple[int, float]:
    """Read the fan-out's rows back, delete them, and COPY them again (psycopg's own
    ``write_row``), the three tables in one transaction. Returns (rows, seconds)."""
    from service.checkins.bulk import _json

    tables = _tables()
    data: list[tuple[Any, list[str], list[tuple[Any, ...]]]] = []
    with engine.connect() as connection:
        for table in tables:
            names = list(table.c.keys())
            json_columns = [
                i for i, c in enumerate(table.columns) if c.type.__class__.__name__ == "JSON"
            ]
            rows = []
            for row in connection.execute(select(*table.c)):
                values = list(row)
                for i in json_columns:
                    values[i] = _json(values[i])
                rows.append(tuple(values))
            data.append((table, names, rows))
    with engine.begin() as connection:
        for table in reversed(tables):
            connection.execute(delete(table))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE checkin, checkin_attempt, outbox"))
    start = time.perf_counter()
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            for table, names, rows in data:
                columns = ", ".join(f'"{n}"' for n in names)
                with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                    for values in rows:
                        copy.write_row(values)
    return sum(len(rows) for _t, _n, rows in data), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_fanout", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL; dropped")
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--profile", action="store_true", help="cProfile the fan-out")
    args = parser.parse_args(argv)
    from service.db import make_engine

    print(
        f"{args.residents:,} residents; python {sys.version.split()[0]}, {os.cpu_count()} cores; "
        f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        flush=True,
    )
    with fresh_database(args.database_url) as url:
        engine = make_engine(url)
        if engine.dialect.name != "postgresql":
            print("a PostgreSQL database, please")
            return 2
        org_id = seed(engine, args.residents, random.Random(args.seed))
        analyze(engine)
        print(f"load average at start: {load()}", flush=True)
        with before_issue_20():
            _r, before_s, before_cpu_s = fan_out(engine, org_id, False)
        forget_fan_out(engine)
        round_id, wall_s, cpu_s = fan_out(engine, org_id, args.profile)
        from service.checkins.models import CheckIn

        with engine.connect() as connection:
            made = connection.execute(select(CheckIn.id).where(CheckIn.round_id == round_id)).all()
        print(f"indexes: {index_entries(engine)}")
        rows, floor_s = copy_floor(engine)
        print(f"load average at end: {load()}", flush=True)
        engine.dispose()
    assert len(made) == args.residents, len(made)
    per_s = args.residents / wall_s
    print(
        f"fan-out of {args.residents:,} residents: {wall_s:.2f} s ({per_s:,.0f}/s); "
        f"CPU of this process {cpu_s:.2f} s"
    )
    print(
        f"the same fan-out as before issue 20 (psycopg's COPY formatting, uuid4), same run: "
        f"{before_s:.2f} s; CPU of this process {before_cpu_s:.2f} s"
    )
    print(f"floor, psycopg COPY of the same {rows:,} rows in one transaction: {floor_s:.2f} s")
    print(f"fan-out = {wall_s / floor_s:.2f}× the floor")
    met = wall_s <= TARGET_S * args.residents / 100_000
    goal = wall_s <= GOAL_S * args.residents / 100_000
    print(
        f"[{'met' if met else 'MISSED'}] ≤ {TARGET_S:.0f} s per 100,000 residents; "
        f"goal {GOAL_S:.0f} s: {'met' if goal else 'not met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

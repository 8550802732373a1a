"""Scale benchmarks of issue #20 (item 4): one million residents on PostgreSQL.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_million --database-url postgresql://postgres@127.0.0.1:5432/bench
    python -m tests.bench.bench_million --sizes 100000 --parts board,list    # a quick look

For each size (default 100,000 then 1,000,000 residents) it DROPS and recreates the ``public``
schema of the given database, migrates it, and seeds (untimed, server-side
``INSERT … SELECT generate_series``) an organization, an admin, 50 sites and the residents
(consented, mobile numbers, ten languages). Then, each figure beside a baseline measured in
the same run and the load average at the start and end of each part:

1. **fan-out**: ``flows.start_broadcast`` to every resident (quiet hours overridden, a two-step
   SMS plan), whatever the fan-out writes per resident. Baseline: the same rows, copied aside,
   the tables truncated, and inserted again server-side (``INSERT INTO t SELECT * FROM copy``,
   one transaction, every index and foreign key in place): the database's own floor for
   those rows. Target: the 1,000,000 figure ≤ 10× the 100,000 figure.
2. **sweep**: ``--due`` (100,000) of the round's open check-ins given the same deadline, then
   ``flows.sweep_checkins`` at that deadline (each takes its next step). Baseline: the plain
   ``UPDATE`` that set those deadlines. Target: all processed ≤ 10 s after the deadline,
   counting the sweep job's interval (``scheduler.jobs.JOBS``) as start lag.
3. **list**: ``registry.service.list_residents`` (count + page 1 of 100) for one site and for
   the whole organization, and ``GET /api/v1/residents?site_id=…``. Baseline: the page's own
   query in plain SQL (no count).
4. **board**: the check-in tables emptied, then three broadcast rounds of every resident as
   ``bench_board`` writes them (the newest an hour and a half in), written server-side; then
   ``GET /`` and ``GET /board/live`` through the dashboard's login. Baseline: a plain
   ``count(*)`` of the same rounds' check-ins. Target: median ≤ 300 ms at 1,000,000.

It ends with how each cost grew from the smallest size to the largest, and exits with
status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine

from tests.bench.bench_registry import (
    USER_EMAIL,
    USER_PASSWORD,
    app_for,
    create_org_and_admin,
    fresh_database,
)

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench"
SITES = 50
LANGUAGES = ["ja", "ja", "ja", "easy_ja", "vi", "id", "fil", "pt_BR", "zh_Hans", "ne"]
SWEEP_TARGET_S = 10.0
BOARD_TARGET_MS = 300.0
FANOUT_GROWTH_TARGET = 10.0
BOARD_NOW = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)  # 11:30 in Tokyo
PLAN = [
    {"channel": "sms", "message": "prompt", "wait_minutes": 60},
    {"channel": "sms", "message": "reminder", "wait_minutes": 60},
]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_loop_s() -> float:
    """How fast this machine is right now: a 10-million-iteration Python loop."""
    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - start


class Report:
    def __init__(self) -> None:
        self.figures: dict[tuple[int, str], float] = {}
        self.checks: list[tuple[str, bool, str]] = []

    def figure(self, size: int, what: str, value: float, line: str) -> None:
        self.figures[(size, what)] = value
        print(f"  {line}", flush=True)

    def check(self, what: str, ok: bool, figure: str) -> None:
        self.checks.append((what, ok, figure))
        print(f"  [{'met' if ok else 'MISSED'}] {what}: {figure}", flush=True)


def sample(call: Callable[[int], Any], runs: int, warmup: int) -> list[float]:
    for i in range(warmup):
        call(i)
    timings = []
    for i in range(runs):
        start = time.perf_counter()
        call(i)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def describe(timings: list[float]) -> str:
    return (
        f"median {statistics.median(timings):7.1f} ms  p95 {p95(timings):7.1f} ms  "
        f"min {min(timings):7.1f} ms  ({len(timings)} runs)"
    )


def autocommit(engine: Engine, *statements: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for statement in statements:
            connection.execute(text(statement))


# --- Seeding (untimed) ---------------------------------------------------------------------------


def seed(engine: Engine, org_id: uuid.UUID, residents: int) -> list[uuid.UUID]:
    """50 sites and ``residents`` residents, generated by the server in one statement."""
    from service.registry.models import Site

    now = datetime.now(UTC)
    site_ids = [uuid.uuid4() for _ in range(SITES)]
    with engine.begin() as connection:
        connection.execute(
            insert(Site),
            [
                {
                    "id": site_id,
                    "organization_id": org_id,
                    "name": f"第{i + 1}団地",
                    "jma_area_code": "390",
                    "created_at": now,
                    "updated_at": now,
                }
                for i, site_id in enumerate(site_ids)
            ],
        )
        languages = ",".join(f"'{code}'" for code in LANGUAGES)
        sites = ",".join(f"'{site_id}'::uuid" for site_id in site_ids)
        connection.execute(
            text(
                f"""
                INSERT INTO resident (id, organization_id, external_id, name, name_kana, phone,
                    phone_kind, language, preferred_channel, site_id, unit, lives_alone,
                    elderly, disability, pregnancy, needs_interpreter, consent_at,
                    consent_method, status, created_at, updated_at)
                SELECT gen_random_uuid(), :org, 'R' || lpad(i::text, 7, '0'),
                    '住民 ' || i, 'ジュウミン ' || lpad(((i * 7919) % :n)::text, 7, '0'),
                    '+8190' || lpad(i::text, 8, '0'), 'mobile',
                    (ARRAY[{languages}])[1 + (i * 31) % {len(LANGUAGES)}], 'sms',
                    (ARRAY[{sites}])[1 + i % {SITES}], (i % 20 + 1) || '-' || (i % 7 + 101),
                    i % 3 = 0, i % 2 = 0, false, false, false, :now, 'paper', 'active',
                    :now, :now
                FROM generate_series(0::bigint, :n - 1) AS i
                """
            ),
            {"org": org_id, "n": residents, "now": now},
        )
    autocommit(engine, "VACUUM ANALYZE")
    return site_ids


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        tables = connection.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' AND tablename NOT LIKE 'bench_%'"
            )
        ).scalars()
        return {
            table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            for table in list(tables)
        }


def fk_order(engine: Engine, tables: list[str]) -> list[str]:
    """``tables`` with every table after the ones it references (among them)."""
    with engine.connect() as connection:
        edges = connection.execute(
            text(
                "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text "
                "FROM pg_constraint c WHERE c.contype = 'f'"
            )
        ).all()
    depends = {t: {ref.strip('"') for src, ref in edges if src.strip('"') == t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        for table in tables:
            if table not in ordered and all(
                d in ordered or d not in tables or d == table for d in depends[table]
            ):
                ordered.append(table)
    return ordered


# --- 1. Fan-out and 2. the sweep ----------------------------------------------------------------


def bench_fan_out(engine: Engine, org_id: uuid.UUID, size: int, report: Report) -> uuid.UUID:
    from service.checkins import flows
    from service.common import utcnow

    print(f"fan-out (load {load()})", flush=True)
    before = table_counts(engine)
    start = time.perf_counter()
    round_id = flows.start_broadcast(
        engine,
        organization_id=org_id,
        started_by="bench",
        now_fn=utcnow,
        override_quiet_hours=True,
        plan=PLAN,
        cause="bench",
    )
    fan_out_s = time.perf_counter() - start
    after = table_counts(engine)
    grown = {t: after[t] - before[t] for t in after if after[t] != before[t]}
    print(f"  rows written: {grown}", flush=True)
    per_resident = [t for t, rows in grown.items() if rows >= size // 2 and before[t] == 0]
    ordered = fk_order(engine, per_resident)
    for table in ordered:
        autocommit(engine, f'CREATE UNLOGGED TABLE "bench_{table}" AS SELECT * FROM "{table}"')
    autocommit(engine, "TRUNCATE " + ", ".join(f'"{t}"' for t in ordered) + " CASCADE")
    autocommit(engine, *(f'VACUUM ANALYZE "{t}"' for t in ordered))
    start = time.perf_counter()
    with engine.begin() as connection:
        for table in ordered:
            connection.execute(text(f'INSERT INTO "{table}" SELECT * FROM "bench_{table}"'))
    floor_s = time.perf_counter() - start
    autocommit(engine, *(f'DROP TABLE "bench_{t}"' for t in ordered))
    autocommit(engine, *(f'VACUUM ANALYZE "{t}"' for t in ordered))
    rows = sum(grown[t] for t in ordered)
    report.figure(
        size,
        "fan-out",
        fan_out_s,
        f"fan-out of {size:,} residents: {fan_out_s:.2f} s ({size / fan_out_s:,.0f}/s), "
        f"{sum(grown.values()) / size:.2f} rows per resident",
    )
    report.figure(
        size,
        "fan-out baseline",
        floor_s,
        f"baseline, server-side INSERT … SELECT of the same {rows:,} rows ({', '.join(ordered)}): "
        f"{floor_s:.2f} s; fan-out = {fan_out_s / floor_s:.2f}× the baseline  (load {load()})",
    )
    return round_id


def bench_sweep(engine: Engine, round_id: uuid.UUID, size: int, due: int, report: Report) -> None:
    from scheduler.jobs import JOBS
    from service.checkins import flows
    from service.common import utcnow

    print(f"sweep (load {load()})", flush=True)
    due = min(due, size)
    deadline = utcnow()
    with engine.connect() as connection:
        ids = list(
            connection.execute(
                text(
                    "SELECT id FROM checkin WHERE round_id = :r AND state = 'waiting' "
                    "ORDER BY id LIMIT :n"
                ),
                {"r": round_id, "n": due},
            ).scalars()
        )
    start = time.perf_counter()
    with engine.begin() as connection:
        for offset in range(0, len(ids), 5_000):
            connection.execute(
                text("UPDATE checkin SET next_action_at = :at WHERE id = ANY(:ids)"),
                {"at": deadline, "ids": ids[offset : offset + 5_000]},
            )
    update_s = time.perf_counter() - start
    autocommit(engine, "ANALYZE checkin")
    start = time.perf_counter()
    moved = flows.sweep_checkins(engine, utcnow)
    sweep_s = time.perf_counter() - start
    assert moved == len(ids), (moved, len(ids))
    interval = next(seconds for name, _f, seconds in JOBS if name == "sweep_due_deadlines")
    report.figure(
        size,
        "sweep",
        sweep_s,
        f"sweep of {len(ids):,} due of {size:,} open: {sweep_s:.2f} s ({len(ids) / sweep_s:,.0f}/s)",
    )
    report.figure(
        size,
        "sweep baseline",
        update_s,
        f"baseline, plain UPDATE of the same {len(ids):,} deadlines: {update_s:.2f} s; "
        f"sweep = {sweep_s / update_s:.1f}× the baseline  (load {load()})",
    )
    if len(ids) >= 100_000:
        report.check(
            f"{size:,} residents: all {len(ids):,} due processed ≤ {SWEEP_TARGET_S:.0f} s "
            "after the deadline",
            sweep_s + interval <= SWEEP_TARGET_S,
            f"{sweep_s:.2f} s + at most {interval} s until the job's next run",
        )


# --- 3. The resident list -------------------------------------------------------------------------


def bench_list(
    engine: Engine, org_id: uuid.UUID, site_ids: list[uuid.UUID], size: int, report: Report
) -> None:
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from service.app import create_app
    from service.registry import service

    print(f"list (load {load()})", flush=True)
    runs = 30

    def plain(i: int) -> None:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT * FROM resident WHERE organization_id = :o AND site_id = :s "
                    "ORDER BY name_kana, name, id LIMIT 100"
                ),
                {"o": org_id, "s": site_ids[i % SITES]},
            ).all()
            assert len(rows) == 100

    def by_site(i: int) -> None:
        with Session(engine) as session:
            page, count = service.list_residents(
                session=session, organization_id=org_id, site_id=site_ids[i % SITES], limit=100
            )
            assert len(page) == 100 and count >= size // SITES

    def whole(i: int) -> None:
        with Session(engine) as session:
            page, count = service.list_residents(
                session=session, organization_id=org_id, limit=100, skip=100 * (i % 5)
            )
            assert len(page) == 100 and count == size

    parts: list[tuple[str, Callable[[int], Any]]] = [
        ("list baseline (plain page query, one site)", plain),
        ("list via service, one site", by_site),
        ("list via service, whole organization", whole),
    ]
    for label, call in parts:
        timings = sample(call, runs, 3)
        report.figure(size, label, statistics.median(timings), f"{label:<44} {describe(timings)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(create_app())
    with client:
        token = client.post(
            "/api/v1/auth/token", data={"username": USER_EMAIL, "password": USER_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def via_api(i: int) -> None:
            response = client.get(
                "/api/v1/residents",
                headers=headers,
                params={"site_id": str(site_ids[i % SITES]), "limit": 100},
            )
            assert response.status_code == 200 and len(response.json()["data"]) == 100

        timings = sample(via_api, runs, 3)
    label = "list via API, one site"
    report.figure(size, label, statistics.median(timings), f"{label:<44} {describe(timings)}")
    print(f"  (load {load()})", flush=True)


# --- 4. The board ---------------------------------------------------------------------------------


def write_rounds(engine: Engine, org_id: uuid.UUID, site_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Three broadcast rounds of every resident, in bench_board's mix, written by the server."""
    from service.checkins.models import Round
    from service.escalations.models import REASON_PRIORITY

    autocommit(
        engine,
        "TRUNCATE checkin, checkin_attempt, outbox, escalation, alert, staff_task, "
        "timeline_event, round CASCADE",
    )
    priority = " ".join(f"WHEN '{r.value}' THEN {p}" for r, p in REASON_PRIORITY.items())
    round_ids = []
    for age in (2, 1, 0):
        started = BOARD_NOW - timedelta(days=age, minutes=90)
        round_id = uuid.uuid4()
        round_ids.append(round_id)
        # Cumulative shares, as bench_board's CURRENT_MIX and OLDER_MIX.
        if age == 0:
            states = (
                "CASE WHEN x < .55 THEN 'ok' WHEN x < .77 THEN 'waiting' WHEN x < .79 THEN 'flag' "
                "WHEN x < .82 THEN 'needs_help' WHEN x < .84 THEN 'wants_talk' "
                "WHEN x < .90 THEN 'no_reply' WHEN x < .94 THEN 'unreachable' "
                "WHEN x < .97 THEN 'visit_list' ELSE 'superseded' END"
            )
        else:
            states = (
                "CASE WHEN x < .85 THEN 'ok' WHEN x < .87 THEN 'needs_help' "
                "WHEN x < .89 THEN 'wants_talk' WHEN x < .95 THEN 'no_reply' "
                "WHEN x < .97 THEN 'unreachable' ELSE 'visit_list' END"
            )
        with engine.begin() as connection:
            connection.execute(
                insert(Round),
                [
                    {
                        "id": round_id,
                        "organization_id": org_id,
                        "kind": "broadcast",
                        "status": "open",
                        "cause": "余震" if age == 0 else None,
                        "target_kind": "sites",
                        "target_site_ids": [str(s) for s in site_ids],
                        "target_resident_ids": [],
                        "plan": [],
                        "override_quiet_hours": False,
                        "quiet_start": "21:00",
                        "quiet_end": "08:00",
                        "started_by": "bench",
                        "started_at": started,
                        "fanned_out_at": started,
                        "skipped_away": 0,
                    }
                ],
            )
            connection.execute(
                text(
                    f"""
                    INSERT INTO checkin (id, organization_id, round_id, resident_id, state, plan,
                        step_index, next_action_at, flagged, replied_at, closed_at,
                        escalation_id, created_at, updated_at)
                    SELECT gen_random_uuid(), :org, :round, id,
                        CASE WHEN s = 'flag' THEN 'waiting' ELSE s END, '[]', 0,
                        CASE WHEN s IN ('waiting', 'flag') THEN :now END, s = 'flag',
                        CASE WHEN s IN ('ok', 'needs_help', 'wants_talk', 'flag')
                            THEN :started + (1 + y * 84) * interval '1 minute' END,
                        CASE WHEN s IN ('waiting', 'flag') THEN NULL
                            WHEN s IN ('ok', 'needs_help', 'wants_talk')
                            THEN :started + (1 + y * 84) * interval '1 minute' ELSE :now END,
                        CASE WHEN s IN ('needs_help', 'no_reply', 'unreachable', 'visit_list')
                            THEN gen_random_uuid() END,
                        :started, :started
                    FROM (SELECT id, {states} AS s, y
                          FROM (SELECT id, random() AS x, random() AS y FROM resident) r) t
                    """
                ),
                {"org": org_id, "round": round_id, "now": BOARD_NOW, "started": started},
            )
            open_state = (
                "(ARRAY['alerting', 'alerting', 'acknowledged', 'exhausted', 'resolved'])"
                "[1 + floor(random() * 5)::int]"
                if age == 0
                else "'resolved'"
            )
            connection.execute(
                text(
                    f"""
                    INSERT INTO escalation (id, organization_id, resident_id, checkin_id, reason,
                        priority, state, chain, step_index, version, ack_minutes,
                        outcome_hours, next_action_at, outcome, resolved_at, case_code,
                        created_at, updated_at)
                    SELECT escalation_id, organization_id, resident_id, id, state,
                        CASE state {priority} END, e, '[]', 0, 0, 30, 4,
                        CASE WHEN e <> 'resolved' THEN :now END,
                        CASE WHEN e = 'resolved' THEN 'safe' END,
                        CASE WHEN e = 'resolved' THEN :now END,
                        'C{age}' || lpad((row_number() OVER ())::text, 6, '0'),
                        :started, :started
                    FROM (SELECT *, {open_state} AS e FROM checkin
                          WHERE round_id = :round AND escalation_id IS NOT NULL) c
                    """
                ),
                {"now": BOARD_NOW, "started": started, "round": round_id},
            )
            if age == 0:
                connection.execute(
                    text(
                        """
                        INSERT INTO staff_task (id, organization_id, kind, resident_id,
                            checkin_id, created_at)
                        SELECT gen_random_uuid(), organization_id,
                            CASE WHEN state = 'wants_talk' THEN 'callback' ELSE 'unclear' END,
                            resident_id, id, coalesce(replied_at, :now)
                        FROM checkin WHERE round_id = :round
                            AND (state = 'wants_talk' OR flagged)
                        """
                    ),
                    {"now": BOARD_NOW, "round": round_id},
                )
    autocommit(engine, "VACUUM ANALYZE")
    return round_ids


def bench_board(
    engine: Engine, org_id: uuid.UUID, site_ids: list[uuid.UUID], size: int, report: Report
) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.clock import FakeClock, SystemClock, set_clock

    start = time.perf_counter()
    round_ids = write_rounds(engine, org_id, site_ids)
    with engine.connect() as connection:
        escalations, open_cases = connection.execute(
            text("SELECT count(*), count(*) FILTER (WHERE state <> 'resolved') FROM escalation")
        ).one()
    print(
        f"board: wrote 3 rounds of {size:,} check-ins, {escalations:,} escalations "
        f"({open_cases:,} open) in {time.perf_counter() - start:.0f} s (load {load()})",
        flush=True,
    )
    runs, warmup = (15, 2) if size >= 500_000 else (30, 3)

    def baseline(_i: int) -> None:
        with engine.connect() as connection:
            connection.execute(
                text("SELECT count(*) FROM checkin WHERE round_id = ANY(:r)"), {"r": round_ids}
            ).scalar_one()

    timings = sample(baseline, runs, warmup)
    label = "board baseline: count(*) of the 3 rounds"
    report.figure(size, label, statistics.median(timings), f"{label:<44} {describe(timings)}")
    set_clock(FakeClock(BOARD_NOW))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = TestClient(create_app())
        with client:
            login = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
            response = client.post(
                "/login",
                data={
                    "csrf_token": token,
                    "email": USER_EMAIL,
                    "password": USER_PASSWORD,
                    "next": "/",
                },
                follow_redirects=False,
            )
            assert response.status_code == 303, response.text

            def board(_i: int) -> None:
                page = client.get("/")
                assert page.status_code == 200 and 'data-bucket="total"' in page.text

            def live(_i: int) -> None:
                part = client.get("/board/live")
                assert part.status_code == 200 and "<svg" in part.text

            for label, call in (("board GET /", board), ("board GET /board/live", live)):
                timings = sample(call, runs, warmup)
                median = statistics.median(timings)
                report.figure(size, label, median, f"{label:<44} {describe(timings)}")
                if size >= 1_000_000:
                    report.check(
                        f"{size:,} residents: {label} median ≤ {BOARD_TARGET_MS:.0f} ms",
                        median <= BOARD_TARGET_MS,
                        f"{median:.0f} ms",
                    )
        board_parts(engine, org_id, size, report)
    finally:
        set_clock(SystemClock())
    print(f"  (load {load()})", flush=True)


def board_parts(engine: Engine, org_id: uuid.UUID, size: int, report: Report) -> None:
    """Each of the board's reads on its own."""
    from sqlmodel import Session

    from service.web import board as board_data

    with Session(engine) as session:
        rounds = board_data.recent_rounds(session, org_id)
    parts: list[tuple[str, Callable[[Session], Any]]] = [
        (
            "  part: counts (sites for the newest round)",
            lambda s: board_data.summarize(s, org_id, rounds, sites_for={rounds[0].id}),
        ),
        ("  part: needs attention (top 50)", lambda s: board_data.needs_attention(s, org_id)),
        ("  part: open task count", lambda s: board_data.open_task_count(s, org_id)),
        (
            "  part: chart",
            lambda s: board_data.response_chart(s, rounds[0], size, BOARD_NOW),
        ),
    ]
    for label, call in parts:

        def run(_i: int, call: Callable[[Session], Any] = call) -> None:
            with Session(engine) as session:
                call(session)

        timings = sample(run, 5, 1)
        report.figure(size, label, statistics.median(timings), f"{label:<44} {describe(timings)}")


# --- Main -----------------------------------------------------------------------------------------


def run_size(url: str, size: int, due: int, parts: set[str], report: Report) -> None:
    print(f"\n== {size:,} residents, {url} (load {load()}, loop {cpu_loop_s():.2f} s)", flush=True)
    with fresh_database(url) as db_url, app_for(db_url) as engine:
        org_id, _user_id = create_org_and_admin(engine)
        start = time.perf_counter()
        site_ids = seed(engine, org_id, size)
        print(f"seeded {size:,} residents in {time.perf_counter() - start:.0f} s", flush=True)
        if "fanout" in parts or "sweep" in parts:
            round_id = bench_fan_out(engine, org_id, size, report)
            if "sweep" in parts:
                bench_sweep(engine, round_id, size, due, report)
        if "list" in parts:
            bench_list(engine, org_id, site_ids, size, report)
        if "board" in parts:
            bench_board(engine, org_id, site_ids, size, report)
    print(f"== end of {size:,} (load {load()})", flush=True)


def summary(sizes: list[int], report: Report) -> int:
    print(f"\n== summary (load {load()})")
    small, large = min(sizes), max(sizes)
    whats = list(dict.fromkeys(what for _size, what in report.figures))
    print(f"  {'what':<46} " + "  ".join(f"{s:>12,}" for s in sizes) + "  growth")
    for what in whats:
        values = [report.figures.get((s, what)) for s in sizes]
        unit = "s" if what.startswith(("fan-out", "sweep")) else "ms"
        cells = "  ".join(f"{v:>10.2f} {unit}" if v is not None else f"{'':>12}" for v in values)
        a, b = report.figures.get((small, what)), report.figures.get((large, what))
        growth = f"{b / a:5.1f}×" if a and b and small != large else ""
        print(f"  {what:<46} {cells}  {growth}")
    a, b = report.figures.get((small, "fan-out")), report.figures.get((large, "fan-out"))
    if a and b and small != large:
        allowed = FANOUT_GROWTH_TARGET * (large / small) / 10  # 10× for 100,000 → 1,000,000
        report.checks.append(
            (
                f"fan-out of {large:,} ≤ {allowed:.0f}× the {small:,} figure",
                b <= allowed * a,
                f"{b:.1f} s / {a:.1f} s = {b / a:.1f}×",
            )
        )
    failed = 0
    for what, ok, figure in report.checks:
        failed += not ok
        print(f"  [{'met' if ok else 'MISSED'}] {what}: {figure}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_million", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_URL,
        help=f"PostgreSQL only; its public schema is dropped. Default: {DEFAULT_PG_URL}",
    )
    parser.add_argument("--sizes", default="100000,1000000", help="residents, comma-separated")
    parser.add_argument("--due", type=int, default=100_000, help="check-ins due at once")
    parser.add_argument("--parts", default="fanout,sweep,list,board")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("this benchmark is for PostgreSQL")
    sizes = [int(s) for s in args.sizes.split(",")]
    parts = set(args.parts.split(","))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {load()}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC",
        flush=True,
    )
    report = Report()
    for size in sizes:
        run_size(args.database_url, size, args.due, parts, report)
    return summary(sizes, report)


if __name__ == "__main__":
    sys.exit(main())

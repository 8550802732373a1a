"""Dashboard benchmark of issue #6: the board for a round of 10,000 residents on 5 sites.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_board                       # PostgreSQL `bench_web`
    python -m tests.bench.bench_board --database-url sqlite --runs 30
    python -m tests.bench.bench_board --database-url postgresql://postgres@127.0.0.1:5432/bench_web

For each database it creates a fresh schema (a temporary SQLite file, or for PostgreSQL it
DROPS and recreates the ``public`` schema of the given database, so never point it at data you
want to keep), migrates it, and writes in bulk: 5 sites, 10,000 residents, three broadcast
rounds of 10,000 check-ins each (the newest one half answered, the older ones settled), the
escalations those rounds opened, and open staff tasks. Then it logs in through the dashboard's
login form and times, through FastAPI's TestClient (the whole request: session cookie, user,
queries, Jinja2 rendering of the counts, the per-site table, the needs-attention list and the
SVG chart):

1. ``GET /`` (the board, full page);
2. ``GET /board/live`` (the fragment the page polls every few seconds).

It prints median and p95 and exits with status 1 when a median misses the target (≤ 300 ms
on PostgreSQL).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_web"
SEED = 20240101
ORG_NAME = "ベンチ市社会福祉協議会"
EMAIL = "bench-coordinator@example.jp"
PASSWORD = "bench password, not a secret"
TARGET_MS = 300.0
SITES = ["宅田町第1団地", "宅田町第2団地", "河井町団地", "門前町団地", "町野町団地"]

# The newest round, an hour and a half in: how its 10,000 check-ins stand.
CURRENT_MIX = [
    ("ok", 0.55),
    ("waiting", 0.22),
    ("waiting_flagged", 0.02),
    ("needs_help", 0.03),
    ("wants_talk", 0.02),
    ("no_reply", 0.06),
    ("unreachable", 0.04),
    ("visit_list", 0.03),
    ("superseded", 0.03),
]
OLDER_MIX = [
    ("ok", 0.85),
    ("needs_help", 0.02),
    ("wants_talk", 0.02),
    ("no_reply", 0.06),
    ("unreachable", 0.02),
    ("visit_list", 0.03),
]
ESCALATED = {
    "needs_help": "needs_help",
    "no_reply": "no_reply",
    "unreachable": "unreachable",
    "visit_list": "visit_list",
}


def _pick(rng: random.Random, mix: list[tuple[str, float]]) -> str:
    roll, total = rng.random(), 0.0
    for state, share in mix:
        total += share
        if roll < total:
            return state
    return mix[-1][0]


def fresh_database(url: str) -> tuple[str, Callable[[], None]]:
    from service import migrate
    from service.db import make_engine

    if url == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-board-")
        url = f"sqlite:///{folder}/bench.db"
        cleanup: Callable[[], None] = lambda: shutil.rmtree(folder, ignore_errors=True)  # noqa: E731
    else:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        cleanup = lambda: None  # noqa: E731
    migrate.upgrade(url)
    return url, cleanup


def populate(residents: int, seed: int) -> dict[str, Any]:
    """Everything the board reads, written in bulk the way the fan-out writes it."""
    from sqlmodel import Session

    from service.audit.service import Actor
    from service.auth.models import Role, UserCreate
    from service.auth.service import create_user, get_or_create_organization
    from service.checkins.models import CheckIn, Round, StaffTask
    from service.db import get_engine
    from service.escalations.models import REASON_PRIORITY, Escalation, EscalationReason
    from service.registry.models import Resident, Site

    rng = random.Random(seed)
    engine = get_engine()
    now = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)  # 11:30 in Tokyo
    with Session(engine) as session:
        org = get_or_create_organization(session=session, name=ORG_NAME)
        create_user(
            session=session,
            organization_id=org.id,
            data=UserCreate(
                email=EMAIL, full_name="ベンチ 職員", role=Role.coordinator, password=PASSWORD
            ),
            actor=Actor(label="bench"),
        )
        session.commit()
        org_id = org.id
    site_ids = [uuid.uuid4() for _ in SITES]
    resident_ids = [uuid.uuid4() for _ in range(residents)]
    languages = ["ja"] * 7 + ["vi", "id", "fil", "easy_ja", "pt_BR", "ne", "zh_Hans"]
    with engine.begin() as connection:
        connection.execute(
            insert(Site),
            [
                {
                    "id": sid,
                    "organization_id": org_id,
                    "name": name,
                    "created_at": now,
                    "updated_at": now,
                }
                for sid, name in zip(site_ids, SITES, strict=True)
            ],
        )
        connection.execute(
            insert(Resident),
            [
                {
                    "id": rid,
                    "organization_id": org_id,
                    "external_id": f"B-{n:06d}",
                    "name": f"住民 {n:05d}",
                    "name_kana": f"ジュウミン {n:05d}",
                    "phone": f"+8190{n:08d}",
                    "phone_kind": "mobile",
                    "language": rng.choice(languages),
                    "preferred_channel": "sms",
                    "site_id": site_ids[n % len(site_ids)],
                    "unit": f"{n % 40 + 1}-{n % 7 + 101}",
                    "lives_alone": n % 3 == 0,
                    "elderly": n % 2 == 0,
                    "disability": False,
                    "pregnancy": False,
                    "needs_interpreter": False,
                    "status": "active",
                    "consent_at": now - timedelta(days=30),
                    "created_at": now,
                    "updated_at": now,
                }
                for n, rid in enumerate(resident_ids)
            ],
        )
        open_escalation: set[uuid.UUID] = set()
        escalations = 0
        for age, mix in ((2, OLDER_MIX), (1, OLDER_MIX), (0, CURRENT_MIX)):
            started = now - timedelta(days=age, minutes=90)
            round_id = uuid.uuid4()
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
            checkins, cases, tasks = [], [], []
            for rid in resident_ids:
                state = _pick(rng, mix)
                flagged = state == "waiting_flagged"
                state = "waiting" if flagged else state
                replied = state in ("ok", "needs_help", "wants_talk") or flagged
                replied_at = started + timedelta(minutes=rng.uniform(1, 85)) if replied else None
                checkin_id = uuid.uuid4()
                escalation_id = None
                if state in ESCALATED:
                    escalation_id = uuid.uuid4()
                    reason = EscalationReason(ESCALATED[state])
                    if age == 0 and rid not in open_escalation:
                        esc_state = rng.choice(
                            ["alerting", "alerting", "acknowledged", "exhausted", "resolved"]
                        )
                    else:
                        esc_state = "resolved"
                    if esc_state != "resolved":
                        open_escalation.add(rid)
                    cases.append(
                        {
                            "id": escalation_id,
                            "organization_id": org_id,
                            "resident_id": rid,
                            "checkin_id": checkin_id,
                            "reason": reason.value,
                            "priority": REASON_PRIORITY[reason],
                            "state": esc_state,
                            "chain": [],
                            "step_index": 0,
                            "version": 0,
                            "ack_minutes": 30,
                            "outcome_hours": 4,
                            "next_action_at": None if esc_state == "resolved" else now,
                            "outcome": "safe" if esc_state == "resolved" else None,
                            "resolved_at": now if esc_state == "resolved" else None,
                            "case_code": uuid.uuid4().hex[:6].upper(),
                            "created_at": started,
                            "updated_at": started,
                        }
                    )
                if age == 0 and (state == "wants_talk" or flagged):
                    tasks.append(
                        {
                            "id": uuid.uuid4(),
                            "organization_id": org_id,
                            "kind": "callback" if state == "wants_talk" else "unclear",
                            "resident_id": rid,
                            "checkin_id": checkin_id,
                            "created_at": replied_at or now,
                        }
                    )
                checkins.append(
                    {
                        "id": checkin_id,
                        "organization_id": org_id,
                        "round_id": round_id,
                        "resident_id": rid,
                        "state": state,
                        "plan": [],
                        "step_index": 0,
                        "next_action_at": now if state == "waiting" else None,
                        "flagged": flagged,
                        "last_reply_kind": None,
                        "replied_at": replied_at,
                        "closed_at": None if state == "waiting" else (replied_at or now),
                        "escalation_id": escalation_id,
                        "created_at": started,
                        "updated_at": started,
                    }
                )
            for start in range(0, len(checkins), 5000):
                connection.execute(insert(CheckIn), checkins[start : start + 5000])
            if cases:
                connection.execute(insert(Escalation), cases)
            if tasks:
                connection.execute(insert(StaffTask), tasks)
            escalations += len(cases)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return {"now": now, "escalations": escalations, "open": len(open_escalation)}


def sample(call: Callable[[], None], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def breakdown(runs: int) -> None:
    """Where a board's time goes: each query on its own, then the template alone."""
    from sqlmodel import Session, select

    from service.auth.models import User
    from service.clock import get_clock
    from service.db import get_engine
    from service.registry.models import Organization
    from service.web import board as board_data
    from service.web.core import environment
    from service.web.translation import UiText

    engine = get_engine()
    with Session(engine) as session:
        user = session.exec(select(User).where(User.email == EMAIL)).one()
        org = session.get(Organization, user.organization_id)
        assert org is not None
        org_id = org.id
        rounds = board_data.recent_rounds(session, org_id)
        summaries = board_data.summarize(session, org_id, rounds)
        attention, total = board_data.needs_attention(session, org_id)
        chart = board_data.response_chart(
            session, rounds[0], summaries[0].counts.total, get_clock().now()
        )
    text = UiText("ja", org.timezone)

    def in_session(call: Callable[[Any], Any]) -> Callable[[], None]:
        def run() -> None:
            with Session(engine) as session:
                call(session)

        return run

    parts: list[tuple[str, Callable[[], None]]] = [
        ("counts by round and site", in_session(lambda s: board_data.summarize(s, org_id, rounds))),
        ("needs attention (top 50)", in_session(lambda s: board_data.needs_attention(s, org_id))),
        (
            "chart query and points",
            in_session(
                lambda s: board_data.response_chart(s, rounds[0], 10_000, get_clock().now())
            ),
        ),
        (
            "template only",
            lambda: environment.get_template("_board_live.html").render(
                request=None,
                _=text.gettext,
                t=text,
                staff=None,
                csrf_token="x",
                flashes=[],
                current_path="/",
                summaries=summaries,
                selected=summaries[0],
                attention=attention,
                attention_total=total,
                open_tasks=0,
                chart=chart,
                updated_at=get_clock().now(),
                answer_buckets=board_data.ANSWER_BUCKETS,
                case_buckets=board_data.CASE_BUCKETS,
            ),
        ),
    ]
    for label, call in parts:
        timings = sample(call, max(20, runs // 2), warmup=3)
        print(f"  {label:<26} median {statistics.median(timings):6.1f} ms", flush=True)


def run_one(url: str, residents: int, runs: int, seed: int) -> list[tuple[str, bool, str]]:
    from fastapi.testclient import TestClient

    from service.clock import FakeClock, set_clock
    from service.config import get_settings
    from service.db import get_engine

    url, cleanup = fresh_database(url)
    os.environ["MIMAMORI_DATABASE_URL"] = url
    get_settings.cache_clear()
    get_engine.cache_clear()
    kind = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"\n== {kind}: {url}", flush=True)
    try:
        start = time.perf_counter()
        facts = populate(residents, seed)
        print(
            f"wrote {residents:,} residents, 3 rounds of {residents:,} check-ins, "
            f"{facts['escalations']:,} escalations ({facts['open']:,} open) "
            f"in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        set_clock(FakeClock(facts["now"]))
        from service.app import create_app

        checks = []
        with TestClient(create_app()) as client:
            login = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
            response = client.post(
                "/login",
                data={"csrf_token": token, "email": EMAIL, "password": PASSWORD, "next": "/"},
                follow_redirects=False,
            )
            assert response.status_code == 303, response.text

            def board() -> None:
                page = client.get("/")
                assert page.status_code == 200 and 'data-bucket="total"' in page.text

            def live() -> None:
                part = client.get("/board/live")
                assert part.status_code == 200 and "<svg" in part.text

            page = client.get("/").text
            total = re.search(r'data-bucket="total"><dt>[^<]*</dt><dd>([\d,]+)<', page)
            print(
                f"board shows {total.group(1) if total else '?'} residents in the newest round, "
                f"{len(page) / 1024:.0f} KB of HTML",
                flush=True,
            )
            for label, call in (("GET / (board)", board), ("GET /board/live", live)):
                timings = sample(call, runs)
                median = statistics.median(timings)
                print(
                    f"{label:<18} {runs} runs  median {median:6.1f} ms  "
                    f"p95 {p95(timings):6.1f} ms  min {min(timings):6.1f} ms",
                    flush=True,
                )
                checks.append(
                    (
                        f"{kind} {label}: median ≤ {TARGET_MS:.0f} ms",
                        median <= TARGET_MS,
                        f"{median:.1f} ms",
                    )
                )
            breakdown(runs)
        return checks
    finally:
        get_engine().dispose()
        get_engine.cache_clear()
        get_settings.cache_clear()
        cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_board", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url",
        action="append",
        dest="urls",
        metavar="URL",
        help="repeatable; `sqlite` means a temporary file. A PostgreSQL "
        f"database's public schema is dropped. Default: {DEFAULT_PG_URL}",
    )
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=60, help="timed requests per figure")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    checks = []
    for url in args.urls or [DEFAULT_PG_URL]:
        checks += run_one(url, args.residents, args.runs, args.seed)
    print("\n== summary")
    failed = 0
    for what, ok, figure in checks:
        failed += not ok
        print(f"  [{'met' if ok else 'MISSED'}] {what}: {figure}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

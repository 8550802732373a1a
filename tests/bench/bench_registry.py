"""Registry benchmarks of issues #2 and #20: a 100,000-row CSV import and the resident list.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_registry                      # SQLite file + PostgreSQL `bench`
    python -m tests.bench.bench_registry --database-url sqlite --rows 20000
    python -m tests.bench.bench_registry --database-url postgresql://postgres@127.0.0.1:5432/bench

For each database it creates a fresh schema (a temporary SQLite file, or for PostgreSQL it
DROPS and recreates the ``public`` schema of the given database, so never point it at data you
want to keep), migrates it with ``service.migrate.upgrade``, generates a CP932 resident file
from a fixed seed, and measures:

1. the first import into an empty organization (``csv_io.import_csv`` + commit), and beside
   it, in the same run, its floor: a plain COPY of the same resident and audit rows (read back
   from the import, so already validated and formatted) into a second organization, + commit;
2. a re-import of the same file, which must be a no-op;
3. page 1 of the residents of one site (limit 100), through the service function and through
   the real API (TestClient, bearer token, one audit row written per call).

It prints the figures and whether each target is met, and exits with status 1 when one is not.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import math
import os
import pstats
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench"
SEED = 20240101  # the Noto earthquake; any fixed value keeps the file identical between runs
ORG_NAME = "ベンチ市社会福祉協議会"
USER_EMAIL = "bench-admin@example.jp"
USER_PASSWORD = "bench password, not a secret"

IMPORT_TARGET_S = 30.0  # issue 2, any database
PG_IMPORT_TARGET_S = 10.0  # issue 20, PostgreSQL
LIST_TARGET_MS = 50.0

# --- The CSV -----------------------------------------------------------------------------------

HEADER = [
    "管理番号",
    "氏名",
    "フリガナ",
    "電話番号",
    "言語",
    "団地",
    "部屋番号",
    "独居",
    "高齢者",
    "通訳必要",
    "状態",
    "不在期限",
    "備考",
]

SURNAMES = [
    ("能登", "ノト"),
    ("輪島", "ワジマ"),
    ("山田", "ヤマダ"),
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山本", "ヤマモト"),
    ("坂本", "サカモト"),
    ("北村", "キタムラ"),
    ("橋本", "ハシモト"),
    ("池田", "イケダ"),
    ("前田", "マエダ"),
    ("松本", "マツモト"),
    ("宮本", "ミヤモト"),
    ("浜田", "ハマダ"),
    ("中谷", "ナカタニ"),
    ("道下", "ミチシタ"),
    ("濱野", "ハマノ"),
    ("角", "スミ"),
]
GIVEN_NAMES = [
    ("花子", "ハナコ"),
    ("一郎", "イチロウ"),
    ("太郎", "タロウ"),
    ("和子", "カズコ"),
    ("幸子", "サチコ"),
    ("節子", "セツコ"),
    ("清", "キヨシ"),
    ("勇", "イサム"),
    ("茂", "シゲル"),
    ("美智子", "ミチコ"),
    ("弘", "ヒロシ"),
    ("久子", "ヒサコ"),
    ("正", "タダシ"),
    ("トメ", "トメ"),
    ("キヨ", "キヨ"),
    ("健太", "ケンタ"),
    ("陽菜", "ヒナ"),
]
# Foreign residents, by the Japanese name of their language as staff type it in Excel.
# Names are kept to what CP932 can hold (no Vietnamese diacritics, no Hangul), as such files are.
FOREIGN = {
    "ベトナム語": [
        ("Nguyen Van An", "グエン ヴァン アン"),
        ("Tran Thi Hoa", "チャン ティ ホア"),
        ("グエン ティ ラン", "グエン ティ ラン"),
        ("Pham Minh Duc", "ファム ミン ドゥック"),
        ("Le Thi Mai", "レー ティ マイ"),
    ],
    "インドネシア語": [
        ("Siti Rahayu", "シティ ラハユ"),
        ("Budi Santoso", "ブディ サントソ"),
        ("Dewi Lestari", "デウィ レスタリ"),
    ],
    "タガログ語": [("Maria Santos", "マリア サントス"), ("Jose Reyes", "ホセ レイエス")],
    "フィリピノ語": [("Ana Cruz", "アナ クルス")],
    "ネパール語": [("Ram Thapa", "ラム タパ"), ("Sita Gurung", "シタ グルン")],
    "中国語": [("王 偉", "ワン ウェイ"), ("李 娜", "リ ナ"), ("張 敏", "チャン ミン")],
    "ポルトガル語": [("Joao Silva", "ジョアン シルバ"), ("Ana Souza", "アナ ソウザ")],
    "英語": [("John Smith", "ジョン スミス"), ("Emily Brown", "エミリー ブラウン")],
    "韓国語": [("金 民俊", "キム ミンジュン"), ("朴 智恩", "パク チウン")],
    "ミャンマー語": [("Aung Kyaw", "アウン チョー")],
}
# Weights out of 1000: mostly Japanese, as in Noto; the rest as in the design card.
LANGUAGE_WEIGHTS = {
    "日本語": 700,
    "": 40,  # blank means Japanese
    "やさしい日本語": 30,
    "ベトナム語": 80,
    "インドネシア語": 40,
    "タガログ語": 30,
    "フィリピノ語": 10,
    "ネパール語": 25,
    "中国語": 20,
    "ポルトガル語": 15,
    "英語": 5,
    "韓国語": 3,
    "ミャンマー語": 2,
}
TOWNS = [
    "宅田町",
    "河井町",
    "鳳至町",
    "門前町",
    "町野町",
    "輪島崎町",
    "大屋町",
    "杉平町",
    "三井町",
    "山岸町",
]
SITES = [f"{town}第{n}団地" for town in TOWNS for n in range(1, 6)]  # 50 sites
_FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")
LANDLINE_PREFIXES = ["0768-22", "0768-23", "0768-32", "0768-42", "0768-52", "0767-52", "076-221"]
YES = ["○", "1", "はい", "◯", "有"]
NO = ["", "", "", "0", "×", "いいえ"]
NOTES = [
    "補聴器使用",
    "足が不自由, 2階は不可",
    "娘が金沢市在住（連絡可）",
    "夜間は不在がち",
    "ペットあり（犬）",
    '本人希望: "電話は午後"',
    "透析 週3回",
]


def _mobile(rng: random.Random) -> str:
    prefix = rng.choice(["090", "080", "070"])
    a, b = rng.randint(1000, 9999), rng.randint(0, 9999)
    style = rng.random()
    if style < 0.50:
        return f"{prefix}-{a}-{b:04d}"
    if style < 0.65:
        return f"{prefix}{a}{b:04d}"
    if style < 0.80:
        return f"{prefix}-{a}-{b:04d}".translate(_FULL_WIDTH)  # ０９０－１２３４－５６７８
    if style < 0.85:
        return f"{prefix}{a}{b:04d}".translate(_FULL_WIDTH)
    if style < 0.90:
        return f"+81 {prefix[1:]} {a} {b:04d}"
    return f"{prefix} {a} {b:04d}"


def _landline(rng: random.Random) -> str:
    area, exchange = rng.choice(LANDLINE_PREFIXES).split("-")
    number = f"{rng.randint(0, 9999):04d}"
    style = rng.random()
    if style < 0.40:
        return f"{area}-{exchange}-{number}"
    if style < 0.65:
        return f"({area}) {exchange}-{number}"
    if style < 0.85:
        return f"{area}-{exchange}-{number}".translate(_FULL_WIDTH)
    return f"{area}{exchange}{number}"


def _flag(rng: random.Random, p: float) -> str:
    return rng.choice(YES) if rng.random() < p else rng.choice(NO)


def resident_rows(n: int, seed: int = SEED) -> Iterator[list[str]]:
    """Deterministic resident rows, the way council staff type them into Excel."""
    rng = random.Random(seed)
    languages = list(LANGUAGE_WEIGHTS)
    weights = list(LANGUAGE_WEIGHTS.values())
    for i in range(1, n + 1):
        language = rng.choices(languages, weights)[0]
        if language in FOREIGN:
            name, kana = rng.choice(FOREIGN[language])
        else:
            (s, sk), (g, gk) = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
            name, kana = f"{s} {g}", f"{sk} {gk}"
        kind = rng.random()
        if kind < 0.72:
            phone = _mobile(rng)
        elif kind < 0.95:
            phone = _landline(rng)
        else:
            phone = ""  # reached through a neighbour or a visit
        site = rng.choice(SITES)
        if rng.random() < 0.3:
            site = site.translate(_FULL_WIDTH)  # 第２団地 and 第2団地 are one site
        unit = f"{rng.choice('ABCDEFGH')}-{rng.randint(1, 30)}"
        foreign = language in FOREIGN
        status, away = "", ""
        s = rng.random()
        if s < 0.05:
            status = "不在"
            back = date(2026, 1, 1) + timedelta(days=rng.randint(0, 364))
            away = back.strftime("%Y/%m/%d" if rng.random() < 0.7 else "%Y-%m-%d")
        elif s < 0.07:
            status = "退去"
        elif s < 0.08:
            status = "停止"
        elif s < 0.40:
            status = "在宅"
        yield [
            f"W-{i:06d}",
            name,
            kana,
            phone,
            language,
            site,
            unit,
            _flag(rng, 0.35),
            _flag(rng, 0.15 if foreign else 0.6),
            _flag(rng, 0.6) if foreign else rng.choice(NO),
            status,
            away,
            rng.choice(NOTES) if rng.random() < 0.2 else "",
        ]


def resident_csv(n: int, seed: int = SEED) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(resident_rows(n, seed))
    return out.getvalue().encode("cp932")


# --- Databases ---------------------------------------------------------------------------------


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A migrated, empty database; `sqlite` alone means a temporary file."""
    from service import migrate
    from service.db import make_engine

    tmp: str | None = None
    if url == "sqlite":
        tmp = tempfile.mkdtemp(prefix="mimamori-bench-")
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
    elif url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def app_for(url: str) -> Iterator[Engine]:
    """Point the cached settings and engine at `url`, as tests/conftest.py does."""
    from service.config import get_settings
    from service.db import get_engine

    old = os.environ.get("MIMAMORI_DATABASE_URL")
    os.environ["MIMAMORI_DATABASE_URL"] = url
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        yield get_engine()
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()
        if old is None:
            os.environ.pop("MIMAMORI_DATABASE_URL", None)
        else:
            os.environ["MIMAMORI_DATABASE_URL"] = old


def create_org_and_admin(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    from service.audit.service import Actor
    from service.auth.models import Role, UserCreate
    from service.auth.service import create_user, get_or_create_organization

    with Session(engine) as session:
        org = get_or_create_organization(session=session, name=ORG_NAME)
        user = create_user(
            session=session,
            organization_id=org.id,
            data=UserCreate(
                email=USER_EMAIL, full_name="ベンチ 管理者", role=Role.admin, password=USER_PASSWORD
            ),
            actor=Actor(label="bench"),
        )
        session.commit()
        return org.id, user.id


# --- Measurements ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Timing:
    label: str
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)


@dataclass
class Result:
    url: str
    rows: int
    csv_bytes: int
    import_s: float = 0.0
    reimport_s: float = 0.0
    site_rows: int = 0
    timings: list[Timing] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, what: str, ok: bool, figure: str) -> None:
        self.checks.append((what, ok, figure))


def _cold_phone_cache() -> None:
    """Each import starts as a fresh CLI process would: no parsed numbers cached."""
    from service.registry import phones

    cache = getattr(phones, "_CACHE", None)
    if isinstance(cache, dict):
        cache.clear()


def timed_import(
    engine: Engine, org_id: uuid.UUID, data: bytes, *, profile: bool = False
) -> tuple[float, object]:
    from service.audit.service import Actor
    from service.registry import csv_io

    _cold_phone_cache()
    profiler = cProfile.Profile() if profile else None
    with Session(engine) as session:
        start, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        report = csv_io.import_csv(
            session=session,
            organization_id=org_id,
            kind="residents",
            data=data,
            actor=Actor(label="bench import"),
        )
        session.commit()
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - start
        # The benchmark's own CPU (validation, formatting): less swayed by others' load
        # than the wall time, though the database's work is not in it.
        print(f"  (this process: {time.process_time() - cpu:.2f} s of CPU)", flush=True)
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return elapsed, report


def plain_copy_baseline(engine: Engine, org_id: uuid.UUID) -> tuple[float, int]:
    """The floor of an import's writes: COPY the rows the import wrote (residents, their
    sites and audit entries, read back and re-keyed to a second organization beforehand)
    with psycopg alone, then commit. Nothing is validated or parsed in the timed part."""
    from service.auth.service import get_or_create_organization

    tables = ("site", "resident", "audit_log")
    with Session(engine) as session:
        other = get_or_create_organization(session=session, name=f"{ORG_NAME} (COPY)").id
        session.commit()
    data: dict[str, tuple[list[str], list[tuple[object, ...]]]] = {}
    with engine.connect() as connection:
        for table in tables:
            result = connection.execute(
                text(f"SELECT * FROM {table} WHERE organization_id = :org"), {"org": org_id}
            )
            names = list(result.keys())
            rows = [
                tuple(
                    other if n == "organization_id" else v for n, v in zip(names, row, strict=True)
                )
                for row in result
            ]
            data[table] = (names, rows)
    site_names = data["site"][0]
    sites = {row[site_names.index("id")]: uuid.uuid4() for row in data["site"][1]}
    fresh: dict[str, list[tuple[object, ...]]] = {}
    for table, (names, rows) in data.items():
        # New ids (the originals stay); the residents point at the copied sites.
        i_id = names.index("id")
        i_site = names.index("site_id") if "site_id" in names else None
        out = []
        for row in rows:
            values = list(row)
            values[i_id] = sites[row[i_id]] if table == "site" else uuid.uuid4()
            if i_site is not None and values[i_site] is not None:
                values[i_site] = sites[values[i_site]]
            out.append(tuple(_jsonable(v) for v in values))
        fresh[table] = out
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        start = time.perf_counter()
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            for table in tables:
                names = data[table][0]
                with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
                    for row in fresh[table]:
                        copy.write_row(row)
        raw.commit()  # type: ignore[union-attr]
        elapsed = time.perf_counter() - start
    return elapsed, sum(len(rows) for rows in fresh.values())


def _jsonable(value: object) -> object:
    import json

    return json.dumps(value) if isinstance(value, list | dict) else value


def sample(fn: Callable[[int], None], runs: int, warmup: int = 5) -> list[float]:
    for i in range(warmup):
        fn(i)
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def run_one(url: str, rows: int, runs: int, data: bytes, profile: bool) -> Result:
    with warnings.catch_warnings():
        # Starlette's note about httpx is about the test client, not what is measured.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from service.app import create_app
    from service.audit.models import AuditEntry
    from service.registry import service
    from service.registry.models import Resident, Site

    with fresh_database(url) as db_url, app_for(db_url) as engine:
        result = Result(url=db_url, rows=rows, csv_bytes=len(data))
        print(f"\n== {engine.url.render_as_string(hide_password=True)}", flush=True)
        org_id, _user_id = create_org_and_admin(engine)

        # 1. First import into an empty organization, then its floor, a plain COPY.
        load_start = _load()
        result.import_s, report = timed_import(engine, org_id, data, profile=profile)
        assert report.applied and not report.errors, report.errors[:5]  # type: ignore[attr-defined]
        assert report.created == rows, report.created  # type: ignore[attr-defined]
        print(
            f"import      {rows:>8,} rows  {result.import_s:7.2f} s  "
            f"{rows / result.import_s:>9,.0f} rows/s  ({len(report.new_sites)} new sites)",  # type: ignore[attr-defined]
            flush=True,
        )
        if profile:
            print("(the import was run under cProfile: its time is inflated, about 2x)")
        target = PG_IMPORT_TARGET_S if engine.dialect.name == "postgresql" else IMPORT_TARGET_S
        result.check(
            f"import {rows:,} rows ≤ {target:.0f} s",
            result.import_s <= target,
            f"{result.import_s:.2f} s",
        )
        if engine.dialect.name == "postgresql":
            copy_s, copied = plain_copy_baseline(engine, org_id)
            print(
                f"plain COPY  {copied:>8,} rows  {copy_s:7.2f} s  (the same residents and "
                f"audit rows; import/COPY {result.import_s / copy_s:.2f}x)",
                flush=True,
            )
        print(f"load average at start {load_start}, at end {_load()}", flush=True)

        # 2. The same file again: nothing created, updated or audited.
        with Session(engine) as session:
            audit_before = session.exec(select(func.count()).select_from(AuditEntry)).one()
        result.reimport_s, again = timed_import(engine, org_id, data)
        with Session(engine) as session:
            audit_after = session.exec(select(func.count()).select_from(AuditEntry)).one()
        no_op = (
            (again.created, again.updated, again.unchanged) == (0, 0, rows)  # type: ignore[attr-defined]
            and audit_after == audit_before
        )
        print(
            f"re-import   {rows:>8,} rows  {result.reimport_s:7.2f} s  "
            f"{rows / result.reimport_s:>9,.0f} rows/s  (no-op: {no_op})",
            flush=True,
        )
        result.check("re-import is a no-op", no_op, f"{audit_after - audit_before} audit rows")
        result.check(
            "re-import faster than import",
            result.reimport_s < result.import_s,
            f"{result.reimport_s:.2f} s vs {result.import_s:.2f} s",
        )

        # 3. Page 1 of one site, rotating over every site so no single plan gets lucky.
        with Session(engine) as session:
            site_ids = list(
                session.exec(
                    select(Site.id).where(Site.organization_id == org_id).order_by(Site.name)
                ).all()
            )
            residents = session.exec(
                select(func.count()).select_from(Resident).where(Resident.organization_id == org_id)
            ).one()
            result.site_rows = round(residents / max(1, len(site_ids)))

        def via_service(i: int) -> None:
            with Session(engine) as session:
                page, count = service.list_residents(
                    session=session,
                    organization_id=org_id,
                    site_id=site_ids[i % len(site_ids)],
                    limit=100,
                )
                assert len(page) == min(100, count) and count > 0

        result.timings.append(Timing("list via service", sample(via_service, runs)))

        with TestClient(create_app()) as client:
            token = client.post(
                "/api/v1/auth/token", data={"username": USER_EMAIL, "password": USER_PASSWORD}
            )
            assert token.status_code == 200, token.text
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

            def via_api(i: int) -> None:
                response = client.get(
                    "/api/v1/residents",
                    headers=headers,
                    params={"site_id": str(site_ids[i % len(site_ids)]), "limit": 100},
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert len(body["data"]) == min(100, body["count"]) and body["count"] > 0

            result.timings.append(Timing("list via API", sample(via_api, runs)))

        for timing in result.timings:
            print(
                f"{timing.label:<18} {len(timing.samples_ms)} runs  median "
                f"{timing.median:6.1f} ms  p95 {timing.p95:6.1f} ms  "
                f"(~{result.site_rows:,} residents per site)",
                flush=True,
            )
            result.check(
                f"{timing.label}: median ≤ {LIST_TARGET_MS:.0f} ms",
                timing.median <= LIST_TARGET_MS,
                f"{timing.median:.1f} ms",
            )
        return result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_registry", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url",
        action="append",
        dest="urls",
        metavar="URL",
        help="repeatable; `sqlite` means a temporary file. A PostgreSQL database's public "
        f"schema is dropped. Default: sqlite and {DEFAULT_PG_URL}",
    )
    parser.add_argument("--rows", type=int, default=100_000, help="residents in the file")
    parser.add_argument("--runs", type=int, default=60, help="timed list calls (≥ 50)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--profile", action="store_true", help="cProfile the first import")
    args = parser.parse_args(argv)
    if args.runs < 50:
        parser.error("--runs must be at least 50 for a meaningful median and p95")
    if args.rows < 1:
        parser.error("--rows must be positive")
    urls = args.urls or ["sqlite", DEFAULT_PG_URL]

    start = time.perf_counter()
    data = resident_csv(args.rows, args.seed)
    print(
        f"generated {args.rows:,} rows, {len(data) / 1e6:.1f} MB CP932 "
        f"in {time.perf_counter() - start:.1f} s (seed {args.seed}); "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average {_load()} (other work on the machine skews every figure)",
        flush=True,
    )
    results = [run_one(url, args.rows, args.runs, data, args.profile) for url in urls]

    print("\n== summary")
    failed = 0
    for result in results:
        print(result.url)
        for what, ok, figure in result.checks:
            failed += not ok
            print(f"  [{'met' if ok else 'MISSED'}] {what}: {figure}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak_mb:.0f} MB; load average now {_load()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

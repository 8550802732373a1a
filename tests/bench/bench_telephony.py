"""Telephony benchmarks of issue #4: outbox dispatch and inbound-SMS webhooks.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_telephony                    # everything, PostgreSQL `bench_tel`
    python -m tests.bench.bench_telephony dispatch --rows 5000
    python -m tests.bench.bench_telephony ratecap --rate 200
    python -m tests.bench.bench_telephony inbound --requests 5000 --workers 1
    python -m tests.bench.bench_telephony dispatch --database-url sqlite

For each run it DROPS and recreates the ``public`` schema of the given PostgreSQL database
(default ``postgresql://postgres@127.0.0.1:5432/bench_tel``; never point it at data you want
to keep), or uses a temporary SQLite file, and migrates it with ``service.migrate.upgrade``.

dispatch
    A Twilio-compatible HTTP server (uvicorn + a minimal ASGI app, in a child process) on
    127.0.0.1 answers ``Messages.json`` after a fixed latency (100 ms) with Twilio-shaped JSON
    and a unique SID, and counts every (To, Body) pair it receives. The real dispatcher
    (``dispatch_until_empty`` with the real ``TwilioProvider``, ``MIMAMORI_TWILIO_API_URL``
    pointing at the server) sends N outbox rows. Reported: messages/s, duplicates seen by the
    server, rows left unsent, CPU used by the dispatcher process.
ratecap
    The same with ``sms_per_second`` set (200): the server's arrival times give the largest
    number of requests in any 1-second window (sliding) and in fixed 1-second windows.
inbound
    ``mimamori serve`` (or uvicorn with N workers) as a child process on PostgreSQL, with N
    residents who each have an open check-in. httpx.AsyncClient posts correctly signed
    inbound-SMS webhooks (each a resident replying "1"), with bounded concurrency, a bounded
    number of requests and a time limit: once closed-loop (as fast as it answers), once
    paced at the target rate (latency measured from the scheduled send time, so a slow
    server cannot hide its queueing), and ``/healthz`` (no database) the same way for the
    ratio.

It prints the figures and whether each target is met, and exits with status 1 when one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from sqlalchemy import String, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_tel"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-not-a-secret-00"
FROM_NUMBER = "+815012345678"
PUBLIC_URL = "https://mimamori.bench.example"
ORG_NAME = "ベンチ市社会福祉協議会"

DISPATCH_TARGET_PER_S = 500.0
RATE_CAP_TOLERANCE = 0.05
INBOUND_TARGET_PER_S = 500.0
INBOUND_P99_TARGET_MS = 100.0

MIMAMORI = str(Path(sys.executable).parent / "mimamori")


# --- The Twilio-compatible server ---------------------------------------------------------------


class FakeTwilio:
    """A minimal ASGI app answering ``POST .../Messages.json`` like Twilio, after a delay.

    It records every request's arrival time and (To, Body) pair, so duplicates and the
    rate the dispatcher really produced are measured where Twilio would see them.
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.reset()

    def reset(self) -> None:
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.arrivals: list[float] = []
        self.count = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "POST" and path.endswith("/Messages.json"):
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            arrived = time.time()
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            self.arrivals.append(arrived)
            self.pairs[(form.get("To", ""), form.get("Body", ""))] += 1
            self.count += 1
            sid = f"SM{self.count:032x}"
            await asyncio.sleep(self.latency)
            await _json(send, 201, _message_json(sid, form))
        elif method == "GET" and path == "/stats":
            await _json(
                send,
                200,
                {
                    "requests": self.count,
                    "unique_pairs": len(self.pairs),
                    "duplicates": sum(n - 1 for n in self.pairs.values() if n > 1),
                    "arrivals": self.arrivals,
                },
            )
        elif method == "POST" and path == "/reset":
            self.reset()
            await _json(send, 200, {"ok": True})
        else:
            await _json(send, 404, {"code": 20404, "message": "not found", "status": 404})


def _message_json(sid: str, form: dict[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": form.get("Body", ""),
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {},
        "to": form.get("To", ""),
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }


async def _json(send: Any, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve_fake_twilio(port: int, latency_ms: float) -> None:
    import uvicorn

    uvicorn.run(
        FakeTwilio(latency_ms / 1000),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


class ShardedHttpClient:
    """Diagnostic only (``--client-shards``): the production ``HttpxTwilioClient`` spread over
    several httpx clients with small pools. httpcore's pool bookkeeping walks every pooled
    connection for each idle one on every request and release (quadratic in the pool size),
    so one pool of ~64 busy connections costs milliseconds of CPU per request; several
    small pools do the same work for a fraction of it."""

    def __new__(cls, *, api_base_url: str, shards: int, total: int) -> Any:
        import itertools

        from service.telephony.httpx_client import HttpxTwilioClient

        per = max(1, math.ceil(total / shards))
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        clients = [
            HttpxTwilioClient(api_base_url=api_base_url, limits=limits) for _ in range(shards)
        ]
        turn = itertools.cycle(clients)

        class Sharded(HttpxTwilioClient):
            async def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                return await next(turn).request(*args, **kwargs)

            async def aclose(self) -> None:
                for client in clients:
                    await client.aclose()
                await super().aclose()

        return Sharded(api_base_url=api_base_url)


# --- Helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen[Any], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise SystemExit(f"server at {url} did not come up") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Database:
    url: str
    engine: Engine
    cleanup: Callable[[], None] = lambda: None


def fresh_database(url: str) -> Database:
    """A migrated, empty schema. PostgreSQL: the public schema is dropped and recreated."""
    from service import migrate
    from service.db import make_engine, normalize_database_url

    if url == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench_tel_")
        url = f"sqlite:///{folder}/bench.db"
        migrate.upgrade(url)
        engine = make_engine(url)

        def cleanup() -> None:
            engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)

        return Database(url=url, engine=engine, cleanup=cleanup)
    url = normalize_database_url(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(url)
    return Database(url=url, engine=engine, cleanup=engine.dispose)


def make_org(engine: Engine) -> uuid.UUID:
    from service.auth.service import get_or_create_organization

    with Session(engine) as s:
        org = get_or_create_organization(session=s, name=ORG_NAME)
        s.commit()
        return org.id


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(pct / 100 * len(ordered)) - 1)
    return ordered[rank]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Verdicts:
    items: list[tuple[str, bool]] = field(default_factory=list)

    def check(self, name: str, ok: bool) -> None:
        self.items.append((name, ok))
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.items)


# --- Dispatch -----------------------------------------------------------------------------------


def seed_outbox(engine: Engine, org_id: uuid.UUID, rows: int, run: str) -> None:
    """N due SMS to N different numbers (so the per-recipient cap does not interfere)."""
    from service.common import utcnow
    from service.telephony.models import OutboxChannel, OutboxMessage, OutboxPurpose
    from service.telephony.outbox import outbox_row

    now = utcnow()
    batch = [
        outbox_row(
            organization_id=org_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.member_notice,
            to_phone=f"+8190{i:08d}",
            body=f"見守りベンチ {run} #{i}: 大丈夫ですか? 1 = 大丈夫",
            now=now,
        )
        for i in range(rows)
    ]
    with engine.begin() as connection:
        for start in range(0, rows, 2000):
            connection.execute(insert(OutboxMessage), batch[start : start + 2000])


@dataclass
class DispatchResult:
    rows: int
    elapsed: float
    cpu: float
    sent_rows: int
    distinct_sids: int
    server: dict[str, Any]

    @property
    def per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed else math.nan


def run_dispatch(
    db: Database,
    *,
    rows: int,
    latency_ms: float,
    sms_per_second: float,
    batch: int,
    concurrency: int,
    provider_kind: str = "twilio",
    shards: int = 0,
) -> DispatchResult:
    from service import bootstrap
    from service.config import Settings
    from service.telephony.models import OutboxMessage, OutboxStatus
    from service.telephony.outbox import dispatch_until_empty
    from service.telephony.twilio_provider import TwilioProvider

    bootstrap.wire()  # put together here, as the scheduler does

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_telephony", "fake-twilio", "--port", str(port),
         "--latency-ms", str(latency_ms)],
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/stats", server)
        with db.engine.begin() as connection:
            connection.execute(text("DELETE FROM outbox"))
        org_id = make_org(db.engine)
        run = uuid.uuid4().hex[:6]
        seed_outbox(db.engine, org_id, rows, run)
        httpx.post(f"http://127.0.0.1:{port}/reset")
        settings = Settings(
            _env_file=None,
            database_url=db.url,
            public_url=PUBLIC_URL,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_from_number=FROM_NUMBER,
            twilio_api_url=f"http://127.0.0.1:{port}",
            sms_per_second=sms_per_second,
        )

        async def dispatch() -> tuple[int, float, float]:
            provider: Any
            if provider_kind == "console":
                from service.telephony.console import ConsoleProvider

                provider = ConsoleProvider()
            elif shards:
                provider = TwilioProvider(
                    account_sid=ACCOUNT_SID,
                    auth_token=AUTH_TOKEN,
                    from_number=FROM_NUMBER,
                    http_client=ShardedHttpClient(
                        api_base_url=settings.twilio_api_url, shards=shards, total=concurrency
                    ),
                )
            else:
                provider = TwilioProvider.from_settings(settings)
            try:
                cpu0, t0 = cpu_seconds(), time.perf_counter()
                from service.common import utcnow

                done = await dispatch_until_empty(
                    engine=db.engine,
                    provider=provider,
                    settings=settings,
                    now_fn=utcnow,
                    batch=batch,
                    concurrency=concurrency,
                    max_batches=1_000_000,
                )
                return done, time.perf_counter() - t0, cpu_seconds() - cpu0
            finally:
                await provider.aclose()

        _done, elapsed, cpu = asyncio.run(dispatch())
        stats = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=30).json()
        if provider_kind == "console":
            stats = {"requests": rows, "unique_pairs": rows, "duplicates": 0, "arrivals": []}
        with Session(db.engine) as s:
            sent_rows = s.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.sent)
            ).scalar_one()
            distinct_sids = s.execute(
                select(func.count(func.distinct(OutboxMessage.sid)))
            ).scalar_one()
        return DispatchResult(rows, elapsed, cpu, sent_rows, distinct_sids, stats)
    finally:
        stop(server)


def windows(arrivals: list[float]) -> tuple[int, int, float]:
    """(most arrivals in any sliding 1 s window, most in a full fixed 1 s window, span s)."""
    if not arrivals:
        return 0, 0, 0.0
    times = sorted(arrivals)
    sliding, left = 0, 0
    for right, t in enumerate(times):
        while t - times[left] >= 1.0:
            left += 1
        sliding = max(sliding, right - left + 1)
    start, span = times[0], times[-1] - times[0]
    buckets = Counter(int(t - start) for t in times)
    full = [n for second, n in buckets.items() if second + 1 <= span]
    return sliding, max(full or [0]), span


def bench_dispatch(args: argparse.Namespace, verdicts: Verdicts) -> None:
    db = fresh_database(args.database_url)
    try:
        print(
            f"\n== dispatch: {args.rows} SMS, server latency {args.latency_ms:.0f} ms, "
            f"batch {args.batch}, concurrency {args.concurrency}, {db.engine.dialect.name}, "
            f"provider {args.provider}"
            + (f" ({args.client_shards} client shards: diagnostic)" if args.client_shards else "")
        )
        result = run_dispatch(
            db,
            rows=args.rows,
            latency_ms=args.latency_ms,
            sms_per_second=1_000_000.0,
            batch=args.batch,
            concurrency=args.concurrency,
            provider_kind=args.provider,
            shards=args.client_shards,
        )
        server = result.server
        span = (max(server["arrivals"]) - min(server["arrivals"])) if server["arrivals"] else 0
        print(f"  sent {result.rows} in {result.elapsed:.2f} s: {result.per_second:.0f} messages/s")
        print(
            f"  server saw {server['requests']} requests, {server['unique_pairs']} distinct "
            f"(To, Body), {server['duplicates']} duplicates; first to last arrival {span:.2f} s"
        )
        print(
            f"  outbox: {result.sent_rows} sent, {result.distinct_sids} distinct SIDs; "
            f"dispatcher CPU {result.cpu:.2f} s ({result.cpu / result.elapsed:.0%} of one core)"
        )
        verdicts.check(
            f"dispatch >= {DISPATCH_TARGET_PER_S:.0f}/s ({result.per_second:.0f}/s)",
            result.per_second >= DISPATCH_TARGET_PER_S,
        )
        verdicts.check(
            "zero duplicates, every row sent once",
            server["duplicates"] == 0
            and server["requests"] == result.rows
            and result.sent_rows == result.rows
            and result.distinct_sids == result.rows,
        )
    finally:
        db.cleanup()


def bench_ratecap(args: argparse.Namespace, verdicts: Verdicts) -> None:
    db = fresh_database(args.database_url)
    try:
        rows = args.rate_rows or int(args.rate * 10)
        print(
            f"\n== rate cap: sms_per_second={args.rate:.0f}, {rows} SMS, {db.engine.dialect.name}"
        )
        result = run_dispatch(
            db,
            rows=rows,
            latency_ms=args.latency_ms,
            sms_per_second=args.rate,
            batch=args.batch,
            concurrency=args.concurrency,
        )
        sliding, fixed, span = windows(result.server["arrivals"])
        limit = args.rate * (1 + RATE_CAP_TOLERANCE)
        mean = (len(result.server["arrivals"]) - 1) / span if span else math.nan
        print(
            f"  server-observed: max {sliding} in any 1 s (sliding), max {fixed} in a fixed "
            f"1 s window, mean {mean:.1f}/s over {span:.1f} s; duplicates "
            f"{result.server['duplicates']}"
        )
        verdicts.check(
            f"rate never above cap + 5% ({sliding} <= {limit:.0f} in any 1 s)", sliding <= limit
        )
        verdicts.check("rate cap run: zero duplicates", result.server["duplicates"] == 0)
    finally:
        db.cleanup()


# --- Inbound ------------------------------------------------------------------------------------


def seed_residents(db: Database, count: int) -> list[str]:
    """N residents with consented mobiles, each with an open check-in (a round just started)."""
    from service.checkins import flows
    from service.common import utcnow
    from service.registry.models import Resident
    from service.registry.phones import PhoneKind

    org_id = make_org(db.engine)
    now = utcnow()
    phones = [f"+8180{i:08d}" for i in range(count)]
    rows = [
        {
            "id": uuid.uuid4(),
            "organization_id": org_id,
            "external_id": f"B-{i:06d}",
            "name": f"ベンチ 住民{i}",
            "name_kana": "ベンチ ジュウミン",
            "phone": phone,
            "phone2": None,
            "phone_kind": PhoneKind.mobile.value,
            "phone2_kind": None,
            "language": "ja",
            "preferred_channel": "sms",
            "site_id": None,
            "unit": "1-101",
            "household": None,
            "lives_alone": True,
            "elderly": True,
            "disability": False,
            "pregnancy": False,
            "needs_interpreter": False,
            "consent_at": now,
            "consent_method": "bench",
            "status": "active",
            "away_until": None,
            "notes": None,
            "created_at": now,
            "updated_at": now,
        }
        for i, phone in enumerate(phones)
    ]
    with db.engine.begin() as connection:
        for start in range(0, count, 2000):
            connection.execute(insert(Resident), rows[start : start + 2000])
    flows.start_broadcast(
        db.engine,
        organization_id=org_id,
        started_by="bench",
        now_fn=utcnow,
        override_quiet_hours=True,
    )
    # The check-in SMS went out before the replies come in: nothing is left to dispatch.
    from service.telephony.models import OutboxMessage

    with db.engine.begin() as connection:
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(status="sent", sent_at=now, sid=OutboxMessage.id.cast(String))
        )
    return phones


@dataclass
class LoadResult:
    label: str
    sent: int
    ok: int
    errors: Counter[str]
    elapsed: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.ok / self.elapsed if self.elapsed else math.nan

    def line(self) -> str:
        ms = [x * 1000 for x in self.latencies]
        return (
            f"  {self.label:<34} {self.per_second:7.0f} req/s  p50 {percentile(ms, 50):6.1f}  "
            f"p95 {percentile(ms, 95):6.1f}  p99 {percentile(ms, 99):6.1f}  "
            f"max {max(ms, default=math.nan):6.1f} ms  ({self.ok}/{self.sent} ok"
            + (f", errors {dict(self.errors)}" if self.errors else "")
            + ")"
        )


Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@asynccontextmanager
async def client_pool(count: int, connections: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Several httpx clients with small pools rather than one big one: httpcore's pool
    bookkeeping grows with the square of its connections, and on 2 shared cores the load
    generator would otherwise use more CPU than the server it measures."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    clients = [httpx.AsyncClient(limits=limits, timeout=30) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


async def closed_loop(
    label: str, requests: list[Request], concurrency: int, time_limit: float
) -> LoadResult:
    """``concurrency`` clients, each sending its next request when the last one answered."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    queue = iter(requests)
    sent = ok = 0
    async with client_pool(concurrency, 1) as clients:
        start = time.perf_counter()
        deadline = start + time_limit

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal sent, ok
            for make in queue:
                if time.perf_counter() > deadline:
                    return
                sent += 1
                t0 = time.perf_counter()
                try:
                    response = await make(client)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if response.status_code < 300:
                    ok += 1
                else:
                    errors[str(response.status_code)] += 1

        await asyncio.gather(*(worker(client) for client in clients))
        elapsed = time.perf_counter() - start
    return LoadResult(label, sent, ok, errors, elapsed, latencies)


async def paced(
    label: str, requests: list[Request], rate: float, max_in_flight: int, time_limit: float
) -> LoadResult:
    """Open loop: request i is due at i / rate. Latency counts from when it was due, so
    time spent waiting for a free slot (the server is behind) is part of it."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = ok = 0
    slots = asyncio.Semaphore(max_in_flight)
    async with client_pool(16, math.ceil(max_in_flight / 16)) as clients:
        start = time.perf_counter()
        tasks = []

        async def one(make: Request, due: float, client: httpx.AsyncClient) -> None:
            nonlocal ok
            try:
                response = await make(client)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                return
            finally:
                slots.release()
            latencies.append(time.perf_counter() - due)
            if response.status_code < 300:
                ok += 1
            else:
                errors[str(response.status_code)] += 1

        for i, make in enumerate(requests):
            due = start + i / rate
            if due - start > time_limit:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            sent += 1
            tasks.append(asyncio.create_task(one(make, due, clients[i % len(clients)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return LoadResult(label, sent, ok, errors, elapsed, latencies)


def inbound_requests(base: str, phones: list[str], token: str) -> list[Request]:
    """Signed in advance, so the load generator spends its CPU on HTTP only."""
    from service.telephony.signature import sign

    signed_url = f"{PUBLIC_URL}/twilio/sms"
    requests: list[Request] = []
    for phone in phones:
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "SmsMessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": ACCOUNT_SID,
            "MessagingServiceSid": "MG" + "c" * 32,
            "From": phone,
            "To": FROM_NUMBER,
            "Body": "1",
            "NumMedia": "0",
            "NumSegments": "1",
            "FromCountry": "JP",
            "ToCountry": "JP",
            "ApiVersion": "2010-04-01",
        }
        headers = {"X-Twilio-Signature": sign(signed_url, params, token)}

        def make(
            client: httpx.AsyncClient, p: dict[str, str] = params, h: dict[str, str] = headers
        ) -> Awaitable[httpx.Response]:
            return client.post(f"{base}/twilio/sms", data=p, headers=h)

        requests.append(make)
    return requests


def healthz_requests(base: str, count: int) -> list[Request]:
    return [lambda client: client.get(f"{base}/healthz") for _ in range(count)]


def start_service(db: Database, port: int, workers: int, log: Path) -> subprocess.Popen[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    env.update(
        {
            "MIMAMORI_DATABASE_URL": db.url,
            "MIMAMORI_PUBLIC_URL": PUBLIC_URL,
            "MIMAMORI_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "MIMAMORI_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "MIMAMORI_TWILIO_FROM_NUMBER": FROM_NUMBER,
            "MIMAMORI_EMBEDDED_SCHEDULER": "false",
        }
    )
    if workers <= 1:
        command = [MIMAMORI, "serve", "--port", str(port)]
    else:
        # `mimamori serve` runs one process; several workers need uvicorn's own runner.
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
    with log.open("w") as output:
        return subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir()
        )


def start_scheduler(db: Database, log: Path) -> subprocess.Popen[Any]:
    """`mimamori scheduler` beside the server, as in production: it acts on the stored
    replies (closes the check-ins) while the webhooks come in. No Twilio: console provider."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    env.update({"MIMAMORI_DATABASE_URL": db.url, "MIMAMORI_PUBLIC_URL": PUBLIC_URL})
    with log.open("w") as output:
        return subprocess.Popen(
            [MIMAMORI, "scheduler"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=tempfile.gettempdir(),
        )


def unprocessed_replies(engine: Engine) -> int:
    from service.telephony.models import InboundMessage

    with Session(engine) as s:
        return s.execute(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.processed_at.is_(None))  # type: ignore[union-attr]
        ).scalar_one()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (uvicorn workers); Linux."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def measured(
    server: subprocess.Popen[Any], run: Awaitable[LoadResult]
) -> tuple[LoadResult, float]:
    """The run, and the server's CPU milliseconds per answered request during it."""
    before = process_tree_cpu(server.pid)
    result = await run
    used = process_tree_cpu(server.pid) - before
    return result, (used / result.ok * 1000 if result.ok else math.nan)


def bench_inbound(args: argparse.Namespace, verdicts: Verdicts) -> None:
    if args.database_url == "sqlite":
        print("\n== inbound: runs on PostgreSQL only (the target is stated for PostgreSQL)")
        return
    warmup = 200
    n = args.requests
    db = fresh_database(args.database_url)
    log = Path(tempfile.gettempdir()) / f"bench_tel_serve_{os.getpid()}.log"
    try:
        print(
            f"\n== inbound SMS webhooks on {db.engine.dialect.name}: {n} signed requests per "
            f"run, closed-loop concurrency {args.inbound_concurrency}, "
            + ("`mimamori serve`" if args.workers <= 1 else f"uvicorn --workers {args.workers}")
        )
        t0 = time.perf_counter()
        phones = seed_residents(db, warmup + 3 * n)
        print(
            f"  seeded {len(phones)} residents with open check-ins in {time.perf_counter() - t0:.1f} s"
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_service(db, port, args.workers, log)
        scheduler_log = log.with_suffix(".scheduler.log")
        scheduler = start_scheduler(db, scheduler_log) if args.scheduler else None
        scheduler_cpu = process_tree_cpu(scheduler.pid) if scheduler else 0.0
        try:
            wait_until_up(f"{base}/healthz", server)
            signed = inbound_requests(base, phones, AUTH_TOKEN)
            warm = signed[:warmup]
            runs = [signed[warmup + i * n : warmup + (i + 1) * n] for i in range(3)]
            c, limit, target = args.inbound_concurrency, args.time_limit, INBOUND_TARGET_PER_S

            async def run() -> list[tuple[LoadResult, float]]:
                await closed_loop("warm-up", warm + healthz_requests(base, warmup), c, 60)
                results = [
                    await measured(
                        server,
                        closed_loop("GET /healthz, closed loop", healthz_requests(base, n), c, 60),
                    ),
                    await measured(
                        server, closed_loop("POST /twilio/sms, closed loop", runs[0], c, limit)
                    ),
                    await measured(
                        server,
                        paced(
                            f"GET /healthz, paced {target:.0f}/s",
                            healthz_requests(base, n),
                            target,
                            256,
                            limit,
                        ),
                    ),
                    await measured(
                        server,
                        paced(
                            f"POST /twilio/sms, paced {target:.0f}/s", runs[1], target, 256, limit
                        ),
                    ),
                ]
                # And below capacity: the latency a resident's reply sees when the server keeps up.
                half = max(1.0, results[1][0].per_second / 2)
                results.append(
                    await measured(
                        server,
                        paced(f"POST /twilio/sms, paced {half:.0f}/s", runs[2], half, 256, limit),
                    )
                )
                return results

            # The load generator must not add pauses of its own to the latencies it counts:
            # with the seeded data and thousands of signed requests in memory, its full
            # garbage collections took 100-160 ms, counted as the server's latency.
            gc.collect()
            gc.freeze()
            gc.disable()
            try:
                results = asyncio.run(run())
            finally:
                gc.enable()
            load_end = time.perf_counter()
            if scheduler is not None:
                # The replies are acted on by the scheduler; wait for the last of them.
                backlog = unprocessed_replies(db.engine)
                while unprocessed_replies(db.engine) and time.perf_counter() - load_end < 600:
                    time.sleep(0.2)
                lag = time.perf_counter() - load_end
                scheduler_cpu = process_tree_cpu(scheduler.pid) - scheduler_cpu
        finally:
            stop(server)
            if scheduler is not None:
                stop(scheduler)
                if scheduler_log.exists() and not args.keep_log:
                    scheduler_log.unlink()
        for result, cpu_ms in results:
            print(result.line() + f"  server CPU {cpu_ms:.2f} ms/request")
        if scheduler is None:
            from service.checkins import flows
            from service.common import utcnow

            backlog = unprocessed_replies(db.engine)
            t0 = time.perf_counter()
            acted = flows.process_replies(db.engine, utcnow)
            took = time.perf_counter() - t0
            print(
                f"  replies acted on after the load, in this process: {acted} in {took:.1f} s "
                f"({acted / took if took else 0:.0f}/s)"
            )
        else:
            print(
                f"  `mimamori scheduler` acted on the replies during the runs: {backlog} still "
                f"waiting when the load ended, all done {lag:.1f} s later; scheduler CPU "
                f"{scheduler_cpu:.1f} s in all"
            )
        (health_closed, _), (sms_closed, _), _, (sms_paced, _), (sms_half, _) = results
        ratio = sms_closed.per_second / health_closed.per_second
        print(f"  inbound / no-op throughput ratio (closed loop): {ratio:.2f}")
        with Session(db.engine) as s:
            from service.checkins.models import CheckIn
            from service.telephony.models import InboundMessage

            inbound = s.execute(select(func.count()).select_from(InboundMessage)).scalar_one()
            closed_ok = s.execute(
                select(func.count()).select_from(CheckIn).where(CheckIn.state == "ok")
            ).scalar_one()
        expected = warmup + sms_closed.ok + sms_paced.ok + sms_half.ok
        print(f"  database: {inbound} inbound rows, {closed_ok} check-ins closed ok")
        p99 = percentile([x * 1000 for x in sms_paced.latencies], 99)
        verdicts.check(
            f"inbound >= {target:.0f} req/s ({sms_closed.per_second:.0f}/s closed loop)",
            sms_closed.per_second >= target,
        )
        verdicts.check(
            f"inbound p99 < {INBOUND_P99_TARGET_MS:.0f} ms at {target:.0f}/s offered ({p99:.0f} ms)",
            p99 < INBOUND_P99_TARGET_MS and not sms_paced.errors,
        )
        verdicts.check(
            "every answered webhook stored once and closed its check-in",
            inbound == expected and closed_ok == expected,
        )
    finally:
        db.cleanup()
        if log.exists() and not args.keep_log:
            log.unlink()


# --- Main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "dispatch", "ratecap", "inbound", "fake-twilio"],
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL)
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--batch", type=int, default=500, help="dispatcher claim batch")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=100,
        help="dispatcher sends in flight (the service default)",
    )
    parser.add_argument(
        "--provider",
        choices=["twilio", "console"],
        default="twilio",
        help="console: no HTTP at all, the database side alone (diagnostic)",
    )
    parser.add_argument(
        "--client-shards",
        type=int,
        default=0,
        help="spread sends over N httpx clients (diagnostic; 0 = as shipped)",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="sms_per_second for ratecap")
    parser.add_argument("--rate-rows", type=int, default=0)
    parser.add_argument("--requests", type=int, default=5000, help="inbound requests per run")
    parser.add_argument("--inbound-concurrency", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (1: mimamori serve)"
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per load run")
    parser.add_argument("--keep-log", action="store_true")
    parser.add_argument(
        "--scheduler",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="inbound: run `mimamori scheduler` beside the server to act on the replies "
        "(--no-scheduler: act on them after the load, in the benchmark's process)",
    )
    parser.add_argument("--port", type=int, default=0, help="fake-twilio: port")
    args = parser.parse_args(argv)

    if args.what == "fake-twilio":
        serve_fake_twilio(args.port, args.latency_ms)
        return 0
    print(
        f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.2f} (the machine may be shared: note it)"
    )
    verdicts = Verdicts()
    if args.what in ("all", "dispatch"):
        bench_dispatch(args, verdicts)
    if args.what in ("all", "ratecap"):
        bench_ratecap(args, verdicts)
    if args.what in ("all", "inbound"):
        bench_inbound(args, verdicts)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print("all targets met" if verdicts.ok else "SOME TARGETS NOT MET")
    return 0 if verdicts.ok else 1


if __name__ == "__main__":
    sys.exit(main())

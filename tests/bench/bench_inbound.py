"""Inbound signed SMS webhooks under wrk (issue #20, items 1 and 5).

Run by hand, one benchmark at a time on the shared machine:

    flock /tmp/bench.lock .venv/bin/python -m tests.bench.bench_inbound \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench

It DROPS and recreates the ``public`` schema of the database, seeds residents who each have an
open check-in (``bench_telephony.seed_residents``), and starts the real service
(``mimamori serve``, or uvicorn's runner with ``--workers N``) on it, with the scheduler not
running (the replies are only stored; acting on them is the scheduler's business).

The load generator is wrk (C, LuaJIT) with ``tests/bench/wrk_signed_sms.lua``: Python signs
every request in advance (the service's own ``sign``: HMAC-SHA1 over the public URL and the
sorted form), one unique MessageSid per resident, and wrk posts each once. So the generator
costs microseconds per request, and its CPU is reported beside the server's.

Runs, each with the same wrk, threads and connections:

1. the baseline: a FastAPI app with one async no-op endpoint, in its own uvicorn process(es)
   with the same workers, closed loop (after a second of warm-up); then it is stopped;
2. the service: a short closed loop of signed SMS and ``/healthz`` to warm up, then
   ``GET /healthz`` closed loop (the service's own no-op: no database, all its middlewares,
   a sync endpoint, so it runs in the thread pool);
3. signed SMS closed loop (128 connections): req/s, latency, ratio to the baseline;
4. ``GET /healthz`` paced at the rate, then signed SMS paced at the rate (1,000/s): wrk's
   latency (from the request's write), the lateness of each write behind its schedule, and
   the bound p99(from due) <= p99.5(latency) + p99.5(lateness).

Each run reports the server's CPU seconds per request (``/proc`` of the server's process
tree) and wrk's. The load average is printed at the start and the end. After the runs it
checks that every answered reply is stored, none twice: inbound rows between the answered
and the sent count, one idempotency key and one answer (outbox row) per stored reply.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import distinct, func, select
from sqlmodel import Session

from tests.bench.bench_telephony import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    PUBLIC_URL,
    Database,
    Verdicts,
    free_port,
    fresh_database,
    process_tree_cpu,
    seed_residents,
    start_service,
    stop,
    wait_until_up,
)

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench"
WRK = os.environ.get("WRK", "/usr/bin/wrk")
LUA = str(Path(__file__).with_name("wrk_signed_sms.lua"))
TARGET_PER_S = 1500.0
TARGET_P99_MS = 100.0
TARGET_RATIO = 0.3


@dataclass
class WrkResult:
    label: str
    seconds: float
    answered: int
    sent: int
    errors: dict[str, int]
    latency_us: dict[str, float]
    late_us: dict[str, float]
    exhausted: bool
    server_cpu: float
    wrk_cpu: float

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def bound_p99_ms(self) -> float:
        """An upper bound of the 99th percentile latency counted from the due time."""
        return (self.latency_us["p995"] + self.late_us["p995"]) / 1000

    def line(self) -> str:
        lat = self.latency_us
        text = (
            f"  {self.label:<32} {self.per_second:7.0f} req/s  p50 {lat['p50'] / 1000:6.1f}  "
            f"p99 {lat['p99'] / 1000:6.1f}  max {lat['max'] / 1000:7.1f} ms  "
            f"({self.answered} answered, {self.sent} sent"
            + (f", errors {self.errors}" if self.failed else "")
            + f")  server CPU {self._per(self.server_cpu):.3f} ms/req, "
            f"wrk {self._per(self.wrk_cpu):.3f} ms/req"
        )
        if self.late_us["n"]:
            late = self.late_us
            text += (
                f"\n  {'':<32} written behind schedule: p50 {late['p50'] / 1000:.1f}  "
                f"p99 {late['p99'] / 1000:.1f}  max {late['max'] / 1000:.1f} ms; p99 from due "
                f"<= {self.bound_p99_ms():.1f} ms"
            )
        return text

    def _per(self, cpu: float) -> float:
        return cpu / self.answered * 1000 if self.answered else float("nan")


def noop_app() -> Any:
    """The baseline: a FastAPI app with one async no-op endpoint (the issue's "no-op FastAPI
    endpoint"), served by the same uvicorn (uvloop, httptools) with the same workers."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def start_noop(port: int, workers: int, log: Path) -> subprocess.Popen[Any]:
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "tests.bench.bench_inbound:noop_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with log.open("w") as output:
        return subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2]
        )


def write_signed(path: Path, phones: list[str]) -> None:
    """One line per resident: the signature, a tab, the url-encoded form Twilio would post."""
    from service.telephony.signature import sign

    url = f"{PUBLIC_URL}/twilio/sms"
    with path.open("w") as out:
        for phone in phones:
            params = {
                "ToCountry": "JP",
                "SmsMessageSid": "SM" + uuid.uuid4().hex,
                "NumMedia": "0",
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": ACCOUNT_SID,
                "MessagingServiceSid": "MG" + "c" * 32,
                "From": phone,
                "FromCountry": "JP",
                "To": FROM_NUMBER,
                "Body": "1",
                "NumSegments": "1",
                "ApiVersion": "2010-04-01",
            }
            out.write(f"{sign(url, params, AUTH_TOKEN)}\t{urlencode(params)}\n")


def run_wrk(
    label: str,
    base: str,
    server: subprocess.Popen[Any],
    *,
    mode: str,
    seconds: float,
    connections: int,
    threads: int,
    rate: float = 0,
    signed: Path | None = None,
) -> WrkResult:
    env = {**os.environ, "WRK_PACED": "1" if rate else "0"}
    command = [
        WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
        "-s", LUA, base, "--", str(signed or "-"), mode, f"{rate:g}", str(threads),
    ]  # fmt: skip
    before_server = process_tree_cpu(server.pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = process_tree_cpu(server.pid) - before_server
    match = re.search(r"^WRK_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode or match is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(match.group(1))
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    errors = {k: v for k, v in data["errors"].items() if v}
    answered = data["requests"] - data["errors"]["status"]
    return WrkResult(
        label=label,
        seconds=data["duration_us"] / 1e6,
        answered=answered,
        sent=data["sent"],
        errors=errors,
        latency_us=data["latency_us"],
        late_us=data["late_us"],
        exhausted=data["exhausted"],
        server_cpu=server_cpu,
        wrk_cpu=wrk_cpu,
    )


def stored_counts(db: Database) -> dict[str, int]:
    from service.telephony.models import InboundMessage, OutboxMessage, WebhookEvent

    with Session(db.engine) as s:
        inbound = s.execute(
            select(func.count(), func.count(distinct(InboundMessage.message_sid)))
        ).one()
        keys = s.execute(
            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.kind == "sms")
        ).scalar_one()
        answers = s.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.purpose == "resident_notice")
        ).scalar_one()
    return {"inbound": inbound[0], "distinct": inbound[1], "keys": keys, "answers": answers}


def bench(args: argparse.Namespace, verdicts: Verdicts) -> None:
    c, t, seconds, rate = args.connections, args.threads, args.seconds, args.rate
    # Enough residents that no run repeats one: the closed loop at up to --max-rate, the
    # paced run at its rate plus a margin, and the warm-up.
    warm_n = int(args.max_rate * args.warmup)
    closed_n = int(args.max_rate * seconds)
    paced_n = int(rate * seconds * 1.2) + 1000
    db = fresh_database(args.database_url)
    folder = Path(tempfile.mkdtemp(prefix="bench_inbound_"))
    log = folder / "serve.log"
    try:
        t0 = time.perf_counter()
        phones = seed_residents(db, warm_n + closed_n + paced_n)
        print(
            f"  seeded {len(phones)} residents with open check-ins in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        files = {
            "warm": (folder / "warm.tsv", phones[:warm_n]),
            "closed": (folder / "closed.tsv", phones[warm_n : warm_n + closed_n]),
            "paced": (folder / "paced.tsv", phones[warm_n + closed_n :]),
        }
        for path, some in files.values():
            write_signed(path, some)
        common = {"connections": c, "threads": t}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        noop_server = start_noop(port, args.workers, folder / "noop.log")
        try:
            wait_until_up(f"{base}/healthz", noop_server)
            run_wrk("warm-up", base, noop_server, mode="noop", seconds=1, **common)
            bare = run_wrk("no-op FastAPI app, closed loop", base, noop_server, mode="noop",
                           seconds=seconds, **common)  # fmt: skip
        finally:
            stop(noop_server)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_service(db, port, args.workers, log)
        try:
            wait_until_up(f"{base}/healthz", server)
            run_wrk("warm-up", base, server, mode="sms", seconds=args.warmup,
                    signed=files["warm"][0], **common)  # fmt: skip
            run_wrk("warm-up", base, server, mode="noop", seconds=1, **common)
            print(f"  load average before the runs {os.getloadavg()[0]:.2f}")
            noop = run_wrk("GET /healthz, closed loop", base, server, mode="noop",
                           seconds=seconds, **common)  # fmt: skip
            sms = run_wrk("POST /twilio/sms, closed loop", base, server, mode="sms",
                          seconds=seconds, signed=files["closed"][0], **common)  # fmt: skip
            noop_paced = run_wrk(f"GET /healthz, paced {rate:g}/s", base, server,
                                 mode="noop", seconds=seconds, rate=rate, **common)  # fmt: skip
            sms_paced = run_wrk(f"POST /twilio/sms, paced {rate:g}/s", base, server,
                                mode="sms", seconds=seconds, rate=rate,
                                signed=files["paced"][0], **common)  # fmt: skip
            time.sleep(1)  # requests cut off at wrk's end finish (or not) on the server
        finally:
            stop(server)
        print(f"  load average after the runs {os.getloadavg()[0]:.2f}")
        for result in (bare, noop, sms, noop_paced, sms_paced):
            print(result.line())
        ratio = sms.per_second / bare.per_second if bare.per_second else 0.0
        ratio_healthz = sms.per_second / noop.per_second if noop.per_second else 0.0
        print(
            f"  signed SMS / no-op FastAPI app (closed loop): {ratio:.2f}; "
            f"/ the service's own GET /healthz: {ratio_healthz:.2f}"
        )
        stored = stored_counts(db)
        answered = sms.answered + sms_paced.answered
        sent = sms.sent + sms_paced.sent
        # The warm-up's replies are stored too; count them out by their senders' numbers.
        warm_stored = warm_count(db, files["warm"][1])
        runs_stored = stored["inbound"] - warm_stored
        print(
            f"  database: {stored['inbound']} inbound rows ({warm_stored} from the warm-up), "
            f"{stored['distinct']} distinct MessageSids, {stored['keys']} idempotency keys, "
            f"{stored['answers']} answers in the outbox; runs answered {answered}, sent {sent}"
        )
        verdicts.check(
            "no run ran out of signed requests or failed a request",
            not any(r.exhausted or r.failed for r in (bare, sms, sms_paced, noop, noop_paced)),
        )
        verdicts.check(
            f"signed SMS closed loop >= {TARGET_PER_S:.0f}/s ({sms.per_second:.0f}/s)",
            sms.per_second >= TARGET_PER_S,
        )
        verdicts.check(
            f"ratio to the no-op FastAPI endpoint >= {TARGET_RATIO} ({ratio:.2f})",
            ratio >= TARGET_RATIO,
        )
        kept_up = sms_paced.per_second >= 0.97 * rate
        verdicts.check(
            f"paced {rate:g}/s: kept up ({sms_paced.per_second:.0f}/s) and p99 from due < "
            f"{TARGET_P99_MS:.0f} ms (bound {sms_paced.bound_p99_ms():.1f} ms)",
            kept_up and sms_paced.bound_p99_ms() < TARGET_P99_MS,
        )
        verdicts.check(
            "every answered reply stored exactly once (one key, one answer each)",
            answered <= runs_stored <= sent
            and stored["inbound"] == stored["distinct"] == stored["keys"] == stored["answers"],
        )
    finally:
        db.cleanup()
        if not args.keep_log:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
        else:
            print(f"  files kept in {folder}")


def warm_count(db: Database, phones: list[str]) -> int:
    from service.telephony.models import InboundMessage

    with Session(db.engine) as s:
        return s.execute(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.from_phone.in_(phones))  # type: ignore[attr-defined]
        ).scalar_one()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL)
    )
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced requests/s")
    parser.add_argument(
        "--max-rate", type=float, default=4000.0, help="signed requests prepared per second"
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--keep-log", action="store_true")
    args = parser.parse_args(argv)
    print(
        f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, wrk {WRK}, "
        f"load average at the start {os.getloadavg()[0]:.2f}"
    )
    print(
        f"== inbound: {args.connections} connections, {args.threads} wrk thread(s), "
        f"{args.seconds:g} s per run, "
        + ("`mimamori serve`" if args.workers <= 1 else f"uvicorn --workers {args.workers}")
    )
    verdicts = Verdicts()
    bench(args, verdicts)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print("all targets met" if verdicts.ok else "SOME TARGETS NOT MET")
    return 0 if verdicts.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Per-chunk timing of a round's fan-out on PostgreSQL (issue 20): whether a chunk's cost
grows with the round.

Seeds ``--size`` residents (as ``bench_million`` does: its ``public`` schema is dropped),
runs ``flows.start_broadcast`` and times each chunk and, within it, each statement sent
through SQLAlchemy (COPY is not among them). Prints the residents query's time over the first
and the last five chunks (it grew 8x over 300,000 before 495d745), the chunk times, and
``--explain`` chunks' plans (EXPLAIN ANALYZE of the residents query, run once more)::

    python -m tests.bench.bench_fanout_chunks --size 300000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import collections
import time
from typing import Any

from sqlalchemy import event

from tests.bench.bench_million import PLAN, load, seed
from tests.bench.bench_registry import app_for, create_org_and_admin, fresh_database

RESIDENTS_QUERY = "SELECT resident.id"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--explain", default="", help="chunk numbers, comma-separated")
    args = parser.parse_args(argv)
    explain_at = {int(n) for n in args.explain.split(",") if n}

    from service.checkins import fanout, flows
    from service.common import utcnow

    print(f"load at start {load()}", flush=True)
    statements: dict[str, float] = collections.defaultdict(float)
    chunks: list[tuple[float, dict[str, float]]] = []
    with fresh_database(args.database_url) as url, app_for(url) as engine:
        org_id, _ = create_org_and_admin(engine)
        seed(engine, org_id, args.size)

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if statement.startswith(RESIDENTS_QUERY) and len(chunks) in explain_at:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                print(f"plan of chunk {len(chunks)}:")
                for (line,) in cursor.fetchall():
                    print("  ", line)
            conn.info["h9_t0"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            key = " ".join(statement.split())[:80]
            statements[key] += time.perf_counter() - conn.info.pop("h9_t0", time.perf_counter())

        chunk = fanout._fan_out_chunk

        def timed(*a: Any, **k: Any) -> Any:
            statements.clear()
            start = time.perf_counter()
            result = chunk(*a, **k)
            chunks.append((time.perf_counter() - start, dict(statements)))
            return result

        fanout._fan_out_chunk = timed  # type: ignore[assignment]
        start = time.perf_counter()
        flows.start_broadcast(
            engine,
            organization_id=org_id,
            started_by="bench",
            now_fn=utcnow,
            override_quiet_hours=True,
            plan=PLAN,
            cause="bench",
        )
        total = time.perf_counter() - start
        fanout._fan_out_chunk = chunk  # type: ignore[assignment]
    full = chunks[:-1]  # the last chunk finds no one left
    query = [sum(v for k, v in s.items() if k.startswith(RESIDENTS_QUERY)) for _, s in full]
    print(f"fan-out of {args.size:,}: {total:.2f} s in {len(full)} chunks (load {load()})")
    print(
        f"residents query: {sum(query):.2f} s in all; first 5 chunks {sum(query[:5]):.3f} s, "
        f"last 5 {sum(query[-5:]):.3f} s"
    )
    times = [t for t, _ in full]
    print(f"chunks: first 10 {sum(times[:10]):.2f} s, last 10 {sum(times[-10:]):.2f} s")
    print("each chunk (s):", " ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()

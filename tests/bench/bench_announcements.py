"""Announcements (issue 21, item 4): how long "send" takes for a large organization.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_announcements --database-url sqlite --residents 10000
    python -m tests.bench.bench_announcements --database-url postgresql://postgres@127.0.0.1:5432/bench

It DROPS and recreates the ``public`` schema of a PostgreSQL database it is given. It seeds
residents in ten languages (``bench_rounds.seed``), writes an announcement for everyone,
confirms every language (typed by staff: no translator), and times the preview and the send
(one outbox row, one delivery and one timeline entry per resident, in one transaction).
Beside it, measured in the same run on the same residents: a broadcast round's fan-out
(``flows.start_broadcast``: one check-in, attempt and outbox row per resident), what the
service already does per resident. No target: the figures say whether one transaction per
announcement stays reasonable at this size.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from tests.bench.bench_registry import fresh_database
from tests.bench.bench_rounds import LANGUAGES, SEED, seed


def run(url: str, residents: int) -> None:
    from service.announcements import commands
    from service.announcements.models import AnnouncementDelivery
    from service.audit.service import Actor
    from service.checkins import flows
    from service.db import make_engine

    print(f"load at start: {os.getloadavg()}")
    with fresh_database(url) as real_url:
        engine = make_engine(real_url)
        org_id = seed(engine, residents, random.Random(SEED))
        # 10:00 in Tokyo: outside quiet hours.
        now = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
        actor = Actor(label="bench")
        with Session(engine) as session:
            row = commands.compose(
                session,
                organization_id=org_id,
                actor=actor,
                text="本日10時から各団地の集会所で給水を始めます。容器をお持ちください。",
                site_ids=[],
                translator=None,
                now=now,
            )
            for language in sorted(set(LANGUAGES) - {"ja"}):
                text = f"Water today from 10:00 at each site's meeting hall ({language})."
                common = {"organization_id": org_id, "actor": actor, "now": now}
                commands.edit_text(
                    session, announcement_id=row.id, language=language, text=text, **common
                )
                commands.confirm_text(
                    session, announcement_id=row.id, language=language, text=text, **common
                )
            session.commit()
            announcement_id = row.id
        with Session(engine) as session:
            started = time.perf_counter()
            preview = commands.preview(
                session, organization_id=org_id, announcement_id=announcement_id, now=now
            )
            preview_s = time.perf_counter() - started
        with Session(engine) as session:
            started = time.perf_counter()
            commands.send(
                session,
                organization_id=org_id,
                actor=actor,
                announcement_id=announcement_id,
                now=now,
                segments=preview["segments"],
            )
            session.commit()
            send_s = time.perf_counter() - started
            sent = session.execute(
                select(func.count()).select_from(AnnouncementDelivery)
            ).scalar_one()
        started = time.perf_counter()
        flows.start_broadcast(
            engine, organization_id=org_id, started_by="bench", now_fn=lambda: now
        )
        round_s = time.perf_counter() - started
        engine.dispose()
    dialect = real_url.split(":", 1)[0]
    print(f"{dialect}: {residents} residents, {sent} announcements sent")
    print(f"  preview (cost per language): {preview_s:6.2f} s")
    print(
        f"  send (one transaction):      {send_s:6.2f} s  ({send_s / max(sent, 1) * 1e6:.0f} µs each)"
    )
    print(f"  baseline: broadcast fan-out  {round_s:6.2f} s  (same residents)")
    print(f"load at end: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="sqlite")
    parser.add_argument("--residents", type=int, default=10_000)
    args = parser.parse_args()
    run(args.database_url, args.residents)


if __name__ == "__main__":
    main()

"""Real ``mimamori scheduler`` processes sending a round to the fake Twilio server.

Shared by the chaos and fault tests of issue #16 (``tests/telephony/test_dispatch_*.py``):
a registry and a fanned-out round written in bulk, scheduler processes started with the
settings that point them at the fake server, and readings of the outbox.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.checkins import flows
from service.common import utcnow
from service.config import Settings
from service.registry.models import Organization
from service.telephony.models import OutboxMessage
from tests.checkins.test_reliability import SchedulerProcess, seed
from tests.support.fake_twilio import FakeTwilioProcess

MIMAMORI = str(Path(sys.executable).parent / "mimamori")
FROM_NUMBER = "+815012345678"
ONE_STEP = [{"channel": "sms", "message": "prompt", "wait_minutes": 60}]

# The client's read timeout, when the service lets it be set (the setting's name, if the
# service has one; None otherwise). Tests that need a timeout shorter than the default
# 30 s make the fake server drop the connection instead (``hang_then="drop"``), which the
# dispatcher takes for the same thing: a request cut off after it was sent.
READ_TIMEOUT_SETTING = next(
    (
        name
        for name in ("twilio_read_timeout_seconds", "twilio_read_timeout")
        if name in Settings.model_fields
    ),
    None,
)


@dataclass
class Dispatchers:
    """``mimamori scheduler`` processes started by a test, pointed at a fake Twilio; each
    stopped at the end by its own handle, never by name."""

    database_url: str
    twilio: FakeTwilioProcess
    folder: Path
    settings: dict[str, str] = field(default_factory=dict)
    started: list[SchedulerProcess] = field(default_factory=list)

    def start(self, **settings: str) -> SchedulerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
        env.update(
            MIMAMORI_DATABASE_URL=self.database_url,
            MIMAMORI_LOG_JSON="true",
            MIMAMORI_LOG_LEVEL="INFO",
            MIMAMORI_PUBLIC_URL="https://mimamori.example.org",
            MIMAMORI_TWILIO_FROM_NUMBER=FROM_NUMBER,
            **self.twilio.settings_env(),
            **self.settings,
            **{f"MIMAMORI_{k.upper()}": v for k, v in settings.items()},
        )
        name = f"scheduler-{len(self.started) + 1}"
        log = self.folder / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [MIMAMORI, "scheduler"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.folder,
            )
        handle = SchedulerProcess(name=name, process=process, log=log)
        self.started.append(handle)
        return handle

    def tails(self, lines: int = 15) -> str:
        return "\n".join(p.tail(lines) for p in self.started)

    def stop_all(self) -> None:
        for handle in self.started:
            if handle.process.poll() is None:
                handle.kill()


def sigkill(process: SchedulerProcess) -> None:
    """SIGKILL, as the kernel's OOM killer or a failed node would: nothing runs after it."""
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(timeout=30)


def start_round(engine: Engine, residents: int, members: int = 5) -> tuple[Any, dict[str, Any]]:
    """An organization of ``residents`` residents who all consented and have a mobile, and
    a one-step round for all of them, fanned out: every first SMS waits in the outbox.
    Returns the organization and its residents by phone number."""
    registry = seed(engine, contactable=residents, members=members)
    with engine.begin() as connection:  # seed() names every organization alike
        connection.execute(
            update(Organization)
            .where(Organization.id == registry.org_id)
            .values(name=f"輪島市社会福祉協議会 {registry.org_id.hex[:8]}")
        )
    flows.start_broadcast(
        engine,
        organization_id=registry.org_id,
        started_by="test",
        now_fn=utcnow,
        override_quiet_hours=True,
        plan=ONE_STEP,
    )
    return registry.org_id, {registry.phones[r]: r for r in registry.contactable}


def outbox_sids(engine: Engine, organization_id: Any) -> dict[str, str | None]:
    """An organization's check-in rows by recipient, with their SID (a one-step round has
    one row per resident; a second row for a number is reported as a duplicate)."""
    with Session(engine) as s:
        rows = s.execute(
            select(OutboxMessage.to_phone, OutboxMessage.sid).where(
                OutboxMessage.purpose == "checkin",
                OutboxMessage.organization_id == organization_id,
            )
        ).all()
    out = dict(rows)
    assert len(out) == len(rows), "two check-in rows for one resident"
    return out


def outbox_statuses(engine: Engine, organization_id: Any) -> Counter[str]:
    with Session(engine) as s:
        return Counter(
            s.execute(
                select(OutboxMessage.status).where(
                    OutboxMessage.purpose == "checkin",
                    OutboxMessage.organization_id == organization_id,
                )
            ).scalars()
        )


def wait_until(predicate: Callable[[], Any], timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())

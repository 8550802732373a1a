"""A restart, a crash or a night of downtime never lets a case slip away (issue #5).

- Kill the scheduler: real ``mimamori scheduler`` processes, killed with SIGKILL during the
  fan-out of a 2,000-resident round, during dispatch and during an escalation sweep, then
  restarted. Every resident ends fine, asking for help, escalated or on the visit list; nobody
  gets two first check-ins; no escalation skips a step.
- Two schedulers: only the leader sends; when it dies the standby takes over within 10 s.
- A day of downtime: nothing is lost, every overdue step fires on start, in deadline order,
  and its lateness goes to the audit log.

The process tests cannot move the scheduler's clock (it reads the system clock), so they move
time the other way: the database is the source of truth for time, and the test pulls the
deadlines it wants to pass (``next_action_at``) to now, which is what passing time does.
They pin a crash inside a chosen window with row locks the test itself holds: the scheduler
blocks at the exact statement, and the test kills it there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.audit.models import AuditEntry
from service.checkins import events, flows
from service.checkins.models import (
    Attempt,
    CheckIn,
    Round,
    RoundKind,
    RoundStatus,
    Schedule,
)
from service.checkins.service import FANOUT_CHUNK
from service.common import aware, utcnow
from service.config import get_settings
from service.escalations.models import Alert, Escalation
from service.ops.models import Heartbeat
from service.registry.models import Assignment, Member, Organization, Resident
from service.telephony.models import InboundMessage, OutboxMessage
from service.telephony.signature import sign

MIMAMORI = str(Path(sys.executable).parent / "mimamori")
NEEDS_POSTGRES = (
    "needs PostgreSQL: the leader's advisory lock, FOR UPDATE SKIP LOCKED and the row locks "
    "that pin each crash point exist only there; the PostgreSQL pass "
    "(MIMAMORI_TEST_DATABASE_URL) runs it"
)
SENT_BY_CONSOLE = re.compile(r"console: would send SMS (\S+)")


# --- Scheduler processes -------------------------------------------------------------------------


@dataclass
class SchedulerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no clean-up, no rollback, no lock release by the process itself."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)

    def messages(self) -> list[str]:
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line).get("msg", ""))
            except (json.JSONDecodeError, AttributeError):
                out.append(line)
        return out

    def console_sends(self) -> list[str]:
        return [m.group(1) for line in self.messages() if (m := SENT_BY_CONSOLE.search(line))]

    def tail(self, lines: int = 30) -> str:
        return f"--- {self.name} (pid {self.pid}) ---\n" + "\n".join(self.messages()[-lines:])


@pytest.fixture
def schedulers(database_url: str, tmp_path: Path) -> Iterator[Callable[..., SchedulerProcess]]:
    """Start `mimamori scheduler` processes on the test database; whatever is still running
    at the end is killed (only the processes started here, by their own handle)."""
    started: list[SchedulerProcess] = []

    def start(name: str, **settings: str) -> SchedulerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
        env.update(
            MIMAMORI_DATABASE_URL=database_url,
            MIMAMORI_LOG_JSON="true",
            MIMAMORI_LOG_LEVEL="INFO",
            # Hundreds of alerts go to one member of staff within a minute here; the
            # per-recipient cap (which defers, never drops) would only slow the test down.
            MIMAMORI_SMS_PER_RECIPIENT_PER_HOUR="100000",
            **{f"MIMAMORI_{k.upper()}": v for k, v in settings.items()},
        )
        log = tmp_path / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [MIMAMORI, "scheduler"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
            )
        handle = SchedulerProcess(name=name, process=process, log=log)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        if handle.process.poll() is None:
            handle.kill()


def wait_for(
    what: str,
    predicate: Callable[[], Any],
    *,
    timeout: float,
    logs: Sequence[SchedulerProcess] = (),
    every: float = 0.05,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            details = "\n".join(p.tail() for p in logs)
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{details}")
        time.sleep(every)


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def blocked_on_a_lock(engine: Engine) -> bool:
    """Some session of this database waits for a row lock (one the test holds)."""
    return bool(
        scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


def heartbeat_holder(engine: Engine) -> str | None:
    with Session(engine) as s:
        beat = s.get(Heartbeat, "scheduler")
        return beat.holder if beat else None


# --- A registry, seeded in bulk ------------------------------------------------------------------


@dataclass
class Registry:
    org_id: uuid.UUID
    residents: list[uuid.UUID]  # in id order, the order fan-out takes them in
    phones: dict[uuid.UUID, str]
    contactable: set[uuid.UUID]
    members: list[uuid.UUID]
    staff: uuid.UUID
    extra: dict[str, Any] = field(default_factory=dict)


def seed(
    engine: Engine,
    *,
    contactable: int,
    visit_list: int = 0,
    away: int = 0,
    members: int = 10,
    second_member_for: Callable[[int], bool] = lambda _i: False,
) -> Registry:
    """Residents who consented, with mobile phones, each watched by one welfare committee
    member; ``visit_list`` more who cannot be contacted (no consent, no phone, opted out);
    and ``away`` more who are away for a month (outside any round)."""
    now = utcnow()
    org_id = uuid.uuid4()
    member_ids = [uuid.uuid4() for _ in range(members)]
    staff_id, backup_id = uuid.uuid4(), uuid.uuid4()
    base_member = {
        "organization_id": org_id,
        "name_kana": None,
        "phone_kind": "mobile",
        "languages": ["ja"],
        "active": True,
        "notes": None,
        "created_at": now,
        "updated_at": now,
    }
    member_rows = [
        {
            **base_member,
            "id": member_id,
            "external_id": f"M{i:03d}",
            "name": f"委員 {i}",
            "phone": f"+818030{i:06d}",
            "kind": "welfare_committee",
        }
        for i, member_id in enumerate(member_ids)
    ]
    member_rows.append(
        {
            **base_member,
            "id": backup_id,
            "external_id": "BACKUP",
            "name": "支援員 二番手",
            "phone": "+818031000000",
            "kind": "supporter",
        }
    )
    member_rows.append(
        {
            **base_member,
            "id": staff_id,
            "external_id": "STAFF",
            "name": "当直 職員",
            "phone": "+818039999999",
            "kind": "staff_on_duty",
        }
    )
    residents: list[dict[str, Any]] = []
    assignments: list[dict[str, Any]] = []
    phones: dict[uuid.UUID, str] = {}
    reachable: set[uuid.UUID] = set()
    for i in range(contactable + visit_list + away):
        resident_id = uuid.uuid4()
        phone: str | None = f"+819050{i:06d}"
        consent: datetime | None = now
        status = "active"
        away_until = None
        if i >= contactable + visit_list:
            status, away_until = "away", (now + timedelta(days=30)).date()
        elif i >= contactable:  # the visit list: no consent, no phone, or opted out
            kind = (i - contactable) % 3
            consent = None if kind == 0 else now
            phone = None if kind == 1 else phone
            status = "opted_out" if kind == 2 else "active"
        else:
            reachable.add(resident_id)
        if phone:
            phones[resident_id] = phone
        residents.append(
            {
                "id": resident_id,
                "organization_id": org_id,
                "external_id": f"R{i:05d}",
                "name": f"住民 {i}",
                "name_kana": None,
                "phone": phone,
                "phone_kind": "mobile" if phone else None,
                "phone2": None,
                "phone2_kind": None,
                "language": ("ja", "vi", "id", "fil", "pt_BR", "zh_Hans")[i % 6],
                "preferred_channel": "sms",
                "site_id": None,
                "unit": f"{i % 9 + 1}-10{i % 5}",
                "household": None,
                "lives_alone": True,
                "elderly": True,
                "disability": False,
                "pregnancy": False,
                "needs_interpreter": False,
                "consent_at": consent,
                "consent_method": "paper" if consent else None,
                "status": status,
                "away_until": away_until,
                "notes": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        assignments.append(
            {
                "id": uuid.uuid4(),
                "organization_id": org_id,
                "resident_id": resident_id,
                "member_id": member_ids[i % members],
                "rank": 1,
                "created_at": now,
            }
        )
        if second_member_for(i):
            assignments.append(
                {
                    "id": uuid.uuid4(),
                    "organization_id": org_id,
                    "resident_id": resident_id,
                    "member_id": backup_id,
                    "rank": 2,
                    "created_at": now,
                }
            )
    with engine.begin() as connection:
        connection.execute(
            insert(Organization),
            [
                {
                    "id": org_id,
                    "name": "輪島市社会福祉協議会",
                    "timezone": "Asia/Tokyo",
                    "created_at": now,
                }
            ],
        )
        connection.execute(insert(Member), member_rows)
        connection.execute(insert(Resident), residents)
        connection.execute(insert(Assignment), assignments)
    ordered = sorted(r["id"] for r in residents)
    return Registry(
        org_id=org_id,
        residents=ordered,
        phones=phones,
        contactable=reachable,
        members=member_ids,
        staff=staff_id,
        extra={"backup": backup_id, "index": {r["id"]: i for i, r in enumerate(residents)}},
    )


def due_schedule(engine: Engine, org_id: uuid.UUID, plan: list[dict[str, Any]]) -> uuid.UUID:
    """A schedule due now, with quiet hours off (the test runs at any hour of the day)."""
    with Session(engine) as s:
        schedule = Schedule(
            organization_id=org_id,
            name="見守り",
            time_of_day="10:00",
            plan=plan,
            quiet_start="00:00",
            quiet_end="00:00",
            next_run_at=utcnow() - timedelta(seconds=1),
        )
        s.add(schedule)
        s.commit()
        return schedule.id


# --- Replies, as Twilio posts them -----------------------------------------------------------------


def reply_by_webhook(client, phone: str, body: str) -> None:
    settings = get_settings()
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "To": "+815000000000",
        "Body": body,
    }
    signature = sign(f"{settings.public_url}/twilio/sms", params, settings.webhook_auth_tokens()[0])
    response = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text


def reply_by_service(engine: Engine, phone: str, body: str) -> None:
    """What the webhook does after its signature check, in one transaction of its own."""
    now = utcnow()
    with Session(engine) as s:
        inbound = InboundMessage(
            message_sid="SM" + uuid.uuid4().hex,
            from_phone=phone,
            to_phone="+815000000000",
            body=body,
            received_at=now,
            params={},
        )
        s.add(inbound)
        s.flush()
        events.on_inbound_sms(s, inbound, now)
        s.commit()


# --- Kill the scheduler ----------------------------------------------------------------------------

TWO_QUICK_STEPS = [
    {"channel": "sms", "message": "prompt", "wait_minutes": 1},
    {"channel": "sms", "message": "reminder", "wait_minutes": 1},
]


@pytest.mark.slow
def test_killing_the_scheduler_at_any_point_loses_and_duplicates_nobody(
    database_url, engine, client, schedulers
):
    if engine.dialect.name != "postgresql":
        pytest.skip(NEEDS_POSTGRES)
    # 2,000 residents to contact and 60 on the visit list; enough residents who are away
    # (recorded in the round, never contacted) to fill one full fan-out chunk and start a
    # second one, so the fan-out can die between two chunks. Residents 0, 2, 4 ... answer
    # "fine", 1, 21, 41 ... ask for help, the rest are silent; 20 silent ones have a second
    # member (the backup supporter), whose row lock pins the crash in the escalation sweep.
    contactable, visit_list = 2000, 60
    away = max(0, FANOUT_CHUNK - contactable - visit_list + 40)

    def behaviour(i: int) -> str:
        if i >= contactable + visit_list:
            return "away"
        if i >= contactable:
            return "visit"
        if i % 2 == 0:
            return "fine"
        if i % 20 == 1:
            return "help"
        return "silent"

    backed_up = {i for i in range(contactable) if behaviour(i) == "silent"}
    backed_up = set(sorted(backed_up)[-20:])
    registry = seed(
        engine,
        contactable=contactable,
        visit_list=visit_list,
        away=away,
        members=20,
        second_member_for=lambda i: i in backed_up,
    )
    index = registry.extra["index"]
    of = {rid: behaviour(index[rid]) for rid in registry.residents}

    # An older round left one resident of the second chunk with an open check-in: the new
    # round supersedes it, and the test's lock on that row holds the second chunk.
    blocker_resident = next(r for r in reversed(registry.residents) if r in registry.contactable)
    with Session(engine) as s:
        older = Round(
            organization_id=registry.org_id,
            kind=RoundKind.one_off,
            status=RoundStatus.open,
            started_by="test",
            started_at=utcnow() - timedelta(days=1),
            plan=TWO_QUICK_STEPS,
        )
        s.add(older)
        s.flush()
        old_checkin = CheckIn(
            organization_id=registry.org_id,
            round_id=older.id,
            resident_id=blocker_resident,
            plan=TWO_QUICK_STEPS,
            next_action_at=utcnow() + timedelta(days=1),
            created_at=utcnow() - timedelta(days=1),
        )
        s.add(old_checkin)
        s.commit()
        old_checkin_id = old_checkin.id
    schedule_id = due_schedule(engine, registry.org_id, TWO_QUICK_STEPS)

    def the_round() -> uuid.UUID | None:
        with Session(engine) as s:
            return s.execute(select(Round.id).where(Round.schedule_id == schedule_id)).scalar()

    def count(sql: str) -> int:
        return scalar(engine, sql, round_id=the_round())

    # 1. Killed during fan-out: the first chunk is committed, the second waits for our lock.
    holder = Session(engine)
    holder.execute(select(CheckIn).where(CheckIn.id == old_checkin_id).with_for_update()).one()
    first = schedulers("fan-out", sms_per_second="100")
    wait_for(
        "the first chunk of the fan-out",
        lambda: (
            the_round()
            and count("SELECT count(*) FROM checkin WHERE round_id = :round_id") == FANOUT_CHUNK
            and blocked_on_a_lock(engine)
        ),
        timeout=60,
        logs=[first],
    )
    first.kill()
    holder.rollback()
    holder.close()
    round_id = the_round()
    with Session(engine) as s:
        assert s.get(Round, round_id).status == RoundStatus.fanning_out
    assert count("SELECT count(*) FROM outbox WHERE status <> 'pending'") == 0

    # 2. Killed during dispatch: at 100 SMS a second, a claimed batch of 500 takes 5 s.
    second = schedulers("dispatch", sms_per_second="100")
    wait_for(
        "a batch sent and the next one claimed",
        lambda: (
            count("SELECT count(*) FROM outbox WHERE status = 'sent'") >= 500
            and count("SELECT count(*) FROM outbox WHERE status = 'sending'") > 0
        ),
        timeout=60,
        logs=[second],
    )
    second.kill()
    with Session(engine) as s:
        assert s.get(Round, round_id).status == RoundStatus.open
    stuck = count("SELECT count(*) FROM outbox WHERE status = 'sending'")
    assert stuck > 0 and count("SELECT count(*) FROM outbox WHERE status = 'pending'") > 0

    # 3. A new scheduler finishes the dispatch while residents answer, some through the
    # signed webhook, most through the same handler directly (it is faster).
    third = schedulers("sweep", sms_per_second="5000")
    answers = [
        (registry.phones[r], "1" if of[r] == "fine" else "2")
        for r in registry.residents
        if of[r] in ("fine", "help")
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(reply_by_service, engine, *answer)
            for n, answer in enumerate(answers)
            if n % 10
        ]
        for answer in answers[::10]:
            reply_by_webhook(client, *answer)
        for future in futures:
            future.result()
    wait_for(
        "the rest of the dispatch",
        lambda: count("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0,
        timeout=60,
        logs=[third],
    )
    # Time passes: the first step's deadline, then the reminder's.
    for step in (0, 1):
        with engine.begin() as connection:
            connection.execute(
                update(CheckIn)
                .where(CheckIn.round_id == round_id, CheckIn.state == "waiting")
                .values(next_action_at=func.now())
            )
        wait_for(
            f"the sweep past step {step}",
            lambda step=step: (
                count(
                    "SELECT count(*) FROM checkin WHERE round_id = :round_id AND state = 'waiting' "
                    f"AND step_index = {step}"
                )
                == 0
            ),
            timeout=60,
            logs=[third],
        )
    wait_for(
        "the alerts' dispatch",
        lambda: count("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0,
        timeout=60,
        logs=[third],
    )
    escalations = count("SELECT count(*) FROM escalation")
    assert escalations == sum(1 for k in of.values() if k in ("help", "silent", "visit"))

    # 4. Killed during an escalation sweep: every escalation's first step times out at
    # once. The sweep takes them in batches of 500 (help first, then by deadline); the 20
    # whose next step is the backup supporter are made to open the second batch, and the
    # test holds the supporter's row: the sweep commits the first batch, then blocks.
    backup = registry.extra["backup"]
    backed_up_residents = [r for r in registry.residents if index[r] in backed_up]
    helped = sum(1 for k in of.values() if k == "help")
    ahead = [r for r in registry.residents if of[r] == "silent" and index[r] not in backed_up]
    ahead = ahead[: flows.SWEEP_BATCH - helped]
    holder = Session(engine)
    holder.execute(select(Member).where(Member.id == backup).with_for_update()).one()
    with engine.begin() as connection:
        connection.execute(
            update(Escalation)
            .where(Escalation.state == "alerting")
            .values(next_action_at=func.now())
        )
        for residents, seconds in ((ahead, 10), (backed_up_residents, 5)):
            connection.execute(
                update(Escalation)
                .where(Escalation.resident_id.in_(residents))
                .values(next_action_at=func.now() - timedelta(seconds=seconds))
            )
    wait_for(
        "a committed batch of the escalation sweep, and the sweep blocked",
        lambda: (
            scalar(engine, "SELECT count(*) FROM alert WHERE step_index = 1") >= flows.SWEEP_BATCH
            and blocked_on_a_lock(engine)
        ),
        timeout=60,
        logs=[third],
    )
    third.kill()
    holder.rollback()
    holder.close()
    moved = scalar(engine, "SELECT count(*) FROM escalation WHERE step_index = 1")
    assert moved == flows.SWEEP_BATCH, "the crash did not fall between two batches"

    # 5. Restart, and let the rest of the chain time out, step by step, until every
    # escalation has reached the end of its chain.
    fourth = schedulers("restart", sms_per_second="5000")

    def nothing_due() -> bool:
        return (
            scalar(
                engine,
                "SELECT count(*) FROM escalation WHERE state = 'alerting' "
                "AND next_action_at <= now()",
            )
            == 0
        )

    wait_for("the escalation sweep after restart", nothing_due, timeout=60, logs=[fourth])
    for _ in range(3):
        if not scalar(engine, "SELECT count(*) FROM escalation WHERE state = 'alerting'"):
            break
        with engine.begin() as connection:
            connection.execute(
                update(Escalation)
                .where(Escalation.state == "alerting")
                .values(next_action_at=func.now())
            )
        time.sleep(0.2)
        wait_for("the next escalation sweep", nothing_due, timeout=60, logs=[fourth])
    wait_for(
        "every chain exhausted and every alert dispatched",
        lambda: (
            scalar(engine, "SELECT count(*) FROM escalation WHERE state <> 'exhausted'") == 0
            and scalar(engine, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 0
        ),
        timeout=60,
        logs=[fourth],
    )
    fourth.stop()

    # --- Every resident ends in exactly one of: fine, help, escalated, visit list. ---
    with Session(engine) as s:
        checkins = {
            c.resident_id: c
            for c in s.execute(select(CheckIn).where(CheckIn.round_id == round_id)).scalars()
        }
        per_round = Counter(
            s.execute(select(CheckIn.resident_id).where(CheckIn.round_id == round_id)).scalars()
        )
        escalation_rows = s.execute(select(Escalation)).scalars().all()
        alerts = s.execute(select(Alert.escalation_id, Alert.step_index, Alert.member_id)).all()
        first_messages = Counter(
            s.execute(
                select(OutboxMessage.resident_id)
                .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
                .where(OutboxMessage.purpose == "checkin", Attempt.step_index == 0)
            ).scalars()
        )
        reminders = Counter(
            s.execute(
                select(OutboxMessage.resident_id)
                .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
                .where(OutboxMessage.purpose == "checkin", Attempt.step_index == 1)
            ).scalars()
        )
        sids = set(
            s.execute(select(OutboxMessage.sid).where(OutboxMessage.sid.is_not(None))).scalars()
        )
        old_state = s.get(CheckIn, old_checkin_id).state
        left_sending = s.execute(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sending")
        ).scalar_one()
    assert set(per_round) == set(registry.residents) and set(per_round.values()) == {1}
    expected_state = {
        "fine": {"ok"},
        "help": {"needs_help"},
        "silent": {"no_reply"},
        "visit": {"visit_list"},
        "away": {"superseded"},  # in the round's record, never contacted
    }
    wrong = {
        index[r]: (of[r], checkins[r].state)
        for r in registry.residents
        if checkins[r].state not in expected_state[of[r]]
    }
    assert wrong == {}
    by_resident = defaultdict(list)
    for escalation in escalation_rows:
        by_resident[escalation.resident_id].append(escalation)
    for resident_id in registry.residents:
        found = by_resident.get(resident_id, [])
        if of[resident_id] in ("fine", "away"):
            assert found == [], index[resident_id]
        else:
            assert len(found) == 1, (index[resident_id], len(found))
            assert found[0].reason == {"help": "needs_help", "silent": "no_reply"}.get(
                of[resident_id], "visit_list"
            )
    assert old_state == "superseded"

    # --- Nobody got two first check-ins (nor two reminders). ---
    assert {r: n for r, n in first_messages.items() if n != 1} == {}
    assert set(first_messages) == registry.contactable
    assert {r: n for r, n in reminders.items() if n != 1} == {}
    assert {r for r in reminders} == {r for r in registry.residents if of[r] == "silent"}
    # The console provider logs each send with its SID: every recorded SID was sent by one
    # process, and the only sends without a recorded SID are the rows the killed dispatcher
    # had claimed ("sending": maybe sent, never sent again).
    logged = {sid for p in (first, second, third, fourth) for sid in p.console_sends()}
    assert sids <= logged
    assert len(logged - sids) <= left_sending

    # --- No escalation skipped a step: every step of every chain alerted each of its
    # recipients exactly once, in order, up to the end of the chain. ---
    steps = defaultdict(Counter)
    for escalation_id, step_index, member_id in alerts:
        steps[escalation_id][(step_index, str(member_id))] += 1
    for escalation in escalation_rows:
        expected = Counter(
            (n, recipient["member_id"])
            for n, step in enumerate(escalation.chain)
            for recipient in step
        )
        assert steps[escalation.id] == expected, escalation.id
        assert escalation.state == "exhausted" and escalation.step_index == len(escalation.chain)
        assert len(escalation.chain) == (3 if escalation.resident_id in backed_up_residents else 2)


# --- Two schedulers --------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_schedulers_one_sends_and_the_standby_takes_over(database_url, engine, schedulers):
    """On PostgreSQL the leader holds a session advisory lock; on the embedded SQLite
    default, a file lock beside the database. Either way, one sends."""
    registry = seed(engine, contactable=30, members=3)
    hourly = [{"channel": "sms", "message": "prompt", "wait_minutes": 60}]
    due_schedule(engine, registry.org_id, hourly)

    leader = schedulers("leader")
    wait_for(
        "the first scheduler to lead",
        lambda: (heartbeat_holder(engine) or "").endswith(f":{leader.pid}"),
        timeout=30,
        logs=[leader],
    )
    standby = schedulers("standby")
    wait_for(
        "the second scheduler to stand by",
        lambda: "another scheduler is active; standing by" in standby.messages(),
        timeout=30,
        logs=[leader, standby],
    )
    wait_for(
        "the round's first messages",
        lambda: scalar(engine, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 30,
        timeout=30,
        logs=[leader, standby],
    )
    time.sleep(2.5)  # a few more dispatch and sweep runs: the standby must stay silent
    assert len(leader.console_sends()) == 30
    assert standby.console_sends() == []
    assert "this scheduler is now active" not in standby.messages()
    assert (heartbeat_holder(engine) or "").endswith(f":{leader.pid}")

    leader.kill()
    killed_at = time.monotonic()
    wait_for(
        "the standby to take over",
        lambda: (heartbeat_holder(engine) or "").endswith(f":{standby.pid}"),
        timeout=15,
        logs=[standby],
    )
    takeover = time.monotonic() - killed_at
    assert takeover < 10, f"the standby took {takeover:.1f} s to take over"
    assert "this scheduler is now active" in standby.messages()

    # The new leader does the work now: a broadcast after an aftershock.
    round_id = flows.start_broadcast(
        engine,
        organization_id=registry.org_id,
        started_by="test",
        now_fn=utcnow,
        override_quiet_hours=True,
        plan=hourly,
        cause="余震",
    )

    def broadcast_sent() -> int:
        with Session(engine) as s:
            return s.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .join(Attempt, Attempt.id == OutboxMessage.attempt_id)
                .join(CheckIn, CheckIn.id == Attempt.checkin_id)
                .where(CheckIn.round_id == round_id, OutboxMessage.status == "sent")
            ).scalar_one()

    wait_for("the broadcast's messages", lambda: broadcast_sent() == 30, timeout=30, logs=[standby])
    assert len(standby.console_sends()) == 30
    assert len(leader.console_sends()) == 30
    standby.stop()
    with Session(engine) as s:
        per_phone = Counter(s.execute(select(OutboxMessage.to_phone)).scalars())
    assert set(per_phone.values()) == {2}  # one per round, to each of the 30 residents


# --- A day of downtime -----------------------------------------------------------------------------


def test_a_day_of_downtime_fires_every_overdue_step_late_in_deadline_order(world):
    world.site("A団地")
    world.site("B団地")
    world.member("M1", "080-3000-0001")
    world.member("M2", "080-3000-0002")
    world.member("S", "080-3000-0009", kind="staff_on_duty")
    silent = [f"Q{n}" for n in range(4)]
    helpers = ["H0", "H1", "H2"]
    phone = {key: f"+81904000{n:04d}" for n, key in enumerate(silent + helpers)}
    for key in silent + helpers:
        world.resident(key, phone[key], site="A団地")
        world.assign(key, "M1", 1)
        world.assign(key, "M2", 2)
    world.resident("D1", "090-4000-0100", site="B団地")  # the daily round's only resident
    with world.session() as s:
        s.add(
            Schedule(
                organization_id=world.org_id,
                name="B団地 毎朝",
                time_of_day="10:00",
                target_kind="sites",
                target_site_ids=[str(world.sites["B団地"])],
                next_run_at=world.clock.now() + timedelta(minutes=1),
            )
        )
        s.commit()
    world.tick(1)  # 10:00 in Tokyo: the daily round; D1's check-in is due at 11:00

    # Four check-ins due five minutes apart (11:00 to 11:15): one-off rounds.
    for key in silent:
        flows.start_broadcast(
            world.engine,
            organization_id=world.org_id,
            started_by="test",
            now_fn=world.clock.now,
            resident_ids=[world.residents[key]],
            kind=RoundKind.one_off,
        )
        world.tick(5)
    # Three ask for help at 10:20, 10:25 and 10:30: their first alerts time out at 10:50,
    # 10:55 and 11:00. M1 acknowledges the third at 10:31, and then says nothing more.
    for key in helpers:
        world.sms(phone[key], "2")
        world.clock.advance(minutes=5)
    world.clock.advance(minutes=1)
    with world.session() as s:
        held = s.execute(
            select(Escalation).where(Escalation.resident_id == world.residents["H2"])
        ).scalar_one()
    world.sms("+818030000001", f"{held.case_code} 1")
    world.tick()  # 10:36: everything sent so far; nothing is due yet

    def deadlines() -> dict[str, datetime]:
        with world.session() as s:
            rows = s.execute(
                select(Resident.external_id, CheckIn.next_action_at)
                .join(CheckIn, CheckIn.resident_id == Resident.id)
                .where(CheckIn.state == "waiting")
            ).all()
            escalation_rows = s.execute(
                select(Resident.external_id, Escalation.next_action_at)
                .join(Escalation, Escalation.resident_id == Resident.id)
                .where(Escalation.next_action_at.is_not(None))
            ).all()
        return {
            **{f"checkin {k}": aware(t) for k, t in rows},
            **{f"escalation {k}": aware(t) for k, t in escalation_rows},
        }

    before = deadlines()
    assert set(before) == {
        *(f"checkin {k}" for k in silent),
        "checkin D1",
        *(f"escalation {k}" for k in helpers),
    }
    sent_before = len(world.provider.sent)

    # The scheduler is down for a day. Nothing runs; then it starts and runs every job once.
    world.clock.advance(hours=24)
    now = world.clock.now()
    overdue = flows.overdue_counts(world.engine, now)
    assert overdue["checkins"] == 5 and overdue["escalations"] == 3
    world.tick()

    assert flows.overdue_counts(world.engine, world.clock.now()) == {
        "checkins": 0,
        "escalations": 0,
        "rounds_fanning_out": 0,
        "replies": 0,
    }
    after = deadlines()
    for key, due in before.items():
        assert after.get(key) is None or after[key] > now, (key, due, after.get(key))
    with world.session() as s:
        steps = dict(
            s.execute(
                select(Resident.external_id, CheckIn.step_index)
                .join(CheckIn, CheckIn.resident_id == Resident.id)
                .where(CheckIn.state == "waiting", Resident.external_id.in_(silent))
            ).all()
        )
        escalations = {
            key: s.execute(
                select(Escalation).where(Escalation.resident_id == world.residents[key])
            ).scalar_one()
            for key in helpers
        }
        late = (
            s.execute(
                select(AuditEntry)
                .where(AuditEntry.action == "late")
                .order_by(AuditEntry.at, AuditEntry.id)
            )
            .scalars()
            .all()
        )
        daily = (
            s.execute(
                select(Round.scheduled_for)
                .where(Round.kind == "scheduled")
                .order_by(Round.started_at)
            )
            .scalars()
            .all()
        )
        d1_states = (
            s.execute(
                select(CheckIn.state)
                .where(CheckIn.resident_id == world.residents["D1"])
                .order_by(CheckIn.created_at)
            )
            .scalars()
            .all()
        )
    # Every overdue step fired once: the reminders to the silent, the next member for the
    # two unanswered help alerts, a reminder to the member who acknowledged and went quiet,
    # and the daily round missed during the downtime (one round, not one per missed run),
    # whose new check-in takes over from yesterday's.
    assert steps == {k: 1 for k in silent}
    assert [escalations[k].step_index for k in helpers] == [1, 1, 0]
    assert escalations["H2"].state == "acknowledged" and escalations["H2"].reminded_at is not None
    assert [aware(t) - aware(daily[0]) for t in daily] == [timedelta(0), timedelta(days=1)]
    assert d1_states == ["superseded", "waiting"]
    to = Counter(record.to for record in world.provider.sent[sent_before:])
    assert {key: to[phone[key]] for key in silent} == {key: 1 for key in silent}
    assert to["+818030000002"] == 2  # M2: H0's and H1's alerts, now that M1 did not answer
    assert to["+818030000001"] == 1  # M1: the reminder about H2
    assert to["+819040000100"] == 1  # D1: today's check-in

    # The lateness is in the audit log, and the steps fired in deadline order.
    by_entity = {entry.entity_id: entry for entry in late}
    with world.session() as s:
        checkin_ids = {
            key: str(
                s.execute(
                    select(CheckIn.id).where(CheckIn.resident_id == world.residents[key])
                ).scalar_one()
            )
            for key in silent
        }
    escalation_ids = {key: str(escalations[key].id) for key in helpers}
    for key, entity in {**checkin_ids, **escalation_ids}.items():
        assert entity in by_entity, f"no lateness recorded for {key}"
        due = before[f"{'checkin' if key in silent else 'escalation'} {key}"]
        assert by_entity[entity].detail["late_seconds"] == round((now - due).total_seconds())
    fired = [entry.entity_id for entry in late]
    assert [e for e in fired if e in checkin_ids.values()] == [checkin_ids[k] for k in silent]
    assert [e for e in fired if e in escalation_ids.values()] == [
        escalation_ids[k] for k in helpers
    ]
    schedule_late = [entry for entry in late if entry.entity_type == "schedule"]
    assert len(schedule_late) == 1
    assert schedule_late[0].detail["late_seconds"] == round((now - aware(daily[1])).total_seconds())

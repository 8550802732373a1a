"""A small world for check-in tests: a council, residents, members, a fake clock, the console
provider, and replies that arrive through signed webhooks, exactly as Twilio would post them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from scheduler.jobs import JobContext, process_replies, run_all_once
from service.audit.service import Actor
from service.clock import FakeClock, get_clock, set_clock
from service.common import utcnow
from service.config import get_settings
from service.registry import service as registry
from service.registry.models import (
    AssignmentCreate,
    MemberCreate,
    MemberKind,
    ResidentCreate,
    SiteCreate,
)
from service.telephony.console import ConsoleProvider
from service.telephony.models import OutboxMessage
from service.telephony.signature import sign

ACTOR = Actor(label="test")
# A plan of one SMS and an hour's wait: silence escalates an hour after the round starts.
ONE_MESSAGE = [{"channel": "sms", "message": "prompt", "wait_minutes": 60}]
# 2026-12-01 09:59 in Tokyo: a minute before a 10:00 round.
MORNING = datetime(2026, 12, 1, 0, 59, tzinfo=UTC)


@dataclass
class World:
    client: TestClient
    engine: Engine
    clock: FakeClock
    provider: ConsoleProvider
    ctx: JobContext
    org_id: uuid.UUID
    sites: dict[str, uuid.UUID] = field(default_factory=dict)
    residents: dict[str, uuid.UUID] = field(default_factory=dict)
    members: dict[str, uuid.UUID] = field(default_factory=dict)
    _sms_counter: int = 0

    # --- building the registry -------------------------------------------------------------
    def site(self, name: str, area: str = "390") -> uuid.UUID:
        with Session(self.engine) as s:
            site = registry.create_site(
                session=s,
                organization_id=self.org_id,
                data=SiteCreate(name=name, jma_area_code=area),
                actor=ACTOR,
            )
            s.commit()
            self.sites[name] = site.id
            return site.id

    def resident(
        self,
        key: str,
        phone: str | None,
        language: str = "ja",
        site: str | None = None,
        consent: bool = True,
        **extra: Any,
    ) -> uuid.UUID:
        with Session(self.engine) as s:
            data = ResidentCreate(
                external_id=key,
                name=extra.pop("name", f"住民 {key}"),
                phone=phone,
                language=language,
                site_id=self.sites.get(site) if site else None,
                unit=extra.pop("unit", "1-101"),
                consent_at=utcnow() if consent else None,
                **extra,
            )
            resident = registry.create_resident(
                session=s, organization_id=self.org_id, data=data, actor=ACTOR
            )
            s.commit()
            self.residents[key] = resident.id
            return resident.id

    def member(
        self,
        key: str,
        phone: str,
        languages: list[str] | None = None,
        kind: MemberKind = MemberKind.welfare_committee,
    ) -> uuid.UUID:
        with Session(self.engine) as s:
            member = registry.create_member(
                session=s,
                organization_id=self.org_id,
                data=MemberCreate(
                    external_id=key,
                    name=f"委員 {key}",
                    phone=phone,
                    languages=languages or ["ja"],
                    kind=kind,
                ),
                actor=ACTOR,
            )
            s.commit()
            self.members[key] = member.id
            return member.id

    def assign(self, resident: str, member: str, rank: int) -> None:
        with Session(self.engine) as s:
            registry.create_assignment(
                session=s,
                organization_id=self.org_id,
                data=AssignmentCreate(
                    resident_id=self.residents[resident], member_id=self.members[member], rank=rank
                ),
                actor=ACTOR,
            )
            s.commit()

    # --- rounds --------------------------------------------------------------------------
    def broadcast(self, **options: Any) -> uuid.UUID:
        """Start a round now, as staff would (``flows.start_broadcast``), fanned out at once."""
        from service.checkins import flows

        return flows.start_broadcast(
            self.engine,
            organization_id=self.org_id,
            started_by="test",
            now_fn=self.clock.now,
            **options,
        )

    def silent_case(self, *members: str, **resident: Any) -> None:
        """R1 (090-1000-0001) never answers a one-message round: after the hour, a case
        opens, alerting ``members`` (default M1, then M2) in that order."""
        for n, key in enumerate(members or ("M1", "M2"), start=1):
            if key not in self.members:
                self.member(key, f"080-3000-{n:04d}")
        self.resident("R1", "090-1000-0001", **resident)
        for rank, key in enumerate(members or ("M1", "M2"), start=1):
            self.assign("R1", key, rank)
        self.broadcast(plan=ONE_MESSAGE)
        self.tick()
        self.tick(60)

    # --- time and traffic ------------------------------------------------------------------
    def tick(self, minutes: float = 0) -> None:
        """Move the clock and run every scheduler job once, as the scheduler would."""
        if minutes:
            self.clock.advance(minutes=minutes)
        run_all_once(self.ctx)

    def post(self, path: str, params: dict[str, str]) -> Any:
        settings = get_settings()
        signature = sign(f"{settings.public_url}{path}", params, settings.webhook_auth_tokens()[0])
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    def sms(self, from_phone: str, body: str, sid: str | None = None, *, act: bool = True) -> str:
        """A reply SMS through the signed webhook; returns the TwiML reply text.

        The webhook answers a resident at once and leaves the effects to the scheduler's
        ``process_replies`` job (every second); ``act`` runs that job straight after, as
        the scheduler would, without moving the clock or running the other jobs.
        """
        self._sms_counter += 1
        response = self.post(
            "/twilio/sms",
            {
                "MessageSid": sid or f"SM{self._sms_counter:032d}",
                "From": from_phone,
                "To": "+815000000000",
                "Body": body,
                "AccountSid": "AC" + "0" * 32,
            },
        )
        assert response.status_code == 200, response.text
        if act:
            process_replies(self.ctx)
        return response.text

    def sent_to(self, phone: str) -> list[OutboxMessage]:
        with Session(self.engine) as s:
            return list(
                s.execute(
                    select(OutboxMessage)
                    .where(OutboxMessage.to_phone == phone)
                    .order_by(OutboxMessage.created_at)
                ).scalars()
            )

    def session(self) -> Session:
        return Session(self.engine)


@pytest.fixture
def world(client: TestClient, engine: Engine) -> Iterator[World]:
    previous = get_clock()
    clock = FakeClock(MORNING)
    set_clock(clock)
    provider = ConsoleProvider()
    ctx = JobContext(engine=engine, clock=clock, settings=get_settings(), provider=provider)
    with Session(engine) as s:
        from service.auth.service import get_or_create_organization

        org = get_or_create_organization(session=s, name="輪島市社会福祉協議会")
        s.commit()
        org_id = org.id
    try:
        yield World(
            client=client, engine=engine, clock=clock, provider=provider, ctx=ctx, org_id=org_id
        )
    finally:
        ctx.close()
        set_clock(previous)

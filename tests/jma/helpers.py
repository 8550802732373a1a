"""Shared pieces for the JMA trigger tests: fixture names, sites with area codes, counts."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from service.checkins.models import CheckIn, Round
from service.jma import service as jma
from service.jma.models import JmaDecision, JmaTriggerPolicy
from service.jma.parser import Bulletin, Intensity
from service.registry import service as registry
from service.registry.models import SiteCreate
from service.telephony.models import OutboxMessage
from tests.checkins.conftest import ACTOR, World

VXSE51_2009 = "32-35_07_03_100915_VXSE51.xml"
VXSE53_2009 = "32-35_07_06_100915_VXSE53.xml"
VXSE53_2011 = "32-39_11_05_120615_VXSE53.xml"
VXSE53_2021 = "20210217140958_0_VXSE53_010000.xml"
VTSE41_2023 = "20231009072652_07314633_VTSE41.xml"
VTSE41_DRILL = "32-39_12_02_191025_VTSE41.xml"


def replace_once(data: bytes, old: str, new: str) -> bytes:
    """Edit a fixture in memory (never on disk), failing loudly if the text moved."""
    encoded = old.encode()
    assert data.count(encoded) == 1, f"expected exactly one {old!r} in the fixture"
    return data.replace(encoded, new.encode())


def cancellation_of(data: bytes, report_time: str | None = None) -> bytes:
    """JMA's 取消 of a bulletin: same event, InfoType 取消, usually a later report time."""
    data = replace_once(data, "<InfoType>発表</InfoType>", "<InfoType>取消</InfoType>")
    if report_time is not None:
        text = data.decode("utf-8")
        start = text.index("<ReportDateTime>") + len("<ReportDateTime>")
        end = text.index("</ReportDateTime>", start)
        data = (text[:start] + report_time + text[end:]).encode("utf-8")
    return data


def aftershock(
    bulletin: Bulletin, *, event_id: str, after: timedelta, areas: dict[str, str]
) -> Bulletin:
    """A later quake shaped like a parsed fixture: new event, later report, other intensities."""
    intensities = {code: Intensity(value) for code, value in areas.items()}
    return dataclasses.replace(
        bulletin,
        event_id=event_id,
        report_datetime=bulletin.report_datetime + after,
        target_datetime=(bulletin.target_datetime or bulletin.report_datetime) + after,
        earthquake=None,
        area_intensities=intensities,
        area_names={code: bulletin.area_names.get(code, code) for code in areas},
        max_intensity=max(intensities.values()),
    )


def site(
    world: World, name: str, *, quake: str | None = None, tsunami: str | None = None
) -> uuid.UUID:
    with Session(world.engine) as s:
        created = registry.create_site(
            session=s,
            organization_id=world.org_id,
            data=SiteCreate(name=name, jma_area_code=quake, tsunami_area_code=tsunami),
            actor=ACTOR,
        )
        s.commit()
        world.sites[name] = created.id
        return created.id


def set_policy(world: World, organization_id: uuid.UUID | None = None, **values: Any) -> None:
    with Session(world.engine) as s:
        org_id = organization_id or world.org_id
        row = s.get(JmaTriggerPolicy, org_id) or JmaTriggerPolicy(organization_id=org_id)
        for key, value in values.items():
            setattr(row, key, value)
        s.add(row)
        s.commit()


def process(world: World, bulletin: Bulletin, *, minutes_after: float = 2) -> jma.ProcessResult:
    """Process as the feed would, a couple of minutes after the report was published."""
    world.clock.set((bulletin.report_datetime + timedelta(minutes=minutes_after)).astimezone(UTC))
    return jma.process_bulletin(world.engine, bulletin, now_fn=world.clock.now, source="test")


def at(world: World, when: datetime) -> None:
    world.clock.set(when)


def rounds(world: World) -> list[Round]:
    with Session(world.engine) as s:
        return list(s.execute(select(Round).order_by(Round.started_at)).scalars())


def outbox_count(world: World) -> int:
    with Session(world.engine) as s:
        return s.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()


def checked_residents(world: World, round_id: uuid.UUID) -> set[uuid.UUID]:
    with Session(world.engine) as s:
        return set(
            s.execute(select(CheckIn.resident_id).where(CheckIn.round_id == round_id)).scalars()
        )


def decisions(world: World) -> list[JmaDecision]:
    with Session(world.engine) as s:
        return list(s.execute(select(JmaDecision).order_by(JmaDecision.created_at)).scalars())

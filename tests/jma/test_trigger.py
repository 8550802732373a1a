"""From a JMA bulletin to residents' phones: rounds, hold-off, cancellation, drills, aftershocks.

Real database, real rounds and outbox; the bulletins are JMA's own documents (edited only in
memory, where a test needs a cancellation or an aftershock).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from service.audit.models import AuditEntry
from service.auth.service import get_or_create_organization
from service.common import aware, utcnow
from service.escalations.models import Escalation
from service.jma import service as jma
from service.jma.models import JmaPendingTrigger
from service.jma.parser import parse_bulletin
from service.jma.policy import Verdict
from service.registry import service as registry
from service.registry.models import ResidentCreate, SiteCreate
from service.telephony.models import OutboxMessage, OutboxPurpose
from tests.checkins.conftest import ACTOR, World
from tests.checkins.conftest import world as world
from tests.jma.helpers import (
    VTSE41_DRILL,
    VXSE51_2009,
    VXSE53_2011,
    aftershock,
    cancellation_of,
    checked_residents,
    decisions,
    outbox_count,
    process,
    rounds,
    set_policy,
    site,
)

Loader = Callable[[str], bytes]


def miyagi_and_noto(world: World) -> None:
    site(world, "宮城北仮設", quake="220", tsunami="210")
    site(world, "輪島仮設", quake="390", tsunami="360")
    world.resident("M1", "090-2200-0001", site="宮城北仮設")
    world.resident("M2", "090-2200-0002", site="宮城北仮設", language="vi")
    world.resident("N1", "090-3900-0001", site="輪島仮設")


# --------------------------------------------------------------------------- acceptance


def test_2011_quake_checks_on_miyagi_and_not_on_noto(world: World, jma_bytes: Loader) -> None:
    miyagi_and_noto(world)
    result = process(world, parse_bulletin(jma_bytes(VXSE53_2011)))
    assert not result.duplicate and result.broadcasts == 1
    [round_] = rounds(world)
    assert result.round_ids == [round_.id]
    assert round_.kind == "broadcast" and round_.status == "open"
    assert round_.cause == "震度7 宮城県北部 2011-03-11 14:46"
    assert round_.target_site_ids == [str(world.sites["宮城北仮設"])]
    assert round_.started_by == "jma:VXSE53 20110311144640"
    assert checked_residents(world, round_.id) == {world.residents["M1"], world.residents["M2"]}
    world.tick()
    assert len(world.sent_to("+819022000001")) == 1
    assert len(world.sent_to("+819022000002")) == 1
    assert world.sent_to("+819039000001") == []


def test_same_bulletin_twice_gives_one_broadcast(world: World, jma_bytes: Loader) -> None:
    miyagi_and_noto(world)
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    first = process(world, bulletin)
    again = jma.process_bulletin(
        world.engine, parse_bulletin(jma_bytes(VXSE53_2011)), now_fn=world.clock.now
    )
    assert again.duplicate and again.bulletin_id == first.bulletin_id
    assert again.round_ids == [] and again.decisions == []
    assert len(rounds(world)) == 1
    assert len(world.sent_to("+819022000001")) == 1


def test_drill_contacts_nobody_and_tells_staff_what_would_have_happened(
    world: World, jma_bytes: Loader
) -> None:
    site(world, "茨城沿岸仮設", tsunami="300")  # 大津波警報 in the drill
    site(world, "輪島仮設", quake="390", tsunami="360")  # 津波注意報: under the default
    world.resident("I1", "090-3000-0001", site="茨城沿岸仮設")
    world.resident("I2", "090-3000-0002", site="茨城沿岸仮設")
    world.resident("I3", None, site="茨城沿岸仮設")  # no phone: would be visited
    world.resident("N1", "090-3900-0001", site="輪島仮設")
    result = process(world, parse_bulletin(jma_bytes(VTSE41_DRILL)))
    world.tick()
    assert rounds(world) == []
    assert outbox_count(world) == 0
    assert result.broadcasts == 0 and result.round_ids == []
    [decision] = decisions(world)
    assert decision.dry_run is True
    assert decision.verdict == Verdict.BROADCAST.value
    assert decision.site_ids == [str(world.sites["茨城沿岸仮設"])]
    assert decision.cause == "大津波警報 茨城県 2016-09-01 07:10"
    assert (decision.would_contact, decision.would_visit) == (2, 1)
    with Session(world.engine) as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "jma.dry_run")).scalar_one()
    assert entry.detail["would_contact"] == 2 and entry.detail["status"] == "drill"


# --------------------------------------------------------------------------- staff see the cause


def test_member_alert_says_the_quake_triggered_it(world: World, jma_bytes: Loader) -> None:
    miyagi_and_noto(world)
    world.member("K1", "090-9000-0001")
    world.assign("M1", "K1", 1)
    process(world, parse_bulletin(jma_bytes(VXSE53_2011)))
    world.tick()
    for _ in range(4):  # the whole plan passes with no reply: 60 + 60 + 30 minutes
        world.tick(61)
    [alert] = [m for m in world.sent_to("+819090000001") if m.purpose == OutboxPurpose.alert]
    assert alert.body is not None
    assert alert.body.startswith("震度7 宮城県北部 2011-03-11 14:46を受けての確認です。")
    with Session(world.engine) as s:
        escalation = s.execute(
            select(Escalation).where(Escalation.resident_id == world.residents["M1"])
        ).scalar_one()
    assert escalation.cause == "震度7 宮城県北部 2011-03-11 14:46"


def test_earthquake_broadcast_overrides_quiet_hours_by_default(
    world: World, jma_bytes: Loader
) -> None:
    miyagi_and_noto(world)
    night = datetime(2026, 11, 30, 18, 12, tzinfo=UTC)  # 03:12 in Tokyo
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    shift = night - bulletin.report_datetime
    at_night = dataclasses.replace(
        bulletin,
        report_datetime=night,
        earthquake=dataclasses.replace(
            bulletin.earthquake,  # type: ignore[arg-type]
            origin_time=bulletin.earthquake.origin_time + shift,  # type: ignore[union-attr,operator]
        ),
    )
    process(world, at_night)
    [round_] = rounds(world)
    assert round_.override_quiet_hours is True
    assert round_.cause == "震度7 宮城県北部 2026-12-01 03:04"
    with Session(world.engine) as s:
        message = s.execute(
            select(OutboxMessage).where(OutboxMessage.to_phone == "+819022000001")
        ).scalar_one()
    assert aware(message.next_try_at) <= world.clock.now()


def test_policy_can_respect_quiet_hours(world: World, jma_bytes: Loader) -> None:
    miyagi_and_noto(world)
    set_policy(world, override_quiet_hours=False, max_report_age_minutes=24 * 60)
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    night = datetime(2026, 11, 30, 18, 12, tzinfo=UTC)  # 03:12 in Tokyo
    process(world, dataclasses.replace(bulletin, report_datetime=night))
    [round_] = rounds(world)
    assert round_.override_quiet_hours is False
    with Session(world.engine) as s:
        message = s.execute(
            select(OutboxMessage).where(OutboxMessage.to_phone == "+819022000001")
        ).scalar_one()
    assert aware(message.next_try_at) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- hold-off, cancellation


def test_cancellation_during_hold_off_cancels_the_pending_broadcast(
    world: World, jma_bytes: Loader
) -> None:
    miyagi_and_noto(world)
    set_policy(world, hold_off_minutes=5)
    data = jma_bytes(VXSE53_2011)
    process(world, parse_bulletin(data))
    assert rounds(world) == []  # waiting out the hold-off
    world.clock.advance(minutes=2)
    cancel = jma.process_bulletin(
        world.engine,
        parse_bulletin(cancellation_of(data, "2011-03-11T14:57:00+09:00")),
        now_fn=world.clock.now,
    )
    assert [d.verdict for d in cancel.decisions] == [Verdict.CANCEL.value]
    world.clock.advance(minutes=10)
    assert jma.fire_due_triggers(world.engine, world.clock.now) == []
    world.tick()
    assert rounds(world) == [] and outbox_count(world) == 0
    with Session(world.engine) as s:
        trigger = s.execute(select(JmaPendingTrigger)).scalar_one()
    assert trigger.cancelled_at is not None and trigger.fired_at is None


def test_without_a_cancellation_the_hold_off_ends_in_a_broadcast(
    world: World, jma_bytes: Loader
) -> None:
    miyagi_and_noto(world)
    set_policy(world, hold_off_minutes=5)
    process(world, parse_bulletin(jma_bytes(VXSE53_2011)))
    world.clock.advance(minutes=4)
    assert jma.fire_due_triggers(world.engine, world.clock.now) == []
    world.clock.advance(minutes=1)
    [round_id] = jma.fire_due_triggers(world.engine, world.clock.now)
    assert jma.fire_due_triggers(world.engine, world.clock.now) == []  # fired once only
    assert [r.id for r in rounds(world)] == [round_id]
    assert checked_residents(world, round_id) == {world.residents["M1"], world.residents["M2"]}


def test_cancellation_after_the_broadcast_is_reported_to_staff(
    world: World, jma_bytes: Loader
) -> None:
    miyagi_and_noto(world)
    data = jma_bytes(VXSE53_2011)
    process(world, parse_bulletin(data))
    cancel = process(world, parse_bulletin(cancellation_of(data, "2011-03-11T15:00:00+09:00")))
    assert [d.verdict for d in cancel.decisions] == [jma.CANCELLED_AFTER_BROADCAST]
    assert len(rounds(world)) == 1  # what was sent cannot be unsent; staff are told


def test_a_stronger_report_of_the_same_quake_during_hold_off_joins_the_pending_check(
    world: World, jma_bytes: Loader
) -> None:
    """VXSE51 then VXSE53 for one quake: one round, with the stronger cause and all sites."""
    site(world, "伊豆仮設", quake="440")
    site(world, "長野南仮設", quake="422")
    world.resident("Z1", "090-4400-0001", site="伊豆仮設")
    world.resident("Z2", "090-4220-0001", site="長野南仮設")
    set_policy(world, hold_off_minutes=3)
    flash = parse_bulletin(jma_bytes(VXSE51_2009))
    weaker_flash = aftershock(
        flash, event_id=flash.event_id, after=timedelta(0), areas={"422": "5-"}
    )
    process(world, weaker_flash)
    stronger = aftershock(
        flash, event_id=flash.event_id, after=timedelta(minutes=1), areas={"440": "6-", "422": "5-"}
    )
    world.clock.advance(minutes=1)
    jma.process_bulletin(world.engine, stronger, now_fn=world.clock.now)
    world.clock.advance(minutes=5)
    [round_id] = jma.fire_due_triggers(world.engine, world.clock.now)
    [round_] = rounds(world)
    assert round_.id == round_id
    assert round_.cause is not None and round_.cause.startswith("震度6弱 静岡県伊豆 ")
    assert checked_residents(world, round_id) == {world.residents["Z1"], world.residents["Z2"]}


# --------------------------------------------------------------------------- aftershocks


def test_lower_aftershock_in_window_then_higher_one(world: World, jma_bytes: Loader) -> None:
    site(world, "静岡東仮設", quake="441")
    world.resident("S1", "090-4410-0001", site="静岡東仮設")
    main = parse_bulletin(jma_bytes(VXSE51_2009))  # 441: 5+
    process(world, main)
    assert len(rounds(world)) == 1

    lower = aftershock(
        main, event_id="20090811070000", after=timedelta(hours=2), areas={"441": "5-"}
    )
    result = process(world, lower)
    assert [d.verdict for d in result.decisions] == [Verdict.AFTERSHOCK_SUPPRESSED.value]
    assert len(rounds(world)) == 1

    higher = aftershock(
        main, event_id="20090811090000", after=timedelta(hours=4), areas={"441": "6-"}
    )
    result = process(world, higher)
    assert [d.verdict for d in result.decisions] == [Verdict.BROADCAST.value]
    assert len(rounds(world)) == 2
    assert rounds(world)[-1].cause == "震度6弱 静岡県東部 2009-08-11 09:07"


def test_cancelled_trigger_does_not_hold_back_the_next_quake(
    world: World, jma_bytes: Loader
) -> None:
    site(world, "静岡東仮設", quake="441")
    world.resident("S1", "090-4410-0001", site="静岡東仮設")
    set_policy(world, hold_off_minutes=5)
    data = jma_bytes(VXSE51_2009)
    main = parse_bulletin(data)
    process(world, main)
    process(world, parse_bulletin(cancellation_of(data, "2009-08-11T05:10:00+09:00")))
    set_policy(world, hold_off_minutes=0)
    later = aftershock(
        main, event_id="20090811060000", after=timedelta(hours=1), areas={"441": "5-"}
    )
    result = process(world, later)
    assert [d.verdict for d in result.decisions] == [Verdict.BROADCAST.value]
    assert len(rounds(world)) == 1


# --------------------------------------------------------------------------- organizations


def test_each_organization_checks_only_its_own_sites(world: World, jma_bytes: Loader) -> None:
    miyagi_and_noto(world)
    with Session(world.engine) as s:
        other = get_or_create_organization(session=s, name="石巻市社会福祉協議会")
        s.commit()
        other_id = other.id
    with Session(world.engine) as s:
        other_site = registry.create_site(
            session=s,
            organization_id=other_id,
            data=SiteCreate(name="石巻仮設", jma_area_code="220"),
            actor=ACTOR,
        )
        registry.create_resident(
            session=s,
            organization_id=other_id,
            data=ResidentCreate(
                external_id="O1",
                name="住民 O1",
                phone="090-2200-0099",
                site_id=other_site.id,
                consent_at=utcnow(),
            ),
            actor=ACTOR,
        )
        s.commit()
    set_policy(world, other_id, enabled=False)
    result = process(world, parse_bulletin(jma_bytes(VXSE53_2011)))
    verdicts = {d.organization_id: d.verdict for d in result.decisions}
    assert verdicts == {world.org_id: Verdict.BROADCAST.value, other_id: Verdict.DISABLED.value}
    [round_] = rounds(world)
    assert round_.organization_id == world.org_id
    world.tick()
    assert world.sent_to("+819022000099") == []


def test_help_reply_alert_says_the_quake_triggered_it(world: World, jma_bytes: Loader) -> None:
    miyagi_and_noto(world)
    world.member("K1", "090-9000-0001")
    world.assign("M1", "K1", 1)
    process(world, parse_bulletin(jma_bytes(VXSE53_2011)))
    world.tick()
    world.sms("+819022000001", "2")
    world.tick()
    [alert] = [m for m in world.sent_to("+819090000001") if m.purpose == OutboxPurpose.alert]
    assert alert.body is not None
    assert alert.body.startswith("震度7 宮城県北部 2011-03-11 14:46を受けての確認です。")

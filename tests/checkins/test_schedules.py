"""Schedules: when they next run, on which weekdays, the /api/v1/schedules CRUD with its
organization scoping and roles, and one round per due time however often the job runs."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlmodel import Session

from service.audit.models import AuditEntry
from service.checkins import flows
from service.checkins import service as checkins
from service.checkins.models import CheckIn, Round, Schedule
from service.common import aware
from service.telephony.models import OutboxMessage

TOKYO = "Asia/Tokyo"


def at_tokyo(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(TOKYO))


def schedule(**fields) -> Schedule:
    return Schedule(name="毎朝", **fields)


# --- Next run -------------------------------------------------------------------------------------


def test_next_run_is_later_the_same_day_before_the_time():
    after = at_tokyo(2026, 12, 1, 9, 59).astimezone(UTC)
    assert checkins.next_run_after(schedule(time_of_day="10:00"), after, TOKYO) == at_tokyo(
        2026, 12, 1, 10, 0
    )


def test_next_run_at_exactly_the_time_is_the_next_day():
    after = at_tokyo(2026, 12, 1, 10, 0).astimezone(UTC)
    assert checkins.next_run_after(schedule(time_of_day="10:00"), after, TOKYO) == at_tokyo(
        2026, 12, 2, 10, 0
    )


def test_next_run_follows_the_local_date_not_the_utc_date():
    # 2026-12-01 15:30 UTC is already 2 December, 00:30 in Tokyo: the next 10:00 is that day's.
    after = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    result = checkins.next_run_after(schedule(time_of_day="10:00"), after, TOKYO)
    assert result == datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert result.tzinfo is not None and result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("weekdays", "expected_day"),
    [
        ([0], 7),  # Monday only: from Tuesday 1 December to Monday 7 December
        ([1], 8),  # Tuesday only, after Tuesday's time: a week later
        ([5, 6], 5),  # the weekend: Saturday 5 December
        ([2, 4], 2),  # Wednesday and Friday: Wednesday 2 December
    ],
)
def test_next_run_only_falls_on_the_chosen_weekdays(weekdays, expected_day):
    after = at_tokyo(2026, 12, 1, 11, 0)  # a Tuesday, after 10:00
    result = checkins.next_run_after(schedule(time_of_day="10:00", weekdays=weekdays), after, TOKYO)
    assert result == at_tokyo(2026, 12, expected_day, 10, 0)
    assert result.astimezone(ZoneInfo(TOKYO)).weekday() in weekdays


def test_next_run_keeps_the_local_time_across_a_daylight_saving_change():
    zone = "America/New_York"
    before = checkins.next_run_after(
        schedule(time_of_day="10:00"), datetime(2026, 3, 7, 16, 0, tzinfo=UTC), zone
    )
    after = checkins.next_run_after(schedule(time_of_day="10:00"), before, zone)
    assert before == datetime(2026, 3, 8, 14, 0, tzinfo=UTC)  # EDT already: 10:00 = 14:00 UTC
    assert after == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    winter = checkins.next_run_after(
        schedule(time_of_day="10:00"), datetime(2026, 3, 6, 16, 0, tzinfo=UTC), zone
    )
    assert winter == datetime(2026, 3, 7, 15, 0, tzinfo=UTC)  # EST: 10:00 = 15:00 UTC


# --- The API -------------------------------------------------------------------------------------


def create(world, staff, **body):
    payload = {"name": "毎朝の見守り", "time_of_day": "10:00", **body}
    return world.client.post("/api/v1/schedules", json=payload, headers=staff.headers)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def test_a_coordinator_creates_a_schedule_and_its_next_run_is_computed(world, coordinator):
    response = create(world, coordinator, weekdays=[4, 0, 0])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["weekdays"] == [0, 4]  # sorted, without duplicates
    assert body["quiet_start"] == "21:00" and body["quiet_end"] == "08:00"
    # The world's clock says Tuesday 1 December 09:59 in Tokyo: next is Friday 10:00.
    assert parse(body["next_run_at"]) == at_tokyo(2026, 12, 4, 10, 0)
    with Session(world.engine) as s:
        stored = s.get(Schedule, uuid.UUID(body["id"]))
        assert stored.organization_id == coordinator.org_id
        audit = s.execute(
            select(AuditEntry.action).where(AuditEntry.entity_id == body["id"])
        ).scalars()
        assert list(audit) == ["create"]


def test_updating_the_time_or_pausing_recomputes_the_next_run(world, coordinator):
    schedule_id = create(world, coordinator).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}"
    moved = world.client.patch(url, json={"time_of_day": "9:30"}, headers=coordinator.headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["time_of_day"] == "09:30"
    assert parse(moved.json()["next_run_at"]) == at_tokyo(2026, 12, 2, 9, 30)
    paused = world.client.patch(url, json={"active": False}, headers=coordinator.headers)
    assert paused.json()["active"] is False and paused.json()["next_run_at"] is None
    resumed = world.client.patch(url, json={"active": True}, headers=coordinator.headers)
    assert parse(resumed.json()["next_run_at"]) == at_tokyo(2026, 12, 2, 9, 30)
    listed = world.client.get("/api/v1/schedules", headers=coordinator.headers).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == schedule_id


def test_a_schedule_is_deleted(world, coordinator):
    schedule_id = create(world, coordinator).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}"
    assert world.client.delete(url, headers=coordinator.headers).status_code == 204
    assert world.client.get("/api/v1/schedules", headers=coordinator.headers).json()["count"] == 0
    assert world.client.delete(url, headers=coordinator.headers).status_code == 404
    assert (
        world.client.patch(url, json={"name": "x"}, headers=coordinator.headers).status_code == 404
    )


def test_another_organizations_schedule_does_not_exist_for_you(world, coordinator, other_org_admin):
    schedule_id = create(world, coordinator).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}"
    headers = other_org_admin.headers
    assert world.client.patch(url, json={"active": False}, headers=headers).status_code == 404
    assert world.client.delete(url, headers=headers).status_code == 404
    assert world.client.get("/api/v1/schedules", headers=headers).json() == {"data": [], "count": 0}
    with Session(world.engine) as s:
        untouched = s.get(Schedule, uuid.UUID(str(schedule_id)))
        assert untouched is not None and untouched.active is True


def test_a_schedule_cannot_target_another_organizations_site(world, coordinator, other_org_admin):
    theirs = world.client.post(
        "/api/v1/sites", json={"name": "他市の団地"}, headers=other_org_admin.headers
    )
    assert theirs.status_code == 201, theirs.text
    response = create(
        world, coordinator, target_kind="sites", target_site_ids=[theirs.json()["id"]]
    )
    assert response.status_code == 422
    assert "target_site_ids" in response.text


def test_a_viewer_reads_schedules_but_cannot_change_them(world, coordinator, viewer):
    schedule_id = create(world, coordinator).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}"
    assert world.client.get("/api/v1/schedules", headers=viewer.headers).json()["count"] == 1
    assert create(world, viewer).status_code == 403
    assert (
        world.client.patch(url, json={"active": False}, headers=viewer.headers).status_code == 403
    )
    assert world.client.delete(url, headers=viewer.headers).status_code == 403
    with Session(world.engine) as s:
        assert s.get(Schedule, uuid.UUID(str(schedule_id))).active is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_of_day": "25:00"}, "time_of_day"),
        ({"time_of_day": "ten"}, "time_of_day"),
        ({"weekdays": []}, "weekdays"),
        ({"weekdays": [7]}, "weekdays"),
        ({"quiet_end": "8"}, "quiet_end"),
        ({"target_kind": "sites"}, "target_site_ids"),
        ({"target_kind": "flag", "target_flag": "rich"}, "target_flag"),
        ({"plan": [{"channel": "sms", "wait_minutes": 0}]}, "wait_minutes"),
        ({"plan": [{"channel": "fax", "wait_minutes": 30}]}, "channel"),
        ({"plan": []}, "plan"),
        ({"target_kind": "residents"}, "target_resident_ids"),
        ({"target_kind": "residents", "target_resident_ids": ["R01"]}, "target_resident_ids"),
        ({"target_kind": "sites", "target_site_ids": ["団地"]}, "target_site_ids"),
        (
            {"target_kind": "residents", "target_resident_ids": [str(uuid.uuid4())]},
            "target_resident_ids",
        ),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_problem(world, coordinator, body, field):
    response = create(world, coordinator, **body)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert world.client.get("/api/v1/schedules", headers=coordinator.headers).json()["count"] == 0


def test_a_schedule_cannot_name_another_organizations_resident(world, coordinator, other_org_admin):
    theirs = world.client.post(
        "/api/v1/residents",
        json={"external_id": "X1", "name": "他市の住民", "phone": "090-9000-0001"},
        headers=other_org_admin.headers,
    )
    assert theirs.status_code == 201, theirs.text
    body = {"target_kind": "residents", "target_resident_ids": [theirs.json()["id"]]}
    response = create(world, coordinator, **body)
    assert response.status_code == 422 and "no such resident" in response.text
    mine = world.resident("R1", "090-1000-0001")
    response = create(world, coordinator, target_kind="residents", target_resident_ids=[str(mine)])
    assert response.status_code == 201, response.text
    url = f"/api/v1/schedules/{response.json()['id']}"
    patched = world.client.patch(url, json=body, headers=coordinator.headers)
    assert patched.status_code == 422 and "no such resident" in patched.text
    with Session(world.engine) as s:
        kept = s.get(Schedule, uuid.UUID(response.json()["id"]))
        assert kept.target_resident_ids == [str(mine)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_kind": "flag"}, "target_flag"),  # a flag schedule without its flag
        ({"target_kind": "sites"}, "target_site_ids"),
        ({"target_kind": "residents"}, "target_resident_ids"),
        ({"target_site_ids": None}, "target_site_ids"),
        ({"weekdays": None}, "weekdays"),
        ({"name": None}, "name"),
    ],
)
def test_a_change_that_leaves_a_schedule_without_its_targets_is_refused(
    world, coordinator, body, field
):
    """A change is checked against the whole schedule it leaves, not on its own: switching
    to 'flag' without a flag would otherwise ask every resident."""
    schedule_id = create(world, coordinator).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}"
    response = world.client.patch(url, json=body, headers=coordinator.headers)
    assert response.status_code == 422, response.text
    assert field in response.text
    with Session(world.engine) as s:
        kept = s.get(Schedule, uuid.UUID(str(schedule_id)))
        assert (kept.target_kind, kept.target_flag, kept.name) == ("all", None, "毎朝の見守り")
    # The same change with what it needs goes through.
    ok = world.client.patch(
        url, json={"target_kind": "flag", "target_flag": "lives_alone"}, headers=coordinator.headers
    )
    assert ok.status_code == 200, ok.text
    assert (
        world.client.patch(url, json={"target_kind": "all"}, headers=coordinator.headers).json()[
            "target_kind"
        ]
        == "all"
    )


# --- Due runs ------------------------------------------------------------------------------------


def rounds_of(world, schedule_id) -> list[Round]:
    with Session(world.engine) as s:
        return list(
            s.execute(select(Round).where(Round.schedule_id == uuid.UUID(str(schedule_id))))
            .scalars()
            .all()
        )


def test_a_weekly_schedule_starts_one_round_on_its_day_only(world, coordinator):
    world.resident("R1", "090-1111-0001")
    schedule_id = create(
        world, coordinator, weekdays=[0], quiet_start="00:00", quiet_end="00:00"
    ).json()["id"]
    world.clock.advance(minutes=2)  # Tuesday 10:01
    for _day in range(8):
        world.tick()
        world.tick()
        world.clock.advance(days=1)
    started = rounds_of(world, schedule_id)
    assert [aware(r.scheduled_for) for r in started] == [at_tokyo(2026, 12, 7, 10, 0)]
    with Session(world.engine) as s:
        assert aware(s.get(Schedule, uuid.UUID(str(schedule_id))).next_run_at) == at_tokyo(
            2026, 12, 14, 10, 0
        )
        assert s.execute(select(func.count()).select_from(CheckIn)).scalar_one() == 1


def test_running_the_job_twice_starts_one_round_per_due_time(world):
    world.resident("R1", "090-1111-0001")
    with Session(world.engine) as s:
        due = schedule(
            organization_id=world.org_id,
            time_of_day="10:00",
            quiet_start="00:00",
            quiet_end="00:00",
            next_run_at=at_tokyo(2026, 12, 1, 10, 0).astimezone(UTC),  # stored as UTC
        )
        s.add(due)
        s.commit()
        schedule_id = due.id
    world.clock.advance(minutes=1)
    first = flows.start_due_rounds(world.engine, world.clock.now)
    second = flows.start_due_rounds(world.engine, world.clock.now)
    world.tick()
    world.tick()
    assert len(first) == 1 and second == []
    assert len(rounds_of(world, schedule_id)) == 1
    with Session(world.engine) as s:
        assert s.execute(select(func.count()).select_from(CheckIn)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == 1


def test_a_schedule_stored_with_a_target_that_is_not_an_id_still_runs_its_round(world):
    """Saved before targets were checked: the entry that is not an id is left out (and
    logged); the round asks the residents it does name and finishes, instead of failing
    on every run."""
    r1 = world.resident("R1", "090-1111-0001")
    world.resident("R2", "090-1111-0002")
    with Session(world.engine) as s:
        due = schedule(
            organization_id=world.org_id,
            time_of_day="10:00",
            quiet_start="00:00",
            quiet_end="00:00",
            target_kind="residents",
            target_resident_ids=["R2", str(r1)],
            next_run_at=at_tokyo(2026, 12, 1, 10, 0).astimezone(UTC),
        )
        s.add(due)
        s.commit()
        schedule_id = due.id
    world.clock.advance(minutes=1)
    assert len(flows.start_due_rounds(world.engine, world.clock.now)) == 1
    [round_] = rounds_of(world, schedule_id)
    assert round_.status == "open"
    with Session(world.engine) as s:
        assert list(s.execute(select(CheckIn.resident_id)).scalars()) == [r1]


def test_a_second_job_that_read_the_schedule_before_the_first_committed_starts_nothing(world):
    """Two runs of the job race for the same due time: the first has written its round and
    not yet committed when the second reads the schedule. The unique (schedule, due time)
    key lets only one round exist, whoever wins."""
    world.resident("R1", "090-1111-0001")
    world.resident("R2", "090-1111-0002")
    with Session(world.engine) as s:
        due = schedule(
            organization_id=world.org_id,
            time_of_day="10:00",
            quiet_start="00:00",
            quiet_end="00:00",
            next_run_at=at_tokyo(2026, 12, 1, 10, 0).astimezone(UTC),  # stored as UTC
        )
        s.add(due)
        s.commit()
        schedule_id = due.id
    world.clock.advance(minutes=1)
    postgres = world.engine.dialect.name == "postgresql"
    first = Session(world.engine)
    try:
        checkins.start_due_schedule(first, first.get(Schedule, schedule_id), world.clock.now())
        first.flush()  # the round row is written, the transaction still open
        second_started: list = []

        def second_job() -> None:
            second_started.extend(flows.start_due_rounds(world.engine, world.clock.now))

        racer = threading.Thread(target=second_job)
        racer.start()
        if postgres:
            # Wait until the second job is blocked on the first one's uncommitted round.
            deadline = time.monotonic() + 10
            with world.engine.connect() as probe:
                while time.monotonic() < deadline:
                    waiting = probe.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                        )
                    ).scalar_one()
                    probe.commit()
                    if waiting:
                        break
                    time.sleep(0.02)
                assert waiting, "the second job never reached the round insert"
        else:
            time.sleep(0.5)
        first.commit()
        racer.join(timeout=30)
        assert not racer.is_alive()
    finally:
        first.close()
    assert second_started == []
    assert len(rounds_of(world, schedule_id)) == 1
    world.tick()
    world.tick()
    with Session(world.engine) as s:
        per_resident = s.execute(
            select(CheckIn.resident_id, func.count()).group_by(CheckIn.resident_id)
        ).all()
    assert sorted(n for _r, n in per_resident) == [1, 1]

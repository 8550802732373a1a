"""Each organization sets how long an alerted member has to answer, and how long a member
who took a case has to report the visit (issue #5: "default 30 min", "default 4")."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from service.audit.models import AuditEntry
from service.escalations.models import Escalation

M1, M2 = "+818030000001", "+818030000002"


def _settings(world, staff):
    return world.client.get("/api/v1/organization", headers=staff.headers)


def test_the_defaults_are_30_minutes_and_4_hours_and_anyone_can_read_them(world, viewer):
    response = _settings(world, viewer)
    assert response.status_code == 200, response.text
    assert response.json()["ack_minutes"] == 30 and response.json()["outcome_hours"] == 4


def test_only_an_administrator_changes_them_and_the_change_is_audited(
    world, admin, coordinator, other_org_admin
):
    url = "/api/v1/organization"
    body = {"ack_minutes": 15, "outcome_hours": 2}
    assert world.client.patch(url, json=body, headers=coordinator.headers).status_code == 403
    changed = world.client.patch(url, json=body, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["ack_minutes"], changed.json()["outcome_hours"]) == (15, 2)
    # Another organization's settings are its own.
    theirs = world.client.get(url, headers=other_org_admin.headers).json()
    assert (theirs["ack_minutes"], theirs["outcome_hours"]) == (30, 4)
    with world.session() as s:
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.entity_type == "organization")).all()
    assert entry.entity_id == str(world.org_id) and entry.actor_user_id == admin.user_id
    assert sorted(entry.fields) == ["ack_minutes", "outcome_hours"]
    assert entry.detail["before"] == {"ack_minutes": 30, "outcome_hours": 4}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ack_minutes": 0}, "ack_minutes"),
        ({"ack_minutes": 241}, "ack_minutes"),
        ({"ack_minutes": "soon"}, "ack_minutes"),
        ({"outcome_hours": 0}, "outcome_hours"),
        ({"outcome_hours": 73}, "outcome_hours"),
        ({"outcome_hours": None}, "outcome_hours"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(world, admin, body, field):
    response = world.client.patch("/api/v1/organization", json=body, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert _settings(world, admin).json()["ack_minutes"] == 30


def test_new_cases_follow_the_organizations_windows(world, admin):
    world.client.patch(
        "/api/v1/organization", json={"ack_minutes": 10, "outcome_hours": 1}, headers=admin.headers
    )
    world.silent_case()  # R1 silent: a case alerting M1, then M2
    with world.session() as s:
        case = s.exec(select(Escalation)).one()
    assert (case.ack_minutes, case.outcome_hours) == (10, 1)
    world.tick(9)
    assert not [m for m in world.sent_to(M2) if m.purpose == "alert"]
    world.tick(1)  # M1's ten minutes are up: M2 is asked
    assert [m for m in world.sent_to(M2) if m.purpose == "alert"]
    world.sms(M2, f"1 {case.case_code}")
    world.tick(60)  # an hour without a result: M2 is reminded
    with world.session() as s:
        assert s.get(Escalation, uuid.UUID(str(case.id))).reminded_at is not None

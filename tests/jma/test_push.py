"""POST /api/v1/jma/bulletins (a relay pushing raw XML) and the trigger policy API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, timedelta

import pytest
from fastapi.testclient import TestClient

from service.config import get_settings
from service.jma.parser import parse_bulletin
from tests.checkins.conftest import World
from tests.checkins.conftest import world as world
from tests.conftest import Staff
from tests.jma.helpers import VTSE41_DRILL, VXSE53_2011, outbox_count, rounds, site

Loader = Callable[[str], bytes]
TOKEN = "0123456789abcdef0123456789abcdef"
PUSH = "/api/v1/jma/bulletins"
XML = {"Content-Type": "application/xml"}


@pytest.fixture
def push_token(monkeypatch: pytest.MonkeyPatch, world: World) -> Iterator[str]:
    monkeypatch.setenv("MIMAMORI_JMA_PUSH_TOKEN", TOKEN)
    get_settings.cache_clear()
    yield TOKEN
    get_settings.cache_clear()


def bearer(token: str) -> dict[str, str]:
    return {**XML, "Authorization": f"Bearer {token}"}


def ready(world: World, jma_bytes: Loader) -> bytes:
    site(world, "宮城北仮設", quake="220", tsunami="300")
    world.resident("M1", "090-2200-0001", site="宮城北仮設")
    data = jma_bytes(VXSE53_2011)
    report = parse_bulletin(data).report_datetime
    world.clock.set((report + timedelta(minutes=2)).astimezone(UTC))
    return data


# --------------------------------------------------------------------------- the token


def test_push_is_off_until_a_token_is_configured(world: World, jma_bytes: Loader) -> None:
    assert get_settings().jma_push_token is None
    response = world.client.post(PUSH, content=jma_bytes(VXSE53_2011), headers=bearer("x"))
    assert response.status_code == 503
    assert "MIMAMORI_JMA_PUSH_TOKEN" in response.json()["detail"]


def test_push_without_a_token_is_refused(world: World, push_token: str, jma_bytes: Loader) -> None:
    data = ready(world, jma_bytes)
    response = world.client.post(PUSH, content=data, headers=XML)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert rounds(world) == []


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN[:-1]}x", f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN],
)
def test_push_with_a_wrong_token_is_refused(
    world: World, push_token: str, jma_bytes: Loader, authorization: str
) -> None:
    data = ready(world, jma_bytes)
    response = world.client.post(
        PUSH, content=data, headers={**XML, "Authorization": authorization}
    )
    assert response.status_code == 401
    assert rounds(world) == []


def test_a_staff_login_token_is_not_a_push_token(
    world: World, push_token: str, jma_bytes: Loader, coordinator: Staff
) -> None:
    response = world.client.post(
        PUSH, content=ready(world, jma_bytes), headers={**XML, **coordinator.headers}
    )
    assert response.status_code == 401


# --------------------------------------------------------------------------- processing


def test_pushed_bulletin_starts_the_check(world: World, push_token: str, jma_bytes: Loader) -> None:
    response = world.client.post(PUSH, content=ready(world, jma_bytes), headers=bearer(TOKEN))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "processed"
    assert body["kind"] == "VXSE53" and body["event_id"] == "20110311144640"
    assert body["bulletin_status"] == "real" and body["info_type"] == "issued"
    assert body["broadcasts"] == 1 and body["rounds_started"] == 1 and body["dry_runs"] == 0
    [round_] = rounds(world)
    assert round_.cause == "震度7 宮城県北部 2011-03-11 14:46"


def test_same_bulletin_pushed_twice_gives_one_broadcast(
    world: World, push_token: str, jma_bytes: Loader
) -> None:
    data = ready(world, jma_bytes)
    first = world.client.post(PUSH, content=data, headers=bearer(TOKEN))
    second = world.client.post(PUSH, content=data, headers=bearer(TOKEN))
    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert second.json()["bulletin_id"] == first.json()["bulletin_id"]
    assert second.json()["rounds_started"] == 0
    assert len(rounds(world)) == 1
    world.tick()
    assert len(world.sent_to("+819022000001")) == 1


def test_pushed_drill_contacts_nobody(world: World, push_token: str, jma_bytes: Loader) -> None:
    ready(world, jma_bytes)
    response = world.client.post(PUSH, content=jma_bytes(VTSE41_DRILL), headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.json()["bulletin_status"] == "drill"
    assert response.json()["dry_runs"] == 1 and response.json()["broadcasts"] == 0
    world.tick()
    assert rounds(world) == [] and outbox_count(world) == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<Report><Control>", "not well-formed"),
        (b"", "empty"),
        (b'<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>', "forbidden XML feature"),
        (b"<feed/>", "Report"),
    ],
)
def test_malformed_xml_is_422_naming_the_problem(
    world: World, push_token: str, body: bytes, problem: str
) -> None:
    response = world.client.post(PUSH, content=body, headers=bearer(TOKEN))
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body"]
    assert problem in detail["msg"]
    assert rounds(world) == []


def test_push_needs_an_xml_content_type(world: World, push_token: str, jma_bytes: Loader) -> None:
    response = world.client.post(
        PUSH,
        content=ready(world, jma_bytes),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 415
    assert rounds(world) == []


def test_text_xml_is_accepted(world: World, push_token: str, jma_bytes: Loader) -> None:
    response = world.client.post(
        PUSH,
        content=ready(world, jma_bytes),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/xml; charset=utf-8"},
    )
    assert response.status_code == 200


# --------------------------------------------------------------------------- the policy API


def test_policy_defaults_until_saved(client: TestClient, viewer: Staff) -> None:
    response = client.get("/api/v1/jma/policy", headers=viewer.headers)
    assert response.status_code == 200
    policy = response.json()
    assert policy["is_default"] is True
    assert policy["enabled"] is True
    assert policy["min_intensity"] == "5-"
    assert policy["tsunami_min_kind"] == "warning"
    assert policy["hold_off_minutes"] == 0
    assert policy["aftershock_window_hours"] == 6
    assert policy["new_quake_in_window_starts_broadcast"] is False
    assert policy["override_quiet_hours"] is True
    assert policy["max_report_age_minutes"] == 60


def test_coordinator_changes_the_policy_and_it_is_audited(
    client: TestClient, coordinator: Staff
) -> None:
    response = client.put(
        "/api/v1/jma/policy",
        json={"min_intensity": "震度5強", "hold_off_minutes": 3, "tsunami_min_kind": None},
        headers=coordinator.headers,
    )
    assert response.status_code == 200, response.text
    policy = response.json()
    assert policy["is_default"] is False
    assert policy["min_intensity"] == "5+"
    assert policy["hold_off_minutes"] == 3
    assert policy["tsunami_min_kind"] is None
    assert policy["aftershock_window_hours"] == 6  # left out: unchanged
    again = client.put(
        "/api/v1/jma/policy", json={"enabled": False}, headers=coordinator.headers
    ).json()
    assert again["enabled"] is False and again["min_intensity"] == "5+"
    audit = client.get("/api/v1/audit", headers=coordinator.headers).json()["data"]
    assert any(e["entity_type"] == "jma_trigger_policy" for e in audit)


def test_viewer_cannot_change_the_policy(client: TestClient, viewer: Staff) -> None:
    response = client.put("/api/v1/jma/policy", json={"enabled": False}, headers=viewer.headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_intensity", "8"),
        ("min_intensity", "5-?"),
        ("tsunami_min_kind", "tsunami"),
        ("hold_off_minutes", -1),
        ("hold_off_minutes", 61),
        ("max_report_age_minutes", 0),
    ],
)
def test_bad_policy_values_are_422_naming_the_field(
    client: TestClient, coordinator: Staff, field: str, value: object
) -> None:
    response = client.put("/api/v1/jma/policy", json={field: value}, headers=coordinator.headers)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])


def test_policy_is_scoped_to_the_callers_organization(
    client: TestClient, coordinator: Staff, other_org_admin: Staff
) -> None:
    client.put("/api/v1/jma/policy", json={"enabled": False}, headers=coordinator.headers)
    theirs = client.get("/api/v1/jma/policy", headers=other_org_admin.headers).json()
    assert theirs["enabled"] is True and theirs["is_default"] is True


def test_policy_needs_a_login(client: TestClient) -> None:
    assert client.get("/api/v1/jma/policy").status_code == 401


def test_staff_see_decisions_including_dry_runs(
    world: World, push_token: str, jma_bytes: Loader, viewer: Staff, other_org_admin: Staff
) -> None:
    ready(world, jma_bytes)
    world.client.post(PUSH, content=jma_bytes(VTSE41_DRILL), headers=bearer(TOKEN))
    page = world.client.get("/api/v1/jma/decisions", headers=viewer.headers).json()
    assert page["count"] == 1
    [decision] = page["data"]
    assert decision["dry_run"] is True and decision["verdict"] == "broadcast"
    assert decision["status"] == "drill" and decision["bulletin_kind"] == "VTSE41"
    assert decision["would_contact"] == 1
    assert decision["cause"] == "大津波警報 茨城県 2016-09-01 07:10"
    others = world.client.get("/api/v1/jma/decisions", headers=other_org_admin.headers).json()
    assert others["count"] == 0

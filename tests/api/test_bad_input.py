"""Bad input is a 422 naming the field, never a 500 (issue 18's list), on SQLite and PostgreSQL.

Each case here was a server error before: an offset past PostgreSQL's BIGINT, a number or a
list where a string was expected, ``false`` for a list, ``null`` for a field that may not be
empty. Date-times come back with their offset, so a client can tell UTC from JST.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.conftest import Staff


def _list_paths() -> list[str]:
    """Every API list that pages with ``skip``, read from the OpenAPI description, so a list
    added later is covered too."""
    paths = []
    for path, operations in create_app().openapi()["paths"].items():
        get = operations.get("get")
        if get and "{" not in path:
            if any(p["name"] == "skip" for p in get.get("parameters", [])):
                paths.append(path)
    return sorted(paths)


LIST_PATHS = _list_paths()


def _field_errors(response, field: str) -> list[dict]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, (response.status_code, response.text)
    detail = response.json()["detail"]
    named = [d for d in detail if field in d["loc"]]
    assert named, detail
    return named


def _resident(client: TestClient, staff: Staff) -> dict:
    r = client.post(
        "/api/v1/residents",
        headers=staff.headers,
        json={"external_id": "R1", "name": "能登 花子", "phone": "090-1234-5678"},
    )
    assert r.status_code == 201, r.text
    return r.json()


def _member(client: TestClient, staff: Staff) -> dict:
    r = client.post(
        "/api/v1/members",
        headers=staff.headers,
        json={"name": "民生 太郎", "phone": "090-9999-0000", "languages": ["ja"]},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_every_list_is_covered():
    assert {"/api/v1/residents", "/api/v1/members", "/api/v1/audit"} <= set(LIST_PATHS)
    assert len(LIST_PATHS) >= 7, LIST_PATHS


@pytest.mark.parametrize("path", LIST_PATHS)
@pytest.mark.parametrize("skip", [2**63, 2**63 - 1, 2**64 + 5, 2**31])
def test_a_huge_skip_is_a_422_naming_skip(client, admin, path, skip):
    r = client.get(path, headers=admin.headers, params={"skip": skip})
    _field_errors(r, "skip")


@pytest.mark.parametrize("path", LIST_PATHS)
def test_the_largest_allowed_skip_is_an_empty_page(client, admin, path):
    r = client.get(path, headers=admin.headers, params={"skip": 2**31 - 1})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", [1, ["ja"], {"code": "ja"}, True, 1.5])
def test_a_resident_language_that_is_not_a_string_is_a_422(client, coordinator, value):
    body = {"name": "能登 花子", "phone": "090-1234-5678", "language": value}
    r = client.post("/api/v1/residents", headers=coordinator.headers, json=body)
    assert _field_errors(r, "language")[0]["msg"] == "expected a string"
    resident = _resident(client, coordinator)
    r = client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers=coordinator.headers,
        json={"language": value},
    )
    _field_errors(r, "language")


@pytest.mark.parametrize("value", [False, True, 0, {"ja": True}])
def test_member_languages_that_are_not_a_list_are_a_422(client, coordinator, value):
    body = {"name": "民生 太郎", "phone": "090-9999-0000", "languages": value}
    r = client.post("/api/v1/members", headers=coordinator.headers, json=body)
    _field_errors(r, "languages")
    member = _member(client, coordinator)
    r = client.patch(
        f"/api/v1/members/{member['id']}", headers=coordinator.headers, json={"languages": value}
    )
    _field_errors(r, "languages")


def test_member_languages_may_still_be_a_comma_separated_string(client, coordinator):
    body = {"name": "民生 太郎", "phone": "090-9999-0000", "languages": "ja, vi"}
    r = client.post("/api/v1/members", headers=coordinator.headers, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["languages"] == ["ja", "vi"]


def test_a_member_language_that_is_not_a_string_is_a_422(client, coordinator):
    body = {"name": "民生 太郎", "phone": "090-9999-0000", "languages": ["ja", 7]}
    r = client.post("/api/v1/members", headers=coordinator.headers, json=body)
    assert ["body", "languages", 1] in [d["loc"] for d in r.json()["detail"]], r.text


@pytest.mark.parametrize(
    "field",
    [
        "lives_alone",
        "elderly",
        "disability",
        "pregnancy",
        "needs_interpreter",
        "name",
        "language",
        "status",
        "preferred_channel",
    ],
)
def test_null_for_a_required_resident_field_is_a_422(client, coordinator, field):
    resident = _resident(client, coordinator)
    r = client.patch(
        f"/api/v1/residents/{resident['id']}", headers=coordinator.headers, json={field: None}
    )
    assert _field_errors(r, field)[0]["msg"] == "may not be null"
    again = client.get(f"/api/v1/residents/{resident['id']}", headers=coordinator.headers)
    assert again.json()[field] == resident[field]


def test_null_for_a_field_that_may_be_empty_still_clears_it(client, coordinator):
    resident = _resident(client, coordinator)
    r = client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers=coordinator.headers,
        json={"name_kana": None, "external_id": None},
    )
    assert r.status_code == 200, r.text
    assert r.json()["name_kana"] is None


@pytest.mark.parametrize("field", ["full_name", "role", "is_active"])
def test_null_for_a_user_field_is_a_422(client, admin, viewer, field):
    r = client.patch(f"/api/v1/users/{viewer.user_id}", headers=admin.headers, json={field: None})
    _field_errors(r, field)
    assert client.get("/api/v1/users/me", headers=viewer.headers).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"), [("is_active", "false"), ("is_active", 0), ("role", 3)]
)
def test_a_user_field_of_the_wrong_type_is_a_422(client, admin, viewer, field, value):
    r = client.patch(f"/api/v1/users/{viewer.user_id}", headers=admin.headers, json={field: value})
    _field_errors(r, field)


@pytest.mark.parametrize("field", ["name", "active", "languages"])
def test_null_for_a_required_member_field_is_a_422(client, coordinator, field):
    member = _member(client, coordinator)
    r = client.patch(
        f"/api/v1/members/{member['id']}", headers=coordinator.headers, json={field: None}
    )
    _field_errors(r, field)


@pytest.mark.parametrize("field", ["ack_minutes", "outcome_hours", "names", "sender_numbers"])
def test_null_for_an_organization_setting_is_a_422(client, admin, field):
    r = client.patch("/api/v1/organization", headers=admin.headers, json={field: None})
    _field_errors(r, field)


def _date_times(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _date_times(v)]
    if isinstance(value, list):
        return [s for v in value for s in _date_times(v)]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return [value]
    return []


def test_every_date_time_the_api_returns_has_an_offset(client, admin):
    resident = _resident(client, admin)
    _member(client, admin)
    client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers=admin.headers,
        json={"consent_at": "2026-12-07T09:00:00+09:00", "consent_method": "書面"},
    )
    seen: list[str] = []
    for path in [
        "/api/v1/users",
        "/api/v1/sites",
        f"/api/v1/residents/{resident['id']}",
        *LIST_PATHS,
    ]:
        r = client.get(path, headers=admin.headers)
        assert r.status_code == 200, (path, r.text)
        seen += _date_times(r.json())
    assert len(seen) >= 5, seen
    for text in seen:
        assert datetime.fromisoformat(text).utcoffset() is not None, text
    consent = client.get(f"/api/v1/residents/{resident['id']}", headers=admin.headers).json()
    assert datetime.fromisoformat(consent["consent_at"]) == datetime.fromisoformat(
        "2026-12-07T00:00:00+00:00"
    )

"""The registry API: validation, org scoping, roles, audit."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from tests.conftest import Staff


def _site(client: TestClient, staff: Staff, name: str = "輪島市 宅田町第2団地") -> str:
    r = client.post(
        "/api/v1/sites",
        headers=staff.headers,
        json={"name": name, "jma_area_code": "390", "municipality_code": "172049"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _resident(client: TestClient, staff: Staff, **extra: object) -> dict:
    body = {
        "external_id": f"R{uuid.uuid4().hex[:6]}",
        "name": "能登 花子",
        "name_kana": "ノト ハナコ",
        "phone": "090-1234-5678",
        "language": "ja",
    }
    body.update(extra)
    r = client.post("/api/v1/residents", headers=staff.headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_resident_phone_is_stored_as_e164_and_landline_is_voice_only(client, coordinator):
    mobile = _resident(client, coordinator, phone="０９０－１２３４－５６７８")
    assert mobile["phone"] == "+819012345678"
    assert mobile["phone_kind"] == "mobile"
    landline = _resident(client, coordinator, phone="(0768) 22-1234")
    assert landline["phone"] == "+81768221234"
    assert landline["phone_kind"] == "landline"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("phone", "090-1234-567", "invalid phone number"),
        ("phone", "12345", "too short"),
        ("language", "klingon", "unsupported language"),
        ("name", "  ", "required"),
    ],
)
def test_bad_resident_input_names_the_field_and_the_problem(
    client, coordinator, field, value, fragment
):
    body = {"external_id": "R1", "name": "能登 花子", "phone": "090-1234-5678", field: value}
    r = client.post("/api/v1/residents", headers=coordinator.headers, json=body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert any(d["loc"][-1] == field and fragment in d["msg"] for d in detail), detail


def test_site_from_another_organization_is_rejected_as_no_such_site(
    client, coordinator, other_org_admin
):
    foreign_site = _site(client, other_org_admin, "天草 仮設団地")
    r = client.post(
        "/api/v1/residents",
        headers=coordinator.headers,
        json={"name": "A", "site_id": foreign_site, "phone": "09012345678"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "site_id"]


def test_duplicate_external_id_is_a_conflict(client, coordinator):
    _resident(client, coordinator, external_id="W-001")
    r = client.post(
        "/api/v1/residents",
        headers=coordinator.headers,
        json={"external_id": "W-001", "name": "B", "phone": "09011112222"},
    )
    assert r.status_code == 409
    assert r.json()["detail"][0]["loc"] == ["body", "external_id"]


def test_away_status_needs_a_return_date(client, coordinator):
    resident = _resident(client, coordinator)
    r = client.patch(
        f"/api/v1/residents/{resident['id']}", headers=coordinator.headers, json={"status": "away"}
    )
    assert r.status_code == 422
    assert "away_until" in r.text
    r = client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers=coordinator.headers,
        json={"status": "away", "away_until": "2026-12-10"},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "away"


def test_listing_filters_pages_and_searches(client, coordinator):
    site_a = _site(client, coordinator, "A団地")
    site_b = _site(client, coordinator, "B団地")
    for i in range(5):
        _resident(
            client,
            coordinator,
            site_id=site_a,
            name=f"山田 {i}",
            name_kana=f"ヤマダ {i}",
            phone=f"090-1111-000{i}",
        )
    _resident(
        client,
        coordinator,
        site_id=site_b,
        name="Nguyen Van An",
        language="vi",
        phone="080-2222-3333",
    )
    r = client.get(
        "/api/v1/residents",
        headers=coordinator.headers,
        params={"site_id": site_a, "limit": 2, "skip": 2},
    )
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 5
    assert [x["name"] for x in page["data"]] == ["山田 2", "山田 3"]
    by_language = client.get(
        "/api/v1/residents", headers=coordinator.headers, params={"language": "vi"}
    ).json()
    assert [x["name"] for x in by_language["data"]] == ["Nguyen Van An"]
    by_phone = client.get(
        "/api/v1/residents", headers=coordinator.headers, params={"q": "080-2222-3333"}
    ).json()
    assert [x["name"] for x in by_phone["data"]] == ["Nguyen Van An"]
    by_kana = client.get(
        "/api/v1/residents", headers=coordinator.headers, params={"q": "ﾔﾏﾀﾞ 4"}
    ).json()  # half-width kana, as typed on old PCs
    assert [x["name"] for x in by_kana["data"]] == ["山田 4"]


def test_filter_by_assigned_member(client, coordinator):
    a = _resident(client, coordinator, name="A")
    _resident(client, coordinator, name="B")
    member = client.post(
        "/api/v1/members",
        headers=coordinator.headers,
        json={
            "external_id": "M1",
            "name": "民生 太郎",
            "phone": "090-9999-0000",
            "languages": "ja, vi",
        },
    ).json()
    assert member["languages"] == ["ja", "vi"]
    r = client.post(
        "/api/v1/assignments",
        headers=coordinator.headers,
        json={"resident_id": a["id"], "member_id": member["id"], "rank": 1},
    )
    assert r.status_code == 201, r.text
    listed = client.get(
        "/api/v1/residents", headers=coordinator.headers, params={"member_id": member["id"]}
    ).json()
    assert [x["name"] for x in listed["data"]] == ["A"]
    clash = client.post(
        "/api/v1/assignments",
        headers=coordinator.headers,
        json={"resident_id": a["id"], "member_id": member["id"], "rank": 2},
    )
    assert clash.status_code == 409


def test_every_resident_endpoint_hides_other_organizations_residents(
    client, coordinator, other_org_admin
):
    theirs = _resident(client, other_org_admin)
    rid = theirs["id"]
    calls = [
        ("GET", f"/api/v1/residents/{rid}", None),
        ("PATCH", f"/api/v1/residents/{rid}", {"name": "changed"}),
        ("GET", f"/api/v1/residents/{rid}/assignments", None),
    ]
    for method, url, body in calls:
        r = client.request(method, url, headers=coordinator.headers, json=body)
        assert r.status_code == 404, (method, url, r.status_code)
        assert r.json() == {"detail": "resident not found"}
    # An admin of the first organization cannot delete it either.
    from service.auth.models import Role
    from tests.conftest import make_staff

    admin = make_staff(client, _engine(client), org="輪島市社会福祉協議会", role=Role.admin)
    r = client.delete(f"/api/v1/residents/{rid}", headers=admin.headers)
    assert r.status_code == 404
    # A missing id behaves exactly the same.
    r = client.get(f"/api/v1/residents/{uuid.uuid4()}", headers=coordinator.headers)
    assert r.status_code == 404 and r.json() == {"detail": "resident not found"}
    # Nothing changed for the owner.
    mine = client.get(f"/api/v1/residents/{rid}", headers=other_org_admin.headers).json()
    assert mine["name"] == theirs["name"]
    listed = client.get("/api/v1/residents", headers=coordinator.headers).json()
    assert listed["count"] == 0
    assignments = client.post(
        "/api/v1/assignments",
        headers=coordinator.headers,
        json={"resident_id": rid, "member_id": str(uuid.uuid4()), "rank": 1},
    )
    assert assignments.status_code == 422


def _engine(client):  # the engine the app uses
    from service.db import get_engine

    return get_engine()


def test_without_a_token_every_api_call_is_401(client):
    for method, url in [
        ("GET", "/api/v1/residents"),
        ("POST", "/api/v1/residents"),
        ("GET", "/api/v1/sites"),
        ("GET", "/api/v1/members"),
        ("GET", f"/api/v1/residents/{uuid.uuid4()}"),
        ("GET", "/api/v1/export/residents"),
    ]:
        r = client.request(method, url)
        assert r.status_code == 401, (method, url)
    r = client.get("/api/v1/residents", headers={"Authorization": "Bearer forged.token.here"})
    assert r.status_code == 401


def test_viewer_can_read_but_every_write_is_403(client, coordinator, viewer):
    resident = _resident(client, coordinator)
    assert client.get("/api/v1/residents", headers=viewer.headers).status_code == 200
    writes = [
        ("POST", "/api/v1/residents", {"name": "x", "phone": "09012345678"}),
        ("PATCH", f"/api/v1/residents/{resident['id']}", {"name": "x"}),
        ("DELETE", f"/api/v1/residents/{resident['id']}", None),
        ("POST", "/api/v1/sites", {"name": "x"}),
        ("POST", "/api/v1/members", {"name": "x", "phone": "09012345678"}),
        ("POST", "/api/v1/users", {"email": "a@b.c", "full_name": "x", "password": "x" * 12}),
    ]
    for method, url, body in writes:
        r = client.request(method, url, headers=viewer.headers, json=body)
        assert r.status_code == 403, (method, url, r.status_code)
    r = client.post(
        "/api/v1/import/residents", headers=viewer.headers, files={"file": ("r.csv", b"name\n")}
    )
    assert r.status_code == 403
    after = client.get(f"/api/v1/residents/{resident['id']}", headers=coordinator.headers)
    assert after.json()["name"] == resident["name"]


def test_changes_and_reads_are_audited_without_sensitive_values(client, coordinator, engine):
    resident = _resident(client, coordinator, notes="持病あり")
    client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers=coordinator.headers,
        json={"phone": "080-5555-6666", "unit": "A-12"},
    )
    client.get(f"/api/v1/residents/{resident['id']}", headers=coordinator.headers)
    with Session(engine) as s:
        entries = s.exec(
            select(AuditEntry).where(AuditEntry.entity_id == resident["id"]).order_by(AuditEntry.at)
        ).all()
    actions = [(e.action, e.fields) for e in entries]
    assert actions[0][0] == "create"
    assert ("update", ["phone", "unit"]) in actions
    assert any(a == "read" for a, _ in actions)
    assert all(e.actor.startswith("Test coordinator") for e in entries)
    blob = " ".join(str(e.model_dump()) for e in entries)
    # Whole numbers, not fragments: four digits could turn up inside a random UUID.
    assert "8055556666" not in blob and "持病" not in blob and "9012345678" not in blob
    audit = client.get(
        "/api/v1/audit", headers=coordinator.headers, params={"entity_id": resident["id"]}
    ).json()
    assert audit["count"] == len(entries)


def test_login_with_a_wrong_password_is_401(client, coordinator):
    r = client.post(
        "/api/v1/auth/token", data={"username": coordinator.email, "password": "wrong password"}
    )
    assert r.status_code == 401
    r = client.post("/api/v1/auth/token", data={"username": "nobody@x.jp", "password": "x"})
    assert r.status_code == 401


def test_health_and_readiness_needs_a_recent_scheduler_heartbeat(client, engine):
    from service.common import utcnow
    from service.ops.models import Heartbeat

    assert client.get("/healthz").json() == {"status": "ok"}
    with Session(engine) as s:  # start from no heartbeat at all, whatever ran before
        for beat in s.exec(select(Heartbeat)).all():
            s.delete(beat)
        s.commit()
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert "no heartbeat" in not_ready.json()["checks"]["scheduler"]
    with Session(engine) as s:
        s.add(Heartbeat(name="scheduler", holder="test", at=utcnow()))
        s.commit()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "scheduler": "ok"}

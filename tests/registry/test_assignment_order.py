"""The order of a resident's contacts through the API: the command the dashboard's Up and
Down buttons call. All or nothing, audited, coordinators only, scoped to the organization."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from tests.conftest import Staff


def _contacts(client: TestClient, staff: Staff, count: int) -> tuple[str, list[str]]:
    resident = client.post(
        "/api/v1/residents",
        headers=staff.headers,
        json={"name": "能登 花子", "phone": "090-1234-5678"},
    ).json()["id"]
    ids = []
    for n in range(1, count + 1):
        member = client.post(
            "/api/v1/members",
            headers=staff.headers,
            json={"name": f"委員 {n}", "phone": f"080-3000-000{n}"},
        ).json()["id"]
        made = client.post(
            "/api/v1/assignments",
            headers=staff.headers,
            json={"resident_id": resident, "member_id": member, "rank": n},
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    return resident, ids


def _order(client: TestClient, staff: Staff, resident: str) -> list[str]:
    page = client.get(f"/api/v1/residents/{resident}/assignments", headers=staff.headers)
    return [a["id"] for a in sorted(page.json()["data"], key=lambda a: a["rank"])]


def test_contacts_are_put_in_a_new_order_with_an_audit_per_moved_one(
    client: TestClient, coordinator: Staff, engine
) -> None:
    resident, (a, b, c) = _contacts(client, coordinator, 3)
    url = f"/api/v1/residents/{resident}/assignments/order"
    r = client.put(url, headers=coordinator.headers, json={"assignment_ids": [c, a, b]})
    assert r.status_code == 200, r.text
    assert [(x["id"], x["rank"]) for x in r.json()["data"]] == [(c, 1), (a, 2), (b, 3)]
    assert _order(client, coordinator, resident) == [c, a, b]
    with Session(engine) as s:
        moved = s.exec(
            select(AuditEntry).where(
                AuditEntry.entity_type == "assignment", AuditEntry.action == "update"
            )
        ).all()
    assert sorted(e.entity_id for e in moved) == sorted([a, b, c])


def test_an_order_that_leaves_out_or_repeats_a_contact_changes_nothing(
    client: TestClient, coordinator: Staff
) -> None:
    resident, (a, b, c) = _contacts(client, coordinator, 3)
    url = f"/api/v1/residents/{resident}/assignments/order"
    for wrong in ([b, a], [b, a, a], [b, a, c, c]):
        r = client.put(url, headers=coordinator.headers, json={"assignment_ids": wrong})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][-1] == "assignment_ids"
    assert _order(client, coordinator, resident) == [a, b, c]


def test_viewers_cannot_reorder_and_another_organization_cannot_see_the_resident(
    client: TestClient, coordinator: Staff, viewer: Staff, other_org_admin: Staff
) -> None:
    resident, (a, b) = _contacts(client, coordinator, 2)
    url = f"/api/v1/residents/{resident}/assignments/order"
    body = {"assignment_ids": [b, a]}
    assert client.put(url, headers=viewer.headers, json=body).status_code == 403
    assert client.put(url, headers=other_org_admin.headers, json=body).status_code == 404
    assert _order(client, coordinator, resident) == [a, b]

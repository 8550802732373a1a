"""The last active admin of an organization cannot be demoted or deactivated."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from service.auth.models import Role
from tests.conftest import Staff, make_staff


@pytest.mark.parametrize(
    "change", [{"role": "coordinator"}, {"role": "viewer"}, {"is_active": False}], ids=str
)
def test_the_last_admin_cannot_demote_or_deactivate_themselves(
    client: TestClient, admin: Staff, change: dict[str, object]
) -> None:
    response = client.patch(f"/api/v1/users/{admin.user_id}", headers=admin.headers, json=change)
    assert response.status_code == 409, response.text
    detail = response.json()["detail"][0]
    assert "last active admin" in detail["msg"]
    assert detail["loc"][-1] == next(iter(change))
    me = client.get("/api/v1/users/me", headers=admin.headers)
    assert me.status_code == 200  # nothing changed, nothing revoked
    assert me.json()["role"] == "admin" and me.json()["is_active"] is True


def test_with_another_admin_one_can_step_down_but_not_the_last_one(
    client: TestClient, engine: Engine, admin: Staff
) -> None:
    second = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.admin)
    stepped = client.patch(
        f"/api/v1/users/{admin.user_id}", headers=admin.headers, json={"role": "viewer"}
    )
    assert stepped.status_code == 200, stepped.text
    # Now `second` is the last one: nobody can demote them, not even themselves.
    alone = client.patch(
        f"/api/v1/users/{second.user_id}", headers=second.headers, json={"is_active": False}
    )
    assert alone.status_code == 409


def test_an_inactive_admin_does_not_count(client: TestClient, engine: Engine, admin: Staff) -> None:
    second = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.admin)
    off = client.patch(
        f"/api/v1/users/{second.user_id}", headers=admin.headers, json={"is_active": False}
    )
    assert off.status_code == 200
    demoted = client.patch(
        f"/api/v1/users/{admin.user_id}", headers=admin.headers, json={"role": "coordinator"}
    )
    assert demoted.status_code == 409


def test_an_admin_of_another_organization_does_not_count(
    client: TestClient, admin: Staff, other_org_admin: Staff
) -> None:
    response = client.patch(
        f"/api/v1/users/{admin.user_id}", headers=admin.headers, json={"role": "viewer"}
    )
    assert response.status_code == 409

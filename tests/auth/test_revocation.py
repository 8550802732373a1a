"""Revocation: logout, a new password, deactivation and a new role end every older token and
session; a token without an expiry or a version is refused."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from service.auth.models import Role
from service.config import get_settings
from tests.conftest import TEST_PASSWORD, Staff, make_staff
from tests.web.conftest import FormClient

ME = "/api/v1/users/me"
NEW_PASSWORD = "seven purple lanterns drift north"


def _token(client: TestClient, email: str, password: str = TEST_PASSWORD) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _forge(claims: dict[str, object]) -> dict[str, str]:
    """A token signed with the service's real key."""
    token = jwt.encode(claims, get_settings().secret_key, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def test_api_logout_ends_this_and_every_other_token(client: TestClient, admin: Staff) -> None:
    other = _token(client, admin.email)
    assert client.get(ME, headers=admin.headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=admin.headers).status_code == 204
    assert client.get(ME, headers=admin.headers).status_code == 401
    assert client.get(ME, headers=other).status_code == 401
    assert client.get(ME, headers=_token(client, admin.email)).status_code == 200


def test_the_old_token_after_a_password_change_is_401(
    client: TestClient, admin: Staff, coordinator: Staff
) -> None:
    changed = client.patch(
        f"/api/v1/users/{coordinator.user_id}",
        headers=admin.headers,
        json={"password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    assert client.get(ME, headers=coordinator.headers).status_code == 401
    assert (
        client.get(ME, headers=_token(client, coordinator.email, NEW_PASSWORD)).status_code == 200
    )
    assert client.get(ME, headers=admin.headers).status_code == 200  # others are untouched


@pytest.mark.parametrize(
    "change", [{"is_active": False}, {"role": "viewer"}, {"role": "admin"}], ids=str
)
def test_deactivation_or_a_new_role_ends_the_users_tokens(
    client: TestClient, admin: Staff, coordinator: Staff, change: dict[str, object]
) -> None:
    response = client.patch(
        f"/api/v1/users/{coordinator.user_id}", headers=admin.headers, json=change
    )
    assert response.status_code == 200, response.text
    assert client.get(ME, headers=coordinator.headers).status_code == 401


def test_an_edit_that_changes_nothing_that_matters_keeps_the_tokens(
    client: TestClient, admin: Staff, coordinator: Staff
) -> None:
    response = client.patch(
        f"/api/v1/users/{coordinator.user_id}",
        headers=admin.headers,
        json={"full_name": "新しい 名前", "role": "coordinator", "is_active": True},
    )
    assert response.status_code == 200, response.text
    assert client.get(ME, headers=coordinator.headers).status_code == 200


def test_a_token_without_exp_is_refused_even_with_the_real_key(
    client: TestClient, admin: Staff
) -> None:
    claims = {"sub": str(admin.user_id), "org": str(admin.org_id), "ver": 0}
    now = int(time.time())
    assert client.get(ME, headers=_forge({**claims, "iat": now})).status_code == 401
    # The same claims with an expiry are accepted: the refusal is about the missing exp.
    good = _forge({**claims, "iat": now, "exp": now + 600})
    assert client.get(ME, headers=good).status_code == 200


def test_a_token_without_the_version_claim_is_refused(client: TestClient, admin: Staff) -> None:
    now = int(time.time())
    claims = {"sub": str(admin.user_id), "org": str(admin.org_id), "iat": now, "exp": now + 600}
    assert client.get(ME, headers=_forge(claims)).status_code == 401
    assert client.get(ME, headers=_forge({**claims, "ver": "0"})).status_code == 401
    assert client.get(ME, headers=_forge({**claims, "ver": 1})).status_code == 401
    assert client.get(ME, headers=_forge({**claims, "ver": 0})).status_code == 200


def test_an_expired_token_is_refused(client: TestClient, admin: Staff) -> None:
    now = int(time.time())
    claims = {"sub": str(admin.user_id), "org": str(admin.org_id), "ver": 0}
    expired = _forge({**claims, "iat": now - 7200, "exp": now - 3600})
    assert client.get(ME, headers=expired).status_code == 401


# --- The dashboard ----------------------------------------------------------------------------


def _copy_of_cookie(forms: FormClient) -> dict[str, str]:
    return dict(forms.client.cookies)


def test_a_cookie_copied_before_logout_does_not_open_the_resident_list_afterwards(
    client: TestClient, engine: Engine, forms: FormClient
) -> None:
    staff = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.coordinator)
    assert forms.login(staff.email).status_code == 303
    stolen = _copy_of_cookie(forms)
    assert forms.client.get("/registry/residents", follow_redirects=False).status_code == 200
    assert forms.post("/logout").status_code == 303
    from service.app import create_app

    with TestClient(create_app(), cookies=stolen) as attacker:
        page = attacker.get("/registry/residents", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
    # The user's API tokens ended with the logout too.
    assert client.get(ME, headers=staff.headers).status_code == 401


def test_a_password_change_on_the_dashboard_ends_other_sessions(
    client: TestClient, engine: Engine, forms: FormClient
) -> None:
    staff = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.viewer)
    assert forms.login(staff.email).status_code == 303
    from service.app import create_app

    with TestClient(create_app()) as other_browser:
        other = FormClient(other_browser)
        assert other.login(staff.email).status_code == 303
        changed = forms.post(
            "/account/password",
            {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 303, changed.text
        # This browser stays logged in with a new session; the other one is out.
        assert forms.client.get("/registry/residents", follow_redirects=False).status_code == 200
        out = other_browser.get("/registry/residents", follow_redirects=False)
        assert out.status_code == 303
    assert client.get(ME, headers=staff.headers).status_code == 401
    assert client.get(ME, headers=_token(client, staff.email, NEW_PASSWORD)).status_code == 200


def test_a_new_role_ends_the_users_dashboard_session(
    client: TestClient, engine: Engine, forms: FormClient, admin: Staff
) -> None:
    staff = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.coordinator)
    assert forms.login(staff.email).status_code == 303
    client_cookies = dict(forms.client.cookies)
    forms.client.cookies.clear()
    response = client.patch(
        f"/api/v1/users/{staff.user_id}", headers=admin.headers, json={"role": "viewer"}
    )
    assert response.status_code == 200
    forms.client.cookies.update(client_cookies)
    assert forms.client.get("/", follow_redirects=False).status_code == 303

"""The password policy (NIST SP 800-63B): length and a blocklist, the same in the API, the
CLI and the dashboard, with a reason the user can read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from service.auth.passwords import Weakness, common_passwords, weakness
from tests.conftest import TEST_PASSWORD, Staff
from tests.web.conftest import FormClient

ORG = "輪島市社会福祉協議会"
CONTEXT = ["taro.yamada@example.jp", "山田 太郎 Yamada Taro", ORG]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password12", Weakness.too_short),
        ("1234567890", Weakness.too_short),
        ("short one", Weakness.too_short),
        ("１２３４５６７８９０１", Weakness.too_short),  # 11 after NFKC
        ("          ", Weakness.blank),
        ("                    ", Weakness.blank),
        ("aaaaaaaaaaaa", Weakness.predictable),
        ("1234567890ab", Weakness.predictable),
        ("qwertyuiopasdf", Weakness.predictable),
        ("abcabcabcabc", Weakness.predictable),
        ("zxcvbnm,./;'", Weakness.common),
        ("fishfishfish", Weakness.predictable),
        ("password1234", Weakness.common),
        ("Password1234!", Weakness.common),
        ("ｐａｓｓｗｏｒｄ１２３４", Weakness.common),  # full-width, NFKC folds it
        ("iloveyou2024!!", Weakness.common),
        ("monkey123456789", Weakness.common),
        ("p a s s w o r d 1", Weakness.common),
        ("taro.yamada@example.jp", Weakness.personal),
        ("yamadataro2024!", Weakness.personal),
        ("Taro Yamada 123456", Weakness.personal),
        (ORG + "2024", Weakness.personal),
        ("x" * 201, Weakness.too_long),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: Weakness) -> None:
    assert weakness(password, context=CONTEXT) == reason


@pytest.mark.parametrize(
    "password",
    [
        TEST_PASSWORD,
        "seven purple lanterns drift north",
        "いつもの公園で待ち合わせしよう",  # 15 code points, no composition rules
        "Tr0ub4dor&3 kayak",
        "   leading and trailing spaces   ",
        "輪島の朝市で干物を買った日",
    ],
)
def test_long_unpredictable_passphrases_are_accepted(password: str) -> None:
    assert weakness(password, context=CONTEXT) is None


def test_the_blocklist_is_a_real_list_of_thousands() -> None:
    words = common_passwords()
    assert len(words) > 10_000
    assert {"password", "qwerty", "iloveyou", "123456"} <= words


def test_the_api_refuses_a_weak_password_with_a_reason(client: TestClient, admin: Staff) -> None:
    body = {"email": "new.person@example.jp", "full_name": "新人 花子", "role": "viewer"}
    for password, words in [
        ("password12", "at least 12 characters"),
        ("aaaaaaaaaaaa", "too easy to guess"),
        ("password1234", "most common"),
        ("new.person@example.jp", "your login, your name"),
        (" " * 12, "only spaces"),
    ]:
        response = client.post(
            "/api/v1/users", headers=admin.headers, json={**body, "password": password}
        )
        assert response.status_code == 422, (password, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "password"]
        assert words in detail["msg"], detail
    created = client.post(
        "/api/v1/users", headers=admin.headers, json={**body, "password": TEST_PASSWORD}
    )
    assert created.status_code == 201, created.text


def test_a_password_change_through_the_api_follows_the_policy(
    client: TestClient, admin: Staff, coordinator: Staff
) -> None:
    response = client.patch(
        f"/api/v1/users/{coordinator.user_id}",
        headers=admin.headers,
        json={"password": "輪島市社会福祉協議会"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
    # Refused means unchanged: the old token still works.
    assert client.get("/api/v1/users/me", headers=coordinator.headers).status_code == 200


def test_the_dashboard_refuses_a_weak_new_password_in_the_users_language(
    forms: FormClient, admin: Staff
) -> None:
    assert forms.login(admin.email).status_code == 303
    page = forms.post(
        "/account/password", {"current_password": TEST_PASSWORD, "new_password": "1234567890ab"}
    )
    assert page.status_code == 422
    assert "推測されやすい" in page.text
    wrong = forms.post(
        "/account/password",
        {"current_password": "not my password", "new_password": "seven purple lanterns"},
    )
    assert wrong.status_code == 422
    assert "現在のパスワードが違います" in wrong.text
    token = forms.csrf("/")
    forms.client.post("/language", data={"csrf_token": token, "language": "en", "next": "/"})
    english = forms.post(
        "/account/password", {"current_password": TEST_PASSWORD, "new_password": "short"}
    )
    assert english.status_code == 422
    assert "at least 12 characters" in english.text


MIMAMORI = str(Path(sys.executable).parent / "mimamori")


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MIMAMORI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", "MIMAMORI_DATABASE_URL": database_url},
    )


def test_the_cli_applies_the_same_policy(
    database_url: str, engine: Engine, client: TestClient
) -> None:
    create = ["user", "create", "--email", "ops@example.jp", "--name", "運用 担当", "--org", ORG]
    weak = _cli(*create, "--password", "password1234", database_url=database_url)
    assert weak.returncode == 1
    assert "most common" in weak.stdout + weak.stderr
    made = _cli(*create, "--password", TEST_PASSWORD, database_url=database_url)
    assert made.returncode == 0, made.stdout + made.stderr
    token = client.post(
        "/api/v1/auth/token", data={"username": "ops@example.jp", "password": TEST_PASSWORD}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    change = ["user", "set-password", "--email", "ops@example.jp", "--password"]
    refused = _cli(*change, "ops@example.jp!!", database_url=database_url)
    assert refused.returncode == 1
    assert "your login" in refused.stdout + refused.stderr
    changed = _cli(*change, "seven purple lanterns drift", database_url=database_url)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401

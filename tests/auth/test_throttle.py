"""Login throttling: per account and per client address, in the API and on the dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from service.auth.throttle import BASE_LOCKOUT_SECONDS, lockout_seconds
from service.common import aware, utcnow
from tests.conftest import TEST_PASSWORD, Staff
from tests.web.conftest import FormClient

TOKEN = "/api/v1/auth/token"


def _login(client: TestClient, login: str, password: str) -> object:
    return client.post(TOKEN, data={"username": login, "password": password})


def _unlock_everything(engine: Engine) -> None:
    """Time passing: every lockout is over (the counts stay)."""
    past = utcnow() - timedelta(seconds=1)
    with engine.begin() as connection:
        connection.execute(text("UPDATE login_throttle SET locked_until = :t"), {"t": past})


def test_lockouts_double_from_the_free_failures_and_stay_bounded() -> None:
    free = 5
    waits = [lockout_seconds(n, free_failures=free, max_seconds=900) for n in range(1, 40)]
    assert waits[: free - 1] == [0] * (free - 1)
    assert waits[free - 1] == BASE_LOCKOUT_SECONDS
    assert waits[free] == 2 * BASE_LOCKOUT_SECONDS
    assert max(waits) == 900
    assert waits == sorted(waits)
    assert lockout_seconds(10**9, free_failures=free, max_seconds=900) == 900


def test_thirty_wrong_passwords_for_one_account_get_429_with_retry_after(
    client: TestClient, admin: Staff
) -> None:
    statuses = []
    for n in range(30):
        response = _login(client, admin.email, f"wrong guess number {n}")
        statuses.append(response.status_code)
        if response.status_code == 429:
            retry = int(response.headers["Retry-After"])
            assert 0 < retry <= 900
            assert "try again in" in response.json()["detail"]
    assert set(statuses) == {401, 429}
    assert statuses[:5] == [401] * 5  # a few typos are free
    assert statuses[5:] == [429] * 25  # then locked, and guesses made while locked don't count
    # While locked out, even the right password is refused: no guessing through the lockout.
    locked = _login(client, admin.email, TEST_PASSWORD)
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers


def test_the_lockout_ends_and_a_right_password_resets_the_account(
    client: TestClient, engine: Engine, admin: Staff
) -> None:
    for n in range(5):
        assert _login(client, admin.email, f"wrong {n}").status_code == 401
    assert _login(client, admin.email, TEST_PASSWORD).status_code == 429
    _unlock_everything(engine)  # the bounded lockout is over
    assert _login(client, admin.email, TEST_PASSWORD).status_code == 200
    # The count started again: another four typos do not lock the account.
    for n in range(4):
        assert _login(client, admin.email, f"typo {n}").status_code == 401
    assert _login(client, admin.email, TEST_PASSWORD).status_code == 200


def _lockout_now(engine: Engine) -> int:
    """The account's lockout as stored (seconds from now, 0 when not locked)."""
    with engine.connect() as connection:
        until = connection.execute(text("SELECT max(locked_until) FROM login_throttle")).scalar()
    if until is None:
        return 0
    until = aware(until if not isinstance(until, str) else datetime.fromisoformat(until))
    return max(0, round((until - utcnow()).total_seconds()))


def test_each_failure_after_a_lockout_doubles_it(
    client: TestClient, engine: Engine, admin: Staff
) -> None:
    waits = []
    for n in range(8):
        _unlock_everything(engine)  # each guess waits out the lockout before it
        assert _login(client, admin.email, f"wrong {n}").status_code == 401
        waits.append(_lockout_now(engine))
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:] == [pytest.approx(s, abs=2) for s in (15, 30, 60, 120)]
    # What the guesser is told matches what is stored.
    locked = _login(client, admin.email, TEST_PASSWORD)
    assert int(locked.headers["Retry-After"]) == pytest.approx(120, abs=2)


def test_an_unknown_login_is_throttled_alike(client: TestClient) -> None:
    """No difference that would tell an attacker which logins exist."""
    statuses = [
        _login(client, "nobody@example.jp", "wrong password!").status_code for _ in range(7)
    ]
    assert statuses == [401] * 5 + [429] * 2


def test_one_address_guessing_many_accounts_is_throttled(
    client: TestClient, engine: Engine, admin: Staff
) -> None:
    """Password spraying: one wrong guess per account, from one address."""
    statuses = [
        _login(client, f"user{n}@example.jp", "Summer2024!!").status_code for n in range(25)
    ]
    assert statuses[:20] == [401] * 20
    assert statuses[20:] == [429] * 5
    # That address is locked out even for a real user...
    assert _login(client, admin.email, TEST_PASSWORD).status_code == 429
    # ...another address is not.
    from service.app import create_app

    with TestClient(create_app(), client=("203.0.113.7", 50000)) as elsewhere:
        assert _login(elsewhere, admin.email, TEST_PASSWORD).status_code == 200


def test_failures_of_one_account_do_not_lock_another(
    client: TestClient, admin: Staff, coordinator: Staff
) -> None:
    for n in range(6):
        _login(client, admin.email, f"wrong {n}")
    assert _login(client, admin.email, TEST_PASSWORD).status_code == 429
    assert _login(client, coordinator.email, TEST_PASSWORD).status_code == 200


def test_the_table_holds_neither_logins_nor_addresses(
    client: TestClient, engine: Engine, admin: Staff
) -> None:
    _login(client, admin.email, "wrong password here")
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT key FROM login_throttle")).scalars().all()
    assert len(keys) == 2
    assert not any(admin.email in key or "testclient" in key for key in keys)


def test_the_dashboard_login_is_throttled_with_a_page_in_the_users_language(
    forms: FormClient, admin: Staff
) -> None:
    for n in range(5):
        assert forms.login(admin.email, password=f"wrong {n}").status_code == 401
    page = forms.login(admin.email)
    assert page.status_code == 429
    assert 0 < int(page.headers["Retry-After"]) <= 900
    assert "ログインの失敗が続いたため" in page.text  # Japanese is the default
    token = forms.csrf("/login")
    forms.client.post("/language", data={"csrf_token": token, "language": "en", "next": "/login"})
    english = forms.login(admin.email)
    assert english.status_code == 429
    assert "Too many failed logins. Try again in" in english.text


def test_serve_trusts_forwarded_headers_only_from_the_configured_proxy(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """The client address comes from X-Forwarded-For only when the proxy is named."""
    import uvicorn

    from service import cli
    from service.config import get_settings

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_a, **kw: calls.append(kw))
    monkeypatch.setattr(cli, "_freeze_startup_objects", lambda: None)  # not in a test process
    monkeypatch.setenv("MIMAMORI_EMBEDDED_SCHEDULER", "false")
    monkeypatch.delenv("MIMAMORI_FORWARDED_ALLOW_IPS", raising=False)
    get_settings.cache_clear()
    cli.serve(host="127.0.0.1", port=8000)
    monkeypatch.setenv("MIMAMORI_FORWARDED_ALLOW_IPS", "172.18.0.0/16")
    get_settings.cache_clear()
    cli.serve(host="127.0.0.1", port=8000)
    get_settings.cache_clear()
    assert calls[0]["proxy_headers"] is False
    assert calls[1]["proxy_headers"] is True
    assert calls[1]["forwarded_allow_ips"] == "172.18.0.0/16"

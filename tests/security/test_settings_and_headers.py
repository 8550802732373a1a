"""Issue 18: production refuses weak settings; responses carry HSTS behind https; the access
log keeps the path and parameter names of a search but none of its values."""

from __future__ import annotations

import io
import logging
import secrets
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from service.config import Settings, get_settings, secret_weakness
from service.logging_setup import configure_logging, mask_query_values
from tests.web.conftest import _free_port

GOOD_SECRET = secrets.token_hex(32)
PRODUCTION = {
    "environment": "production",
    "public_url": "https://mimamori.example.jp",
    "secret_key": GOOD_SECRET,
    "telephony_provider": "console",
}


def test_production_accepts_strong_settings() -> None:
    Settings(**PRODUCTION, jma_push_token=secrets.token_urlsafe(32))
    Settings(**PRODUCTION)  # no push token: the endpoint is off, nothing to check
    Settings(**{**PRODUCTION, "secret_key": secrets.token_hex(16)})  # 128 random bits


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"secret_key": "a" * 32}, "MIMAMORI_SECRET_KEY"),
        ({"secret_key": "a" * 64}, "MIMAMORI_SECRET_KEY"),
        ({"secret_key": "abababababababababababababababab"}, "MIMAMORI_SECRET_KEY"),
        ({"secret_key": "0123456789" * 3}, "MIMAMORI_SECRET_KEY"),  # 30 characters
        ({"public_url": "http://mimamori.example.jp"}, "MIMAMORI_PUBLIC_URL"),
        ({"public_url": "mimamori.example.jp"}, "MIMAMORI_PUBLIC_URL"),
        ({"jma_push_token": "a"}, "MIMAMORI_JMA_PUSH_TOKEN"),
        ({"jma_push_token": secrets.token_hex(8)}, "MIMAMORI_JMA_PUSH_TOKEN"),
        ({"jma_push_token": "x" * 40}, "MIMAMORI_JMA_PUSH_TOKEN"),
    ],
)
def test_production_refuses_weak_settings_naming_them(changes: dict, setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Settings(**{**PRODUCTION, **changes})


def test_development_keeps_working_with_weak_settings() -> None:
    settings = Settings(secret_key="a" * 32, jma_push_token="a", public_url="http://localhost:8000")
    assert settings.environment == "development"


def test_secret_weakness_says_why() -> None:
    assert "characters" in (secret_weakness("short") or "")
    assert "different characters" in (secret_weakness("a" * 40) or "")
    assert secret_weakness(GOOD_SECRET) is None


# --- Security headers -------------------------------------------------------------------------


def test_hsts_and_security_headers_when_the_public_url_is_https(
    engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.app import create_app

    monkeypatch.setenv("MIMAMORI_PUBLIC_URL", "https://mimamori.example.jp")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        for path in ("/healthz", "/api/v1/residents", "/login"):
            response = client.get(path)
            assert "max-age=" in response.headers["strict-transport-security"], path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
        assert client.get("/api/v1/residents").headers["cache-control"] == "no-store"
        # The dashboard keeps its own stricter policy.
        assert "frame-ancestors" in client.get("/login").headers["content-security-policy"]
    get_settings.cache_clear()


def test_no_hsts_over_plain_http(client: TestClient) -> None:
    response = client.get("/healthz")
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


# --- The access log ---------------------------------------------------------------------------


def test_mask_query_values_keeps_path_and_names() -> None:
    assert mask_query_values("/api/v1/residents?q=%E5%B1%B1%E7%94%B0&limit=5") == (
        "/api/v1/residents?q=***&limit=***"
    )
    assert mask_query_values("/healthz") == "/healthz"
    assert mask_query_values("/x?flag") == "/x?flag"


def test_the_access_log_of_a_real_server_holds_no_searched_name(engine, coordinator) -> None:
    from service.app import create_app

    stream = io.StringIO()
    configure_logging("INFO", json_logs=True)
    root = logging.getLogger()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_config=None, access_log=True)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/residents",
            params={"q": "山田花子", "limit": "5"},
            headers=coordinator.headers,
        )
        assert response.status_code == 200
        time.sleep(0.2)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        root.handlers[:] = []
    log = stream.getvalue()
    access = [line for line in log.splitlines() if "uvicorn.access" in line]
    assert access, log
    assert any("/api/v1/residents?q=***&limit=***" in line for line in access), access
    for encoded in ("山田", "%E5%B1%B1", "%e5%b1%b1"):
        assert encoded not in log

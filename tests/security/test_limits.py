"""Issue 18: every body, decompression and push has a size limit, enforced while reading.

"While reading" is tested at the ASGI level: a body arrives in 1 MB chunks with no
Content-Length (chunked), and the test counts how many chunks the application pulled
before it answered 413.
"""

from __future__ import annotations

import asyncio
import base64
import tracemalloc
import zlib
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.auth.models import Role
from service.config import get_settings
from service.limits import MAX_JSON_BODY, MAX_TWILIO_BODY, BodyLimitMiddleware
from service.web import views as web_views
from tests.web.conftest import FormClient, add_staff

MB = 1024 * 1024


def _bomb(size: int) -> str:
    return base64.b64encode(zlib.compress(b"0" * size, 9)).decode("ascii")


# --- The dashboard's packed upload ------------------------------------------------------------


def test_unpack_stops_inflating_at_the_upload_limit() -> None:
    bomb = _bomb(200 * MB)  # about 200 KB packed
    assert len(bomb) < 400_000
    tracemalloc.start()
    try:
        with pytest.raises(web_views._PayloadTooLarge):
            web_views._unpack(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Inflating it whole would hold 200 MB; stopping at the limit holds a few times 20 MB.
    assert peak < web_views.MAX_IMPORT_BYTES * 3
    # A file at the limit itself still unpacks.
    assert web_views._unpack(_bomb(web_views.MAX_IMPORT_BYTES)) == b"0" * web_views.MAX_IMPORT_BYTES


@pytest.mark.parametrize("route", ["/registry/import/rejects", "/registry/import/apply"])
def test_a_decompression_bomb_in_the_payload_is_refused_clearly(
    client: TestClient, engine, forms: FormClient, route: str
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post(route, {"kind": "residents", "payload": _bomb(300 * MB)})
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "too large" in page.text or "大きすぎ" in page.text


# --- Body limits over HTTP --------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_413(client: TestClient, coordinator) -> None:
    big = {"external_id": "B1", "name": "x", "notes": "x" * (MAX_JSON_BODY + 10)}
    response = client.post("/api/v1/residents", headers=coordinator.headers, json=big)
    assert response.status_code == 413, response.text


def test_a_chunked_json_body_over_the_limit_is_413(client: TestClient, coordinator) -> None:
    def chunks():
        yield b'{"external_id": "B1", "name": "x", "notes": "'
        for _ in range(3):
            yield b"x" * MB
        yield b'"}'

    response = client.post(
        "/api/v1/residents",
        headers={**coordinator.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 413, response.text


def test_a_twilio_webhook_over_its_limit_is_413(client: TestClient) -> None:
    response = client.post(
        "/twilio/sms",
        data={"Body": "x" * (MAX_TWILIO_BODY + 1)},
        headers={"X-Twilio-Signature": "forged"},
    )
    assert response.status_code == 413


def test_an_import_upload_under_its_limit_still_works(client: TestClient, coordinator) -> None:
    # 2 MB, over the JSON limit: an ignored column of 100 KB per row.
    rows = "".join(f"A{n},住民 {n},090-1111-{n:04d},{'x' * 100_000}\r\n" for n in range(1, 31))
    data = ("管理番号,氏名,電話番号,参考\r\n" + rows).encode("utf-8")
    assert len(data) > 2 * MB
    response = client.post(
        "/api/v1/import/residents",
        headers=coordinator.headers,
        params={"dry_run": "true"},
        files={"file": ("r.csv", data, "text/csv")},
    )
    assert response.status_code == 200, response.text


# --- Enforced while reading: chunked bodies at the ASGI level ---------------------------------


def _run_chunked(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], chunks: int
) -> tuple[int, int]:
    """Send ``chunks`` 1 MB chunks without Content-Length; return (status, chunks pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": b"<" * MB, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], pulled


def test_the_middleware_stops_a_chunked_body_at_the_limit() -> None:
    async def reads_everything(scope, receive, send):  # an app that would read it all
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BodyLimitMiddleware(reads_everything)
    status, pulled = _run_chunked(
        app, "/api/v1/residents", [(b"content-type", b"application/json")], chunks=50
    )
    assert status == 413
    assert pulled == MAX_JSON_BODY // MB + 1


def test_a_chunked_50_mb_jma_push_is_refused_after_its_limit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "7c1f0e9a3b5d2c8e4f6a1b9d0c3e5f7a"
    monkeypatch.setenv("MIMAMORI_JMA_PUSH_TOKEN", token)
    get_settings.cache_clear()
    from service.jma.parser import MAX_DOCUMENT_BYTES

    status, pulled = _run_chunked(
        client.app,
        "/api/v1/jma/bulletins",
        [(b"content-type", b"application/xml"), (b"authorization", f"Bearer {token}".encode())],
        chunks=50,
    )
    assert status == 413
    assert pulled <= MAX_DOCUMENT_BYTES // MB + 1
    get_settings.cache_clear()


def test_a_declared_oversized_jma_push_is_refused_at_once(client: TestClient) -> None:
    response = client.post(
        "/api/v1/jma/bulletins",
        content=b"<" * (9 * MB),
        headers={"Content-Type": "application/xml", "Authorization": "Bearer x"},
    )
    assert response.status_code == 413

"""Without any Twilio configuration the service runs on the console provider, and
``mimamori simulate`` round-trips through signed webhooks: real processes, a fresh SQLite file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from i18n.render import render

MIMAMORI = str(Path(sys.executable).parent / "mimamori")
ORG = "輪島市社会福祉協議会"
PASSWORD = "a long enough password"
MOBILE_LOCAL, MOBILE = "090-1234-5678", "+819012345678"
LANDLINE_LOCAL, LANDLINE = "(0768) 22-1234", "+81768221234"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    env: dict[str, str]
    cwd: Path
    database: Path
    log: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MIMAMORI, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            cwd=self.cwd,
        )

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(f"sqlite:///{self.database}")
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(query), params))
        finally:
            engine.dispose()


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`mimamori serve` in an empty directory, configured only with where it is reachable."""
    port = _free_port()
    database = tmp_path / "fresh.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    env.update(
        {
            "MIMAMORI_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "MIMAMORI_DATABASE_URL": f"sqlite:///{database}",
            "MIMAMORI_LANGUAGE": "en",  # the assertions read the English output
            "COLUMNS": "200",
        }
    )
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [MIMAMORI, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()) from exc
                time.sleep(0.3)
        yield Server(base=base, env=env, cwd=tmp_path, database=database, log=log)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_simulated_sms_and_call_round_trip_on_the_console_provider(server: Server):
    created = server.run(
        "user", "create", "--email", "admin@wajima.example", "--name", "管理 者",
        "--org", ORG, "--password", PASSWORD,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr

    api = httpx.Client(base_url=server.base, timeout=15)
    token = api.post(
        "/api/v1/auth/token", data={"username": "admin@wajima.example", "password": PASSWORD}
    )
    assert token.status_code == 200, token.text
    api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    consent = datetime.now(UTC).isoformat()
    residents = {}
    for key, phone in (("sms", MOBILE_LOCAL), ("call", LANDLINE_LOCAL)):
        response = api.post(
            "/api/v1/residents",
            json={"name": f"能登 {key}", "phone": phone, "language": "ja", "consent_at": consent},
        )
        assert response.status_code == 201, response.text
        residents[key] = response.json()["id"]
    started = api.post(
        "/api/v1/rounds",
        json={"resident_ids": list(residents.values()), "override_quiet_hours": True},
    )
    assert started.status_code == 201, started.text
    round_id = started.json()["id"]

    def states() -> dict[str, str]:
        page = api.get(f"/api/v1/rounds/{round_id}/checkins").json()
        by_resident = {row["resident_id"]: row["state"] for row in page["data"]}
        return {key: by_resident[rid] for key, rid in residents.items()}

    assert states() == {"sms": "waiting", "call": "waiting"}

    # The embedded scheduler dispatches through the console provider: SIDs, no Twilio.
    def sent_sid(phone: str, channel: str) -> str | None:
        rows = server.sql(
            "SELECT sid FROM outbox WHERE to_phone = :phone AND channel = :channel "
            "AND status = 'sent'",
            phone=phone,
            channel=channel,
        )
        return rows[0][0] if rows else None

    sms_sid = wait_for(lambda: sent_sid(MOBILE, "sms"), "the check-in SMS to be dispatched")
    assert sms_sid.startswith("SM") and len(sms_sid) == 34
    assert "console: would send SMS" in server.log.read_text()

    # A reply "1" by SMS: the thanks message comes back as TwiML and the check-in closes.
    reply = server.run("simulate", "sms", "--from", MOBILE_LOCAL, "1", "--url", server.base)
    assert reply.returncode == 0, reply.stdout + reply.stderr
    thanks = render("resident.reply.ok", "ja", org=ORG)
    assert reply.stdout.strip() == f"Reply: {thanks}"
    # The server's embedded scheduler acts on the stored reply within a second or so.
    wait_for(lambda: states()["sms"] == "ok", "the check-in to close as ok")

    # A delivery receipt for the check-in SMS, as Twilio would post it.
    status = server.run("simulate", "status", "--sid", sms_sid, "delivered", "--url", server.base)
    assert status.returncode == 0, status.stdout + status.stderr
    assert (
        server.sql("SELECT status FROM outbox WHERE sid = :sid", sid=sms_sid)[0][0] == "delivered"
    )

    # The landline resident is called; the simulated call presses 1.
    wait_for(lambda: sent_sid(LANDLINE, "call"), "the check-in call to be placed")
    call = server.run(
        "simulate", "call", "--to", LANDLINE_LOCAL, "--digits", "1", "--url", server.base
    )
    assert call.returncode == 0, call.stdout + call.stderr
    assert "After keys '1'" in call.stdout
    assert states() == {"sms": "ok", "call": "ok"}


def test_simulate_against_a_server_that_refuses_the_signature_fails_loudly(server: Server):
    """A simulator signing with another secret is refused like any forger (403), and says so."""
    env = {**server.env, "MIMAMORI_SECRET_KEY": "another secret that the server does not use!"}
    result = subprocess.run(
        [MIMAMORI, "simulate", "sms", "--from", MOBILE_LOCAL, "1", "--url", server.base],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=server.cwd,
    )
    assert result.returncode == 1
    assert "403" in result.stderr
    assert server.sql("SELECT count(*) FROM inbound_message")[0][0] == 0

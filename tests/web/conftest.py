"""Fixtures for the dashboard: a logged-in form client, a live server, and a real Chromium.

The browser is Debian's ``chromium`` package driven by Playwright; Playwright's own browser
download does not work on these machines. A missing browser fails the browser tests (CI
installs it), it never skips them.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.audit.service import Actor
from service.auth.models import Role, UserCreate
from service.auth.service import create_user, get_or_create_organization
from tests.checkins.conftest import MORNING, World, world
from tests.conftest import REPO, TEST_PASSWORD

ARTIFACTS = REPO / "test-artifacts"
ORG = "輪島市社会福祉協議会"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')

__all__ = ["MORNING", "World", "world"]  # the check-in tests' world, for these tests too


def add_staff(engine: Engine, role: Role, email: str | None = None) -> str:
    """A staff user of the test council; returns the login."""
    email = email or f"{role.value}@example.jp"
    with Session(engine) as s:
        org = get_or_create_organization(session=s, name=ORG)
        create_user(
            session=s,
            organization_id=org.id,
            data=UserCreate(
                email=email, full_name=f"職員 {role.value}", role=role, password=TEST_PASSWORD
            ),
            actor=Actor(label="test"),
        )
        s.commit()
    return email


@dataclass
class FormClient:
    """A TestClient that logs in through the login form and sends each form's CSRF token."""

    client: TestClient

    def csrf(self, path: str = "/login") -> str:
        page = self.client.get(path)
        found = CSRF_RE.search(page.text)
        assert found, f"no CSRF token on {path}: {page.status_code}"
        return found.group(1)

    def login(self, email: str, password: str = TEST_PASSWORD) -> Any:
        token = self.csrf("/login")
        return self.client.post(
            "/login",
            data={"csrf_token": token, "email": email, "password": password, "next": "/"},
            follow_redirects=False,
        )

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        token = self.csrf("/")
        return self.client.post(
            path, data={"csrf_token": token, **(data or {})}, follow_redirects=False, **kwargs
        )


@pytest.fixture
def forms(client: TestClient) -> FormClient:
    return FormClient(client)


# --- A live server and a real browser ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(engine: Engine) -> Iterator[str]:
    """``mimamori serve``'s app under uvicorn in a thread, on the test database."""
    from service.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True, name="live-server")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the live server stopped while starting"
        assert time.monotonic() < deadline, "the live server did not start in 15 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser_context(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


def log_in_browser(page: Any, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#email", email)
    page.fill("#password", TEST_PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# --- A morning's round ------------------------------------------------------------------------

SITE_A = "宅田町第2団地"
SITE_B = "河井町団地"


def phone(n: int) -> str:
    return f"090-2000-{n:04d}"


def e164(n: int) -> str:
    return f"+81902000{n:04d}"


@dataclass
class Morning:
    """Ten residents on two sites after a 10:00 broadcast, with these replies on site A:
    two fine, one help, one talk, one unclear and one silent; site B is all silent."""

    world: World
    round_id: Any
    help_resident: Any
    silent_resident: Any


def build_morning(world: World) -> Morning:
    from service.checkins import flows
    from service.registry.models import MemberKind

    world.site(SITE_A)
    world.site(SITE_B)
    world.member("M1", "080-3000-0001")
    world.member("M2", "080-3000-0002")
    world.member("S1", "080-3000-0100", kind=MemberKind.staff_on_duty)
    for n in range(1, 11):
        key = f"R{n:02d}"
        world.resident(
            key,
            phone(n),
            language="vi" if n == 4 else "ja",
            site=SITE_A if n <= 6 else SITE_B,
            name=f"能登 太郎{n}",
            unit=f"A-{n}",
        )
        world.assign(key, "M1", 1)
        world.assign(key, "M2", 2)
    world.clock.advance(minutes=1)  # 10:00 in Tokyo
    round_id = flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        cause="余震",
    )
    world.tick()
    world.sms(e164(1), "1")
    world.sms(e164(2), "元気です")
    world.sms(e164(3), "2")
    world.sms(e164(4), "3")
    world.sms(e164(5), "あいうえお")
    world.tick()
    return Morning(
        world=world,
        round_id=round_id,
        help_resident=world.residents["R03"],
        silent_resident=world.residents["R06"],
    )


@pytest.fixture
def morning(world: World) -> Morning:
    return build_morning(world)

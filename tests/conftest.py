"""Test fixtures: a real database (SQLite by default, PostgreSQL with MIMAMORI_TEST_DATABASE_URL).

CI runs the whole suite twice, once per database. A PostgreSQL that cannot be reached is an
error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service import bootstrap, migrate  # bootstrap: every table is registered
from service.audit.service import Actor
from service.auth.models import Role, UserCreate
from service.auth.service import create_user, get_or_create_organization
from service.config import get_settings
from service.db import get_engine, make_engine, normalize_database_url

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("MIMAMORI_TEST_DATABASE_URL")
# The command line speaks Japanese by default (service/texts.py); the suite's assertions on
# its output read English unless a test asks for Japanese (tests/test_cli_language.py).
os.environ.setdefault("MIMAMORI_LANGUAGE", "en")
TEST_PASSWORD = "correct horse battery staple"


# Debian's Chromium, one per test session for every directory's browser tests: a second
# sync_playwright() while the first lives refuses to start ("Sync API inside the asyncio loop").
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium. Missing is a failure: the dashboard must be tested in a browser."""
    from playwright.sync_api import sync_playwright

    path = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    assert path, "Chromium is missing: `apt-get install -y chromium` (.ci/run does this)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(path), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite (temporary files)'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last, in their own order. Playwright's sync API keeps its event loop set
    as the main thread's running loop for as long as the session's Chromium lives
    (tests/web/conftest.py), and ``asyncio.run`` refuses to start under it: a test that runs
    the dispatcher or the intake after any browser test would fail for that reason alone."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session", autouse=True)
def _outbox_hooks() -> None:
    """Tests that drive the outbox directly get the hooks the app and the scheduler wire."""
    bootstrap.wire()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return Path(os.environ.get("MIMAMORI_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def _template_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session; each test then starts from a clean copy or a truncation."""
    if PG_URL:
        engine = make_engine(PG_URL)
        with engine.begin() as connection:  # an unreachable server fails here, loudly
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        migrate.upgrade(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    # The last migrations may still be in the write-ahead log (a checkpointer thread may hold
    # the database open): fold them into the file, which each test copies on its own.
    with closing(sqlite3.connect(path)) as connection:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0, "the template database's log could not be folded into it"
    return url


def _truncate_all(engine: Engine) -> None:
    with engine.begin() as connection:
        tables = (
            connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
            .scalars()
            .all()
        )
        if tables:
            connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))


@pytest.fixture
def database_url(
    _template_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    if PG_URL:
        url = _template_database
        _truncate_all(make_engine(url))
    else:
        template = Path(_template_database.removeprefix("sqlite:///"))
        target = tmp_path / "mimamori.db"
        shutil.copyfile(template, target)
        url = f"sqlite:///{target}"
    monkeypatch.setenv("MIMAMORI_DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield normalize_database_url(url)
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture
def engine(database_url: str) -> Engine:
    return get_engine()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    from service.app import create_app

    with TestClient(create_app()) as c:
        yield c


@dataclass
class Staff:
    org_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    headers: dict[str, str]


def make_staff(
    client: TestClient, engine: Engine, *, org: str, role: Role, email: str | None = None
) -> Staff:
    email = email or f"{role.value}-{uuid.uuid4().hex[:8]}@example.jp"
    with Session(engine) as s:
        organization = get_or_create_organization(session=s, name=org)
        user = create_user(
            session=s,
            organization_id=organization.id,
            data=UserCreate(
                email=email, full_name=f"Test {role.value}", role=role, password=TEST_PASSWORD
            ),
            actor=Actor(label="test"),
        )
        s.commit()
        org_id, user_id = organization.id, user.id
    response = client.post(
        "/api/v1/auth/token", data={"username": email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return Staff(
        org_id=org_id, user_id=user_id, email=email, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def coordinator(client: TestClient, engine: Engine) -> Staff:
    return make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.coordinator)


@pytest.fixture
def admin(client: TestClient, engine: Engine) -> Staff:
    return make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.admin)


@pytest.fixture
def viewer(client: TestClient, engine: Engine) -> Staff:
    return make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.viewer)


@pytest.fixture
def other_org_admin(client: TestClient, engine: Engine) -> Staff:
    return make_staff(client, engine, org="天草市社会福祉協議会", role=Role.admin)

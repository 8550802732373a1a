"""People in a real Chromium: an admin deactivates a user, who then cannot log in (a
forgotten password: test_password_reset_browser.py). Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.models import Role, User
from tests.checkins.conftest import World
from tests.web.conftest import add_staff, log_in_browser, screenshot

pytestmark = pytest.mark.browser

NEW_PASSWORD = "kiriko lantern seaside morning"


def _audited(engine: Any, action: str, entity_type: str) -> int:
    with Session(engine) as s:
        return len(
            s.exec(
                select(AuditEntry).where(
                    AuditEntry.action == action, AuditEntry.entity_type == entity_type
                )
            ).all()
        )


def test_an_admin_deactivates_a_user_who_then_cannot_log_in(
    world: World, live_server: str, browser_context: Any, engine: Any
) -> None:
    admin = add_staff(engine, Role.admin)
    leaver = add_staff(engine, Role.coordinator, "leaver@example.jp")
    their = browser_context.browser.new_context(locale="ja-JP")
    try:
        theirs = their.new_page()
        log_in_browser(theirs, live_server, leaver)
        page = browser_context.new_page()
        log_in_browser(page, live_server, admin)
        page.click("header nav a[href='/people']")
        page.wait_for_url(f"{live_server}/people")
        page.locator('tr[data-login="leaver@example.jp"] a').click()
        page.click("#deactivate-form button[type=submit]")
        page.wait_for_url(f"{live_server}/people")
        row = page.locator('tr[data-login="leaver@example.jp"]')
        expect(row.locator('[data-field="active"]')).to_have_text("いいえ")
        screenshot(page, "people.png")
        theirs.goto(f"{live_server}/")  # their open session has ended
        theirs.wait_for_url(re.compile(r"/login"))
        theirs.fill("#email", leaver)
        theirs.fill("#password", "correct horse battery staple")
        theirs.click("form.card button[type=submit]")
        expect(theirs.locator("#login-error")).to_be_visible()
    finally:
        their.close()
    with Session(engine) as s:
        assert s.exec(select(User.is_active).where(User.email == leaver)).one() is False

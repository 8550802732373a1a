"""A forgotten password in a real Chromium: an admin issues a one-time code, the user sets a
new password with it and logs in. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.models import Role
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


def test_a_forgotten_password_is_reset_with_a_one_time_code(
    world: World, live_server: str, browser_context: Any, engine: Any
) -> None:
    admin = add_staff(engine, Role.admin)
    forgetful = add_staff(engine, Role.viewer, "forgetful@example.jp")
    page = browser_context.new_page()
    log_in_browser(page, live_server, admin)
    page.goto(f"{live_server}/people")
    page.locator('tr[data-login="forgetful@example.jp"] a').click()
    page.click("#reset-form button[type=submit]")
    code = page.locator("#reset-code").inner_text().strip()
    assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}", code)
    screenshot(page, "reset-code.png")
    their = browser_context.browser.new_context(locale="ja-JP")
    try:
        theirs = their.new_page()
        theirs.goto(f"{live_server}/login")
        theirs.click("a[href='/password-reset']")
        theirs.fill("#email", forgetful)
        theirs.fill("#code", code.lower())
        theirs.fill("#new_password", NEW_PASSWORD)
        theirs.click("#password-reset-form button[type=submit]")
        theirs.wait_for_url(re.compile(r"/login"))
        expect(theirs.locator(".notice")).to_contain_text("新しいパスワードを設定しました")
        theirs.fill("#email", forgetful)
        theirs.fill("#password", NEW_PASSWORD)
        theirs.click("form.card button[type=submit]")
        theirs.wait_for_url(f"{live_server}/")
        assert theirs.locator("h1").inner_text() == "状況"
    finally:
        their.close()
    assert _audited(engine, "issue_reset", "user") == 1
    assert _audited(engine, "use_reset", "user") == 1

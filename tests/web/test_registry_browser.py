"""A council worker's day of registry work in a real Chromium, without CSV or the API: a new
resident, a changed phone, a new member, a second contact put first. (A deactivated user and
a forgotten password: test_people_browser.py.) Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.models import Role
from service.registry.models import Assignment, Member, Resident
from tests.checkins.conftest import World
from tests.web.conftest import add_staff, log_in_browser, screenshot

pytestmark = pytest.mark.browser

SITE = "鳳至町仮設団地"
NEW_PASSWORD = "kiriko lantern seaside morning"


def _registry(world: World) -> None:
    world.site(SITE)
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-2000-0001", site=SITE, name="輪島 花子", name_kana="わじま はなこ")
    world.assign("R1", "M1", 1)


def _audited(engine: Any, action: str, entity_type: str) -> int:
    with Session(engine) as s:
        return len(
            s.exec(
                select(AuditEntry).where(
                    AuditEntry.action == action, AuditEntry.entity_type == entity_type
                )
            ).all()
        )


def test_a_new_resident_is_registered_and_their_phone_corrected(
    world: World, live_server: str, browser_context: Any, engine: Any
) -> None:
    _registry(world)
    page = browser_context.new_page()
    log_in_browser(page, live_server, add_staff(engine, Role.coordinator))
    page.goto(f"{live_server}/registry/residents")
    page.click("#new-resident")
    page.fill("#name", "珠洲 一郎")
    page.fill("#name_kana", "すず いちろう")
    page.fill("#phone", "090-1111-222")  # one digit short
    page.select_option("#site_id", label=SITE)
    page.fill("#unit", "B-12")
    page.fill("#consent_date", "2026-11-01")
    page.check("#lives_alone")
    page.click("#resident-form button[type=submit]")
    errors = page.locator("#form-errors")
    expect(errors).to_contain_text("電話番号として読めません")
    assert page.locator("#phone").get_attribute("aria-invalid") == "true"
    with Session(engine) as s:
        assert s.exec(select(Resident).where(Resident.name == "珠洲 一郎")).first() is None
    page.fill("#phone", "090-1111-2222")
    page.click("#resident-form button[type=submit]")
    page.wait_for_url(re.compile(r"/residents/[0-9a-f-]{36}$"))
    expect(page.locator(".notice")).to_contain_text("住民 珠洲 一郎 を追加しました")
    expect(page.locator('[data-field="consent"]')).to_contain_text("2026/11/01")
    assert "090-1111-2222" in page.locator("#details-heading + dl").inner_text()
    screenshot(page, "resident-new.png")

    # The phone changes: the edit form, the same validation, an audit of the change.
    page.click("#edit-resident")
    page.fill("#phone", "0768-22-1234")
    page.click("#resident-form button[type=submit]")
    page.wait_for_url(re.compile(r"/residents/[0-9a-f-]{36}$"))
    expect(page.locator(".notice")).to_contain_text("変更を保存しました")
    assert "0768-22-1234" in page.locator("#details-heading + dl").inner_text()
    with Session(engine) as s:
        resident = s.exec(select(Resident).where(Resident.name == "珠洲 一郎")).one()
        assert (resident.phone, resident.phone_kind) == ("+81768221234", "landline")
        assert resident.lives_alone and resident.unit == "B-12"
    assert _audited(engine, "update", "resident") == 1

    # The list finds them in kana order (す before わ).
    page.goto(f"{live_server}/registry/residents")
    names = page.locator("tbody tr td:first-child a").all_inner_texts()
    assert names == ["珠洲 一郎", "輪島 花子"]


def test_a_new_member_becomes_a_residents_first_contact(
    world: World, live_server: str, browser_context: Any, engine: Any
) -> None:
    _registry(world)
    page = browser_context.new_page()
    log_in_browser(page, live_server, add_staff(engine, Role.coordinator))
    page.goto(f"{live_server}/registry/members")
    page.click("#new-member")
    page.fill("#name", "門前 三郎")
    page.fill("#name_kana", "もんぜん さぶろう")
    page.fill("#phone", "080-4000-0003")
    page.select_option("#languages", ["ja", "vi"])
    page.click("#member-form button[type=submit]")
    page.wait_for_url(f"{live_server}/registry/members")
    expect(page.locator(".notice")).to_contain_text("担当者 門前 三郎 を追加しました")

    page.goto(f"{live_server}/residents/{world.residents['R1']}")
    page.select_option("#add-member", label="門前 三郎")
    page.click("#add-contact button[type=submit]")
    expect(page.locator("#contacts > li")).to_have_count(2)
    assert page.locator("#contacts > li").nth(1).get_attribute("data-member") == "門前 三郎"
    page.get_by_role("button", name="門前 三郎 を上へ").click()
    expect(page.locator("#contacts > li").first).to_have_attribute("data-member", "門前 三郎")
    screenshot(page, "resident-contacts.png")
    with Session(engine) as s:
        new = s.exec(select(Member).where(Member.name == "門前 三郎")).one()
        ranks = {
            a.member_id: a.rank
            for a in s.exec(
                select(Assignment).where(Assignment.resident_id == world.residents["R1"])
            )
        }
    assert ranks == {new.id: 1, world.members["M1"]: 2}

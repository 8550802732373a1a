"""The dashboard in a real Chromium, as council staff use it.

Screenshots of the board and of a resident page go to ``test-artifacts/`` so a person can
look at them after a run.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlmodel import select

from scheduler.jobs import process_replies
from service.auth.models import Role
from service.config import get_settings
from service.escalations.models import Escalation
from service.telephony.signature import sign
from tests.registry.test_csv_import import BAD_ROWS, GOOD_ROWS, cp932_file
from tests.web.conftest import (
    SITE_A,
    SITE_B,
    Morning,
    add_staff,
    e164,
    log_in_browser,
    screenshot,
)

pytestmark = pytest.mark.browser


def count(page: Any, bucket: str) -> str:
    return page.locator(f"#live [data-bucket={bucket}] dd").first.inner_text()


def signed_sms(base_url: str, from_phone: str, body: str, sid: str) -> None:
    """An inbound SMS exactly as Twilio posts it, signed for the configured public URL."""
    params = {
        "MessageSid": sid,
        "From": from_phone,
        "To": "+815000000000",
        "Body": body,
        "AccountSid": "AC" + "0" * 32,
    }
    settings = get_settings()
    signature = sign(f"{settings.public_url}/twilio/sms", params, settings.webhook_auth_tokens()[0])
    response = httpx.post(
        f"{base_url}/twilio/sms", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200, response.text


def test_coordinator_logs_in_and_the_board_shows_the_round(
    morning: Morning, live_server: str, browser_context: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.coordinator)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.locator("h1").inner_text() == "状況"
    expected = {
        "total": "10",
        "ok": "2",
        "needs_help": "1",
        "wants_talk": "1",
        "unclear": "1",
        "waiting": "5",
        "escalated": "1",
        "acknowledged": "0",
        "resolved": "0",
    }
    assert {bucket: count(page, bucket) for bucket in expected} == expected
    site_a = page.locator(f'tr[data-site="{SITE_A}"]')
    assert site_a.locator('[data-bucket="ok"]').inner_text() == "2"
    assert page.locator(f'tr[data-site="{SITE_B}"] [data-bucket="waiting"]').inner_text() == "4"
    first = page.locator("ol.attention li").first
    assert "能登 太郎3" in first.inner_text() and "助けが必要" in first.inner_text()
    assert page.locator("figure.chart svg polyline").count() == 2
    screenshot(page, "board.png")


def test_a_reply_through_the_webhook_shows_up_without_a_reload(
    morning: Morning, live_server: str, browser_context: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.viewer)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    assert count(page, "ok") == "2"
    page.evaluate("window.__stillTheSamePage = true")
    signed_sms(live_server, e164(6), "1", "SM" + "6" * 32)
    process_replies(morning.world.ctx)  # what the scheduler does within a second
    expect(page.locator("#live [data-bucket=ok] dd").first).to_have_text("3", timeout=20_000)
    assert count(page, "waiting") == "4"
    assert page.evaluate("window.__stillTheSamePage") is True  # updated in place


def test_recording_an_outcome_on_an_escalated_case_changes_the_counts(
    morning: Morning, live_server: str, browser_context: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.coordinator)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    assert (count(page, "escalated"), count(page, "resolved")) == ("1", "0")
    page.locator("ol.attention li").first.get_by_role("link", name=re.compile("ケース")).click()
    page.wait_for_url(re.compile(r"/cases/"))
    page.select_option("#outcome", "safe")
    page.select_option("#resolve-member", label="委員 M1")
    page.fill("#resolve-note", "訪問して無事を確認")
    page.locator("#resolve-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/cases/"))
    assert "結果を記録しました" in page.locator(".notice").inner_text()
    assert page.locator('[data-field="outcome"]').inner_text().startswith("無事")
    page.goto(f"{live_server}/")
    assert (count(page, "escalated"), count(page, "resolved")) == ("0", "1")
    with morning.world.session() as s:
        case = s.exec(
            select(Escalation).where(Escalation.resident_id == morning.help_resident)
        ).one()
    assert case.state == "resolved" and case.resolved_by.startswith("職員 coordinator")


def test_csv_import_preview_shows_the_row_errors(
    live_server: str, browser_context: Any, engine: Any, tmp_path: Any
) -> None:
    email = add_staff(engine, Role.coordinator)
    upload = tmp_path / "名簿.csv"
    upload.write_bytes(cp932_file(GOOD_ROWS + BAD_ROWS))
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    page.goto(f"{live_server}/registry/import")
    page.set_input_files("#file", str(upload))
    page.get_by_role("button", name="プレビュー").click()
    page.wait_for_selector("table.errors")
    lines = page.locator("table.errors tbody tr td:first-child").all_inner_texts()
    assert lines == ["7", "8", "9"]
    errors = page.locator("table.errors").inner_text()
    assert "クリンゴン語" in errors and "たぶん" in errors
    assert page.locator('[data-report="rejected"]').inner_text() == "3"
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("エラーの行をダウンロード")).click()
    rejects = download.value.path().read_bytes().decode("utf-8-sig")
    assert rejects.count("\n") == 4 and "W-007" in rejects


def test_a_viewer_sees_no_action_buttons_and_forged_posts_are_rejected(
    morning: Morning, live_server: str, browser_context: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.viewer)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    page.goto(f"{live_server}/residents/{morning.help_resident}")
    assert page.locator("h1").inner_text().startswith("能登 太郎3")
    assert page.locator("form[action$='/note'], form[action$='/checkin']").count() == 0
    assert page.get_by_role("button", name="メモを追加する").count() == 0
    page.goto(f"{live_server}/cases")
    page.locator("ol.attention li a[href^='/cases/']").first.click()
    assert page.locator("#resolve-form").count() == 0
    # Forged: no token at all, a made-up token, and a viewer's real token (role refused).
    path = f"{live_server}/residents/{morning.help_resident}/note"
    no_token = page.request.post(path, form={"text": "偽"})
    made_up = page.request.post(path, form={"text": "偽", "csrf_token": "A" * 43})
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    as_viewer = page.request.post(path, form={"text": "偽", "csrf_token": token})
    assert (no_token.status, made_up.status, as_viewer.status) == (403, 403, 403)
    page.goto(f"{live_server}/residents/{morning.help_resident}")
    assert "偽" not in page.locator(".timeline").inner_text()


def test_every_page_works_with_javascript_disabled(
    morning: Morning, live_server: str, chromium: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.coordinator)
    context = chromium.new_context(
        java_script_enabled=False, locale="ja-JP", viewport={"width": 820, "height": 1180}
    )
    try:
        page = context.new_page()
        log_in_browser(page, live_server, email)
        with morning.world.session() as s:
            case = s.exec(select(Escalation)).first()
        pages = [
            "/",
            f"/rounds/{morning.round_id}",
            "/rounds",
            "/schedules/new",
            f"/residents/{morning.help_resident}",
            "/cases",
            f"/cases/{case.id}",
            "/inbox",
            "/registry/residents",
            "/registry/members",
            "/registry/assignments",
            "/registry/import",
        ]
        for path in pages:
            response = page.goto(f"{live_server}{path}")
            assert response is not None and response.status == 200, path
            assert page.locator("h1").inner_text().strip(), path
        # A form: a note on the resident page, posted and shown after the redirect.
        page.goto(f"{live_server}/residents/{morning.silent_resident}")
        page.fill("#note-text", "JavaScriptなしで追加したメモ")
        page.get_by_role("button", name="メモを追加する").click()
        page.wait_for_selector(".notice")
        assert "メモを追加しました" in page.locator(".notice").inner_text()
        assert "JavaScriptなしで追加したメモ" in page.locator(".timeline").inner_text()
        screenshot(page, "resident.png")
        # The broadcast confirmation step, and the language switch.
        page.goto(f"{live_server}/rounds")
        page.get_by_label(SITE_B).check()
        page.get_by_role("button", name="送る前に件数を確認").click()
        assert page.locator('[data-preview="contacted"]').inner_text() == "4"
        page.select_option("#ui-language", "en")
        page.get_by_role("button", name="切り替え").click()
        assert page.locator("html").get_attribute("lang") == "en"
        page.goto(f"{live_server}/")
        assert page.locator("h1").inner_text() == "Board"
        screenshot(page, "board-en.png")
    finally:
        context.close()


def test_the_board_fits_a_phone(
    morning: Morning, live_server: str, chromium: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.coordinator)
    context = chromium.new_context(locale="ja-JP", viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        log_in_browser(page, live_server, email)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "本文へ移動"
        screenshot(page, "board-phone.png")
    finally:
        context.close()

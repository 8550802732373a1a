"""Paper, Excel and the audit screen in a real Chromium: a visit list printed on A4, a round
report downloaded and opened with openpyxl, the audit log filtered (issue 19).

A PDF of the printed visit list goes to ``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect
from sqlmodel import select

from service.auth.models import Role
from service.escalations.models import Escalation
from service.registry.models import Resident
from tests.web.conftest import ARTIFACTS, SITE_A, Morning, add_staff, log_in_browser, screenshot

pytestmark = pytest.mark.browser

HEALTH_NOTE = "糖尿病"


def _note_health(morning: Morning) -> None:
    with morning.world.session() as s:
        for resident in s.exec(select(Resident)).all():
            resident.notes = f"{HEALTH_NOTE}、透析あり"
            resident.disability = True
            s.add(resident)
        s.commit()


def _case_code(morning: Morning) -> str:
    with morning.world.session() as s:
        return s.exec(
            select(Escalation.case_code).where(Escalation.resident_id == morning.help_resident)
        ).one()


def test_a_visit_list_prints_cleanly_and_carries_no_health_details(
    morning: Morning, live_server: str, browser_context: Any, engine: Any
) -> None:
    _note_health(morning)
    email = add_staff(engine, Role.viewer)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    page.goto(f"{live_server}/cases")
    page.get_by_role("link", name="印刷用の訪問リスト").click()
    page.get_by_role("link", name="委員 M1").click()
    expect(page.locator("h1")).to_have_text("訪問リスト：委員 M1")
    # On screen the menu is there; on paper it is not.
    expect(page.locator("header.top nav")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator(".screen-only")).to_be_hidden()
    assert page.locator("button:visible, form:visible").count() == 0
    table = page.locator("table.visits")
    expect(table).to_be_visible()
    assert table.locator("thead").evaluate("e => getComputedStyle(e).display") == (
        "table-header-group"
    )  # the headers repeat on every printed page
    assert table.locator("tbody tr").count() == 10
    row = page.locator(f'tr[data-resident="{morning.help_resident}"]')
    code = _case_code(morning)
    expect(row.locator("td").first).to_have_text(code)
    expect(row).to_contain_text("能登 太郎3")
    expect(row).to_contain_text("090-2000-0003")
    expect(row).to_contain_text(SITE_A)
    expect(row).to_contain_text("10:00")  # the reply, in Wajima's time
    expect(page.locator(".legend")).to_contain_text("ケース番号 1")
    content = page.content()
    assert HEALTH_NOTE not in content and "透析" not in content and "障害" not in content
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = page.pdf(path=str(ARTIFACTS / "visit-list.pdf"), format="A4", print_background=False)
    assert pdf.startswith(b"%PDF")
    screenshot(page, "visit-list-print.png")
    page.emulate_media(media="screen")
    screenshot(page, "visit-list.png")


def test_board_and_case_pages_print_without_menus_or_forms(
    morning: Morning, live_server: str, browser_context: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.coordinator)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("#live")).to_be_visible()
    expect(page.get_by_text("この画面は数秒ごとに自動で更新されます。")).to_be_hidden()
    page.get_by_role("link", name=re.compile("能登 太郎3")).first.wait_for(state="attached")
    screenshot(page, "board-print.png")
    page.goto(f"{live_server}/cases")
    page.locator("ol.attention a", has_text=_case_code(morning)).first.click()
    expect(page.locator("#case-details")).to_be_visible()
    expect(page.locator("#resolve-form")).to_be_hidden()
    expect(page.get_by_role("heading", name="操作")).to_be_hidden()
    assert page.locator("button:visible, select:visible, textarea:visible").count() == 0
    expect(page.locator(".timeline")).to_be_visible()
    screenshot(page, "case-print.png")


def test_a_round_report_downloads_as_xlsx_with_japanese_headers_and_local_times(
    morning: Morning, live_server: str, browser_context: Any, engine: Any, tmp_path: Any
) -> None:
    _note_health(morning)
    email = add_staff(engine, Role.coordinator)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    page.goto(f"{live_server}/rounds/{morning.round_id}")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="安否確認の報告書をダウンロード（Excel）").click()
    download = download_info.value
    assert download.suggested_filename == "round-20261201-1000.xlsx"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    book = load_workbook(path)
    assert book.sheetnames == ["集計", "住民"]
    sheet = book["住民"]
    headers = [cell.value for cell in sheet[1]]
    assert headers == [
        "氏名",
        "ふりがな",
        "団地",
        "部屋番号",
        "電話番号",
        "言語",
        "状態",
        "最後の返信",
        "ケース",
        "ケースの状態",
        "結果",
    ]
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    first = rows["能登 太郎1"]
    assert first[4].value == "090-2000-0001" and first[4].data_type == "s"
    replied = first[7].value
    assert isinstance(replied, datetime) and replied.tzinfo is None
    assert (replied.year, replied.month, replied.day, replied.hour) == (2026, 12, 1, 10)
    assert first[7].number_format == "yyyy/mm/dd hh:mm"
    assert rows["能登 太郎3"][8].value == _case_code(morning)
    assert rows["能登 太郎6"][6].value == "返信待ち" and rows["能登 太郎6"][7].value is None
    every_cell = " ".join(str(c.value) for ws in book for row in ws.iter_rows() for c in row)
    assert HEALTH_NOTE not in every_cell and "+00:00" not in every_cell
    summary = book["集計"]
    assert "2026/12/01 10:00" in summary["A1"].value
    assert summary["B3"].value == datetime(2026, 12, 1, 10, 0)  # started at 10:00 in Wajima


def test_an_admin_filters_the_audit_log(
    morning: Morning, live_server: str, browser_context: Any, engine: Any
) -> None:
    email = add_staff(engine, Role.admin)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    page.goto(f"{live_server}/residents/{morning.help_resident}")  # a read, audited
    page.get_by_role("link", name="監査ログ").click()
    expect(page.locator("h1")).to_have_text("監査ログ")
    rows = page.locator("#audit-entries tbody tr[data-action]")
    assert rows.count() > 1
    assert len({rows.nth(i).get_attribute("data-action") for i in range(rows.count())}) > 1
    page.select_option("#action", "read")
    page.select_option("#entity_type", "resident")
    page.locator("#audit-filters button[type=submit]").click()
    page.wait_for_url(re.compile(r"action=read"))
    expect(rows.first).to_contain_text("スタッフ 職員 admin")
    assert {rows.nth(i).get_attribute("data-action") for i in range(rows.count())} == {"read"}
    link = rows.first.locator("a")
    link.click()
    page.wait_for_url(f"{live_server}/residents/{morning.help_resident}")
    page.go_back()
    page.fill("#date_from", "2001-01-01")
    page.fill("#date_to", "2001-01-31")
    page.locator("#audit-filters button[type=submit]").click()
    expect(page.locator("#audit-entries tbody")).to_contain_text("該当する記録はありません")
    screenshot(page, "audit-log.png")

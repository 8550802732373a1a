"""Paper, Excel and the audit screen over HTTP: who may see them, what they hold, and that
every time a person reads is the organization's local time (issue 19, items 3, 5, 6, 7).

The browser side (printing, downloading, filtering) is in test_paper_browser.py.
"""

from __future__ import annotations

import html
import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from service.audit.models import AuditEntry
from service.auth.models import Role
from service.escalations.models import Escalation
from service.registry.models import Resident
from service.web.round_report import counts_by_site, report_rows
from tests.web.conftest import SITE_A, SITE_B, FormClient, Morning, add_staff

HEALTH_NOTE = "糖尿病でインスリン注射"
TOKYO = ZoneInfo("Asia/Tokyo")
# An ISO time a person would read as UTC or as machine text: 2026-12-01T01:00, +00:00, UTC.
LEAKS = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\+00:00|\bUTC\b|Z\b(?=[\"<\s])")


def _with_health_details(morning: Morning) -> None:
    """Everything the visit list and the report must leave off."""
    with morning.world.session() as s:
        for resident in s.exec(select(Resident)).all():
            resident.notes = HEALTH_NOTE
            resident.disability = True
            s.add(resident)
        s.commit()


def _visible_text(page: str) -> str:
    """What a person reads: the text between tags (attributes such as <time datetime> are
    for machines), scripts and styles left out."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _export_entries(morning: Morning, format_: str) -> list[AuditEntry]:
    with morning.world.session() as s:
        entries = s.exec(select(AuditEntry).where(AuditEntry.action == "export")).all()
    return [e for e in entries if e.detail.get("format") == format_]


# --- The visit list ---------------------------------------------------------------------------


def test_visit_list_names_whom_a_member_visits_with_case_codes_and_no_health_details(
    forms: FormClient, morning: Morning, engine
) -> None:
    _with_health_details(morning)
    forms.login(add_staff(engine, Role.viewer))
    member_id = morning.world.members["M1"]
    index = forms.client.get("/visits")
    assert index.status_code == 200 and f"/visits/{member_id}" in index.text
    page = forms.client.get(f"/visits/{member_id}")
    assert page.status_code == 200
    text = _visible_text(page.text)
    names = re.findall(r"能登 太郎\d+", text)
    # In walking order: by site, then unit with numbers as numbers (A-7 before A-10).
    assert names == [f"能登 太郎{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
    with morning.world.session() as s:
        case = s.exec(
            select(Escalation).where(Escalation.resident_id == morning.help_resident)
        ).one()
    row = re.search(rf'<tr data-resident="{morning.help_resident}">(.*?)</tr>', page.text, re.S)
    assert row, "the resident who asked for help is on the list"
    assert case.case_code in row.group(1) and "090-2000-0003" in row.group(1)
    # They replied at 10:00 in Wajima (01:00 UTC): the list says 10:00.
    assert "10:00" in _visible_text(row.group(1)) and "01:00" not in row.group(1)
    assert "%(code)s" not in text and "ケース番号" in text
    for private in (HEALTH_NOTE, "障害", "Disability"):
        assert private not in page.text
    assert not LEAKS.search(text), LEAKS.search(text)
    [entry] = _export_entries(morning, "visit_list")
    assert entry.entity_type == "resident" and entry.detail["rows"] == 10
    assert entry.detail["member_id"] == str(member_id)


def test_visit_list_of_another_organizations_member_is_not_found(
    forms: FormClient, morning: Morning, client
) -> None:
    from tests.conftest import make_staff

    other = make_staff(client, morning.world.engine, org="天草市社会福祉協議会", role=Role.admin)
    forms.login(other.email)
    response = forms.client.get(f"/visits/{morning.world.members['M1']}")
    assert response.status_code == 404 and "能登" not in response.text
    assert "能登" not in forms.client.get("/visits").text
    assert _export_entries(morning, "visit_list") == []


# --- The round report -------------------------------------------------------------------------


def test_round_report_is_for_coordinators_of_the_organization(
    forms: FormClient, morning: Morning, client, engine
) -> None:
    from tests.conftest import make_staff

    url = f"/rounds/{morning.round_id}/report.xlsx"
    forms.login(add_staff(engine, Role.viewer))
    denied = forms.client.get(url)
    assert denied.status_code == 403 and "コーディネーター" in denied.text
    assert "report.xlsx" not in forms.client.get(f"/rounds/{morning.round_id}").text
    other = make_staff(client, engine, org="天草市社会福祉協議会", role=Role.admin)
    forms.login(other.email)
    assert forms.client.get(url).status_code == 404
    assert _export_entries(morning, "xlsx") == []


def test_round_report_holds_local_times_text_phones_and_headers_in_the_users_language(
    forms: FormClient, morning: Morning, engine
) -> None:
    _with_health_details(morning)
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.client.get(f"/rounds/{morning.round_id}/report.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert 'filename="round-20261201-1000.xlsx"' in response.headers["content-disposition"]
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["集計", "住民"]
    sheet = book["住民"]
    headers = [cell.value for cell in sheet[1]]
    assert headers[:8] == [
        "氏名",
        "ふりがな",
        "団地",
        "部屋番号",
        "電話番号",
        "言語",
        "状態",
        "最後の返信",
    ]
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    assert len(rows) == 10
    fine = rows["能登 太郎1"]
    assert fine[4].value == "090-2000-0001" and fine[4].data_type == "s"
    assert fine[6].value == "元気"
    replied = fine[7].value
    assert isinstance(replied, datetime) and replied.tzinfo is None
    with morning.world.session() as s:
        stored = s.exec(select(Resident).where(Resident.name == "能登 太郎1")).one()
        checkin_reply = next(
            r
            for r in report_rows(s, morning.world.org_id, morning.round_id)
            if r.name == stored.name
        ).replied_at
    assert replied == checkin_reply.astimezone(TOKYO).replace(tzinfo=None)
    assert replied.hour == 10  # 10:00 in Wajima, not 01:00
    helped = rows["能登 太郎3"]
    with morning.world.session() as s:
        case = s.exec(
            select(Escalation).where(Escalation.resident_id == morning.help_resident)
        ).one()
    assert helped[8].value == case.case_code and helped[9].value
    cells = [str(c.value) for row in book["住民"].iter_rows() for c in row if c.value is not None]
    assert not any(HEALTH_NOTE in c for c in cells)
    summary = book["集計"]
    by_site = {row[0].value: row for row in summary.iter_rows(min_row=7) if row[0].value}
    assert by_site[SITE_A][-1].value == 6 and by_site[SITE_B][-1].value == 4
    assert by_site["合計"][-1].value == 10
    [entry] = _export_entries(morning, "xlsx")
    assert entry.detail["rows"] == 10 and entry.detail["round_id"] == str(morning.round_id)
    # In English, English headers.
    forms.post("/language", {"language": "en", "next": "/"})
    english = load_workbook(
        io.BytesIO(forms.client.get(f"/rounds/{morning.round_id}/report.xlsx").content)
    )
    assert english.sheetnames == ["Summary", "Residents"]
    assert [c.value for c in english["Residents"][1]][:2] == ["Name", "Reading"]


def test_a_name_that_looks_like_a_formula_stays_text(
    forms: FormClient, morning: Morning, engine
) -> None:
    with morning.world.session() as s:
        resident = s.get(Resident, morning.silent_resident)
        resident.name = '=HYPERLINK("http://x")'
        s.add(resident)
        s.commit()
    forms.login(add_staff(engine, Role.coordinator))
    book = load_workbook(
        io.BytesIO(forms.client.get(f"/rounds/{morning.round_id}/report.xlsx").content)
    )
    cells = [row[0] for row in book["住民"].iter_rows(min_row=2)]
    formula = [c for c in cells if str(c.value).startswith("=")]
    assert len(formula) == 1 and formula[0].data_type == "s"


def test_counts_by_site_counts_each_state_once() -> None:
    from service.web.round_report import ReportRow

    def row(site: str | None, state: str) -> ReportRow:
        return ReportRow("x", None, site, None, None, "ja", state, None, None, None, None)

    counts = counts_by_site(
        [row("B", "ok"), row("A", "ok"), row(None, "waiting"), row("A", "no_reply")]
    )
    assert list(counts) == ["A", "B", ""]
    assert counts["A"] == {"ok": 1, "no_reply": 1} and counts[""] == {"waiting": 1}


# --- The audit screen -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.viewer, Role.coordinator])
def test_audit_screen_is_for_admins_only(
    forms: FormClient, morning: Morning, engine, role: Role
) -> None:
    forms.login(add_staff(engine, role))
    response = forms.client.get("/audit")
    assert response.status_code == 403 and "管理者" in response.text
    assert 'href="/audit"' not in forms.client.get("/").text


def test_audit_screen_filters_and_never_shows_values(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.admin))
    forms.client.get(f"/residents/{morning.help_resident}")  # a read, audited
    page = forms.client.get("/audit")
    assert page.status_code == 200
    assert 'href="/audit"' in page.text
    assert "090-2000" not in page.text and "+81902000" not in page.text
    read = forms.client.get("/audit", params={"action": "read", "entity_type": "resident"})
    actions = re.findall(r'<tr data-action="([^"]+)" data-entity="([^"]+)"', read.text)
    assert actions and set(actions) == {("read", "resident")}
    assert "スタッフ 職員 admin" in read.text and "admin@example.jp" not in _visible_text(read.text)
    by_actor = forms.client.get("/audit", params={"actor": "ADMIN@example"})
    assert set(re.findall(r'<tr data-action="([^"]+)"', by_actor.text)) == {"read"}
    nothing = forms.client.get(
        "/audit", params={"date_from": "2001-01-01", "date_to": "2001-01-02"}
    )
    assert "該当する記録はありません" in nothing.text
    today = datetime.now(TOKYO).date().isoformat()
    dated = forms.client.get("/audit", params={"date_from": today, "date_to": today})
    assert re.search(r'<tr data-action="read"', dated.text)
    assert not LEAKS.search(_visible_text(page.text))


def test_audit_screen_of_one_organization_holds_none_of_anothers(
    forms: FormClient, morning: Morning, client
) -> None:
    from tests.conftest import make_staff

    other = make_staff(client, morning.world.engine, org="天草市社会福祉協議会", role=Role.admin)
    forms.login(other.email)
    page = forms.client.get("/audit", params={"entity_type": "resident"})
    assert page.status_code == 200 and "該当する記録はありません" in page.text


# --- Local time and the labels everywhere ----------------------------------------------------


def test_no_page_shows_a_utc_or_iso_time(forms: FormClient, morning: Morning, engine) -> None:
    """The organization is in Tokyo: the 10:00 round reads 10:00 on every page, never
    01:00, +00:00, UTC or an ISO time."""
    forms.login(add_staff(engine, Role.admin))
    forms.post(
        "/schedules",
        {
            "name": "毎朝",
            "time_of_day": "10:00",
            "weekdays": ["0", "2", "4"],
            "target_kind": "all",
            "quiet_start": "21:00",
            "quiet_end": "08:00",
            "active": "1",
        },
    )
    with morning.world.session() as s:
        case = s.exec(select(Escalation)).first()
    paths = [
        "/",
        "/board/live",
        "/rounds",
        f"/rounds/{morning.round_id}",
        f"/residents/{morning.help_resident}",
        "/cases",
        f"/cases/{case.id}",
        "/inbox",
        "/visits",
        f"/visits/{morning.world.members['M1']}",
        "/audit",
        "/registry/residents",
        f"/residents/{morning.help_resident}/edit",
        "/registry/members",
        f"/registry/members/{morning.world.members['M1']}",
        "/registry/sites",
        "/people",
    ]
    for language in ("ja", "en"):
        forms.post("/language", {"language": language, "next": "/"})
        for path in paths:
            response = forms.client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            text = _visible_text(response.text)
            leak = LEAKS.search(text)
            assert not leak, (language, path, text[max(0, leak.start() - 80) : leak.end() + 40])
            assert "member:" not in text and "<test" not in text, path
    forms.post("/language", {"language": "ja", "next": "/"})
    round_page = _visible_text(forms.client.get(f"/rounds/{morning.round_id}").text)
    assert "10:00" in round_page and "01:00" not in round_page
    rounds = forms.client.get("/rounds").text
    assert "スケジュール名" in rounds and "返信待ち" in rounds


def test_waiting_and_no_reply_read_differently_in_both_languages(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.viewer))
    morning.world.tick(60)  # the plans run out for the silent residents
    page = _visible_text(forms.client.get(f"/rounds/{morning.round_id}").text)
    assert "最後まで応答なし" in page
    assert "未返信" not in page and "応答なし 応答なし" not in page
    forms.post("/language", {"language": "en", "next": "/"})
    english = _visible_text(forms.client.get(f"/rounds/{morning.round_id}").text)
    assert "No reply after every try" in english and "Waiting for a reply" in english


def test_the_away_date_starts_at_the_organizations_today(
    forms: FormClient, morning: Morning, engine
) -> None:
    """At 01:00 on 2 December in Wajima it is still 1 December in UTC: the earliest return
    date offered is the 2nd."""
    forms.login(add_staff(engine, Role.coordinator))
    morning.world.clock.advance(hours=15)  # 16:00 UTC on the 1st, 01:00 JST on the 2nd
    page = forms.client.get(f"/residents/{morning.help_resident}").text
    assert 'min="2026-12-02"' in page and 'min="2026-12-01"' not in page

"""CSV import and export, as council staff use them: CP932 files from Excel, Japanese headers."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.audit.service import Actor
from service.registry import csv_io
from service.registry.models import Assignment, Member, Resident, Site

ACTOR = Actor(label="test")

HEADER = (
    "管理番号,氏名,フリガナ,電話番号,言語,団地,部屋番号,独居,高齢者,通訳必要,状態,不在期限,備考\r\n"
)
GOOD_ROWS = [
    "W-001,能登 花子,ノト ハナコ,０９０－１２３４－５６７８,日本語,宅田町第２団地,A-1,○,○,,在宅,,\r\n",
    "W-002,グエン ヴァン アン,グエン ヴァン アン,080-2222-3333,ベトナム語,宅田町第２団地,A-2,1,0,はい,,,\r\n",
    "W-003,輪島 一郎,ワジマ イチロウ,(0768) 22-1234,やさしい日本語,河井町団地,B-1,はい,はい,,,,\r\n",
    "W-004,Siti Rahayu,シティ ラハユ,070-3333-4444,インドネシア語,河井町団地,B-2,,,,不在,2026/12/24,\r\n",
    "W-005,Maria Santos,マリア サントス,+81 90 5555 6666,タガログ語,河井町団地,B-3,,,,,,\r\n",
]
BAD_ROWS = [
    "W-006,山田 次郎,ヤマダ ジロウ,090-1234-567,日本語,河井町団地,B-4,,,,,,\r\n",  # line 7
    "W-007,佐藤 三郎,サトウ サブロウ,090-7777-8888,クリンゴン語,河井町団地,B-5,,,,,,\r\n",  # line 8
    "W-008,鈴木 四郎,スズキ シロウ,090-8888-9999,日本語,河井町団地,B-6,たぶん,,,,,\r\n",  # line 9
]


def cp932_file(rows: list[str]) -> bytes:
    return (HEADER + "".join(rows)).encode("cp932")


def _counts(session: Session) -> tuple[int, int, int]:
    residents = session.exec(select(func.count()).select_from(Resident)).one()
    audit = session.exec(select(func.count()).select_from(AuditEntry)).one()
    sites = session.exec(select(func.count()).select_from(Site)).one()
    return residents, audit, sites


def _import(session, org_id, data, **kw):
    report = csv_io.import_csv(
        session=session, organization_id=org_id, kind="residents", data=data, actor=ACTOR, **kw
    )
    if report.applied:
        session.commit()
    else:
        session.rollback()
    return report


def test_cp932_file_with_three_bad_rows_names_each_and_applies_nothing(session, coordinator):
    data = cp932_file(GOOD_ROWS + BAD_ROWS)
    before = _counts(session)

    dry = _import(session, coordinator.org_id, data, dry_run=True)
    assert dry.encoding == "cp932"
    assert dry.total_rows == 8
    problems = {(e.row, e.column): e for e in dry.errors}
    assert set(problems) == {(7, "電話番号"), (8, "言語"), (9, "独居")}
    assert problems[(7, "電話番号")].value == "090-1234-567"
    assert "invalid phone number" in str(problems[(7, "電話番号")].reason)
    assert "unsupported language" in str(problems[(8, "言語")].reason)
    assert "yes/no" in str(problems[(9, "独居")].reason)
    assert dry.created == 5 and not dry.applied
    assert _counts(session) == before

    real = _import(session, coordinator.org_id, data)
    assert not real.applied
    assert len(real.errors) == 3
    assert _counts(session) == before


def test_apply_valid_rows_applies_the_good_ones_and_returns_a_reject_file(session, coordinator):
    data = cp932_file(GOOD_ROWS + BAD_ROWS)
    report = _import(session, coordinator.org_id, data, apply_valid_rows=True)
    assert report.applied and report.created == 5 and report.rejected == 3
    assert sorted(report.new_sites) == ["宅田町第2団地", "河井町団地"]
    residents = {r.external_id: r for r in session.exec(select(Resident)).all()}
    assert sorted(residents) == ["W-001", "W-002", "W-003", "W-004", "W-005"]
    hanako = residents["W-001"]
    assert hanako.phone == "+819012345678" and hanako.phone_kind == "mobile"
    assert hanako.lives_alone and hanako.elderly and hanako.language == "ja"
    assert residents["W-002"].language == "vi" and residents["W-002"].needs_interpreter
    assert residents["W-003"].phone_kind == "landline"
    assert residents["W-003"].language == "easy_ja"
    assert residents["W-004"].status == "away"
    assert str(residents["W-004"].away_until) == "2026-12-24"
    rejects = list(csv.reader(io.StringIO(report.reject_csv)))
    assert rejects[0][-2:] == ["元の行番号 (line)", "エラー (error)"]
    assert [r[0] for r in rejects[1:]] == ["W-006", "W-007", "W-008"]
    assert [r[-2] for r in rejects[1:]] == ["7", "8", "9"]


def test_reimporting_the_same_file_is_a_no_op(session, coordinator):
    data = cp932_file(GOOD_ROWS)
    first = _import(session, coordinator.org_id, data)
    assert first.applied and first.created == 5
    after_first = _counts(session)
    updated_at = {r.external_id: r.updated_at for r in session.exec(select(Resident)).all()}

    second = _import(session, coordinator.org_id, data)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 5)
    session.expire_all()
    assert _counts(session) == after_first  # not a single audit entry more
    assert {r.external_id: r.updated_at for r in session.exec(select(Resident)).all()} == updated_at


def test_a_changed_row_updates_only_that_resident_and_audits_the_fields(session, coordinator):
    _import(session, coordinator.org_id, cp932_file(GOOD_ROWS))
    changed = list(GOOD_ROWS)
    changed[1] = changed[1].replace("A-2", "A-9").replace("080-2222-3333", "080-2222-4444")
    report = _import(session, coordinator.org_id, cp932_file(changed))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 4)
    an = session.exec(select(Resident).where(Resident.external_id == "W-002")).one()
    assert an.unit == "A-9" and an.phone == "+818022224444"
    entry = session.exec(
        select(AuditEntry).where(AuditEntry.entity_id == str(an.id), AuditEntry.action == "update")
    ).one()
    assert entry.fields == ["phone", "unit"]
    assert "4444" not in str(entry.detail)


def test_utf8_with_bom_and_english_headers(session, coordinator):
    text = (
        "external_id,name,kana,phone,language,site,unit\n"
        "E1,Tran Thi B,チャン ティ ビー,090-1000-2000,vi,Site A,1\n"
    )
    report = _import(session, coordinator.org_id, b"\xef\xbb\xbf" + text.encode())
    assert report.encoding == "utf-8-sig" and report.applied and report.created == 1


def test_duplicate_external_ids_in_one_file_are_both_named(session, coordinator):
    rows = [GOOD_ROWS[0], GOOD_ROWS[0].replace("能登 花子", "別人")]
    report = _import(session, coordinator.org_id, cp932_file(rows))
    assert not report.applied
    assert [(e.row, e.column, str(e.reason)) for e in report.errors] == [
        (3, "管理番号", "duplicate of line 2")
    ]


def test_missing_required_column_is_a_file_error(session, coordinator):
    try:
        _import(session, coordinator.org_id, "氏名,電話番号\n山田,09012345678\n".encode("cp932"))
    except csv_io.CsvFileError as exc:
        assert "external_id" in str(exc)
    else:
        raise AssertionError("a file without an id column must be refused")


def test_undecodable_file_is_refused_with_the_line(session, coordinator):
    data = "管理番号,氏名\nA,山田\n".encode() + b"B,\xff\xfe\xfa\n"
    try:
        _import(session, coordinator.org_id, data)
    except csv_io.CsvFileError as exc:
        assert "line 3" in str(exc)
    else:
        raise AssertionError("expected a CsvFileError")


def test_members_and_assignments_import_and_reimport(session, coordinator):
    _import(session, coordinator.org_id, cp932_file(GOOD_ROWS))
    members = (
        "委員番号,氏名,電話番号,区分,対応言語\r\n"
        "M-1,民生 太郎,090-1111-2222,民生委員,日本語\r\n"
        'M-2,Le Thi Hoa,090-3333-4444,通訳,"vi, ja"\r\n'
    ).encode("cp932")
    report = csv_io.import_csv(
        session=session,
        organization_id=coordinator.org_id,
        kind="members",
        data=members,
        actor=ACTOR,
    )
    session.commit()
    assert report.created == 2, report.errors
    hoa = session.exec(select(Member).where(Member.external_id == "M-2")).one()
    assert hoa.kind == "interpreter" and hoa.languages == ["vi", "ja"]
    assignments = (
        "住民番号,委員番号,順位\r\nW-001,M-1,1\r\nW-002,M-2,1\r\nW-002,M-1,2\r\nW-404,M-1,1\r\n"
    ).encode("cp932")
    report = csv_io.import_csv(
        session=session,
        organization_id=coordinator.org_id,
        kind="assignments",
        data=assignments,
        actor=ACTOR,
    )
    assert not report.applied
    assert [(e.row, e.column) for e in report.errors] == [(5, "住民番号")]
    session.rollback()
    good = assignments.rsplit(b"W-404", 1)[0]
    report = csv_io.import_csv(
        session=session,
        organization_id=coordinator.org_id,
        kind="assignments",
        data=good,
        actor=ACTOR,
    )
    session.commit()
    assert report.applied and report.created == 3
    again = csv_io.import_csv(
        session=session,
        organization_id=coordinator.org_id,
        kind="assignments",
        data=good,
        actor=ACTOR,
    )
    session.commit()
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    # Swapping ranks is an update of both rows, not a clash.
    swapped = "住民番号,委員番号,順位\r\nW-002,M-2,2\r\nW-002,M-1,1\r\n".encode("cp932")
    report = csv_io.import_csv(
        session=session,
        organization_id=coordinator.org_id,
        kind="assignments",
        data=swapped,
        actor=ACTOR,
    )
    session.commit()
    assert report.applied and report.updated == 2, report.errors
    an = session.exec(select(Resident).where(Resident.external_id == "W-002")).one()
    by_member = {
        session.get(Member, a.member_id).external_id: a.rank
        for a in session.exec(select(Assignment).where(Assignment.resident_id == an.id)).all()
    }
    assert by_member == {"M-2": 2, "M-1": 1}
    assert len(session.exec(select(Assignment)).all()) == 3


def test_export_round_trips_as_a_no_op_import(session, coordinator):
    _import(session, coordinator.org_id, cp932_file(GOOD_ROWS))
    exported = csv_io.export_residents(
        session=session, organization_id=coordinator.org_id, actor=ACTOR, encoding="cp932"
    )
    session.commit()
    assert exported.decode("cp932").startswith("管理番号,氏名,フリガナ,電話番号")
    report = _import(session, coordinator.org_id, exported)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 5), report.errors


def test_cp932_export_refuses_names_it_cannot_hold(session, coordinator):
    rows = [GOOD_ROWS[0].replace("能登 花子", "Nguyễn Thị Hoa")]
    _import(session, coordinator.org_id, cp932_file(GOOD_ROWS[1:]))
    text = (HEADER + "".join(rows)).encode("utf-8")
    _import(session, coordinator.org_id, text)
    try:
        csv_io.export_residents(
            session=session, organization_id=coordinator.org_id, actor=ACTOR, encoding="cp932"
        )
    except csv_io.ExportEncodingError as exc:
        assert "UTF-8" in str(exc) and "ễ" in str(exc)
    else:
        raise AssertionError("a lossy CP932 export must be refused")
    assert (
        csv_io.export_residents(session=session, organization_id=coordinator.org_id, actor=ACTOR)
        .decode("utf-8-sig")
        .count("\n")
        == 6
    )


def test_import_through_the_api_dry_run_then_apply(client, coordinator):
    data = cp932_file(GOOD_ROWS + BAD_ROWS)
    r = client.post(
        "/api/v1/import/residents",
        headers=coordinator.headers,
        params={"dry_run": True},
        files={"file": ("r.csv", data, "text/csv")},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["row"] for e in body["errors"]] == [7, 8, 9] and not body["applied"]
    r = client.post(
        "/api/v1/import/residents",
        headers=coordinator.headers,
        files={"file": ("r.csv", data, "text/csv")},
    )
    assert r.json()["applied"] is False
    assert client.get("/api/v1/residents", headers=coordinator.headers).json()["count"] == 0
    r = client.post(
        "/api/v1/import/residents",
        headers=coordinator.headers,
        params={"apply_valid_rows": True},
        files={"file": ("r.csv", data, "text/csv")},
    )
    assert r.json()["applied"] is True and "W-007" in r.json()["reject_csv"]
    assert client.get("/api/v1/residents", headers=coordinator.headers).json()["count"] == 5
    r = client.get(
        "/api/v1/export/residents", headers=coordinator.headers, params={"encoding": "cp932"}
    )
    assert r.status_code == 200 and "W-005" in r.content.decode("cp932")
    bad = client.post(
        "/api/v1/import/residents",
        headers=coordinator.headers,
        files={"file": ("r.csv", b"\xff\xfe\x00garbage", "text/csv")},
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "file"]

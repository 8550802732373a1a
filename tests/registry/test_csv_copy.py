"""The CSV import's write path (issue 20): COPY on PostgreSQL, Core inserts on SQLite.

Run on both databases; on PostgreSQL (MIMAMORI_TEST_DATABASE_URL) the rows go through COPY,
so these tests show that what COPY's text format must escape arrives exactly, and that a row
the database refuses in the middle of a COPY leaves nothing behind.
"""

from __future__ import annotations

import csv
import io
import uuid

import phonenumbers
import pytest
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.audit.service import Actor
from service.auth.service import get_or_create_organization
from service.registry import csv_apply, csv_io, phones
from service.registry.models import Resident, Site
from tests.conftest import PG_URL

ACTOR = Actor(label="copy test")
HEADER = ["external_id", "name", "name_kana", "phone", "site", "unit", "status", "notes"]

# What COPY's text format treats specially (tab, newline, carriage return, backslash, the
# \N null marker), CSV's quotes, and characters outside the BMP (U+20BB7 𠮷, an emoji).
AWKWARD = [
    ["A-1", "𠮷田\t花子", "ヨシダ ハナコ", "090-1234-5678", "𠮷田団地", "1", "", "line 1\nline 2"],
    ["A-2", 'O"Brien \\ Jr.', "\\N", "", "Site \\N", "2", "", "\\N"],
    ["A-3", "Nguyễn Thị 🌸", "", "0768-22-1234", "", "", "停止", 'say "hi"\r\nbye\\t'],
    ["A-4", "NULL", "null", "+81 90 5555 6666", "Site\ttab", "", "", ""],
]


def utf8_file(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@pytest.fixture
def org_id(session: Session) -> uuid.UUID:
    org = get_or_create_organization(session=session, name=f"copy {uuid.uuid4().hex[:6]}")
    session.commit()
    return org.id


def _import(session: Session, org_id: uuid.UUID, data: bytes, **kw: object) -> csv_io.ImportReport:
    report = csv_io.import_csv(
        session=session,
        organization_id=org_id,
        kind="residents",
        data=data,
        actor=ACTOR,
        **kw,  # type: ignore[arg-type]
    )
    if report.applied:
        session.commit()
    else:
        session.rollback()
    return report


def _counts(session: Session, org_id: uuid.UUID) -> tuple[int, int, int]:
    def count(model: type) -> int:
        query = select(func.count()).select_from(model).where(model.organization_id == org_id)  # type: ignore[attr-defined]
        return session.exec(query).one()

    return count(Resident), count(Site), count(AuditEntry)


def test_the_write_path_is_copy_on_postgresql_only(session: Session) -> None:
    assert csv_apply.uses_copy(session) is bool(PG_URL)


def test_awkward_values_arrive_exactly(session: Session, org_id: uuid.UUID) -> None:
    report = _import(session, org_id, utf8_file(AWKWARD))
    assert report.errors == [] and report.applied and report.created == 4
    stored = {
        r.external_id: r
        for r in session.exec(select(Resident).where(Resident.organization_id == org_id))
    }
    sites = dict(
        session.execute(select(Site.id, Site.name).where(Site.organization_id == org_id)).all()
    )
    assert stored["A-1"].name == "𠮷田\t花子"
    assert stored["A-1"].notes == "line 1\nline 2"
    assert sites[stored["A-1"].site_id] == "𠮷田団地"
    assert stored["A-2"].name == 'O"Brien \\ Jr.'
    assert stored["A-2"].name_kana == "\\N"  # the text, not COPY's null marker
    assert stored["A-2"].notes == "\\N"
    assert stored["A-2"].phone is None and stored["A-2"].phone_kind is None
    assert sites[stored["A-2"].site_id] == "Site \\N"
    assert stored["A-3"].name == "Nguyễn Thị 🌸"
    assert stored["A-3"].name_kana is None  # a blank cell is NULL, not ''
    assert stored["A-3"].notes == 'say "hi"\r\nbye\\t'
    assert stored["A-3"].site_id is None and stored["A-3"].unit is None
    assert stored["A-4"].name == "NULL" and stored["A-4"].name_kana == "null"
    assert stored["A-4"].notes is None
    # "Site\ttab": tabs are whitespace to a site name, which is normalized as ever.
    assert sites[stored["A-4"].site_id] == "Site tab"
    # Phones, their kinds and the enums are stored as a Core insert stores them.
    assert (stored["A-1"].phone, stored["A-1"].phone_kind) == ("+819012345678", "mobile")
    assert (stored["A-3"].phone, stored["A-3"].phone_kind) == ("+81768221234", "landline")
    assert stored["A-4"].phone == "+819055556666"
    raw = session.execute(
        text("SELECT status, preferred_channel FROM resident WHERE external_id = 'A-3'")
    ).one()
    assert tuple(raw) == ("opted_out", "sms")


def test_each_created_resident_and_site_is_audited(session: Session, org_id: uuid.UUID) -> None:
    rows = [[*row[:6], "", row[7]] for row in AWKWARD]
    _import(session, org_id, utf8_file(rows))
    residents = dict(
        session.execute(
            select(Resident.id, Resident.external_id).where(Resident.organization_id == org_id)
        ).all()
    )
    entries = session.exec(
        select(AuditEntry).where(
            AuditEntry.organization_id == org_id, AuditEntry.action == "create"
        )
    ).all()
    by_entity = {e.entity_id: e for e in entries if e.entity_type == "resident"}
    assert set(by_entity) == {str(rid) for rid in residents}
    entry = next(iter(by_entity.values()))
    assert entry.actor == "copy test" and entry.detail == {"source": "csv import"}
    assert "name" in entry.fields and "phone" in entry.fields
    assert "phone_kind" not in entry.fields and entry.fields == sorted(entry.fields)
    assert sum(e.entity_type == "site" for e in entries) == 3
    summary = session.exec(
        select(AuditEntry).where(
            AuditEntry.organization_id == org_id, AuditEntry.action == "import"
        )
    ).one()
    assert summary.detail["created"] == 4


def test_reimport_after_copy_is_a_no_op(session: Session, org_id: uuid.UUID) -> None:
    rows = [[*row[:6], "", row[7]] for row in AWKWARD]
    _import(session, org_id, utf8_file(rows))
    before = _counts(session, org_id)
    again = _import(session, org_id, utf8_file(rows))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)
    assert _counts(session, org_id) == before


def test_a_bad_row_applies_nothing_and_is_named(session: Session, org_id: uuid.UUID) -> None:
    rows = [[*row[:6], "", row[7]] for row in AWKWARD]
    rows[2][3] = "090-1234-567"  # one digit short
    report = _import(session, org_id, utf8_file(rows))
    assert not report.applied
    # A-3 ends on line 6: each have a line break in their notes.
    assert [(e.row, e.column) for e in report.errors] == [(6, "phone")]
    assert report.errors[0].reason.render("ja").startswith("電話番号が正しくありません")
    assert _counts(session, org_id) == (0, 0, 0)


def test_a_row_the_database_refuses_mid_copy_leaves_nothing(
    session: Session, org_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another import committed resident A-3 after this one looked: the database refuses
    the row halfway through the write, and rolling back leaves none of the file."""
    session.add(Resident(organization_id=org_id, external_id="A-3", name="先に登録"))
    session.commit()
    before = _counts(session, org_id)
    monkeypatch.setattr(csv_io, "_existing", lambda *args, **kwargs: {})
    rows = [[f"B-{i}", f"住民 {i}", "", "", "新団地", "", "", ""] for i in range(500)]
    rows.insert(250, [*AWKWARD[2][:6], "", ""])
    with pytest.raises(IntegrityError):
        csv_io.import_csv(
            session=session,
            organization_id=org_id,
            kind="residents",
            data=utf8_file(rows),
            actor=ACTOR,
        )
    session.rollback()
    assert _counts(session, org_id) == before
    assert session.exec(select(Resident.name).where(Resident.organization_id == org_id)).all() == [
        "先に登録"
    ]


def test_each_number_is_parsed_once(
    session: Session, org_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import parses a number once, to validate it, and keeps its kind from that parse
    (the model's validator and the write find it, never parsing it again)."""
    calls: list[str] = []
    real = phonenumbers.parse

    def counting(number: str, region: str | None = None, *args: object, **kw: object) -> object:
        calls.append(number)
        return real(number, region, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(phones.phonenumbers, "parse", counting)
    phones._CACHE.clear()
    numbers = [f"090-{1000 + i:04d}-{i:04d}" for i in range(40)]
    rows = [[f"P-{i}", f"住民 {i}", "", n, "", "", "", ""] for i, n in enumerate(numbers)]
    report = _import(session, org_id, utf8_file(rows))
    assert report.created == 40
    assert len(calls) == 40
    kinds = session.exec(select(Resident.phone_kind).where(Resident.organization_id == org_id))
    assert set(kinds) == {"mobile"}

"""The CSV column of a resident's ordered channels: read in order, an unknown one named."""

from __future__ import annotations

from sqlmodel import select

from service.audit.service import Actor
from service.registry import csv_io
from service.registry.models import Resident
from tests.registry.test_csv_import import _import

ACTOR = Actor(label="test")
HEADER = "管理番号,氏名,電話番号,言語,連絡アプリ\r\n"


def test_the_channels_column_is_read_in_order_and_exported_again(session, coordinator):
    rows = [
        "C-001,グエン・ヴァン・アン,090-1111-0001,vi,LINE、whatsapp、sms\r\n",
        "C-002,能登 花子,090-1111-0002,ja,\r\n",
    ]
    report = _import(session, coordinator.org_id, (HEADER + "".join(rows)).encode("utf-8-sig"))
    assert report.applied and report.created == 2, report.errors
    found = {r.external_id: r.channels for r in session.exec(select(Resident)).all()}
    assert found == {"C-001": ["line", "whatsapp", "sms"], "C-002": []}
    exported = csv_io.export_residents(
        session=session, organization_id=coordinator.org_id, actor=ACTOR
    ).decode("utf-8-sig")
    assert "連絡アプリ" in exported.splitlines()[0]
    assert '"line, whatsapp, sms"' in exported
    again = _import(session, coordinator.org_id, exported.encode("utf-8-sig"), dry_run=True)
    assert not again.errors and again.created == 0 and again.updated == 0


def test_an_unknown_channel_names_the_row_and_column_and_applies_nothing(session, coordinator):
    rows = ["C-001,能登 花子,090-1111-0001,ja,line fax\r\n"]
    report = _import(session, coordinator.org_id, (HEADER + "".join(rows)).encode("utf-8-sig"))
    assert not report.applied
    [error] = report.errors
    assert (error.row, error.column, error.value) == (2, "連絡アプリ", "line fax")
    assert "unknown channel" in str(error.reason) and "whatsapp" in str(error.reason)
    assert session.exec(select(Resident)).all() == []

"""Bulk inserts of the fan-out (issue 20): COPY's text format written by hand on PostgreSQL,
a driver-level executemany on SQLite, and the time-ordered ids of the rows."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from service.checkins.bulk import COPY_BATCH, insert_rows
from service.ids import uuid7
from service.telephony.models import OutboxChannel, OutboxMessage, OutboxPurpose, OutboxStatus
from service.telephony.outbox import outbox_row

AWKWARD = [
    "tab\there",
    "new\nline and carriage\rreturn",
    "back\\slash, and \\N, the text of NULL",
    "\\.",  # COPY's old end-of-data marker, as a value
    "日本語、Tiếng Việt, नेपाली 👋",
    "",
    "   ",
]


def _rows(org_id: uuid.UUID, count: int) -> list[dict]:
    now = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
    tokyo = now.astimezone(ZoneInfo("Asia/Tokyo"))  # the same instant, another zone
    rows = []
    for n in range(count):
        row = outbox_row(
            organization_id=org_id,
            channel=OutboxChannel.sms if n % 2 else OutboxChannel.call,
            purpose=OutboxPurpose.checkin,
            to_phone=f"+8190{n:08d}",
            now=now if n % 3 else tokyo,
            body=AWKWARD[n % len(AWKWARD)] if n % 5 else None,
            locale="vi" if n % 4 else "ja",
            attempt_id=uuid.uuid4() if n % 6 else None,
            not_before=now + timedelta(seconds=n),
        )
        row["status"] = OutboxStatus.pending if n % 2 else OutboxStatus.sent.value  # an enum too
        row["tries"] = n % 3
        row["last_error_code"] = 21610 if n % 7 == 0 else None
        row["last_error"] = AWKWARD[(n + 3) % len(AWKWARD)] if n % 7 == 0 else None
        rows.append(row)
    return rows


def _stored(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql("SELECT * FROM outbox ORDER BY id")]


def test_bulk_rows_are_stored_exactly_as_a_core_insert_stores_them(world):
    """Tabs, newlines, backslashes, the text ``\\N``, non-ASCII text, empty strings, NULLs,
    enum members, integers, and equal instants in two time zones: each stored as SQLAlchemy's
    own Core insert stores it, across more than one COPY batch."""
    table = OutboxMessage.__table__
    rows = _rows(world.org_id, COPY_BATCH + 37)
    with Session(world.engine) as session:
        insert_rows(session, table, iter(rows))  # an iterator, as the fan-out gives it
        session.commit()
    by_insert_rows = _stored(world.engine)
    assert len(by_insert_rows) == len(rows)
    with world.engine.begin() as connection:
        connection.execute(table.delete())
        connection.execute(table.insert(), rows)
    assert _stored(world.engine) == by_insert_rows
    with world.engine.connect() as connection:
        bodies = set(connection.exec_driver_sql("SELECT body FROM outbox").scalars())
    assert set(AWKWARD) | {None} == bodies


def test_a_value_with_no_column_form_fails_the_insert_and_writes_nothing(world):
    table = OutboxMessage.__table__
    rows = _rows(world.org_id, 3)
    rows[2]["last_error"] = object()
    with Session(world.engine) as session:
        with pytest.raises(Exception):  # noqa: B017 - the driver's own error on SQLite
            insert_rows(session, table, rows)
        session.rollback()
    assert _stored(world.engine) == []


def test_time_ordered_ids_are_version_7_unique_and_ordered_by_millisecond():
    first = [uuid7() for _ in range(2000)]
    time.sleep(0.002)
    later = [uuid7() for _ in range(2000)]
    assert {u.version for u in first + later} == {7}
    assert {u.variant for u in first + later} == {uuid.RFC_4122}
    assert len(set(first + later)) == 4000
    assert max(first) < min(later)  # a later millisecond sorts after
    ms = first[0].int >> 80
    assert abs(ms - time.time_ns() // 1_000_000) < 60_000

"""The round report for the city, as an Excel workbook: a summary sheet (residents by site
and check-in state) and one row per resident of the round.

- Headers and words are the staff member's language, through the dashboard catalogs.
- Times are real Excel date-times in the organization's time zone, without a zone (Excel
  has none): a 10:00 reply in Tokyo reads 10:00, and the column still sorts and filters.
- Every text cell is a string cell, so a phone keeps its leading 0 or its "+", and a name
  that starts with "=" stays a name, never a formula.
- Downloading it is an export of residents' data, audited as one entry with the count,
  like the CSV export.
"""

from __future__ import annotations

import io
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select
from sqlmodel import Session

from service.audit.service import record
from service.auth.deps import actor_for
from service.checkins.models import CheckIn, CheckInState, Round
from service.common import aware
from service.db import SessionDep
from service.escalations.models import Escalation
from service.registry.models import Resident, Site
from service.registry.phones import display_phone
from service.web import labels
from service.web.actors import describe_actor
from service.web.core import StaffDep, render_page
from service.web.translation import N_, UiText

router = APIRouter(include_in_schema=False)

DATETIME_FORMAT = "yyyy/mm/dd hh:mm"
STATE_ORDER = [state.value for state in CheckInState]
RESIDENT_HEADERS = [
    N_("Name"),
    N_("Reading"),
    N_("Site"),
    N_("Unit"),
    N_("Phone"),
    N_("Language"),
    N_("State"),
    N_("Last reply"),
    N_("Case"),
    N_("Case state"),
    N_("Outcome"),
]


@dataclass(frozen=True)
class ReportRow:
    name: str
    name_kana: str | None
    site: str | None
    unit: str | None
    phone: str | None
    language: str
    state: str
    replied_at: datetime | None
    case_code: str | None
    case_state: str | None
    outcome: str | None


def report_rows(
    session: Session, organization_id: uuid.UUID, round_id: uuid.UUID
) -> list[ReportRow]:
    """The round's residents in kana order, each with their check-in and its case."""
    rows = session.execute(
        select(
            Resident.name,
            Resident.name_kana,
            Site.name,
            Resident.unit,
            Resident.phone,
            Resident.language,
            CheckIn.state,
            CheckIn.replied_at,
            Escalation.case_code,
            Escalation.state,
            Escalation.outcome,
        )
        .join(Resident, Resident.id == CheckIn.resident_id)
        .outerjoin(Site, Site.id == Resident.site_id)
        .outerjoin(Escalation, Escalation.id == CheckIn.escalation_id)
        .where(CheckIn.organization_id == organization_id, CheckIn.round_id == round_id)
        .order_by(Site.name, Resident.name_kana, Resident.name, Resident.id)
    ).all()
    return [
        ReportRow(
            name=row[0],
            name_kana=row[1],
            site=row[2],
            unit=row[3],
            phone=row[4],
            language=row[5],
            state=str(row[6]),
            replied_at=aware(row[7]),
            case_code=row[8],
            case_state=str(row[9]) if row[9] is not None else None,
            outcome=str(row[10]) if row[10] is not None else None,
        )
        for row in rows
    ]


def counts_by_site(rows: list[ReportRow]) -> dict[str, Counter[str]]:
    """Residents per site (``""``: no site) and check-in state, sites in name order."""
    counts: dict[str, Counter[str]] = {}
    for row in rows:
        counts.setdefault(row.site or "", Counter())[row.state] += 1
    return dict(sorted(counts.items(), key=lambda item: (item[0] == "", item[0])))


def local_naive(value: datetime | None, timezone: str) -> datetime | None:
    """A stored UTC time as the organization's wall-clock time, without a zone (Excel)."""
    if value is None:
        return None
    return aware(value).astimezone(ZoneInfo(timezone)).replace(tzinfo=None)  # type: ignore[union-attr]


def _put(sheet: Worksheet, row: int, column: int, value: object, bold: bool = False) -> None:
    cell = sheet.cell(row=row, column=column)
    cell.value = value  # type: ignore[assignment]
    if isinstance(value, str):
        cell.data_type = "s"  # never a formula, never a number
        cell.number_format = "@"
    elif isinstance(value, datetime):
        cell.number_format = DATETIME_FORMAT
    if bold:
        cell.font = Font(bold=True)


def _widths(sheet: Worksheet, widths: list[int]) -> None:
    for index, width in enumerate(widths, 1):
        sheet.column_dimensions[get_column_letter(index)].width = width


def build_workbook(round_: Round, rows: list[ReportRow], text: UiText) -> bytes:
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = text.plain(N_("Summary"))[:31]
    kind = text.plain(labels.label(labels.ROUND_KINDS, round_.kind))
    _put(summary, 1, 1, f"{kind} {text.datetime(round_.started_at)}", bold=True)
    _put(summary, 2, 1, text.plain(N_("Started by")))
    _put(summary, 2, 2, describe_actor(text, round_.started_by))
    _put(summary, 3, 1, text.plain(N_("Started")))
    _put(summary, 3, 2, local_naive(round_.started_at, text.timezone))
    if round_.cause:
        _put(summary, 4, 1, text.plain(N_("Reason")))
        _put(summary, 4, 2, round_.cause)
    header_row = 6
    _put(summary, header_row, 1, text.plain(N_("Site")), bold=True)
    for column, state in enumerate(STATE_ORDER, 2):
        label = text.plain(labels.label(labels.CHECKIN_STATES, state))
        _put(summary, header_row, column, label, bold=True)
    total_column = len(STATE_ORDER) + 2
    _put(summary, header_row, total_column, text.plain(N_("Total")), bold=True)
    counts = counts_by_site(rows)
    line = header_row
    for site, by_state in counts.items():
        line += 1
        _put(summary, line, 1, site or text.plain(N_("No site")))
        for column, state in enumerate(STATE_ORDER, 2):
            _put(summary, line, column, by_state.get(state, 0))
        _put(summary, line, total_column, sum(by_state.values()))
    line += 1
    _put(summary, line, 1, text.plain(N_("Total")), bold=True)
    overall = Counter(row.state for row in rows)
    for column, state in enumerate(STATE_ORDER, 2):
        _put(summary, line, column, overall.get(state, 0), bold=True)
    _put(summary, line, total_column, len(rows), bold=True)
    _widths(summary, [24] + [12] * (len(STATE_ORDER) + 1))

    residents = book.create_sheet(text.plain(N_("Residents"))[:31])
    for column, header in enumerate(RESIDENT_HEADERS, 1):
        _put(residents, 1, column, text.plain(header), bold=True)
    for line, row in enumerate(rows, 2):
        values: list[object] = [
            row.name,
            row.name_kana or "",
            row.site or "",
            row.unit or "",
            display_phone(row.phone),
            text.language_name(row.language),
            text.plain(labels.label(labels.CHECKIN_STATES, row.state)),
            local_naive(row.replied_at, text.timezone),
            row.case_code or "",
            text.plain(labels.label(labels.ESCALATION_STATES, row.case_state))
            if row.case_state
            else "",
            text.plain(labels.label(labels.OUTCOMES, row.outcome)) if row.outcome else "",
        ]
        for column, value in enumerate(values, 1):
            _put(residents, line, column, value)
    residents.freeze_panes = "A2"
    residents.auto_filter.ref = (
        f"A1:{get_column_letter(len(RESIDENT_HEADERS))}{max(1, len(rows) + 1)}"
    )
    _widths(residents, [18, 18, 18, 8, 16, 12, 16, 17, 8, 16, 12])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@router.get("/rounds/{round_id}/report.xlsx", response_model=None)
def round_report(
    request: Request, session: SessionDep, staff: StaffDep, round_id: uuid.UUID
) -> Response | HTMLResponse:
    if not staff.can_act:  # an export of residents' data, like the CSV export
        return render_page(
            request,
            "error.html",
            staff=staff,
            status_code=403,
            title=N_("Not allowed"),
            message=N_("Only coordinators and administrators can download a round report."),
        )
    round_ = session.get(Round, round_id)
    if round_ is None or round_.organization_id != staff.organization_id:
        return render_page(
            request,
            "error.html",
            staff=staff,
            status_code=404,
            title=N_("Not found"),
            message=N_("This page does not exist, or it belongs to another organization."),
        )
    rows = report_rows(session, staff.organization_id, round_.id)
    body = build_workbook(round_, rows, staff.text)
    record(
        session=session,
        organization_id=staff.organization_id,
        actor=actor_for(staff.user),
        action="export",
        entity_type="resident",
        detail={"rows": len(rows), "format": "xlsx", "round_id": str(round_.id)},
    )
    session.commit()
    started = local_naive(round_.started_at, staff.text.timezone)
    assert started is not None
    filename = f"round-{started:%Y%m%d-%H%M}.xlsx"
    return Response(
        content=body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )

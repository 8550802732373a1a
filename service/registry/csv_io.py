"""CSV import and export for the registry.

Councils arrive with Excel files saved as CSV, which in Japan usually means CP932. The rules:
- every bad row is reported (row number, column, value, reason) and, by default, nothing at
  all is applied while any row is bad;
- with ``apply_valid_rows`` the good rows are applied and the bad ones come back as a reject
  file, so no row is ever silently dropped;
- rows are keyed by the council's own external id, so importing the same file twice is a
  no-op (no writes, no audit entries).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlmodel import Session

from service.audit.service import Actor, record
from service.common import new_id
from service.registry.channels import check_channels
from service.registry.csv_apply import CreateStream, Plan, apply_plan, uses_copy
from service.registry.models import (
    Assignment,
    Channel,
    Member,
    MemberCreate,
    MemberKind,
    Organization,
    Resident,
    ResidentCreate,
    ResidentStatus,
    Site,
)
from service.registry.phones import PhoneError, display_phone, parse_phone
from service.registry.service import normalize_site_name
from service.texts import N_, Text, TextError, render
from service.validation_text import validation_text

ImportKind = Literal["residents", "members", "assignments"]
Progress = Callable[[int, int], None]


class CsvFileError(TextError):
    """The file as a whole cannot be read: wrong encoding, no header, missing columns."""


@dataclass
class RowError:
    """One problem in one row; ``reason`` is rendered in the reader's language."""

    row: int  # line number in the file, the header being line 1
    column: str
    value: str
    reason: Text

    def as_dict(self, language: str = "en") -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "reason": self.reason.render(language),
        }


@dataclass
class ImportReport:
    kind: str
    encoding: str
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    new_sites: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False
    applied: bool = False
    reject_csv: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self, language: str = "en") -> dict[str, Any]:
        return {
            "kind": self.kind,
            "encoding": self.encoding,
            "total_rows": self.total_rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": [e.as_dict(language) for e in self.errors],
            "new_sites": self.new_sites,
            "ignored_columns": self.ignored_columns,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "reject_csv": self.reject_csv,
        }


# --- Decoding and headers ---------------------------------------------------------------------


def decode_csv_bytes(data: bytes) -> tuple[str, str]:
    """UTF-8 with BOM, UTF-8 and CP932 are told apart by trying them strictly in that order."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            # A BOM promises UTF-8; guessing another encoding behind it could misread names.
            line = data[: 3 + exc.start].count(b"\n") + 1
            raise CsvFileError(
                N_(
                    "the file starts with a UTF-8 byte order mark, but line %(line)s is not "
                    "UTF-8 (perhaps CP932/Shift_JIS text was added to a UTF-8 file): save it "
                    "again in one encoding, as 'CSV UTF-8' or as CSV (CP932)",
                    line=line,
                )
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_failed_at = exc.start
    try:
        return data.decode("cp932"), "cp932"
    except UnicodeDecodeError as exc:
        # Name the line where the more plausible encoding broke down.
        line = data[: max(exc.start, utf8_failed_at)].count(b"\n") + 1
        raise CsvFileError(
            N_(
                "the file is neither UTF-8 nor CP932 (Shift_JIS): undecodable bytes on line "
                "%(line)s",
                line=line,
            )
        ) from None


def _header_key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().lower()
    return "".join(ch for ch in text if ch not in " _-・()（）")


RESIDENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("external_id", "id", "管理番号", "住民id", "住民番号", "番号", "整理番号"),
    "name": ("name", "氏名", "名前", "お名前"),
    "name_kana": ("name_kana", "kana", "フリガナ", "ふりがな", "カナ", "氏名カナ", "よみがな"),
    "phone": ("phone", "tel", "telephone", "電話番号", "電話", "携帯電話", "携帯", "連絡先"),
    "phone2": ("phone2", "second_phone", "電話番号2", "予備電話", "固定電話", "連絡先2"),
    "language": ("language", "lang", "言語", "使用言語", "対応言語"),
    "preferred_channel": ("preferred_channel", "channel", "連絡方法", "連絡手段", "希望連絡方法"),
    # The apps and phone channels in the resident's order: "line, whatsapp, sms, voice".
    "channels": ("channels", "channel_order", "連絡アプリ", "連絡手段の順番", "連絡する順番"),
    "site": ("site", "site_name", "団地", "仮設団地", "団地名", "住宅団地", "仮設住宅"),
    "unit": ("unit", "room", "部屋番号", "号室", "住戸", "住戸番号"),
    "household": ("household", "世帯", "世帯番号"),
    "lives_alone": ("lives_alone", "独居", "一人暮らし", "ひとり暮らし"),
    "elderly": ("elderly", "高齢者", "高齢"),
    "disability": ("disability", "障害", "障がい", "障害あり"),
    "pregnancy": ("pregnancy", "妊婦", "妊娠"),
    "needs_interpreter": ("needs_interpreter", "interpreter", "通訳必要", "要通訳", "通訳"),
    "consent_at": ("consent_at", "consent_date", "同意日", "同意日時"),
    "consent_method": ("consent_method", "同意方法"),
    "status": ("status", "状態", "ステータス"),
    "away_until": ("away_until", "不在期限", "不在終了日", "戻り予定日"),
    "notes": ("notes", "note", "備考", "メモ"),
}
RESIDENT_REQUIRED = ("external_id", "name")

MEMBER_COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("external_id", "id", "委員番号", "委員id", "番号", "管理番号"),
    "name": ("name", "氏名", "名前"),
    "name_kana": ("name_kana", "kana", "フリガナ", "ふりがな", "カナ"),
    "phone": ("phone", "tel", "電話番号", "電話", "携帯電話", "携帯"),
    "kind": ("kind", "role", "type", "区分", "種別", "役割"),
    "languages": ("languages", "language", "言語", "対応言語", "話せる言語"),
    "active": ("active", "有効", "活動中", "状態"),
    "notes": ("notes", "備考", "メモ"),
}
MEMBER_REQUIRED = ("external_id", "name", "phone")

ASSIGNMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "resident_external_id": (
        "resident_external_id",
        "resident",
        "resident_id",
        "住民番号",
        "住民id",
        "管理番号",
    ),
    "member_external_id": (
        "member_external_id",
        "member",
        "member_id",
        "委員番号",
        "委員id",
        "担当者番号",
    ),
    "rank": ("rank", "order", "順位", "順番", "連絡順"),
}
ASSIGNMENT_REQUIRED = ("resident_external_id", "member_external_id", "rank")

# Column headings used for export (Japanese by default, since it goes back to Excel).
RESIDENT_EXPORT_HEADERS_JA = {
    "external_id": "管理番号",
    "name": "氏名",
    "name_kana": "フリガナ",
    "phone": "電話番号",
    "phone2": "電話番号2",
    "language": "言語",
    "preferred_channel": "連絡方法",
    "channels": "連絡アプリ",
    "site": "団地",
    "unit": "部屋番号",
    "household": "世帯",
    "lives_alone": "独居",
    "elderly": "高齢者",
    "disability": "障害",
    "pregnancy": "妊婦",
    "needs_interpreter": "通訳必要",
    "consent_at": "同意日",
    "consent_method": "同意方法",
    "status": "状態",
    "away_until": "不在期限",
    "notes": "備考",
}


def _map_headers(
    headers: list[str], columns: dict[str, tuple[str, ...]], required: Iterable[str]
) -> tuple[dict[str, int], list[str]]:
    alias_to_field = {_header_key(a): f for f, aliases in columns.items() for a in aliases}
    mapping: dict[str, int] = {}
    ignored: list[str] = []
    for index, header in enumerate(headers):
        key = _header_key(header)
        target = alias_to_field.get(key)
        if target is None:
            if header.strip():
                ignored.append(header)
            continue
        if target in mapping:
            raise CsvFileError(
                N_(
                    "two columns mean the same thing (%(first)s and %(second)s)",
                    first=repr(headers[mapping[target]]),
                    second=repr(header),
                )
            )
        mapping[target] = index
    missing = [f for f in required if f not in mapping]
    if missing:
        names = ", ".join(
            f"{f} ({columns[f][2] if len(columns[f]) > 2 else columns[f][0]})" for f in missing
        )
        raise CsvFileError(N_("required columns are missing: %(columns)s", columns=names))
    return mapping, ignored


# Excel runs a cell that starts with one of these as a formula (OWASP "CSV injection").
# The full-width forms are included because Japanese input methods produce them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def neutralize_cell(value: str) -> str:
    """A cell Excel shows as text: one that could start a formula gets a leading ``'``.

    This is OWASP's recommendation. ``restore_cell`` undoes it on import, so an export
    re-imports unchanged.
    """
    # A value that already starts with quotes before a formula character gets one more,
    # so that restoring gives it back exactly.
    return "'" + value if value.lstrip("'").startswith(FORMULA_STARTS) else value


def restore_cell(value: str) -> str:
    """Undo ``neutralize_cell``: one ``'`` before a formula character is ours, not data."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


def safe_csv_row(values: Iterable[object]) -> list[str]:
    return [neutralize_cell(str(v)) for v in values]


@dataclass
class _Rows:
    headers: list[str]
    rows: list[tuple[int, list[str]]]
    # Rows that cannot be trusted as read, by line: an unclosed quote, a NUL character.
    broken: dict[int, str] = field(default_factory=dict)
    # For a row read over several lines, the line it started on.
    first_line: dict[int, int] = field(default_factory=dict)


def _read_rows(text: str) -> _Rows:
    """Read every record, remembering which lines each came from.

    A quoted field may legitimately span lines (Excel writes notes with line breaks that
    way), but a quote left open swallows the following rows into one field; ``_check_rows``
    tells the two apart once the columns are known.
    """
    raw: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            raw.append(line)
            yield line

    reader = csv.reader(lines())
    try:
        headers = next(reader)
    except StopIteration:
        raise CsvFileError(N_("the file is empty")) from None
    except csv.Error as exc:
        raise CsvFileError(
            N_("the header line is not valid CSV: %(reason)s", reason=str(exc))
        ) from None
    if any("\x00" in h for h in headers):
        raise CsvFileError(N_("the header line contains a NUL character"))
    result = _Rows(headers=[restore_cell(h) for h in headers], rows=[])
    raw.clear()
    try:
        for values in reader:
            record, start = "".join(raw), reader.line_num - len(raw) + 1
            raw.clear()
            if not any(v.strip() for v in values):
                continue
            line = reader.line_num
            if start != line:
                result.first_line[line] = start
                # Quotes come in pairs in a well-formed record; an odd count means the
                # reader hit the end of the file inside a quoted field.
                if record.count('"') % 2:
                    result.broken[line] = N_(
                        "the quote opened on line %(start)s is never closed: lines "
                        "%(start)s-%(line)s were read as one row",
                        start=start,
                        line=line,
                    )
            if any("\x00" in v for v in values):
                result.broken.setdefault(
                    line, N_("line %(line)s contains a NUL character", line=start)
                )
            result.rows.append((line, [restore_cell(v) for v in values]))
    except csv.Error as exc:
        raise CsvFileError(
            N_("line %(line)s is not valid CSV: %(reason)s", line=reader.line_num, reason=str(exc))
        ) from None
    return result


# Free-text columns, where a line break inside quotes is expected.
_MULTILINE_FIELDS = frozenset({"notes"})


def _check_rows(read: _Rows, mapping: dict[str, int]) -> None:
    """Mark rows where a quote left open merged several lines into one row.

    A line break inside an id, a name or a phone number is never data: it means a quote
    was opened and closed only on a later line, so rows in between were swallowed.
    """
    for line, values in read.rows:
        start = read.first_line.get(line)
        if start is None or line in read.broken:
            continue
        for name, index in mapping.items():
            if name in _MULTILINE_FIELDS or index >= len(values):
                continue
            if "\n" in values[index] or "\r" in values[index]:
                read.broken[line] = N_(
                    "a quote opened on line %(start)s closes only on line %(line)s, so these "
                    "lines were read as one row (column %(column)s): check the quotes",
                    start=start,
                    line=line,
                    column=repr(read.headers[index]),
                )
                break


# --- Value parsing ----------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "y", "はい", "○", "◯", "〇", "●", "有", "あり", "該当", "要", "t"}
_FALSE = {"", "0", "false", "no", "n", "いいえ", "×", "✕", "無", "なし", "-", "非該当", "f"}
_CHANNELS = {
    "sms": Channel.sms,
    "ショートメール": Channel.sms,
    "メッセージ": Channel.sms,
    "voice": Channel.voice,
    "電話": Channel.voice,
    "音声": Channel.voice,
    "call": Channel.voice,
    "both": Channel.both,
    "両方": Channel.both,
    "sms+voice": Channel.both,
}
_STATUSES = {
    "active": ResidentStatus.active,
    "在宅": ResidentStatus.active,
    "入居中": ResidentStatus.active,
    "有効": ResidentStatus.active,
    "away": ResidentStatus.away,
    "不在": ResidentStatus.away,
    "一時不在": ResidentStatus.away,
    "moved_out": ResidentStatus.moved_out,
    "退去": ResidentStatus.moved_out,
    "転出": ResidentStatus.moved_out,
    "opted_out": ResidentStatus.opted_out,
    "停止": ResidentStatus.opted_out,
    "拒否": ResidentStatus.opted_out,
    "辞退": ResidentStatus.opted_out,
}
_MEMBER_KINDS = {
    "welfare_committee": MemberKind.welfare_committee,
    "民生委員": MemberKind.welfare_committee,
    "民生児童委員": MemberKind.welfare_committee,
    "supporter": MemberKind.supporter,
    "支援員": MemberKind.supporter,
    "生活支援相談員": MemberKind.supporter,
    "ボランティア": MemberKind.supporter,
    "interpreter": MemberKind.interpreter,
    "通訳": MemberKind.interpreter,
    "staff_on_duty": MemberKind.staff_on_duty,
    "当番職員": MemberKind.staff_on_duty,
    "職員": MemberKind.staff_on_duty,
}


class _BadValue(TextError):
    pass


def _norm(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def _parse_bool(value: str) -> bool:
    key = _norm(value).lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise _BadValue(N_("expected yes/no (はい/いいえ, ○/×, 1/0)"))


_CHOICE_PROBLEMS = {
    "channel": N_("unknown channel; use one of %(allowed)s"),
    "status": N_("unknown status; use one of %(allowed)s"),
    "kind": N_("unknown kind; use one of %(allowed)s"),
}


def _parse_choice(value: str, choices: dict[str, Any], what: str) -> Any:
    key = _norm(value).lower()
    if key in choices:
        return choices[key]
    allowed = sorted({str(v.value) for v in choices.values()})
    problem = _CHOICE_PROBLEMS[what]
    raise _BadValue(Text(problem.msgid, {"allowed": ", ".join(allowed)}))


def _parse_date(value: str) -> date:
    text = _norm(value).replace("/", "-").replace(".", "-")
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y年%m月%d日"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise _BadValue(N_("expected a date like 2026-04-01 or 2026/04/01"))


def _consent_datetime(value: str, tz: ZoneInfo) -> datetime:
    text = _norm(value).replace("/", "-")
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=tz).astimezone(UTC)
        except ValueError:
            continue
    return datetime.combine(_parse_date(value), time(0), tz).astimezone(UTC)


def _pydantic_errors(exc: ValidationError) -> list[tuple[str, Text]]:
    out = []
    for err in exc.errors():
        loc = err["loc"][0] if err["loc"] else ""
        found = validation_text(err)
        if found is None:
            found = Text("%(reason)s", {"reason": err["msg"].removeprefix("Value error, ")})
        out.append((str(loc), found))
    return out


# --- Import -----------------------------------------------------------------------------------


def import_csv(
    *,
    session: Session,
    organization_id: uuid.UUID,
    kind: ImportKind,
    data: bytes,
    actor: Actor,
    dry_run: bool = False,
    apply_valid_rows: bool = False,
    progress: Progress | None = None,
    language: str = "en",
) -> ImportReport:
    """Validate a whole file, then apply it in one transaction, or not at all.

    The caller commits; on a report that is not applied nothing has been written. The
    reject file's reasons are in ``language``, the importer's; the report's row errors
    stay texts, for each reader to render in theirs.
    """
    text, encoding = decode_csv_bytes(data)
    read = _read_rows(text)
    headers, all_rows = read.headers, read.rows
    report = ImportReport(kind=kind, encoding=encoding, total_rows=len(all_rows), dry_run=dry_run)
    org = session.get(Organization, organization_id)
    assert org is not None
    columns, required = {
        "residents": (RESIDENT_COLUMNS, RESIDENT_REQUIRED),
        "members": (MEMBER_COLUMNS, MEMBER_REQUIRED),
        "assignments": (ASSIGNMENT_COLUMNS, ASSIGNMENT_REQUIRED),
    }.get(kind, (None, ()))
    if columns is None:  # pragma: no cover - typed away
        raise CsvFileError(N_("unknown import kind %(kind)s", kind=repr(kind)))
    mapping, report.ignored_columns = _map_headers(headers, columns, required)
    _check_rows(read, mapping)
    rows = [(line, values) for line, values in all_rows if line not in read.broken]
    if kind == "residents":
        # On PostgreSQL a file applied all or nothing writes its new residents by COPY as it
        # validates them (``csv_apply.CreateStream``), in a savepoint dropped at a bad row.
        streaming = not (dry_run or apply_valid_rows or read.broken) and uses_copy(session)
        plan = _plan_residents(
            session, org, headers, rows, mapping, report, progress, streaming=streaming
        )
        model: Any = Resident
    elif kind == "members":
        plan = _plan_members(session, org, headers, rows, mapping, report, progress)
        model = Member
    else:
        plan = _plan_assignments(session, org, headers, rows, mapping, report, progress)
        model = Assignment
    for line, reason in read.broken.items():
        start = read.first_line.get(line, line)
        report.errors.append(RowError(row=start, column="row", value="", reason=reason))
        plan.bad_lines[line] = [reason]

    report.errors.sort(key=lambda e: e.row)
    report.rejected = len(plan.bad_lines)
    replaced = sum(1 for c in plan.creates if "_replaces" in c)
    report.created = len(plan.creates) - replaced
    report.updated = len(plan.updates) + replaced
    report.new_sites = sorted(plan.new_sites)
    if plan.bad_lines:
        report.reject_csv = _reject_file(headers, all_rows, plan.bad_lines, language)
    if dry_run or (report.errors and not apply_valid_rows):
        if plan.stream is not None:
            plan.stream.abort()
        return report
    if plan.stream is not None:
        plan.stream.finish()
    summary = {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "rows": report.total_rows,
        "encoding": report.encoding,
    }
    apply_plan(session, org.id, model, kind, plan, actor, summary, stream=plan.stream)
    report.applied = True
    return report


def _row_error(
    report: ImportReport, plan: Plan, line: int, column: str, value: str, reason: Text
) -> None:
    report.errors.append(RowError(row=line, column=column, value=value, reason=reason))
    plan.bad_lines.setdefault(line, []).append(
        N_("%(column)s: %(reason)s", column=column, reason=reason)
    )


def _cell(values: list[str], mapping: dict[str, int], name: str) -> str:
    index = mapping.get(name)
    if index is None or index >= len(values):
        return ""
    return values[index]


def _existing(
    session: Session, model: Any, organization_id: uuid.UUID, columns: list[str]
) -> dict[str, dict[str, Any]]:
    cols = [model.id, *(getattr(model, c) for c in columns)]
    result = session.execute(select(*cols).where(model.organization_id == organization_id))
    out: dict[str, dict[str, Any]] = {}
    for row in result:
        values = dict(zip(["id", *columns], row, strict=True))
        out[values["external_id"]] = values
    return out


def _compare(current: dict[str, Any], values: dict[str, Any]) -> list[str]:
    changed = []
    for key, value in values.items():
        old = current.get(key)
        if isinstance(old, datetime) and old.tzinfo is None:
            old = old.replace(tzinfo=UTC)
        if old != value:
            changed.append(key)
    return changed


RESIDENT_FIELDS = [
    "external_id",
    "name",
    "name_kana",
    "phone",
    "phone2",
    "language",
    "preferred_channel",
    "channels",
    "site_id",
    "unit",
    "household",
    "lives_alone",
    "elderly",
    "disability",
    "pregnancy",
    "needs_interpreter",
    "consent_at",
    "consent_method",
    "status",
    "away_until",
    "notes",
]


def _plan_residents(
    session: Session,
    org: Organization,
    headers: list[str],
    rows: list[tuple[int, list[str]]],
    mapping: dict[str, int],
    report: ImportReport,
    progress: Progress | None,
    *,
    streaming: bool = False,
) -> Plan:
    plan = Plan()
    existing = _existing(session, Resident, org.id, RESIDENT_FIELDS)
    sites = {
        name: sid
        for sid, name in session.execute(
            select(Site.id, Site.name).where(Site.organization_id == org.id)
        )
    }
    # A streamed resident's site must exist before its row: every new site is made first.
    ahead = _new_sites(rows, mapping, sites) if streaming else {}
    stream = CreateStream(session, org.id, ahead) if streaming else None
    seen: dict[str, int] = {}
    header_of = {f: headers[i] for f, i in mapping.items()}
    parsers = _resident_parsers(ZoneInfo(org.timezone))
    columns = [(name, index, parsers.get(name, _norm)) for name, index in mapping.items()]
    phones = [name for name in ("phone", "phone2") if name in mapping]
    # Columns absent from the file keep their current values on update.
    present = {f for f in RESIDENT_FIELDS if f in mapping} | {"external_id"}
    if "site" in mapping:
        present.add("site_id")
    for n, (line, values) in enumerate(rows, 1):
        if progress and n % 1000 == 0:
            progress(n, len(rows))
        if stream is not None and plan.bad_lines:
            stream.abort()
            stream = None
        raw: dict[str, Any] = {}
        row_bad = False
        for name, index, parse in columns:
            cell = values[index] if index < len(values) else ""
            try:
                raw[name] = parse(cell)
            except _BadValue as exc:
                _row_error(report, plan, line, header_of[name], cell, exc.text)
                row_bad = True
        external_id = raw.get("external_id") or ""
        if not external_id:
            _row_error(
                report,
                plan,
                line,
                header_of["external_id"],
                "",
                N_(
                    "an external id is required, so that a re-import updates the row "
                    "instead of adding a duplicate"
                ),
            )
            row_bad = True
        elif external_id in seen:
            _row_error(
                report,
                plan,
                line,
                header_of["external_id"],
                external_id,
                N_("duplicate of line %(line)s", line=seen[external_id]),
            )
            row_bad = True
        else:
            seen[external_id] = line
        site_name = raw.pop("site", None)
        # The one parse of each number: the model's validator below finds it in the cache of
        # ``parse_phone``, and the kind goes with the row instead of being parsed again.
        kinds = {f"{name}_kind": _phone_kind(raw[name]) for name in phones}
        try:
            model = ResidentCreate.model_validate(raw)
        except ValidationError as exc:
            for loc, msg in _pydantic_errors(exc):
                column = header_of.get(loc, loc or "row")
                value = _cell(values, mapping, loc) if loc in mapping else ""
                _row_error(report, plan, line, column, value, msg)
            continue
        if row_bad:
            continue
        site_id = None
        if site_name:
            site_id = sites.get(site_name) or plan.new_sites.get(site_name)
            if site_id is None:
                site_id = plan.new_sites[site_name] = ahead.get(site_name) or new_id()
        # Every field of the model, so a created resident gets the model's default for a
        # field the file cannot carry (``channels``: [], not NULL).
        full = model.model_dump(exclude={"site_id"})
        full["site_id"] = site_id
        current = existing.get(external_id)
        if current is None:
            full.update(kinds)
            plan.creates.append(full)
            if stream is not None:
                stream.write(full)
            continue
        new_values = {k: v for k, v in full.items() if k in present}
        changed = _compare(current, new_values)
        if changed:
            update = {"id": current["id"], **{k: new_values[k] for k in changed}}
            update.update({f"{k}_kind": kinds[f"{k}_kind"] for k in changed if k in phones})
            plan.updates.append((update, changed))
        else:
            report.unchanged += 1
    if stream is not None and plan.bad_lines:
        stream.abort()
        stream = None
    plan.stream = stream
    if progress:
        progress(len(rows), len(rows))
    return plan


def _new_sites(
    rows: list[tuple[int, list[str]]], mapping: dict[str, int], sites: dict[str, uuid.UUID]
) -> dict[str, uuid.UUID]:
    """The sites a file names that do not exist yet, read as ``_plan_residents`` reads them."""
    index = mapping.get("site")
    found: dict[str, uuid.UUID] = {}
    if index is None:
        return found
    for _line, values in rows:
        cell = values[index] if index < len(values) else ""
        if cell.strip():
            name = normalize_site_name(cell)
            if name and name not in sites and name not in found:
                found[name] = new_id()
    return found


def _phone_kind(text: str) -> Any:
    """The kind of a number the model will accept; None when it is blank or refused (the
    model names the problem)."""
    if not text:
        return None
    try:
        return parse_phone(text).kind
    except PhoneError:
        return None


def _parse_channels(cell: str) -> list[str]:
    """'line, whatsapp, sms' (or with 、 ; / or spaces between): each known, in order."""
    names = [name for name in re.split(r"[,、;/\s]+", _norm(cell)) if name]
    try:
        return check_channels(names) or []
    except TextError as exc:
        raise _BadValue(exc.text) from None


def _resident_parsers(tz: ZoneInfo) -> dict[str, Callable[[str], Any]]:
    """How each resident column's cell is read; any other column is NFKC-normalized."""

    def flag(cell: str) -> bool:
        return _parse_bool(cell)

    return {
        **dict.fromkeys(
            ("lives_alone", "elderly", "disability", "pregnancy", "needs_interpreter"), flag
        ),
        "preferred_channel": lambda cell: (
            _parse_choice(cell, _CHANNELS, "channel") if cell.strip() else Channel.sms
        ),
        "status": lambda cell: (
            _parse_choice(cell, _STATUSES, "status") if cell.strip() else ResidentStatus.active
        ),
        "channels": _parse_channels,
        "away_until": lambda cell: _parse_date(cell) if cell.strip() else None,
        "consent_at": lambda cell: _consent_datetime(cell, tz) if cell.strip() else None,
        "site": lambda cell: normalize_site_name(cell) if cell.strip() else None,
        "language": lambda cell: _norm(cell) if cell.strip() else "ja",
        "notes": str.strip,
    }


MEMBER_FIELDS = [
    "external_id",
    "name",
    "name_kana",
    "phone",
    "kind",
    "languages",
    "active",
    "notes",
]


def _plan_members(
    session: Session,
    org: Organization,
    headers: list[str],
    rows: list[tuple[int, list[str]]],
    mapping: dict[str, int],
    report: ImportReport,
    progress: Progress | None,
) -> Plan:
    plan = Plan()
    existing = _existing(session, Member, org.id, MEMBER_FIELDS)
    header_of = {f: headers[i] for f, i in mapping.items()}
    seen: dict[str, int] = {}
    for line, values in rows:
        raw: dict[str, Any] = {}
        row_bad = False
        for name in mapping:
            cell = _cell(values, mapping, name)
            try:
                if name == "kind":
                    raw[name] = (
                        _parse_choice(cell, _MEMBER_KINDS, "kind")
                        if cell.strip()
                        else MemberKind.welfare_committee
                    )
                elif name == "active":
                    raw[name] = _parse_bool(cell) if cell.strip() else True
                elif name == "languages":
                    raw[name] = cell if cell.strip() else "ja"
                else:
                    raw[name] = _norm(cell)
            except _BadValue as exc:
                _row_error(report, plan, line, header_of[name], cell, exc.text)
                row_bad = True
        external_id = raw.get("external_id") or ""
        if not external_id:
            _row_error(
                report, plan, line, header_of["external_id"], "", N_("an external id is required")
            )
            row_bad = True
        elif external_id in seen:
            _row_error(
                report,
                plan,
                line,
                header_of["external_id"],
                external_id,
                N_("duplicate of line %(line)s", line=seen[external_id]),
            )
            row_bad = True
        else:
            seen[external_id] = line
        try:
            model = MemberCreate.model_validate(raw)
        except ValidationError as exc:
            for loc, msg in _pydantic_errors(exc):
                value = _cell(values, mapping, loc) if loc in mapping else ""
                _row_error(report, plan, line, header_of.get(loc, loc), value, msg)
            continue
        if row_bad:
            continue
        present = {f for f in MEMBER_FIELDS if f in mapping} | {"external_id"}
        values_now = model.model_dump(include=set(MEMBER_FIELDS))
        current = existing.get(external_id)
        if current is None:
            plan.creates.append(values_now)
        else:
            new_values = {k: v for k, v in values_now.items() if k in present}
            changed = _compare(current, new_values)
            if changed:
                plan.updates.append(
                    ({"id": current["id"], **{k: new_values[k] for k in changed}}, changed)
                )
            else:
                report.unchanged += 1
    if progress:
        progress(len(rows), len(rows))
    return plan


def _plan_assignments(
    session: Session,
    org: Organization,
    headers: list[str],
    rows: list[tuple[int, list[str]]],
    mapping: dict[str, int],
    report: ImportReport,
    progress: Progress | None,
) -> Plan:
    plan = Plan()
    header_of = {f: headers[i] for f, i in mapping.items()}
    residents = dict(
        session.execute(
            select(Resident.external_id, Resident.id).where(Resident.organization_id == org.id)
        ).all()
    )
    members = dict(
        session.execute(
            select(Member.external_id, Member.id).where(Member.organization_id == org.id)
        ).all()
    )
    current: dict[uuid.UUID, dict[uuid.UUID, tuple[uuid.UUID, int]]] = {}
    for aid, rid, mid, rank in session.execute(
        select(Assignment.id, Assignment.resident_id, Assignment.member_id, Assignment.rank).where(
            Assignment.organization_id == org.id
        )
    ):
        current.setdefault(rid, {})[mid] = (aid, rank)
    wanted: dict[uuid.UUID, dict[uuid.UUID, tuple[int, int]]] = {}
    for line, values in rows:
        r_ext = _norm(_cell(values, mapping, "resident_external_id"))
        m_ext = _norm(_cell(values, mapping, "member_external_id"))
        rank_text = _norm(_cell(values, mapping, "rank"))
        bad = False
        rid = residents.get(r_ext)
        if rid is None:
            _row_error(
                report,
                plan,
                line,
                header_of["resident_external_id"],
                r_ext,
                N_("no resident with this external id"),
            )
            bad = True
        mid = members.get(m_ext)
        if mid is None:
            _row_error(
                report,
                plan,
                line,
                header_of["member_external_id"],
                m_ext,
                N_("no member with this external id"),
            )
            bad = True
        try:
            rank = int(rank_text)
            if not 1 <= rank <= 20:
                raise ValueError
        except ValueError:
            _row_error(
                report,
                plan,
                line,
                header_of["rank"],
                rank_text,
                N_("rank must be a whole number from 1 (first contact) to 20"),
            )
            bad = True
        if bad:
            continue
        assert rid is not None and mid is not None
        mine = wanted.setdefault(rid, {})
        if mid in mine:
            _row_error(
                report,
                plan,
                line,
                header_of["member_external_id"],
                m_ext,
                N_("this pair is already on line %(line)s", line=mine[mid][1]),
            )
            continue
        clash = next((ln for m, (rk, ln) in mine.items() if rk == rank), None)
        if clash is not None:
            _row_error(
                report,
                plan,
                line,
                header_of["rank"],
                rank_text,
                N_(
                    "line %(line)s already gives this resident rank %(rank)s",
                    line=clash,
                    rank=rank,
                ),
            )
            continue
        mine[mid] = (rank, line)
    # Ranks are checked against assignments the file does not mention too.
    for rid, mine in wanted.items():
        have = current.get(rid, {})
        untouched_ranks = {rk: m for m, (_a, rk) in have.items() if m not in mine}
        for mid, (rank, line) in list(mine.items()):
            if rank in untouched_ranks:
                _row_error(
                    report,
                    plan,
                    line,
                    header_of["rank"],
                    str(rank),
                    N_("the resident already has another contact at rank %(rank)s", rank=rank),
                )
                del mine[mid]
                continue
            existing = have.get(mid)
            if existing is None:
                plan.creates.append({"resident_id": rid, "member_id": mid, "rank": rank})
            elif existing[1] != rank:
                plan.deletes.append(existing[0])
                plan.creates.append(
                    {"resident_id": rid, "member_id": mid, "rank": rank, "_replaces": existing[0]}
                )
            else:
                report.unchanged += 1
    if progress:
        progress(len(rows), len(rows))
    return plan


def _reject_file(
    headers: list[str],
    rows: list[tuple[int, list[str]]],
    bad_lines: dict[int, list[Text]],
    language: str,
) -> str:
    """The rejected rows as they came, with the line number and the reasons added (in the
    importer's language)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(safe_csv_row([*headers, "元の行番号 (line)", "エラー (error)"]))
    for line, values in rows:
        if line in bad_lines:
            # NULs are dropped here only: the row is already refused for them.
            cells = [v.replace("\x00", "") for v in values]
            reasons = "; ".join(str(render(reason, language)) for reason in bad_lines[line])
            writer.writerow(safe_csv_row([*cells, line, reasons]))
    return out.getvalue()


# --- Export -----------------------------------------------------------------------------------


class ExportEncodingError(TextError):
    pass


def export_residents(
    *,
    session: Session,
    organization_id: uuid.UUID,
    actor: Actor,
    encoding: Literal["utf-8-sig", "utf-8", "cp932"] = "utf-8-sig",
    headers: Literal["ja", "en"] = "ja",
) -> bytes:
    """Write residents in the import format, so an export re-imports as a no-op.

    CP932 cannot hold every name (Vietnamese diacritics, for example). Rather than replace
    characters silently, the export fails and names the rows; UTF-8 with BOM opens in Excel.
    """
    sites = dict(
        session.execute(
            select(Site.id, Site.name).where(Site.organization_id == organization_id)
        ).all()
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    fields = list(RESIDENT_EXPORT_HEADERS_JA)
    writer.writerow(
        safe_csv_row(RESIDENT_EXPORT_HEADERS_JA[f] if headers == "ja" else f for f in fields)
    )
    org = session.get(Organization, organization_id)
    tz = ZoneInfo(org.timezone if org else "Asia/Tokyo")
    count = 0
    for resident in session.execute(
        select(Resident)
        .where(Resident.organization_id == organization_id)
        .order_by(Resident.external_id)
    ).scalars():
        count += 1
        row = []
        for f in fields:
            if f == "site":
                value: Any = sites.get(resident.site_id, "") if resident.site_id else ""
            elif f == "channels":
                value = ", ".join(resident.channels or [])
            elif f in ("phone", "phone2"):
                # 090-1234-5678, not 09012345678 (a number to Excel, which drops the 0)
                # nor +8190… (a formula to Excel); foreign numbers keep their +, neutralized.
                value = display_phone(getattr(resident, f))
            else:
                value = getattr(resident, f)
            if isinstance(value, bool):
                value = "1" if value else "0"
            elif isinstance(value, datetime):
                value = (
                    value.replace(tzinfo=value.tzinfo or UTC)
                    .astimezone(tz)
                    .strftime("%Y-%m-%d %H:%M")
                )
            elif isinstance(value, date):
                value = value.isoformat()
            elif value is None:
                value = ""
            row.append(str(getattr(value, "value", value)))
        writer.writerow(safe_csv_row(row))
    text = out.getvalue()
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="export",
        entity_type="resident",
        detail={"rows": count, "encoding": encoding},
    )
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        bad = []
        for n, line in enumerate(text.splitlines(), 1):
            try:
                line.encode(encoding)
            except UnicodeEncodeError as exc:
                bad.append(f"{n} ({line[exc.start : exc.end]!r})")
        lines = ", ".join(bad[:10]) + (" …" if len(bad) > 10 else "")
        raise ExportEncodingError(
            N_(
                "%(count)s rows have characters that %(encoding)s cannot hold: lines "
                "%(lines)s. Export as UTF-8 with BOM instead; Excel opens it correctly.",
                count=len(bad),
                encoding=encoding.upper(),
                lines=lines,
            )
        ) from None

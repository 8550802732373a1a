"""Applying a validated CSV import: the rows, the new sites and the audit entries.

``csv_io`` works out a whole file first (a ``Plan``); only a file that may be applied gets
here, and everything is written in the caller's transaction, so it commits or rolls back
as one. On PostgreSQL the new rows and their audit entries go in by COPY, about twice as
fast as INSERT statements, with the same constraints, foreign keys and indexes (issue 20);
SQLite keeps the Core insert.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import JSON, String, Table, insert, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from service.audit.models import AuditEntry
from service.audit.service import Actor, entry_values, record, record_many
from service.common import new_id, utcnow
from service.registry.models import Assignment, Member, Resident, Site
from service.registry.phones import phone_kind
from service.texts import Text

CHUNK = 2000
_SOURCE = {"source": "csv import"}


@dataclass
class Plan:
    """What applying a file would do, worked out before anything is written."""

    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
    bad_lines: dict[int, list[Text]] = field(default_factory=dict)
    new_sites: dict[str, uuid.UUID] = field(default_factory=dict)
    deletes: list[uuid.UUID] = field(default_factory=list)
    # New residents already being written, on PostgreSQL (see ``CreateStream``).
    stream: CreateStream | None = None


def uses_copy(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def apply_plan(
    session: Session,
    organization_id: uuid.UUID,
    model: Any,
    kind: str,
    plan: Plan,
    actor: Actor,
    summary: dict[str, Any],
    stream: CreateStream | None = None,
) -> None:
    """Write the plan; ``summary`` (the report's counts) goes into the one ``import`` entry.

    A created row's phone kinds come with it from the plan when the import parsed the
    number (one parse per number); otherwise they are worked out here. With a ``stream``
    the new sites and created rows are already written (a finished ``CreateStream``)."""
    now = utcnow()
    audit_rows: list[dict[str, Any]] = []
    entity = kind.removesuffix("s")
    for name, site_id in plan.new_sites.items():
        if stream is None:
            site = {"id": site_id, "organization_id": organization_id, "name": name}
            session.execute(insert(Site), [{**site, "created_at": now, "updated_at": now}])
        audit_rows.append(_audit("create", "site", site_id, ["name"], _SOURCE))
    for start in range(0, len(plan.deletes), CHUNK):
        session.execute(
            Assignment.__table__.delete().where(
                Assignment.__table__.c.id.in_(plan.deletes[start : start + CHUNK])
            )
        )
    copy = uses_copy(session)
    if stream is not None:
        audit_rows.extend(stream.audit_rows)
    else:
        build = _RowBuilder(organization_id, model, entity, now)
        rows = [build(values, audit_rows) for values in plan.creates]
        if copy:
            copy_rows(session, model.__table__, rows)
        else:
            for start in range(0, len(rows), CHUNK):
                # render_nulls: every row has the same keys, so each chunk is one
                # executemany; without it the ORM leaves out None values and splits the
                # chunk by which fields are empty.
                session.execute(
                    insert(model).execution_options(render_nulls=True),
                    rows[start : start + CHUNK],
                )
    _apply_updates(session, model, entity, plan, now, audit_rows)
    if copy:
        values = entry_values(organization_id=organization_id, actor=actor, rows=audit_rows)
        copy_rows(session, AuditEntry.__table__, values)
    else:
        record_many(session=session, organization_id=organization_id, actor=actor, rows=audit_rows)
    if audit_rows:
        record(
            session=session,
            organization_id=organization_id,
            actor=actor,
            action="import",
            entity_type=entity,
            detail=summary,
        )


class _RowBuilder:
    """A created row as stored (id, organization, timestamps, phone kinds) from the plan's
    values, and its audit entry."""

    def __init__(self, organization_id: uuid.UUID, model: Any, entity: str, now: Any) -> None:
        self.organization_id, self.model, self.entity, self.now = (
            organization_id,
            model,
            entity,
            now,
        )
        # One list per shape of row: its audit entries share it (one JSON text on COPY).
        self.fields_of: dict[tuple[str, ...], list[str]] = {}

    def __call__(self, values: dict[str, Any], audit_rows: list[dict[str, Any]]) -> dict[str, Any]:
        model, now = self.model, self.now
        replaces = values.pop("_replaces", None)
        row = {"id": new_id(), "organization_id": self.organization_id, "created_at": now}
        row.update(values)
        if model is not Assignment:
            row["updated_at"] = now
        if model is Resident:
            _add_kind(row, "phone", "phone_kind")
            _add_kind(row, "phone2", "phone2_kind")
        elif model is Member:
            _add_kind(row, "phone", "phone_kind")
        keys = tuple(values)  # the plan's rows share their keys' order: sort once per shape
        fields = self.fields_of.get(keys)
        if fields is None:
            fields = self.fields_of[keys] = sorted(k for k in keys if not k.endswith("phone_kind"))
        if replaces:
            detail = {**_SOURCE, "replaces": str(replaces)}
            audit_rows.append(_audit("update", self.entity, row["id"], fields, detail))
        else:
            audit_rows.append(_audit("create", self.entity, row["id"], fields, _SOURCE))
        return row


class CreateStream:
    """New residents COPYed while the rest of the file is still being validated (issue 20).

    PostgreSQL stores each part of the COPY while Python reads the next rows, instead of
    after the whole file. It is used only where nothing may be applied unless every row is
    good, and inside a savepoint: at the first bad row ``abort`` rolls back what was sent
    and validation goes on to name every problem. The sites the file names that do not
    exist yet are created first (a resident's site must exist when its row arrives);
    ``finish`` leaves the rest (updates, audit entries) to ``apply_plan``.
    """

    def __init__(
        self,
        session: Session,
        organization_id: uuid.UUID,
        new_sites: dict[str, uuid.UUID],
    ) -> None:
        now = utcnow()
        self.audit_rows: list[dict[str, Any]] = []
        self._build = _RowBuilder(organization_id, Resident, "resident", now)
        self._savepoint = session.begin_nested()
        sites = [
            {"id": site_id, "organization_id": organization_id, "name": name}
            for name, site_id in new_sites.items()
        ]
        if sites:
            session.execute(
                insert(Site), [{**site, "created_at": now, "updated_at": now} for site in sites]
            )
        self._copy: _Copy | None = None
        self._session = session

    def write(self, values: dict[str, Any]) -> None:
        row = self._build(values, self.audit_rows)
        if self._copy is None:
            self._copy = _Copy(self._session, Resident.__table__, list(row))
        self._copy.write(row)

    def abort(self) -> None:
        """Drop everything sent so far (the sites too): the import will not be applied."""
        if self._copy is not None:
            self._copy.abort()
        self._savepoint.rollback()
        self.audit_rows.clear()

    def finish(self) -> None:
        if self._copy is not None:
            self._copy.close()
        self._savepoint.commit()


def _add_kind(row: dict[str, Any], phone: str, kind: str) -> None:
    if kind not in row:
        row[kind] = phone_kind(row.get(phone))


def _audit(
    action: str, entity_type: str, entity_id: uuid.UUID, fields: list[str], detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "fields": fields,
        "detail": detail,
    }


def _apply_updates(
    session: Session,
    model: Any,
    entity: str,
    plan: Plan,
    now: Any,
    audit_rows: list[dict[str, Any]],
) -> None:
    updates = []
    for values, changed in plan.updates:
        extra: dict[str, Any] = {"updated_at": now}
        if "phone" in changed and "phone_kind" not in values:
            extra["phone_kind"] = phone_kind(values.get("phone"))
        if "phone2" in changed and "phone2_kind" not in values:
            extra["phone2_kind"] = phone_kind(values.get("phone2"))
        updates.append({**values, **extra})
        audit_rows.append(_audit("update", entity, values["id"], changed, _SOURCE))
    # Group by the set of changed columns: one executemany per shape.
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in updates:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    for group in shapes.values():
        for start in range(0, len(group), CHUNK):
            session.execute(update(model), group[start : start + CHUNK])


# --- COPY -------------------------------------------------------------------------------------


def copy_rows(session: Session, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """COPY complete rows (dicts with the same keys) into ``table`` in the session's
    transaction; returns how many."""
    copy: _Copy | None = None
    count = 0
    for row in rows:
        if copy is None:
            copy = _Copy(session, table, list(row))
        copy.write(row)
        count += 1
    if copy is not None:
        copy.close()
    return count


class _Copy:
    """One COPY ... FROM STDIN, open while rows are written to it.

    Values go as psycopg writes them in COPY's text format, which escapes tabs, newlines
    and backslashes itself. What a Core insert would have done differently is done here:
    an enum is stored as its value, a JSON column as its JSON text (each distinct list or
    dict object serialized once), and a column the rows leave out gets its Python default.
    A database error comes out as SQLAlchemy's exception (an ``IntegrityError`` for a
    duplicate), as a Core insert's would, and leaves the transaction to be rolled back.
    """

    def __init__(self, session: Session, table: Table, names: list[str]) -> None:
        connection = session.connection()
        quote = connection.dialect.identifier_preparer.quote
        defaults = _defaults(table, names)
        columns = ", ".join(quote(n) for n in [*names, *defaults])
        self.names = names
        self.as_json = [i for i, n in enumerate(names) if isinstance(table.c[n].type, JSON)]
        # A StrEnum in a text column (a status, a channel) is stored as its value.
        self.texts = [i for i, n in enumerate(names) if isinstance(table.c[n].type, String)]
        self.to_json = _json_once()
        self.tail = [
            self.to_json(v) if isinstance(table.c[n].type, JSON) else v for n, v in defaults.items()
        ]
        self.statement = f"COPY {quote(table.name)} ({columns}) FROM STDIN"
        self.dbapi_error = connection.dialect.loaded_dbapi.Error
        driver = connection.connection.driver_connection
        with self._translated():
            self._cursor = driver.cursor()  # type: ignore[union-attr]
            self._context = self._cursor.copy(self.statement)
            self._copy = self._context.__enter__()

    def write(self, row: dict[str, Any]) -> None:
        values = [row[n] for n in self.names]
        for i in self.texts:
            value = values[i]
            if isinstance(value, Enum):
                values[i] = value.value
        for i in self.as_json:
            values[i] = self.to_json(values[i])
        try:
            self._copy.write_row(values + self.tail if self.tail else values)
        except self.dbapi_error as error:
            raise DBAPIError.instance(self.statement, None, error, self.dbapi_error) from error

    def close(self) -> None:
        with self._translated():
            try:
                self._context.__exit__(None, None, None)
            finally:
                self._cursor.close()

    def abort(self) -> None:
        """End the COPY unfinished: the server discards it and the transaction (or the
        savepoint) must be rolled back."""
        reason = RuntimeError("import abandoned: a row is bad")
        try:
            self._context.__exit__(RuntimeError, reason, None)
        finally:
            self._cursor.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self.dbapi_error as error:
            raise DBAPIError.instance(self.statement, None, error, self.dbapi_error) from error


def _defaults(table: Table, names: list[str]) -> dict[str, Any]:
    """Python-side defaults of the columns the rows leave out (a Core insert applies them,
    COPY would not)."""
    out: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in names or default is None:
            continue
        if getattr(default, "is_scalar", False):
            out[column.name] = default.arg  # type: ignore[attr-defined]
        elif getattr(default, "is_callable", False):
            out[column.name] = default.arg(None)  # type: ignore[attr-defined]
    return out


def _json_once() -> Any:
    """JSON text of a value, serialized once per object: an import's audit entries share a
    handful of field lists and detail dicts."""
    done: dict[int, tuple[Any, str | None]] = {}

    def to_json(value: Any) -> str | None:
        if value is None:
            return None
        hit = done.get(id(value))
        if hit is None or hit[0] is not value:  # the object is kept, so its id stays its own
            hit = done[id(value)] = (value, json.dumps(value))
        return hit[1]

    return to_json

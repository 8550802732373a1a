"""Inserting many complete rows at once (fan-out, the sweep): COPY on PostgreSQL, a
driver-level executemany on SQLite."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable
from datetime import date, time
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Table,
    Uuid,
    insert,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session


def insert_rows(session: Session, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert complete rows (dicts with the same keys) in the session's transaction.

    Fan-out writes three rows per resident, so this is as direct as the database allows. On
    PostgreSQL it is a COPY, about twice as fast as multi-row INSERT statements, with the
    same constraint, foreign key and index checks; rows given as an iterator are sent as
    they come. On SQLite each value goes through its column type's own bind processor (the
    same stored form as any Core insert) and the rows through one driver-level executemany,
    without per-row statement compilation.
    """
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return
    rows = itertools.chain((first,), iterator)
    connection = session.connection()
    names = list(first)
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in names)
    if connection.dialect.name == "sqlite":
        dialect = connection.dialect
        processors = [
            (
                n,
                _memoized(
                    table.c[n].type, table.c[n].type.dialect_impl(dialect).bind_processor(dialect)
                ),
            )
            for n in names
        ]
        connection.exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({', '.join('?' * len(names))})",
            _converted(rows, names, [p for _, p in processors]),
        )
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), list(rows))
        return
    formatters = [_copy_formatter(table.c[n].type) for n in names]
    statement = f"COPY {quote(table.name)} ({columns}) FROM STDIN"
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        with cursor.copy(statement) as copy:
            while batch := list(itertools.islice(rows, COPY_BATCH)):
                copy.write(_copy_text(batch, names, formatters))


# Rows formatted and handed to the server at a time: the server stores each batch while
# the next is made (rows given as an iterator are made as they are asked for).
COPY_BATCH = 1000

# COPY's text format: a backslash, a tab, a newline or a carriage return in a value is
# written as its escape; NULL is \N.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


def _copy_text(batch: list[dict[str, Any]], names: list[str], formatters: list[Any]) -> str:
    """A batch of rows in COPY's text format, made column by column: a column whose
    values are all the same object (a fan-out's organization, round, timestamps, status)
    is formatted once; the others through their column's formatter, mapped in C. Formatting
    each value through psycopg's ``write_row`` took a quarter of a fan-out."""
    if len(names) == 1:
        values = [[row[names[0]] for row in batch]]
    else:
        values = list(zip(*map(itemgetter(*names), batch), strict=True))
    columns: list[Any] = []
    for column, format_value in zip(values, formatters, strict=True):
        first = column[0]
        if column.count(first) == len(column):  # compares by identity first: fast
            columns.append(itertools.repeat(format_value(first), len(column)))
        else:
            columns.append(map(format_value, column))
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _copy_formatter(column_type: Any) -> Any:
    """The function that writes one value of a column of ``column_type`` in COPY's text
    format, as PostgreSQL reads it back into the column: the same stored value as a Core
    insert of the same Python value (tests/checkins/test_fan_out.py)."""
    if isinstance(column_type, TypeDecorator):  # UtcDateTime, AutoString
        column_type = column_type.impl_instance
    if isinstance(column_type, JSON):
        return _by_identity(lambda v: _NULL if v is None else _escape(json.dumps(v)))
    if isinstance(column_type, DateTime):
        return _timestamp_formatter()
    if isinstance(column_type, Uuid):
        return _uuid_text
    return _value_text


def _escape(text: str) -> str:
    return text.translate(_COPY_ESCAPES)


def _uuid_text(value: Any) -> str:
    """32 hex digits, as ``UUID.hex`` but without its property call (a fan-out writes five
    ids per resident); anything else that names a UUID is parsed, so a bad one fails here."""
    if value.__class__ is uuid.UUID:
        return f"{value.int:032x}"
    return _NULL if value is None else uuid.UUID(str(value)).hex


def _timestamp_formatter() -> Any:
    """ISO 8601 with the offset (the same instant whatever the zone; a naive value is read
    in the session's zone, as psycopg's own dump of it is), each distinct value once: a
    fan-out's timestamps are a handful of values over thousands of rows."""
    done: dict[Any, str] = {}

    def text(value: Any) -> str:
        if value is None:
            return _NULL
        key = (value, value.tzinfo)  # equal instants in two zones are distinct values
        found = done.get(key)
        if found is None:
            found = done[key] = value.isoformat()
        return found

    return text


def _value_text(value: Any) -> str:
    if value is None:
        return _NULL
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, str):  # an enum member too: its value
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, Enum):
        return _escape(str(value.value))
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    raise TypeError(f"no COPY text form for {type(value).__name__}")


def _converted(
    rows: Iterable[dict[str, Any]], names: list[str], processors: list[Any]
) -> list[tuple[Any, ...]]:
    """The rows as tuples of stored values, column by column: each processor is mapped
    over its column, and the columns without one are taken as they are. A generator per
    row, calling or skipping a processor for each of a fan-out's millions of values, took
    a fifth of a SQLite fan-out."""
    if len(names) == 1:  # itemgetter of one name gives the value, not a tuple
        (name,), (process,) = names, processors
        return [(row[name] if process is None else process(row[name]),) for row in rows]
    columns = zip(*map(itemgetter(*names), rows), strict=True)
    converted = (c if p is None else map(p, c) for c, p in zip(columns, processors, strict=True))
    return list(zip(*converted, strict=True))


def _by_identity(convert: Any) -> Any:
    """``convert`` once per object: a fan-out's rows share a handful of plan objects."""
    done: dict[int, tuple[Any, Any]] = {}

    def process(value: Any) -> Any:
        hit = done.get(id(value))
        if hit is None or hit[0] is not value:  # the object itself is kept, so its id is too
            hit = done[id(value)] = (value, convert(value))
        return hit[1]

    return process


def _memoized(column_type: Any, processor: Any) -> Any:
    """A timestamp column of a fan-out holds a handful of distinct values (now, the start,
    the deadline) over thousands of rows: convert each once. So does a JSON column (the
    plans, shared by identity)."""
    if processor is not None and isinstance(column_type, JSON):
        return _by_identity(processor)
    if processor is None or not isinstance(column_type, DateTime):
        return processor
    done: dict[Any, Any] = {}

    def process(value: Any) -> Any:
        # Keyed with the zone too: equal instants in two zones are stored differently.
        key = (value, getattr(value, "tzinfo", None))
        try:
            return done[key]
        except KeyError:
            done[key] = converted = processor(value)
            return converted

    return process


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)

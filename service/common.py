"""Small shared pieces: ids, UTC time, list envelopes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from types import UnionType
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, Union, get_args, get_origin

from fastapi import Query
from pydantic import BaseModel, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def id_field() -> uuid.UUID:
    return Field(default_factory=new_id, primary_key=True)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC, so say so."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column that always reads back as an aware UTC datetime.

    PostgreSQL keeps the offset; SQLite stores wall time and hands it back naive, so an API
    answer would carry no offset and a client could not tell UTC from JST (issue 18). An
    aware value is written as UTC, so a JST time is not stored as if it were UTC either.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return aware(value)


def timestamp_field(*, nullable: bool = False, index: bool = False):  # type: ignore[no-untyped-def]
    kwargs = {"sa_type": UtcDateTime(), "nullable": nullable, "index": index}
    if not nullable:
        kwargs["default_factory"] = utcnow
    else:
        kwargs["default"] = None
    return Field(**kwargs)


class Page(BaseModel, Generic[T]):
    """The list envelope every collection endpoint returns."""

    data: list[T]
    count: int


class Message(BaseModel):
    message: str


def _json_kind(annotation: object) -> tuple[str | None, bool]:
    """The JSON kind a field's annotation expects (string, boolean, array, object, or None
    when any will do), and whether it admits null."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _json_kind(get_args(annotation)[0])
    if origin in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        kinds = {_json_kind(a)[0] for a in args}
        return (kinds.pop() if len(kinds) == 1 else None), nullable
    if origin is Literal:
        kinds = {type(v) for v in get_args(annotation)}
        return ("string" if kinds == {str} else None), False
    if origin in (list, set, frozenset, tuple):
        return "array", False
    if origin is dict:
        return "object", False
    if isinstance(annotation, type):
        if issubclass(annotation, bool):
            return "boolean", False
        if issubclass(annotation, str | uuid.UUID | datetime | date | time):
            return "string", False
        if issubclass(annotation, BaseModel):
            return "object", False
    return None, False


_EXPECTED = {
    "string": "expected a string",
    "boolean": "expected true or false",
    "array": "expected an array (a list)",
    "object": "expected an object",
}
# JSON gives str; Python callers (the CSV import, the dashboard) may pass the parsed value.
_PY_KIND = {
    "string": (str, uuid.UUID, date, time),
    "boolean": (bool,),
    "array": (list, tuple, set, frozenset),
    "object": (dict, BaseModel),
}


class StrictBody(SQLModel):
    """A request body whose JSON types are checked before any other validator runs.

    Pydantic would turn ``1`` into ``True`` and hand a list to a validator that expects a
    string (a 500, issue 18). Here a value of the wrong JSON type is a 422 naming the field.
    A PATCH model names the stored model in ``__stored__``: a field that may not be empty
    there may not be set to ``null`` here either (``null`` would otherwise be written as is).
    """

    __stored__: ClassVar[type[BaseModel] | None] = None
    # Other JSON kinds a field's own validator reads, e.g. (("languages", "string"),).
    __also_accepts__: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        errors: list[InitErrorDetails] = []
        for key, null_refused, kind, also, item_kind in _json_checks(cls):
            if key not in data:
                continue
            value = data[key]
            if value is None:
                if null_refused:
                    problem = PydanticCustomError("null_not_allowed", "may not be null")
                    errors.append(InitErrorDetails(type=problem, loc=(key,), input=value))
                continue
            if kind is None or isinstance(value, also):
                continue
            if not isinstance(value, _PY_KIND[kind]) or (
                kind != "boolean" and isinstance(value, bool)
            ):
                problem = PydanticCustomError("json_type", _EXPECTED[kind])
                errors.append(InitErrorDetails(type=problem, loc=(key,), input=value))
            elif kind == "array":
                for i, item in enumerate(value):
                    if item_kind and not isinstance(item, _PY_KIND[item_kind]):
                        problem = PydanticCustomError("json_type", _EXPECTED[item_kind])
                        errors.append(InitErrorDetails(type=problem, loc=(key, i), input=item))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


# Per body class: (key, null refused, JSON kind, other accepted Python types, item kind).
_JsonCheck = tuple[str, bool, str | None, tuple[type, ...], str | None]
_JSON_CHECKS: dict[type, tuple[_JsonCheck, ...]] = {}


def _json_checks(cls: type[StrictBody]) -> tuple[_JsonCheck, ...]:
    """What ``_json_types`` checks for each field, worked out once per class: reading the
    annotations on every call cost a CSV import of 100,000 rows seconds (issue 20)."""
    checks = _JSON_CHECKS.get(cls)
    if checks is None:
        stored = cls.__stored__.model_fields if cls.__stored__ is not None else {}
        found = []
        for name, field in cls.model_fields.items():
            also = tuple(
                t
                for field_name, kind in cls.__also_accepts__
                if field_name == name
                for t in _PY_KIND[kind]
            )
            found.append(
                (
                    field.alias or name,
                    name in stored and not _json_kind(stored[name].annotation)[1],
                    _json_kind(field.annotation)[0],
                    also,
                    _json_kind(_items(field.annotation))[0],
                )
            )
        checks = _JSON_CHECKS[cls] = tuple(found)
    return checks


def _items(annotation: object) -> object:
    """The item type of ``list[X]`` or ``list[X] | None``."""
    for arg in (annotation, *get_args(annotation)):
        if get_origin(arg) in (list, set, frozenset) and get_args(arg):
            return get_args(arg)[0]
    return None


# Far beyond any real list, and within a 32-bit integer: a larger offset was passed on to
# the database and overflowed its BIGINT, a 500 (issue 18). Beyond it is a 422 naming `skip`.
MAX_SKIP = 2**31 - 1
Skip = Annotated[int, Query(ge=0, le=MAX_SKIP, description="how many to leave out")]

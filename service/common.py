"""Small shared pieces: ids, UTC time, list envelopes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import DateTime
from sqlmodel import Field

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


def timestamp_field(*, nullable: bool = False, index: bool = False):  # type: ignore[no-untyped-def]
    kwargs = {"sa_type": DateTime(timezone=True), "nullable": nullable, "index": index}
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

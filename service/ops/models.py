"""Operational state: the scheduler's heartbeat."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from service.common import timestamp_field


class Heartbeat(SQLModel, table=True):
    """The active scheduler writes here; /readyz reports its age."""

    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=200)
    at: datetime = timestamp_field()

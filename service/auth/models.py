"""Staff users and their roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field


class Role(StrEnum):
    viewer = "viewer"
    coordinator = "coordinator"
    admin = "admin"

    @property
    def level(self) -> int:
        return {"viewer": 0, "coordinator": 1, "admin": 2}[self.value]


class UserBase(SQLModel):
    email: str = Field(min_length=3, max_length=254, sa_column_kwargs={"unique": True})
    full_name: str = Field(min_length=1, max_length=200)
    role: Role = Field(default=Role.viewer, sa_type=String(16))
    is_active: bool = True


class User(UserBase, table=True):
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    hashed_password: str = Field(max_length=200)
    created_at: datetime = timestamp_field()
    last_login_at: datetime | None = timestamp_field(nullable=True)


MIN_PASSWORD_LENGTH = 10


class UserCreate(UserBase):
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=200)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip().lower()
        if "@" not in value and not value.isidentifier():
            raise ValueError("use an email address or a simple login name")
        return value


class UserUpdate(SQLModel):
    full_name: str | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=200)


class UserPublic(UserBase):
    id: uuid.UUID
    organization_id: uuid.UUID
    created_at: datetime


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"

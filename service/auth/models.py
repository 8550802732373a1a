"""Staff users and their roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from service.common import StrictBody, id_field, timestamp_field
from service.texts import N_, TextError


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
    # Carried in every bearer token and session cookie; raising it (logout, a new password,
    # deactivation, a new role) makes every token and session issued before it invalid.
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class LoginThrottle(SQLModel, table=True):
    """Failed logins counted per account and per client address (keys are keyed hashes,
    never the login or the address itself), in the database so every API replica sees them."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=80)
    failures: int = Field(default=0)
    last_failure_at: datetime = timestamp_field(index=True)
    locked_until: datetime | None = timestamp_field(nullable=True)


# The strength rules (at least 12 characters, not common, not the user's own name) are in
# service/auth/passwords.py and applied by the service layer, which knows the organization.
MAX_PASSWORD_LENGTH = 200


class UserCreate(StrictBody, UserBase):
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip().lower()
        if "@" not in value and not value.isidentifier():
            raise TextError(N_("use an email address or a simple login name"))
        return value


class UserUpdate(StrictBody):
    __stored__ = UserBase
    full_name: str | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=MAX_PASSWORD_LENGTH)


class UserPublic(UserBase):
    id: uuid.UUID
    organization_id: uuid.UUID
    created_at: datetime


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"

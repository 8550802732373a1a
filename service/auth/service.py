"""Staff users: creation and authentication."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from service.audit.service import Actor, record
from service.auth.models import User, UserCreate, UserUpdate
from service.auth.security import hash_password, verify_password
from service.common import utcnow
from service.errors import Conflict, NotFound
from service.registry.models import Organization


def get_or_create_organization(
    *, session: Session, name: str, timezone: str = "Asia/Tokyo"
) -> Organization:
    org = session.exec(select(Organization).where(Organization.name == name)).first()
    if org is None:
        org = Organization(name=name, timezone=timezone)
        session.add(org)
        session.flush()
    return org


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def create_user(
    *, session: Session, organization_id: uuid.UUID, data: UserCreate, actor: Actor
) -> User:
    if get_user_by_email(session=session, email=data.email):
        raise Conflict(f"a user with login {data.email!r} already exists", field="email")
    user = User(
        organization_id=organization_id,
        email=data.email,
        full_name=data.full_name,
        role=data.role,
        is_active=data.is_active,
        hashed_password=hash_password(data.password),
    )
    session.add(user)
    session.flush()
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="create",
        entity_type="user",
        entity_id=user.id,
        fields=[f for f in data.model_fields_set if f != "password"] + ["password"],
    )
    return user


def update_user(
    *,
    session: Session,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    data: UserUpdate,
    actor: Actor,
) -> User:
    user = get_user(session=session, organization_id=organization_id, user_id=user_id)
    changes = data.model_dump(exclude_unset=True)
    password = changes.pop("password", None)
    user.sqlmodel_update(changes)
    if password:
        user.hashed_password = hash_password(password)
        changes["password"] = True
    session.add(user)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="update",
        entity_type="user",
        entity_id=user.id,
        fields=changes.keys(),
    )
    return user


def get_user(*, session: Session, organization_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or user.organization_id != organization_id:
        raise NotFound("user not found")
    return user


def list_users(*, session: Session, organization_id: uuid.UUID) -> list[User]:
    return list(
        session.exec(
            select(User).where(User.organization_id == organization_id).order_by(User.email)
        ).all()
    )


def authenticate(*, session: Session, email: str, password: str) -> User | None:
    user = get_user_by_email(session=session, email=email)
    if not verify_password(password, user.hashed_password if user else None):
        return None
    assert user is not None
    if not user.is_active:
        return None
    user.last_login_at = utcnow()
    session.add(user)
    return user

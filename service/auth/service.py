"""Staff users: creation and authentication."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session, select

from service.audit.service import Actor, record
from service.auth import throttle
from service.auth.models import Role, User, UserCreate, UserUpdate
from service.auth.passwords import MESSAGES, Weakness, weakness
from service.auth.security import hash_password, verify_password
from service.common import utcnow
from service.config import Settings
from service.errors import Conflict, Invalid, NotFound
from service.registry.models import Organization
from service.texts import N_


class WeakPassword(Invalid):
    """A password the policy refuses; ``weakness`` says why (the dashboard translates it)."""

    def __init__(self, reason: Weakness) -> None:
        super().__init__(MESSAGES[reason], field="password")
        self.weakness = reason


class LastAdmin(Conflict):
    """The change would leave the organization with no active admin to manage it."""


def check_password(
    *, session: Session, password: str, email: str, full_name: str, organization_id: uuid.UUID
) -> None:
    """Apply the password policy with what a targeted guesser knows about this account."""
    org = session.get(Organization, organization_id)
    context = [email, full_name, org.name if org else "", "mimamori"]
    reason = weakness(password, context=context)
    if reason is not None:
        raise WeakPassword(reason)


def revoke_sessions(user: User) -> None:
    """End every bearer token and dashboard session issued to ``user`` so far."""
    user.token_version = (user.token_version or 0) + 1


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
        raise Conflict(
            N_("a user with login %(email)s already exists", email=repr(data.email)),
            field="email",
        )
    check_password(
        session=session,
        password=data.password,
        email=data.email,
        full_name=data.full_name,
        organization_id=organization_id,
    )
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
    role = changes.get("role")
    active = changes.get("is_active")
    _keep_an_admin(session, user, role=role, is_active=active)
    revoke = (role is not None and Role(role) != Role(user.role)) or (
        active is not None and active != user.is_active
    )
    user.sqlmodel_update(changes)
    if password:
        check_password(
            session=session,
            password=password,
            email=user.email,
            full_name=user.full_name,
            organization_id=user.organization_id,
        )
        user.hashed_password = hash_password(password)
        changes["password"] = True
        revoke = True
    if revoke:
        revoke_sessions(user)
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


def _keep_an_admin(
    session: Session, user: User, *, role: Role | str | None, is_active: bool | None
) -> None:
    """Refuse to demote or deactivate the organization's last active admin."""
    if Role(user.role) != Role.admin or not user.is_active:
        return
    stays_admin = (role is None or Role(role) == Role.admin) and is_active is not False
    if stays_admin:
        return
    others = session.exec(
        select(User.id)
        .where(
            User.organization_id == user.organization_id,
            User.role == Role.admin.value,
            User.is_active == True,  # noqa: E712 (SQL, not Python)
            User.id != user.id,
        )
        .with_for_update()
    ).first()
    if others is None:
        raise LastAdmin(
            f"{user.email} is the organization's last active admin: make another user an "
            "admin first, or nobody could manage users any more",
            field="role" if role is not None and Role(role) != Role.admin else "is_active",
        )


def change_password(*, session: Session, user: User, password: str, actor: Actor) -> None:
    """A user's own new password: checked by the policy, and every old session ends."""
    check_password(
        session=session,
        password=password,
        email=user.email,
        full_name=user.full_name,
        organization_id=user.organization_id,
    )
    user.hashed_password = hash_password(password)
    revoke_sessions(user)
    session.add(user)
    record(
        session=session,
        organization_id=user.organization_id,
        actor=actor,
        action="update",
        entity_type="user",
        entity_id=user.id,
        fields=["password"],
    )


def get_user(*, session: Session, organization_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or user.organization_id != organization_id:
        raise NotFound(N_("user not found"))
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


def login_throttled(
    *,
    session: Session,
    settings: Settings,
    login: str,
    password: str,
    address: str | None,
    now: datetime,
) -> User | int | None:
    """``authenticate`` behind the throttle: the user, None for a wrong login or password
    (counted), or the seconds to wait while the account or the address is locked out (the
    password is then not even checked). Failures are committed here, success is not."""
    limits = throttle.limits_for(settings, login=login, address=address)
    wait = throttle.retry_after(session, limits, now)
    if wait:
        return wait
    user = authenticate(session=session, email=login, password=password)
    if user is None:
        throttle.record_failure(session, limits, now)
        session.commit()
        return None
    throttle.record_success(session, limits)
    return user

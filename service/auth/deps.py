"""FastAPI dependencies: who is calling, for which organization, with which role."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer

from service.audit.service import Actor
from service.auth.models import Role, User
from service.auth.security import decode_access_token
from service.config import Settings, get_settings
from service.db import SessionDep
from service.registry.models import Organization
from service.texts import N_

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

_UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail=N_("not authenticated: log in at /api/v1/auth/token"),
    headers={"WWW-Authenticate": "Bearer"},
)

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_current_user(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if not token:
        raise _UNAUTHORIZED
    claims = decode_access_token(settings=settings, token=token)
    if not claims:
        raise _UNAUTHORIZED
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except (KeyError, ValueError):
        raise _UNAUTHORIZED from None
    user = session.get(User, user_id)
    if (
        user is None
        or not user.is_active
        or str(user.organization_id) != claims.get("org")
        or not is_current_version(user, claims.get("ver"))
    ):
        raise _UNAUTHORIZED
    return user


def is_current_version(user: User, version: object) -> bool:
    """A token or session issued before the user's last logout, password change,
    deactivation or role change carries an older version and is refused."""
    return type(version) is int and version == user.token_version


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_current_org(user: CurrentUser, session: SessionDep) -> Organization:
    org = session.get(Organization, user.organization_id)
    if org is None:
        raise _UNAUTHORIZED
    return org


CurrentOrg = Annotated[Organization, Depends(get_current_org)]


def actor_for(user: User) -> Actor:
    return Actor(label=f"{user.full_name} <{user.email}>", user_id=user.id)


def require_role(minimum: Role):  # type: ignore[no-untyped-def]
    def check(user: CurrentUser) -> User:
        if Role(user.role).level < minimum.level:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=N_(
                    "this action needs the %(needed)s role; you are %(role)s",
                    needed=minimum.value,
                    role=str(user.role),
                ),
            )
        return user

    return check


Coordinator = Annotated[User, Depends(require_role(Role.coordinator))]
Admin = Annotated[User, Depends(require_role(Role.admin))]

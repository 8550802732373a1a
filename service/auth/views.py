"""Token login and staff user management."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from service.auth import service
from service.auth.deps import Admin, CurrentUser, SettingsDep, actor_for
from service.auth.models import Token, UserCreate, UserPublic, UserUpdate
from service.auth.security import create_access_token
from service.common import utcnow
from service.db import SessionDep
from service.texts import N_

router = APIRouter(tags=["auth"])


def too_many_attempts(seconds: int) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        detail=N_("too many failed logins: try again in %(seconds)s seconds", seconds=seconds),
        headers={"Retry-After": str(seconds)},
    )


@router.post(
    "/auth/token",
    response_model=Token,
    responses={
        401: {"description": "Wrong login or password"},
        429: {"description": "Too many failed logins; the Retry-After header says for how long"},
    },
)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    """A bearer token. Failed logins are throttled per account and per client address."""
    user = service.login_throttled(
        session=session,
        settings=settings,
        login=form.username,
        password=form.password,
        address=request.client.host if request.client else None,
        now=utcnow(),
    )
    if isinstance(user, int):
        raise too_many_attempts(user)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=N_("wrong login or password"),
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = create_access_token(
        settings=settings, user_id=user.id, org_id=user.organization_id, version=user.token_version
    )
    session.commit()
    return Token(access_token=token)


@router.post("/auth/logout", status_code=204)
def logout(session: SessionDep, user: CurrentUser) -> Response:
    """End this user's every token and dashboard session, this one included."""
    service.revoke_sessions(user)
    session.add(user)
    session.commit()
    return Response(status_code=204)


@router.get("/users/me", response_model=UserPublic)
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, user: Admin) -> list[UserPublic]:
    return [
        UserPublic.model_validate(u)
        for u in service.list_users(session=session, organization_id=user.organization_id)
    ]


@router.post("/users", response_model=UserPublic, status_code=201)
def create_user(session: SessionDep, user: Admin, data: UserCreate) -> UserPublic:
    created = service.create_user(
        session=session, organization_id=user.organization_id, data=data, actor=actor_for(user)
    )
    session.commit()
    return UserPublic.model_validate(created)


@router.patch("/users/{user_id}", response_model=UserPublic)
def update_user(
    session: SessionDep, user: Admin, user_id: uuid.UUID, data: UserUpdate
) -> UserPublic:
    updated = service.update_user(
        session=session,
        organization_id=user.organization_id,
        user_id=user_id,
        data=data,
        actor=actor_for(user),
    )
    session.commit()
    return UserPublic.model_validate(updated)

"""Token login and staff user management."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from service.auth import service
from service.auth.deps import Admin, CurrentUser, SettingsDep, actor_for
from service.auth.models import Token, UserCreate, UserPublic, UserUpdate
from service.auth.security import create_access_token
from service.db import SessionDep

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=Token)
def login(
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    user = service.authenticate(session=session, email=form.username, password=form.password)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="wrong login or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    session.commit()
    return Token(
        access_token=create_access_token(
            settings=settings, user_id=user.id, org_id=user.organization_id
        )
    )


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

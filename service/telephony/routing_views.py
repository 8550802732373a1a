"""Unrouted inbound messages under /api/v1: list them, and claim one for the caller's
organization (the command the inbox's claim button calls too)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from sqlmodel import SQLModel

from service.auth.deps import Coordinator, CurrentUser, actor_for
from service.checkins.routing import UnroutedMessage, claim, unrouted_messages
from service.clock import get_clock
from service.db import SessionDep
from service.telephony.models import InboundMessage

router = APIRouter(tags=["tasks"])


class Claimed(SQLModel):
    task_id: uuid.UUID
    inbound_id: uuid.UUID
    claimed_at: datetime


@router.get("/inbound/unrouted", response_model=list[UnroutedMessage])
def list_unrouted(session: SessionDep, user: CurrentUser) -> list[UnroutedMessage]:
    """Messages no organization could be identified for: every organization sees them
    (and nothing else of another organization) until one claims them."""
    return unrouted_messages(session)


@router.post("/tasks/{task_id}/claim", response_model=Claimed)
def claim_task(session: SessionDep, user: Coordinator, task_id: uuid.UUID) -> Claimed:
    """Take an unrouted message for the caller's organization (the inbox's claim button).
    409 if an organization has claimed it already."""
    task = claim(
        session,
        organization_id=user.organization_id,
        task_id=task_id,
        actor=actor_for(user),
        now=get_clock().now(),
    )
    session.commit()
    inbound = session.get(InboundMessage, task.inbound_id)
    assert inbound is not None and inbound.claimed_at is not None
    return Claimed(task_id=task.id, inbound_id=inbound.id, claimed_at=inbound.claimed_at)

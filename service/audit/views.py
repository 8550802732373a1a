from __future__ import annotations

from fastapi import APIRouter, Query

from service.audit.models import AuditEntryPublic
from service.audit.service import list_entries
from service.auth.deps import Coordinator
from service.common import Page, Skip
from service.db import SessionDep

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=Page[AuditEntryPublic])
def read_audit_log(
    session: SessionDep,
    user: Coordinator,
    entity_type: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    skip: Skip = 0,
    limit: int = Query(100, ge=1, le=500),
) -> Page[AuditEntryPublic]:
    rows, count = list_entries(
        session=session,
        organization_id=user.organization_id,
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        skip=skip,
        limit=limit,
    )
    return Page(
        data=[AuditEntryPublic.model_validate(r, from_attributes=True) for r in rows], count=count
    )

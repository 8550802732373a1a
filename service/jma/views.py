"""JMA endpoints under /api/v1/jma: the push endpoint for a relay, and the trigger policy.

The push endpoint is not for staff: a relay from a commercial JMA data service posts raw
bulletin XML with a shared secret (MIMAMORI_JMA_PUSH_TOKEN). Without the setting it answers
503, so an endpoint nobody configured can never be used.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import SQLModel

from service.auth.deps import Coordinator, CurrentUser, SettingsDep, actor_for
from service.clock import get_clock
from service.common import Page
from service.db import SessionDep, get_engine
from service.errors import ErrorResponse, Invalid
from service.jma import service as jma
from service.jma.models import (
    JmaDecisionPublic,
    JmaTriggerPolicyPublic,
    JmaTriggerPolicyUpdate,
)
from service.jma.parser import MAX_DOCUMENT_BYTES, BulletinError, parse_bulletin
from service.texts import N_

log = logging.getLogger(__name__)
router = APIRouter(prefix="/jma", tags=["jma"])

_push_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="JmaPushToken",
    description="The shared secret MIMAMORI_JMA_PUSH_TOKEN, as `Authorization: Bearer …`.",
)
XML_TYPES = ("application/xml", "text/xml")


def require_push_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_push_bearer)],
) -> None:
    configured = settings.jma_push_token
    if not configured:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the JMA push endpoint is off: set MIMAMORI_JMA_PUSH_TOKEN to enable it",
        )
    given = credentials.credentials if credentials is not None else ""
    # compare_digest: the time taken must not reveal how much of the secret was right.
    if not given or not hmac.compare_digest(given.encode(), configured.encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid JMA push token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


class PushResult(SQLModel):
    status: str  # processed, or duplicate (already processed: nothing done again)
    bulletin_id: uuid.UUID
    kind: str
    event_id: str
    bulletin_status: str  # real, drill, test
    info_type: str  # issued, corrected, cancelled
    broadcasts: int = 0  # organizations whose residents will be checked on
    rounds_started: int = 0  # rounds started now (the rest wait for a hold-off)
    dry_runs: int = 0  # drills and tests: recorded, nobody contacted


@router.post(
    "/bulletins",
    response_model=PushResult,
    dependencies=[Depends(require_push_token)],
    responses={
        401: {"model": ErrorResponse, "description": "No push token, or not the right one."},
        413: {"model": ErrorResponse, "description": "The document is too large."},
        415: {"model": ErrorResponse, "description": "The body is not XML."},
        422: {"model": ErrorResponse, "description": "Not a usable JMA bulletin."},
        503: {"model": ErrorResponse, "description": "The push endpoint is off."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/xml": {"schema": {"type": "string"}}},
            "description": "One VXSE51, VXSE53 or VTSE41 document, as JMA published it.",
        }
    },
)
async def push_bulletin(request: Request) -> PushResult:
    """Process one bulletin pushed by a relay. Pushing the same bulletin again is harmless."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in XML_TYPES and not content_type.endswith("+xml"):
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the bulletin as application/xml, not {content_type or 'no type'}",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
        raise HTTPException(
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            detail=f"a bulletin is at most {MAX_DOCUMENT_BYTES} bytes",
        )
    body = await _read_limited(request, MAX_DOCUMENT_BYTES)
    try:
        bulletin = parse_bulletin(body)
    except BulletinError as exc:
        raise Invalid(N_("not a usable JMA bulletin: %(reason)s", reason=str(exc))) from None
    result = await run_in_threadpool(
        jma.process_bulletin,
        get_engine(),
        bulletin,
        now_fn=get_clock().now,
        source="push",
        document=body,
    )
    return PushResult(
        status="duplicate" if result.duplicate else "processed",
        bulletin_id=result.bulletin_id,
        kind=bulletin.kind.value,
        event_id=bulletin.event_id,
        bulletin_status=bulletin.status.value,
        info_type=bulletin.info_type.value,
        broadcasts=result.broadcasts,
        rounds_started=len(result.round_ids),
        dry_runs=sum(1 for d in result.decisions if d.dry_run),
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as more than ``limit`` bytes have arrived: a
    chunked body has no Content-Length to check first."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                detail=f"a bulletin is at most {limit} bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/policy", response_model=JmaTriggerPolicyPublic)
def read_policy(session: SessionDep, user: CurrentUser) -> JmaTriggerPolicyPublic:
    """The organization's trigger policy (the defaults until someone saves one)."""
    return jma.get_policy(session=session, organization_id=user.organization_id)


@router.put("/policy", response_model=JmaTriggerPolicyPublic)
def write_policy(
    session: SessionDep, user: Coordinator, data: JmaTriggerPolicyUpdate
) -> JmaTriggerPolicyPublic:
    """Change the trigger policy. Fields left out keep their value; a null
    tsunami_min_kind switches tsunami triggers off."""
    policy = jma.update_policy(
        session=session,
        organization_id=user.organization_id,
        data=data,
        actor=actor_for(user),
        now=get_clock().now(),
    )
    session.commit()
    return policy


@router.get("/decisions", response_model=Page[JmaDecisionPublic])
def read_decisions(
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[JmaDecisionPublic]:
    """What automatic checks decided for this organization, newest first: broadcasts,
    hold-offs, cancellations, and the dry runs of drills with how many would be contacted."""
    rows = jma.list_decisions(session=session, organization_id=user.organization_id, limit=limit)
    return Page(data=rows, count=len(rows))

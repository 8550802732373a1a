"""Writing to the timeline, in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session

from service.timeline.models import TimelineEvent


def timeline(
    session: Session,
    *,
    resident_id: uuid.UUID,
    organization_id: uuid.UUID,
    kind: str,
    at: datetime,
    **fields: Any,
) -> None:
    detail = fields.pop("detail", {})
    session.add(
        TimelineEvent(
            organization_id=organization_id,
            resident_id=resident_id,
            at=at,
            kind=kind,
            detail=detail,
            **fields,
        )
    )

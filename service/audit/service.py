"""Writing and reading the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from service.audit.models import AuditEntry
from service.common import new_id, utcnow


@dataclass(frozen=True)
class Actor:
    """Who is acting: a staff user through the API, or an operator at the command line."""

    label: str
    user_id: uuid.UUID | None = None


def record(
    *,
    session: Session,
    organization_id: uuid.UUID,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | str | None = None,
    fields: Iterable[str] = (),
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to the caller's transaction; it commits or rolls back with the change.

    Its ``at`` is the wall-clock time it was written, on purpose not the service's
    injectable clock: the log keeps the order things were written in even under a fake
    clock that stands still (a catch-up after downtime is one instant to the service).
    Domain times (how late a step was) go in ``detail``."""
    entry = AuditEntry(
        organization_id=organization_id,
        actor=actor.label,
        actor_user_id=actor.user_id,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id is not None else None,
        fields=sorted(fields),
        detail=detail or {},
    )
    session.add(entry)
    return entry


def record_many(
    *, session: Session, organization_id: uuid.UUID, actor: Actor, rows: list[dict[str, Any]]
) -> None:
    """Bulk form for imports: each row has action, entity_type, entity_id, fields, detail."""
    values = entry_values(organization_id=organization_id, actor=actor, rows=rows)
    for start in range(0, len(values), 5000):
        session.execute(insert(AuditEntry), values[start : start + 5000])


def entry_values(
    *, organization_id: uuid.UUID, actor: Actor, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The audit_log rows ``record_many`` writes, for a caller that inserts them itself (the
    CSV import's COPY). Rows that share one ``fields`` object share its sorted list too."""
    now = utcnow()
    sorted_fields: dict[int, tuple[Any, list[str]]] = {}

    def fields_of(fields: Any) -> list[str]:
        hit = sorted_fields.get(id(fields))
        if hit is None or hit[0] is not fields:
            hit = sorted_fields[id(fields)] = (fields, sorted(fields))
        return hit[1]

    return [
        {
            "id": new_id(),
            "organization_id": organization_id,
            "at": now,
            "actor": actor.label,
            "actor_user_id": actor.user_id,
            "action": row["action"],
            "entity_type": row["entity_type"],
            "entity_id": str(row["entity_id"]) if row.get("entity_id") else None,
            "fields": fields_of(row.get("fields", ())),
            "detail": row.get("detail", {}),
        }
        for row in rows
    ]


def list_entries(
    *,
    session: Session,
    organization_id: uuid.UUID,
    entity_type: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    skip: int = 0,
    limit: int = 100,
) -> tuple[list[AuditEntry], int]:
    """The organization's entries, newest first. ``actor`` matches part of the actor's
    label, in any case; ``since`` is inclusive and ``until`` exclusive (aware times)."""
    query = select(AuditEntry).where(AuditEntry.organization_id == organization_id)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        pattern = "%" + actor.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(col(AuditEntry.actor).ilike(pattern, escape="\\"))
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if until is not None:
        query = query.where(col(AuditEntry.at) < until)
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(AuditEntry.at).desc(), col(AuditEntry.id)).offset(skip).limit(limit)
    ).all()
    return list(rows), count


def audit_choices(*, session: Session, organization_id: uuid.UUID) -> tuple[list[str], list[str]]:
    """The actions and entity types the organization's log holds, for a screen's filters."""
    actions = session.exec(
        select(AuditEntry.action)
        .where(AuditEntry.organization_id == organization_id)
        .distinct()
        .order_by(AuditEntry.action)
    ).all()
    entity_types = session.exec(
        select(AuditEntry.entity_type)
        .where(AuditEntry.organization_id == organization_id)
        .distinct()
        .order_by(AuditEntry.entity_type)
    ).all()
    return list(actions), list(entity_types)

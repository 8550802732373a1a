"""Stored translations of residents' replies: finding them, recording results, reading them.

The translation itself never happens here nor in a webhook: ``flows.translate_pending``
(a scheduler job) calls the provider between two short transactions. What a translator is
sent, and when, is audited (kind, provider, source id, character count), never the text.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlmodel import Session, col

from service.audit.service import Actor, record
from service.registry.models import Resident
from service.telephony.models import InboundMessage, OutboxMessage
from service.translation.languages import STAFF_LANGUAGE, differs_from
from service.translation.models import Translation, TranslationKind, TranslationStatus
from service.translation.policy import LOOKBACK, MAX_CHARS, needs_translation

#: Who sends replies to the translator, in the audit log.
TRANSLATION_ACTOR = Actor(label="scheduler")
AUDIT_ACTION = "translate"
DISCOVER_BATCH = 500


def discover_replies(session: Session, *, now: datetime, limit: int | None = None) -> int:
    """Give every recent inbound SMS that has no translation row yet its row.

    Looked at: SMS and app messages (WhatsApp, LINE; not keypad digits) that an organization
    owns, from a resident or an unknown number (a member writes to us in Japanese), acted on
    within ``LOOKBACK``. Free text becomes ``pending``; digits, emoji and Japanese become
    ``skipped``, so that they are looked at once. The one-character bodies that most replies
    are ("1") are left out in the query itself, so a round's worth of "1" costs the job nothing.
    """
    since = now - LOOKBACK
    limit = limit or DISCOVER_BATCH
    rows = session.execute(
        select(InboundMessage.id, InboundMessage.organization_id, InboundMessage.body)
        .where(
            col(InboundMessage.processed_at) >= since,
            # Written words from any channel (not keypad digits): SMS, WhatsApp, LINE.
            col(InboundMessage.channel).in_(("sms", "whatsapp", "line")),
            col(InboundMessage.member_id).is_(None),
            col(InboundMessage.organization_id).is_not(None),
            func.length(InboundMessage.body) > 1,
            ~exists().where(Translation.inbound_id == InboundMessage.id),
        )
        .order_by(InboundMessage.processed_at)
        .limit(limit)
    ).all()
    for inbound_id, organization_id, body in rows:
        wanted = needs_translation(body)
        session.add(
            Translation(
                organization_id=organization_id,
                kind=TranslationKind.reply,
                inbound_id=inbound_id,
                target_language=STAFF_LANGUAGE,
                status=TranslationStatus.pending if wanted else TranslationStatus.skipped,
                next_try_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    return len(rows)


@dataclass(frozen=True, slots=True)
class DueItem:
    """One pending reply, as much as the job needs outside a transaction."""

    translation_id: uuid.UUID
    organization_id: uuid.UUID | None
    inbound_id: uuid.UUID
    text: str
    tries: int
    created_at: datetime


def due_replies(session: Session, *, now: datetime, limit: int) -> list[DueItem]:
    """Pending reply translations whose time has come, oldest first, with their text."""
    rows = session.execute(
        select(Translation, InboundMessage.body)
        .join(InboundMessage, InboundMessage.id == Translation.inbound_id)
        .where(
            Translation.status == TranslationStatus.pending,
            Translation.kind == TranslationKind.reply,
            col(Translation.next_try_at) <= now,
        )
        .order_by(Translation.next_try_at)
        .limit(limit)
    ).all()
    return [
        DueItem(
            translation_id=row.id,
            organization_id=row.organization_id,
            inbound_id=row.inbound_id,  # type: ignore[arg-type]
            text=(body or "")[:MAX_CHARS],
            tries=row.tries,
            created_at=row.created_at,
        )
        for row, body in rows
    ]


def audit_sent(
    session: Session,
    *,
    organization_id: uuid.UUID | None,
    actor: Actor,
    kind: TranslationKind,
    provider: str,
    entity_type: str,
    entity_id: uuid.UUID,
    chars: int,
    target: str,
    outcome: str,
) -> None:
    """Record that a text went to a translator: what kind, to whom, how long. No text."""
    if organization_id is None:
        return
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action=AUDIT_ACTION,
        entity_type=entity_type,
        entity_id=entity_id,
        detail={
            "kind": kind.value,
            "provider": provider,
            "chars": chars,
            "target": target,
            "outcome": outcome,
        },
    )


def hold_pending(session: Session, *, now: datetime) -> int:
    """With no provider, pending items wait as "not configured" (and show no note)."""
    result = session.execute(
        update(Translation)
        .where(col(Translation.status) == TranslationStatus.pending)
        .values(status=TranslationStatus.not_configured, updated_at=now)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


def resume_held(session: Session, *, now: datetime) -> int:
    """A provider is configured again: recent "not configured" replies are translated."""
    result = session.execute(
        update(Translation)
        .where(
            col(Translation.status) == TranslationStatus.not_configured,
            Translation.kind == TranslationKind.reply,
            col(Translation.created_at) >= now - LOOKBACK,
        )
        .values(status=TranslationStatus.pending, next_try_at=now, updated_at=now)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


def for_inbound(
    session: Session, *, organization_id: uuid.UUID, inbound_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Translation]:
    """The translations of these inbound messages that belong to this organization."""
    ids = [i for i in inbound_ids if i is not None]
    if not ids:
        return {}
    rows = session.execute(
        select(Translation).where(
            col(Translation.inbound_id).in_(ids),
            Translation.organization_id == organization_id,
        )
    ).scalars()
    return {row.inbound_id: row for row in rows if row.inbound_id is not None}


def for_outbox(
    session: Session, *, organization_id: uuid.UUID, outbox_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Translation]:
    """The staff answers (with their Japanese original) behind these outbox messages."""
    ids = [i for i in outbox_ids if i is not None]
    if not ids:
        return {}
    rows = session.execute(
        select(Translation).where(
            col(Translation.outbox_id).in_(ids),
            Translation.organization_id == organization_id,
        )
    ).scalars()
    return {row.outbox_id: row for row in rows if row.outbox_id is not None}


def display(row: Translation | None, registered: str | None) -> dict[str, Any] | None:
    """What a page shows of a stored translation under the original: nothing when there is
    nothing to say (no provider, not free text, already Japanese). The detected language is
    flagged when it is not the registry's (or the registry has none, as for a stranger)."""
    if row is None or row.status in (TranslationStatus.not_configured, TranslationStatus.skipped):
        return None
    return {
        "status": str(row.status),
        "text": row.translated_text,
        "detected": row.detected_language,
        "detected_differs": bool(row.detected_language)
        and (registered is None or differs_from(row.detected_language, registered)),
        "error": row.error,
    }


def timeline_details(session: Session, resident_id: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    """Extra timeline detail by inbound or outbox id: a reply's translation (under
    ``translation``), and a translated staff answer's Japanese original (``original``)."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        return {}
    details: dict[uuid.UUID, dict[str, Any]] = {}
    replies = select(InboundMessage.id).where(InboundMessage.resident_id == resident_id)
    for row in session.execute(
        select(Translation).where(
            col(Translation.inbound_id).in_(replies),
            Translation.organization_id == resident.organization_id,
        )
    ).scalars():
        shown = display(row, resident.language)
        if shown is not None and row.inbound_id is not None:
            details[row.inbound_id] = {"translation": shown}
    sent = select(OutboxMessage.id).where(OutboxMessage.resident_id == resident_id)
    for row in session.execute(
        select(Translation).where(
            col(Translation.outbox_id).in_(sent),
            Translation.organization_id == resident.organization_id,
        )
    ).scalars():
        if row.outbox_id is not None and row.source_text and row.status == TranslationStatus.done:
            details[row.outbox_id] = {"original": row.source_text}
    return details

"""The translation job: find new replies, translate what is due, store the outcome.

The provider is called between two transactions, never inside one: a slow translator must
not hold row locks, and nothing about it touches the SMS webhook, which only stores the
reply. One scheduler is active at a time (the leader lock), so two runs never pick the same
item; if that ever happened, the second result would simply overwrite the first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.common import aware
from service.translation import service
from service.translation.errors import (
    PermanentTranslationError,
    TransientTranslationError,
    TranslationError,
)
from service.translation.languages import STAFF_LANGUAGE
from service.translation.models import Translation, TranslationKind, TranslationStatus
from service.translation.policy import after_transient_failure
from service.translation.provider import TranslationResult, Translator

log = logging.getLogger(__name__)


def translate_pending(
    engine: Engine,
    now_fn: Callable[[], datetime],
    translator: Translator | None,
    *,
    max_batches: int = 20,
) -> int:
    """One run of the job; returns how many replies were translated.

    Without a translator nothing is sent and nothing new is queued; items still pending
    from an earlier configuration wait as "not configured".
    """
    now = now_fn()
    with Session(engine) as session:
        if translator is None:
            service.hold_pending(session, now=now)
            session.commit()
            return 0
        service.resume_held(session, now=now)
        # After a big round there may be thousands of new replies: look at them all now,
        # a batch at a time (each batch's rows are visible to the next one's query).
        for _ in range(max_batches):
            if service.discover_replies(session, now=now) < service.DISCOVER_BATCH:
                break
        session.commit()
    done = 0
    for _ in range(max_batches):
        now = now_fn()
        with Session(engine) as session:
            items = service.due_replies(session, now=now, limit=translator.max_batch)
        if not items:
            break
        done += _translate_batch(engine, translator, items, now_fn)
    return done


def _translate_batch(
    engine: Engine,
    translator: Translator,
    items: list[service.DueItem],
    now_fn: Callable[[], datetime],
) -> int:
    results: list[TranslationResult] | None = None
    failure: TranslationError | None = None
    try:
        results = translator.translate([item.text for item in items], STAFF_LANGUAGE)
    except TranslationError as error:
        failure = error
    except Exception as error:  # a bug or an unforeseen library error: retry, and say so
        log.exception("translator %s failed unexpectedly", translator.name)
        failure = TransientTranslationError(f"{translator.name}: {type(error).__name__}")
    now = now_fn()
    with Session(engine) as session:
        for index, item in enumerate(items):
            row = session.get(Translation, item.translation_id)
            if row is None or row.status != TranslationStatus.pending:
                continue
            result = results[index] if results is not None else None
            outcome = _apply(row, item, translator.name, result, failure, now)
            service.audit_sent(
                session,
                organization_id=item.organization_id,
                actor=service.TRANSLATION_ACTOR,
                kind=TranslationKind.reply,
                provider=translator.name,
                entity_type="inbound_message",
                entity_id=item.inbound_id,
                chars=len(item.text),
                target=STAFF_LANGUAGE,
                outcome=outcome,
            )
            session.add(row)
        session.commit()
    if failure is not None:
        log.warning(
            "translation of %d replies failed: %s",
            len(items),
            failure.reason,
            extra={"event": "translation.failed", "provider": translator.name},
        )
        return 0
    return len(items)


def _apply(
    row: Translation,
    item: service.DueItem,
    provider: str,
    result: TranslationResult | None,
    failure: TranslationError | None,
    now: datetime,
) -> str:
    """Write one outcome on its row; returns "done", "retry" or "failed" for the audit."""
    row.provider = provider
    row.tries = item.tries + 1
    row.updated_at = now
    if result is not None:
        row.status = TranslationStatus.done
        row.translated_text = result.text
        row.detected_language = (result.detected_language or "")[:16] or None
        row.translated_at = now
        row.error = None
        return "done"
    assert failure is not None
    row.error = failure.reason[:500]
    if isinstance(failure, PermanentTranslationError):
        row.status = TranslationStatus.failed
        return "failed"
    retry_after = failure.retry_after if isinstance(failure, TransientTranslationError) else None
    decision = after_transient_failure(
        tries=row.tries,
        created_at=aware(item.created_at) or now,
        now=now,
        retry_after=retry_after,
    )
    if decision.give_up:
        row.status = TranslationStatus.failed
        return "failed"
    row.next_try_at = decision.next_try_at  # type: ignore[assignment]
    return "retry"

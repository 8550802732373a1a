"""Staff answers from the inbox, in the resident's language: the commands both the
dashboard and the API call.

Two steps. ``draft_answer`` translates what staff wrote in Japanese into the recipient's
language and stores it, so staff see (and may correct) exactly what will be sent.
``send_answer`` sends the text staff confirmed, or a ready-made answer from the resident
catalogs, through the outbox like every other message. Without a translator, staff write
in the resident's language themselves or pick a ready-made answer.

Only the answer text goes to the translator: never the resident's name, number or case.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from i18n.languages import FALLBACK_CODE, get_language, mark_direction
from i18n.messages import READY_ANSWER_IDS
from i18n.names import LocalizedName
from i18n.render import render
from service.audit.service import Actor, record
from service.checkins import service as checkins
from service.checkins.models import StaffTask
from service.errors import Invalid, NotFound
from service.escalations import service as escalations
from service.registry.models import Organization, Resident
from service.telephony.models import InboundMessage, OutboxChannel, OutboxMessage, OutboxPurpose
from service.telephony.outbox import enqueue
from service.texts import N_
from service.translation import service as translations
from service.translation.errors import TranslationError
from service.translation.languages import STAFF_LANGUAGE, WRITTEN_BY_STAFF, base_language
from service.translation.models import Translation, TranslationKind, TranslationStatus
from service.translation.policy import MAX_CHARS
from service.translation.provider import Translator

log = logging.getLogger(__name__)

#: An SMS answer is cut here, as before (about seven SMS segments in UCS-2).
MAX_ANSWER_CHARS = 1000


class AnswerError(Invalid):
    """An answer that cannot be drafted or sent; ``code`` picks the dashboard's wording."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who an answer goes to and in which language (never sent to a translator)."""

    task: StaffTask
    resident: Resident | None
    to_phone: str | None
    language: str


def load_task(session: Session, *, organization_id: uuid.UUID, task_id: uuid.UUID) -> StaffTask:
    task = session.get(StaffTask, task_id)
    if task is None or task.organization_id != organization_id:
        raise NotFound(N_("task not found"))
    return task


def _language_from_detected(detected: str | None) -> str | None:
    """A provider's detected code as a Mimamori language with a catalog, if there is one."""
    if not detected:
        return None
    lowered = detected.lower()
    if lowered in {"zh-tw", "zh-hk", "zh-hant"}:
        return "zh_Hant"
    base = base_language(lowered)
    candidates = {"zh": "zh_Hans", "pt": "pt_BR", "tl": "fil"}
    code = candidates.get(base or "", base)
    return code if code and get_language(code) is not None else None


def answer_language(
    resident_language: str | None, task_language: str | None, detected: str | None
) -> str:
    """The language to answer in: the resident's registered one; for an unknown sender, the
    one their message was detected in (if Mimamori has a catalog for it); else Easy
    Japanese, what Japanese disaster response uses when the language is not known."""
    return resident_language or task_language or _language_from_detected(detected) or FALLBACK_CODE


def recipient(session: Session, task: StaffTask) -> Recipient:
    """The number to answer and the language to answer in (see ``answer_language``)."""
    message = session.get(InboundMessage, task.inbound_id) if task.inbound_id else None
    resident = session.get(Resident, task.resident_id) if task.resident_id else None
    to_phone = message.from_phone if message is not None else None
    if to_phone is None and resident is not None:
        to_phone = checkins.pick_number(resident, "sms")
    detected = None
    if message is not None and task.organization_id is not None:
        found = translations.for_inbound(
            session, organization_id=task.organization_id, inbound_ids=[message.id]
        ).get(message.id)
        detected = found.detected_language if found is not None else None
    language = answer_language(resident.language if resident else None, task.language, detected)
    return Recipient(task, resident, to_phone, language)


def draft_answer(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: Actor,
    task_id: uuid.UUID,
    text: str,
    translator: Translator | None,
    now: datetime,
) -> Translation:
    """Translate staff's Japanese answer into the recipient's language and store it.

    The row comes back ``done`` (show the translation for checking), ``failed`` (show why;
    staff may write the answer themselves), ``not_configured`` (no provider) or
    ``skipped`` (the resident reads Japanese: the text is sent as written). The caller
    commits.
    """
    task = load_task(session, organization_id=organization_id, task_id=task_id)
    source = text.strip()
    if not source:
        raise AnswerError("empty", "write the answer first", field="text")
    if len(source) > MAX_ANSWER_CHARS:
        raise AnswerError("too_long", f"at most {MAX_ANSWER_CHARS} characters", field="text")
    target = recipient(session, task).language
    row = Translation(
        organization_id=organization_id,
        kind=TranslationKind.answer,
        task_id=task.id,
        source_text=source,
        detected_language=STAFF_LANGUAGE,
        target_language=target,
        created_at=now,
        updated_at=now,
        next_try_at=now,
    )
    if target in WRITTEN_BY_STAFF:
        row.status, row.translated_text = TranslationStatus.skipped, source
    elif translator is None:
        row.status = TranslationStatus.not_configured
    else:
        row.provider, row.tries = translator.name, 1
        try:
            result = translator.translate([source[:MAX_CHARS]], target, STAFF_LANGUAGE)[0]
        except TranslationError as error:
            row.status, row.error = TranslationStatus.failed, error.reason[:500]
        except Exception as error:  # an unforeseen library error: staff still get a page
            log.exception("translator %s failed unexpectedly", translator.name)
            row.status = TranslationStatus.failed
            row.error = f"{translator.name}: {type(error).__name__}"
        else:
            row.status, row.translated_text = TranslationStatus.done, result.text
            row.translated_at = now
        translations.audit_sent(
            session,
            organization_id=organization_id,
            actor=actor,
            kind=TranslationKind.answer,
            provider=translator.name,
            entity_type="task",
            entity_id=task.id,
            chars=len(source),
            target=target,
            outcome=row.status.value,
        )
    session.add(row)
    session.flush()
    return row


def ready_answer_text(
    session: Session, *, organization_id: uuid.UUID, message_id: str, language: str
) -> str:
    """A ready-made answer in ``language``, signed with the organization's name for it."""
    if message_id not in READY_ANSWER_IDS:
        raise AnswerError("unknown_ready", f"no ready-made answer {message_id!r}", field="ready")
    org = session.get(Organization, organization_id)
    name = LocalizedName.of(org).for_reader(language) if org is not None else ""
    return render(message_id, language, org=name)


def send_answer(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: Actor,
    task_id: uuid.UUID,
    now: datetime,
    body: str | None = None,
    ready: str | None = None,
    draft_id: uuid.UUID | None = None,
) -> OutboxMessage:
    """Queue the answer as an SMS in the recipient's language. The caller commits.

    ``body`` is the text to send as it stands (the checked translation, or what staff
    wrote in the resident's language); ``ready`` a ready-made answer's message id instead.
    ``draft_id`` ties the message to the stored translation it came from, so the timeline
    can show the Japanese original beside what was sent.
    """
    task = load_task(session, organization_id=organization_id, task_id=task_id)
    to = recipient(session, task)
    if ready:
        text = ready_answer_text(
            session, organization_id=organization_id, message_id=ready, language=to.language
        )
    else:
        text = (body or "").strip()
    if not text:
        raise AnswerError("empty", "write the answer first", field="body")
    if not to.to_phone:
        raise AnswerError("no_number", "there is no mobile number to answer to")
    draft = _draft_of(session, organization_id, task.id, draft_id) if not ready else None
    message = enqueue(
        session,
        organization_id=organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.resident_notice,
        to_phone=to.to_phone,
        body=mark_direction(text[:MAX_ANSWER_CHARS], to.language),
        locale=to.language,
        resident_id=to.resident.id if to.resident else None,
        now=now,
    )
    session.flush()
    if draft is not None:
        draft.outbox_id = message.id
        draft.updated_at = now
        session.add(draft)
    if to.resident is not None:
        escalations.timeline(
            session,
            resident_id=to.resident.id,
            organization_id=organization_id,
            kind="inbox.answered",
            at=now,
            actor=actor.label,
            outbox_id=message.id,
        )
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="answer",
        entity_type="task",
        entity_id=task.id,
        fields=["body"],
        detail={
            "language": to.language,
            "ready": ready,
            "translated": bool(draft is not None and draft.status == TranslationStatus.done),
            "edited": bool(draft is not None and draft.translated_text != text),
        },
    )
    return message


def _draft_of(
    session: Session, organization_id: uuid.UUID, task_id: uuid.UUID, draft_id: uuid.UUID | None
) -> Translation | None:
    if draft_id is None:
        return None
    draft = session.get(Translation, draft_id)
    if (
        draft is None
        or draft.organization_id != organization_id
        or draft.task_id != task_id
        or draft.kind != TranslationKind.answer
        or draft.outbox_id is not None
    ):
        raise AnswerError("stale_draft", "that translation is not a draft of this answer")
    return draft

"""What staff do with announcements, for the API and the dashboard alike: compose a notice
in Japanese, get drafts in the recipients' languages, correct and confirm each, see the
cost, and send. Each function works in the caller's transaction; the caller commits.

Only the notice's text goes to the translator: never a resident's name, number or case.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlmodel import Session

from i18n.languages import get_language, mark_direction
from service.announcements import policy
from service.announcements.models import (
    Announcement,
    AnnouncementDelivery,
    AnnouncementStatus,
    AnnouncementText,
    TextOrigin,
)
from service.announcements.recipients import Audience, audience, checked_sites
from service.audit.service import Actor, record
from service.common import new_id
from service.errors import Conflict, Invalid, NotFound
from service.registry.models import Organization
from service.telephony.models import OutboxChannel, OutboxMessage, OutboxPurpose
from service.telephony.outbox import outbox_row
from service.texts import N_, Text
from service.timeline.models import TimelineEvent
from service.translation.errors import TranslationError
from service.translation.languages import WRITTEN_BY_STAFF
from service.translation.provider import Translator
from service.translation.service import AUDIT_ACTION as TRANSLATE_ACTION

log = logging.getLogger(__name__)

ENTITY = "announcement"
#: A queued announcement is tried for this long after it may leave (caps defer, never drop).
DELIVERY_DEADLINE = timedelta(hours=6)
#: The timeline's entry on each resident's page; it carries no text.
TIMELINE_KIND = "announcement.sent"


def _problem(text: str | None, limit: int, field: str) -> str:
    """The stripped text, or a named, translated refusal."""
    problem = policy.text_problem(text, limit)
    if problem == "empty":
        raise Invalid(N_("write the announcement first"), field=field)
    if problem == "too_long":
        raise Invalid(N_("at most %(limit)s characters", limit=limit), field=field)
    return (text or "").strip()


def warnings_for(text: str) -> list[str]:
    """Codes of what staff should look at again before sending (nothing is refused)."""
    return ["phone_number"] if policy.looks_like_phone(text) else []


def load(
    session: Session, *, organization_id: uuid.UUID, announcement_id: uuid.UUID
) -> Announcement:
    row = session.get(Announcement, announcement_id)
    if row is None or row.organization_id != organization_id:
        raise NotFound(N_("announcement not found"))
    return row


def texts_of(session: Session, announcement_id: uuid.UUID) -> list[AnnouncementText]:
    query = (
        select(AnnouncementText)
        .where(AnnouncementText.announcement_id == announcement_id)  # type: ignore[arg-type]
        .order_by(AnnouncementText.language)
    )
    return list(session.execute(query).scalars())


def list_announcements(
    session: Session, *, organization_id: uuid.UUID, limit: int = 50
) -> list[Announcement]:
    query = (
        select(Announcement)
        .where(Announcement.organization_id == organization_id)  # type: ignore[arg-type]
        .order_by(Announcement.created_at.desc())  # type: ignore[attr-defined]
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def _organization(session: Session, organization_id: uuid.UUID) -> Organization:
    org = session.get(Organization, organization_id)
    if org is None:
        raise NotFound(N_("organization not found"))
    return org


def _audience(session: Session, row: Announcement, now: datetime) -> Audience:
    org = _organization(session, row.organization_id)
    return audience(
        session,
        organization_id=row.organization_id,
        site_ids=list(row.site_ids),
        tz=org.timezone,
        now=now,
    )


def compose(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: Actor,
    text: str,
    site_ids: list[uuid.UUID],
    translator: Translator | None,
    now: datetime,
) -> Announcement:
    """Store the Japanese notice (confirmed by its writer) and draft the recipients'
    other languages with the translator, if one is configured."""
    source = _problem(text, policy.MAX_SOURCE_CHARS, "text")
    sites = checked_sites(session, organization_id=organization_id, site_ids=site_ids)
    row = Announcement(
        organization_id=organization_id,
        source_text=source,
        site_ids=sites,
        written_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    session.add(
        AnnouncementText(
            announcement_id=row.id,
            language=policy.SOURCE_LANGUAGE,
            text=source,
            origin=TextOrigin.source,
            confirmed_by=actor.label,
            confirmed_at=now,
            updated_at=now,
        )
    )
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="write",
        entity_type=ENTITY,
        entity_id=row.id,
        fields=["text"],
        detail={"sites": len(sites), "chars": len(source), "warnings": warnings_for(source)},
    )
    session.flush()
    draft_missing(
        session,
        organization_id=organization_id,
        actor=actor,
        announcement_id=row.id,
        translator=translator,
        now=now,
    )
    return row


def draft_missing(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: Actor,
    announcement_id: uuid.UUID,
    translator: Translator | None,
    now: datetime,
) -> list[AnnouncementText]:
    """A row for each recipients' language that has none yet (residents may have been
    added since the notice was written), drafted by the translator where it can."""
    row = _draft(session, organization_id, announcement_id)
    have = {t.language for t in texts_of(session, row.id)}
    added = []
    for language in sorted(set(_audience(session, row, now).languages) - have):
        text = AnnouncementText(announcement_id=row.id, language=language, updated_at=now)
        if translator is not None and language not in WRITTEN_BY_STAFF:
            _translate(session, row, text, translator, actor)
        session.add(text)
        added.append(text)
    session.flush()
    return added


def _translate(
    session: Session,
    row: Announcement,
    text: AnnouncementText,
    translator: Translator,
    actor: Actor,
) -> None:
    """Ask for one language's draft; a failure is stored for staff to read, not raised."""
    text.provider = translator.name
    try:
        result = translator.translate([row.source_text], text.language, policy.SOURCE_LANGUAGE)[0]
    except TranslationError as error:
        text.error = error.reason[:500]
    except Exception as error:  # an unforeseen library error: staff type the text instead
        log.exception("translator %s failed unexpectedly", translator.name)
        text.error = f"{translator.name}: {type(error).__name__}"
    else:
        text.text, text.origin = result.text.strip()[: policy.MAX_TEXT_CHARS], TextOrigin.machine
    record(
        session=session,
        organization_id=row.organization_id,
        actor=actor,
        action=TRANSLATE_ACTION,
        entity_type=ENTITY,
        entity_id=row.id,
        detail={
            "kind": ENTITY,
            "provider": translator.name,
            "chars": len(row.source_text),
            "target": text.language,
            "outcome": "failed" if text.error else "done",
        },
    )


def _draft(
    session: Session, organization_id: uuid.UUID, announcement_id: uuid.UUID
) -> Announcement:
    row = load(session, organization_id=organization_id, announcement_id=announcement_id)
    if row.status != AnnouncementStatus.draft:
        raise Conflict(N_("this announcement was already sent"))
    return row


def _language(language: str) -> str:
    if get_language(language) is None:
        raise Invalid(N_("unknown language %(code)s", code=language[:16]), field="language")
    return language


def _text_row(
    session: Session, row: Announcement, language: str, now: datetime
) -> AnnouncementText:
    found = session.execute(
        select(AnnouncementText).where(
            AnnouncementText.announcement_id == row.id,  # type: ignore[arg-type]
            AnnouncementText.language == language,  # type: ignore[arg-type]
        )
    ).scalar_one_or_none()
    if found is None:
        found = AnnouncementText(announcement_id=row.id, language=language, updated_at=now)
        session.add(found)
    return found


def edit_text(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: Actor,
    announcement_id: uuid.UUID,
    language: str,
    text: str,
    now: datetime,
) -> AnnouncementText:
    """Store staff's text for a language (typed, or a draft corrected). It needs
    confirming again; the Japanese original is not edited here (write a new notice)."""
    row = _draft(session, organization_id, announcement_id)
    if _language(language) == policy.SOURCE_LANGUAGE:
        raise Invalid(
            N_("the Japanese original cannot be changed; write a new announcement"),
            field="language",
        )
    body = _problem(text, policy.MAX_TEXT_CHARS, "text")
    found = _text_row(session, row, language, now)
    if found.text != body or found.fallback:
        found.text, found.origin, found.fallback = body, TextOrigin.staff, None
        found.confirmed_by = found.confirmed_at = None
    found.updated_at = now
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="edit_text",
        entity_type=ENTITY,
        entity_id=row.id,
        fields=["text"],
        detail={"language": language, "chars": len(body)},
    )
    session.flush()
    return found


def confirm_text(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: Actor,
    announcement_id: uuid.UUID,
    language: str,
    now: datetime,
    text: str | None = None,
    fallback: str | None = None,
) -> AnnouncementText:
    """Staff confirm a language: its text as they read it (``text``), or, for a language
    with no translation, that its readers get another language's text (``fallback``)."""
    row = _draft(session, organization_id, announcement_id)
    _language(language)
    found = _text_row(session, row, language, now)
    if fallback is not None:
        if fallback not in policy.FALLBACKS or fallback == language:
            raise Invalid(N_("choose Japanese or Easy Japanese to send instead"), field="fallback")
        found.fallback, found.origin = fallback, TextOrigin.fallback
    else:
        if not found.text:
            raise Invalid(N_("there is no text in this language to confirm"), field="text")
        if text is not None and text.strip() != found.text:
            raise Conflict(N_("the text was changed meanwhile; read it again"))
    found.confirmed_by, found.confirmed_at, found.updated_at = actor.label, now, now
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="confirm_text",
        entity_type=ENTITY,
        entity_id=row.id,
        detail={"language": language, "origin": str(found.origin), "fallback": fallback},
    )
    session.flush()
    return found


def _bodies(
    states: dict[str, policy.LanguageText], languages: list[str], *, confirmed: bool
) -> dict[str, str | None]:
    """Each language's body as it would be sent (right-to-left marks included)."""
    bodies: dict[str, str | None] = {}
    for language in languages:
        body = policy.body_for(language, states, confirmed=confirmed)
        bodies[language] = mark_direction(body, language) if body else None
    return bodies


def preview(
    session: Session,
    *,
    organization_id: uuid.UUID,
    announcement_id: uuid.UUID,
    now: datetime,
    override_quiet_hours: bool = False,
) -> dict[str, Any]:
    """Who gets it, in which language, at what cost in SMS segments, what is still to be
    confirmed, and when it would leave. Nothing is written."""
    row = load(session, organization_id=organization_id, announcement_id=announcement_id)
    return _preview(session, row, now, override_quiet_hours)[0]


def _preview(
    session: Session, row: Announcement, now: datetime, override: bool
) -> tuple[dict[str, Any], Audience, dict[str, str | None]]:
    org = _organization(session, row.organization_id)
    people = _audience(session, row, now)
    languages = people.languages
    texts = texts_of(session, row.id)
    states = {
        t.language: policy.LanguageText(t.text, t.fallback, t.confirmed_at is not None)
        for t in texts
    }
    missing, unconfirmed = policy.open_languages(languages, states)
    bodies = _bodies(states, list(languages), confirmed=True)
    drafts = _bodies(states, list(languages), confirmed=False)
    lines, total = policy.cost(languages, drafts, {k for k, v in bodies.items() if v})
    quiet_now, send_at = policy.send_time(now, org.timezone, override)
    data = {
        "recipients": len(people.recipients),
        "segments": total,
        "languages": [asdict(line) for line in lines],
        "missing": missing,
        "unconfirmed": unconfirmed,
        "skipped": dict(sorted(people.skipped.items())),
        "quiet_now": quiet_now,
        "send_at": send_at,
        "ready": bool(people.recipients) and not missing and not unconfirmed,
    }
    return data, people, bodies


def _refusal(missing: list[str], unconfirmed: list[str]) -> Text:
    if missing:
        return N_("no text yet for: %(languages)s", languages=", ".join(missing))
    return N_("not confirmed yet: %(languages)s", languages=", ".join(unconfirmed))


def send(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: Actor,
    announcement_id: uuid.UUID,
    now: datetime,
    override_quiet_hours: bool = False,
    segments: int | None = None,
) -> Announcement:
    """One SMS per recipient through the outbox, in their language, each on their
    timeline. Refused, with nothing written, while a language is missing or unconfirmed,
    or when ``segments`` (the total staff were shown) is no longer the cost."""
    row = _draft(session, organization_id, announcement_id)
    data, people, bodies = _preview(session, row, now, override_quiet_hours)
    if not people.recipients:
        raise Invalid(N_("nobody on the chosen sites can receive an SMS"), field="site_ids")
    if data["missing"] or data["unconfirmed"]:
        raise Invalid(_refusal(data["missing"], data["unconfirmed"]), field="language")
    if segments is not None and segments != data["segments"]:
        raise Conflict(
            N_("the cost is now %(segments)s segments; check it again", segments=data["segments"])
        )
    # Claim the send: of two staff pressing "send" at once, the second waits for the
    # first's row lock, then finds it sent (the unique delivery key is the backstop).
    claimed = session.execute(
        update(Announcement)
        .where(
            Announcement.id == row.id,  # type: ignore[arg-type]
            Announcement.status == AnnouncementStatus.draft,  # type: ignore[arg-type]
        )
        .values(status=AnnouncementStatus.sent.value)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(N_("this announcement was already sent"))
    send_at = data["send_at"]
    _enqueue_all(session, row, people, bodies, actor, now, send_at)
    row.status, row.sent_by, row.sent_at, row.send_at = (
        AnnouncementStatus.sent,
        actor.label,
        now,
        send_at,
    )
    row.override_quiet_hours = override_quiet_hours
    row.recipients, row.segments, row.updated_at = len(people.recipients), data["segments"], now
    _audit_send(session, row, actor, data, held=send_at != now)
    session.flush()
    return row


def _audit_send(
    session: Session, row: Announcement, actor: Actor, data: dict[str, Any], *, held: bool
) -> None:
    """Who sent it, to how many, in which languages, at what cost: never the text."""
    record(
        session=session,
        organization_id=row.organization_id,
        actor=actor,
        action="send",
        entity_type=ENTITY,
        entity_id=row.id,
        detail={
            "recipients": row.recipients,
            "segments": row.segments,
            "languages": {line["language"]: line["recipients"] for line in data["languages"]},
            "skipped": data["skipped"],
            "override_quiet_hours": row.override_quiet_hours,
            "held_until": row.send_at.isoformat() if held and row.send_at else None,
        },
    )


def _enqueue_all(
    session: Session,
    row: Announcement,
    people: Audience,
    bodies: dict[str, str | None],
    actor: Actor,
    now: datetime,
    send_at: datetime,
) -> None:
    """One outbox row per recipient, then each resident's delivery and timeline entry, as
    bulk inserts (the rows the outbox's own ``outbox_row`` makes for a round's fan-out)."""
    messages = []
    deliveries = []
    events = []
    for person in people.recipients:
        body = bodies[person.language]
        assert body is not None
        message = outbox_row(
            organization_id=row.organization_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.resident_notice,
            to_phone=person.phone,
            body=body,
            locale=person.language,
            resident_id=person.resident_id,
            now=now,
            not_before=send_at,
            deadline=DELIVERY_DEADLINE,
        )
        messages.append(message)
        deliveries.append(
            {
                "id": new_id(),
                "announcement_id": row.id,
                "resident_id": person.resident_id,
                "outbox_id": message["id"],
                "language": person.language,
            }
        )
        events.append(
            {
                "id": new_id(),
                "organization_id": row.organization_id,
                "resident_id": person.resident_id,
                "at": now,
                "kind": TIMELINE_KIND,
                "outbox_id": message["id"],
                "actor": actor.label,
                "detail": {"announcement_id": str(row.id), "language": person.language},
            }
        )
    for model, rows in (
        (OutboxMessage, messages),
        (AnnouncementDelivery, deliveries),
        (TimelineEvent, events),
    ):
        session.execute(insert(model), rows)

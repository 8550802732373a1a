"""Who an announcement reaches, read from the registry with the rules rounds use."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session

from service.announcements.policy import skip_reason
from service.checkins.attempts import dead_numbers_of, eligible, reachable_by
from service.errors import Invalid
from service.registry.models import Resident, Site
from service.texts import N_


@dataclass(frozen=True, slots=True)
class Recipient:
    resident_id: uuid.UUID
    language: str
    phone: str


@dataclass
class Audience:
    recipients: list[Recipient] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def languages(self) -> dict[str, int]:
        return dict(Counter(r.language for r in self.recipients))


def checked_sites(
    session: Session, *, organization_id: uuid.UUID, site_ids: list[uuid.UUID]
) -> list[str]:
    """The chosen sites as stored strings; a site of another organization does not exist."""
    unique = list(dict.fromkeys(site_ids))
    if not unique:
        return []
    found = set(
        session.execute(
            select(Site.id).where(Site.organization_id == organization_id, Site.id.in_(unique))  # type: ignore[attr-defined]
        ).scalars()
    )
    if len(found) != len(unique):
        raise Invalid(N_("no such site"), field="site_ids")
    return [str(site) for site in unique]


def audience(
    session: Session,
    *,
    organization_id: uuid.UUID,
    site_ids: list[str],
    tz: str,
    now: datetime,
) -> Audience:
    """The residents of the organization (on the chosen sites) who get the announcement,
    and how many are skipped, by reason (``policy.skip_reason``)."""
    # Only the columns the rules read: a plain row per resident, not an ORM object.
    query = select(
        Resident.id,
        Resident.language,
        Resident.status,
        Resident.away_until,
        Resident.consent_at,
        Resident.phone,
        Resident.phone_kind,
        Resident.phone2,
        Resident.phone2_kind,
    ).where(Resident.organization_id == organization_id)  # type: ignore[arg-type]
    if site_ids:
        ids = [uuid.UUID(site) for site in site_ids]
        query = query.where(Resident.site_id.in_(ids))  # type: ignore[union-attr]
    residents = list(session.execute(query.order_by(Resident.id)))  # type: ignore[arg-type]
    today = now.astimezone(ZoneInfo(tz)).date()
    dead = dead_numbers_of(session, residents)
    result = Audience()
    for resident in residents:
        contact, visit_reason = eligible(resident, today)
        reach = reachable_by(resident, "sms", dead) if contact else None
        mobile = reach[1] if reach is not None and reach[0] == "sms" else None
        reason = skip_reason(contact, visit_reason, mobile)
        if reason is not None:
            result.skipped[reason] += 1
            continue
        assert mobile is not None
        result.recipients.append(Recipient(resident.id, resident.language, mobile))
    return result

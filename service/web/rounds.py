"""The confirmation step before a broadcast: who would be contacted, how, in which
languages, at what SMS cost, and whether quiet hours hold. Nothing is written here; it asks
the same questions the fan-out asks (``service.checkins.service``), one resident at a time.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session

from i18n.names import LocalizedName
from i18n.render import render
from i18n.segments import sms_segments
from service.checkins import service as checkins
from service.checkins.models import DEFAULT_PLAN
from service.registry.models import Organization, Resident

# A broadcast uses the fixed quiet hours that ``start_round`` gives it.
BROADCAST_QUIET = ("21:00", "08:00")


@dataclass
class LanguageLine:
    code: str
    residents: int = 0
    sms: int = 0
    voice: int = 0
    segments_min: int = 0
    segments_max: int = 0
    segments_total: int = 0


@dataclass
class BroadcastPreview:
    site_ids: list[uuid.UUID]
    contacted: int = 0
    by_sms: int = 0
    by_voice: int = 0
    visit_list: int = 0
    skipped: int = 0
    segments_total: int = 0
    languages: list[LanguageLine] = field(default_factory=list)
    quiet_now: bool = False
    override_quiet_hours: bool = False
    starts_at: datetime | None = None

    @property
    def held_until_morning(self) -> bool:
        return self.quiet_now and not self.override_quiet_hours


def preview_broadcast(
    session: Session,
    *,
    organization: Organization,
    site_ids: list[uuid.UUID],
    override_quiet_hours: bool,
    now: datetime,
) -> BroadcastPreview:
    preview = BroadcastPreview(site_ids=site_ids, override_quiet_hours=override_quiet_hours)
    tz = organization.timezone
    today = now.astimezone(ZoneInfo(tz)).date()
    query = select(
        Resident.name,
        Resident.language,
        Resident.phone,
        Resident.phone_kind,
        Resident.phone2,
        Resident.phone2_kind,
        Resident.preferred_channel,
        Resident.status,
        Resident.away_until,
        Resident.consent_at,
    ).where(Resident.organization_id == organization.id)
    if site_ids:
        query = query.where(Resident.site_id.in_(site_ids))  # type: ignore[union-attr]
    lines: dict[str, LanguageLine] = defaultdict(lambda: LanguageLine(code=""))
    for resident in session.execute(query):
        contact, visit_reason = checkins.eligible(resident, today)
        if not contact:
            if visit_reason is None:
                preview.skipped += 1
            else:
                preview.visit_list += 1
            continue
        plan = checkins.resident_plan(
            DEFAULT_PLAN, resident.preferred_channel, resident.phone_kind, resident.phone2_kind
        )
        line = lines[resident.language]
        line.code = resident.language
        line.residents += 1
        preview.contacted += 1
        if plan[0]["channel"] == "sms":
            org_name = LocalizedName.of(organization).for_reader(resident.language)
            body = render("resident.checkin", resident.language, org=org_name, name=resident.name)
            segments = sms_segments(body).segments
            line.sms += 1
            line.segments_total += segments
            line.segments_min = min(line.segments_min or segments, segments)
            line.segments_max = max(line.segments_max, segments)
            preview.by_sms += 1
            preview.segments_total += segments
        else:
            line.voice += 1
            preview.by_voice += 1
    preview.languages = sorted(lines.values(), key=lambda line: (-line.residents, line.code))
    preview.quiet_now = checkins.in_quiet_hours(now, tz, *BROADCAST_QUIET)
    preview.starts_at = (
        checkins.quiet_hours_end(now, tz, BROADCAST_QUIET[1]) if preview.held_until_morning else now
    )
    return preview

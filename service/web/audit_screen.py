"""The audit screen, for administrators: who did what to which record, and when.

It reads through ``service.audit.service.list_entries``, the function the API's
``GET /api/v1/audit`` uses, so both see the same entries in the same order (newest first).
Like the API it never shows a value: only the names of the fields that changed, and of the
entry's detail only a count of rows. Dates in the filters are the organization's days.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.audit.service import audit_choices, list_entries
from service.auth.models import Role
from service.db import SessionDep
from service.web.core import StaffDep, render_page
from service.web.translation import N_

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50

# Words for the actions the service records; an action not listed is shown as stored.
ACTIONS: dict[str, str] = {
    "create": N_("Created"),
    "update": N_("Changed"),
    "delete": N_("Deleted"),
    "read": N_("Viewed"),
    "list": N_("Listed"),
    "export": N_("Exported"),
    "import": N_("Imported"),
    "start": N_("Started"),
    "note": N_("Note added"),
    "acknowledge": N_("Acknowledged"),
    "reassign": N_("Reassigned"),
    "resolve": N_("Resolved"),
    "close": N_("Closed"),
    "link": N_("Linked"),
    "answer": N_("Answered"),
    "claim": N_("Claimed"),
    "late": N_("Ran late"),
    "issue_reset": N_("Password reset issued"),
    "use_reset": N_("Password reset used"),
    "partnership_invite": N_("Partnership invited"),
    "partnership_accept": N_("Partnership accepted"),
    "partnership_decline": N_("Partnership declined"),
    "partnership_end": N_("Partnership ended"),
    "consent_record": N_("Consent to share recorded"),
    "consent_withdraw": N_("Consent to share withdrawn"),
    "referral_send": N_("Referral sent"),
    "referral_receive": N_("Referral received"),
    "referral_accept": N_("Referral accepted"),
    "referral_decline": N_("Referral declined"),
    "referral_contact": N_("Referral: contact made"),
    "referral_outcome": N_("Referral: outcome recorded"),
    "referral_close": N_("Referral closed"),
    "partner_read": N_("Viewed by the partner"),
    "partner_list": N_("Listed by the partner"),
}

ENTITY_TYPES: dict[str, str] = {
    "resident": N_("Resident"),
    "member": N_("Member"),
    "assignment": N_("Assignment"),
    "site": N_("Site"),
    "user": N_("Staff user"),
    "organization": N_("Organization"),
    "round": N_("Round"),
    "schedule": N_("Schedule"),
    "checkin": N_("Check-in"),
    "escalation": N_("Case"),
    "task": N_("Inbox item"),
    "inbound_message": N_("Incoming message"),
    "outbox": N_("Outgoing message"),
    "jma_bulletin": N_("Weather bulletin"),
    "jma_trigger_policy": N_("Weather warning rule"),
    "partnership": N_("Partnership"),
    "referral": N_("Referral"),
}

# Pages an entry can link to, by entity type.
LINKS: dict[str, str] = {
    "resident": "/residents/{id}",
    "escalation": "/cases/{id}",
    "round": "/rounds/{id}",
    "schedule": "/schedules/{id}",
}


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def day_bounds(
    first: date | None, last: date | None, timezone: str
) -> tuple[datetime | None, datetime | None]:
    """From the start of ``first`` to the end of ``last``, both the organization's days."""
    zone = ZoneInfo(timezone)
    since = datetime.combine(first, time(0), zone) if first else None
    until = datetime.combine(last + timedelta(days=1), time(0), zone) if last else None
    return since, until


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: SessionDep,
    staff: StaffDep,
    actor: str | None = None,
    action: str | None = None,
    entity_type: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    page: int | None = None,
) -> HTMLResponse:
    if Role(staff.user.role) != Role.admin:
        return render_page(
            request,
            "error.html",
            staff=staff,
            status_code=403,
            title=N_("Not allowed"),
            message=N_("Only administrators can read the audit log."),
        )
    first, last = _day(date_from), _day(date_to)
    since, until = day_bounds(first, last, staff.org.timezone)
    page_number = max(1, page or 1)
    actor_text = (actor or "").strip()[:200]
    entries, count = list_entries(
        session=session,
        organization_id=staff.organization_id,
        entity_type=entity_type or None,
        action=action or None,
        actor=actor_text or None,
        since=since,
        until=until,
        skip=(page_number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    actions, entity_types = audit_choices(session=session, organization_id=staff.organization_id)
    return render_page(
        request,
        "audit.html",
        staff=staff,
        entries=entries,
        count=count,
        page=page_number,
        pages=max(1, -(-count // PAGE_SIZE)),
        actions=actions,
        entity_types=entity_types,
        action_words=ACTIONS,
        entity_words=ENTITY_TYPES,
        links=LINKS,
        chosen={
            "actor": actor_text,
            "action": action or "",
            "entity_type": entity_type or "",
            "date_from": first.isoformat() if first else "",
            "date_to": last.isoformat() if last else "",
        },
    )

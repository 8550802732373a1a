"""What members are sent about a case: the alert (its SMS and call, naming the resident's
last contact), and notices; the values member texts name the resident with."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session

from i18n.languages import display_name
from i18n.names import LocalizedName
from i18n.render import format_datetime, render
from service.audit.service import Actor, record
from service.common import aware
from service.config import get_settings
from service.escalations.chains import transaction_cache
from service.escalations.models import (
    Alert,
    AlertState,
    Escalation,
    EscalationReason,
    EscalationState,
)
from service.registry.models import Member, Organization, Resident, Site
from service.registry.phones import PhoneKind
from service.telephony.models import OutboxChannel, OutboxPurpose
from service.telephony.outbox import enqueue
from service.timeline import timeline


class _NotGiven(Enum):
    NOT_GIVEN = "not given"


#: ``last_contact`` left for the escalation to look up (``None`` means "never heard from").
NOT_GIVEN = _NotGiven.NOT_GIVEN


LastContact = datetime | None | _NotGiven


def last_contacts(session: Session, resident_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each resident was last heard from: their latest message, by SMS or keypad.
    Residents never heard from are left out. The one place that says what "last contact"
    in an alert means, for a case's first step and for every later one."""
    from service.telephony.models import InboundMessage

    if not resident_ids:
        return {}
    rows = session.execute(
        select(InboundMessage.resident_id, func.max(InboundMessage.received_at))
        .where(InboundMessage.resident_id.in_(resident_ids))  # type: ignore[union-attr]
        .group_by(InboundMessage.resident_id)
    ).all()
    return {resident_id: aware(at) for resident_id, at in rows if at is not None}


def known_last_contact(
    session: Session, escalation: Escalation, resident: Resident, last_contact: LastContact
) -> datetime | None:
    if last_contact is not NOT_GIVEN:
        return last_contact
    if escalation.reason == EscalationReason.visit_list:
        return None  # a visit alert names no time: nobody can be reached by phone
    return last_contacts(session, [resident.id]).get(resident.id)


def send_alert(
    session: Session,
    escalation: Escalation,
    resident: Resident,
    org: Organization,
    recipient: dict[str, Any],
    step: int,
    now: datetime,
    last_contact: datetime | None,
) -> None:
    """Alert one recipient of the step: the alert, its SMS (and call), the timeline."""
    member_id = uuid.UUID(recipient["member_id"])
    coded = _has_other_open_case(session, member_id, exclude=escalation.id)
    transaction_cache(session).setdefault("alerted", {}).setdefault(member_id, set()).add(
        escalation.id
    )
    alert = Alert(
        organization_id=resident.organization_id,
        escalation_id=escalation.id,
        member_id=member_id,
        step_index=step,
        language=recipient["language"],
        sent_at=now,
    )
    session.add(alert)
    body = alert_text(
        session, escalation, resident, org, recipient["language"], coded, last_contact
    )
    calls = get_settings().alert_voice_calls
    # A landline cannot take the SMS: with calls on, its call is the alert itself.
    by_call_only = calls and recipient.get("phone_kind") == PhoneKind.landline.value
    if not by_call_only:
        enqueue(
            session,
            organization_id=resident.organization_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.alert,
            to_phone=recipient["phone"],
            body=body,
            locale=recipient["language"],
            resident_id=resident.id,
            member_id=member_id,
            alert_id=alert.id,
            now=now,
            deadline=timedelta(hours=2),
        )
    if calls:
        # Beside the SMS the call is only a nudge: the SMS carries the details and is the
        # alert of record, so a call that is not answered declines nothing. To a landline
        # the call is the alert, and one that cannot reach the member counts as a decline.
        enqueue(
            session,
            organization_id=resident.organization_id,
            channel=OutboxChannel.call,
            purpose=OutboxPurpose.alert if by_call_only else OutboxPurpose.alert_call,
            to_phone=recipient["phone"],
            locale=recipient["language"],
            resident_id=resident.id,
            member_id=member_id,
            alert_id=alert.id,
            now=now,
            deadline=timedelta(minutes=escalation.ack_minutes),
        )
    detail = {"step": step + 1, "member": recipient["name"], "language": recipient["language"]}
    detail.update(partner_detail(recipient))
    timeline(
        session,
        resident_id=resident.id,
        organization_id=resident.organization_id,
        kind="escalation.alert",
        at=now,
        escalation_id=escalation.id,
        member_id=member_id,
        detail=detail,
    )
    if recipient.get("organization_id"):
        extra = {"alert_id": str(alert.id), "step": step + 1}
        audit_partner(session, escalation, recipient, "partner_alert", "escalation", extra)


# --- Shared interpreters: a partner organization's member on the chain ------------------------


def partner_detail(recipient: dict[str, Any] | None) -> dict[str, Any]:
    """For the timeline: "partner interpreter X (Org B)" (nothing for the organization's
    own members)."""
    if not recipient or not recipient.get("organization_id"):
        return {}
    return {"partner_member": recipient.get("name", ""), "partner_org": recipient["organization"]}


def partner_recipient(escalation: Escalation, member_id: uuid.UUID | None) -> dict[str, Any] | None:
    """The partner's member ``member_id`` as the case's chain holds them (None: not one)."""
    if member_id is None:
        return None
    for step in escalation.chain:
        for recipient in step:
            if recipient.get("organization_id") and recipient["member_id"] == str(member_id):
                return recipient
    return None


def audit_partner(
    session: Session,
    escalation: Escalation,
    recipient: dict[str, Any],
    action: str,
    actor: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """A cross-organization alert or answer, in BOTH organizations' logs: the case's (with
    the partner and its member) and the partner's (with the case's organization and code,
    nothing about the resident)."""
    detail = {
        "member_id": recipient["member_id"],
        "partner_org_id": recipient["organization_id"],
        "referring_org_id": str(escalation.organization_id),
        "case_code": escalation.case_code,
        **(extra or {}),
    }
    for org_id in (escalation.organization_id, uuid.UUID(recipient["organization_id"])):
        record(
            session=session,
            organization_id=org_id,
            actor=Actor(label=actor),
            action=action,
            entity_type="escalation",
            entity_id=escalation.id,
            detail=detail,
        )


def _has_other_open_case(session: Session, member_id: uuid.UUID, exclude: uuid.UUID) -> bool:
    """Whether the member has another case open (an alert awaiting "1"/"2", or one they
    acknowledged): then their alert carries the case code. One query, stopping at the first;
    none when this transaction has already alerted them about another case (a sweep that
    alerts one member about many cases asks once)."""
    alerted = transaction_cache(session).setdefault("alerted", {}).get(member_id, set())
    if alerted - {exclude}:
        return True
    pending = (
        select(Alert.id)
        .join(Escalation, Escalation.id == Alert.escalation_id)
        .where(
            Alert.member_id == member_id,
            Alert.state == AlertState.sent,
            Escalation.state == EscalationState.alerting,
            Escalation.id != exclude,
        )
    )
    held = select(Escalation.id).where(
        Escalation.acknowledged_by == member_id,
        Escalation.state == EscalationState.acknowledged,
        Escalation.id != exclude,
    )
    return bool(session.execute(select(or_(pending.exists(), held.exists()))).scalar_one())


def _where(session: Session, resident: Resident) -> tuple[LocalizedName | str, str]:
    """The resident's site (its names, to be named in the reader's language) and unit."""
    site = session.get(Site, resident.site_id) if resident.site_id else None
    return (LocalizedName.of(site) if site else "-"), (resident.unit or "")


def _in_language(values: dict[str, Any], locale: str) -> dict[str, Any]:
    """``values`` with the organization's and the site's names in the reader's language."""
    return {
        key: value.for_reader(locale) if isinstance(value, LocalizedName) else value
        for key, value in values.items()
    }


def alert_text(
    session: Session,
    escalation: Escalation,
    resident: Resident,
    org: Organization,
    locale: str,
    coded: bool,
    last_contact: datetime | None,
) -> str:
    """Only what a visitor needs: name, site, unit, language and last contact."""
    site, unit = _where(session, resident)
    values = {
        "org": LocalizedName.of(org).for_reader(locale),
        "name": resident.name,
        "site": site.for_reader(locale) if isinstance(site, LocalizedName) else site,
        "unit": unit,
        "language": display_name(resident.language, locale),
        "last_contact": format_datetime(last_contact, locale, org.timezone)
        if last_contact
        else "-",
        "code": escalation.case_code,
    }
    if escalation.reason == EscalationReason.visit_list:
        base = "member.alert.visit"
    elif escalation.reason == EscalationReason.needs_help:
        base = "member.alert.help"
    else:
        base = "member.alert"
    text = render(f"{base}.coded" if coded else base, locale, **values)
    if escalation.cause:
        text = render("member.alert.cause", locale, cause=escalation.cause) + " " + text
    return text


def member_notice(
    session: Session,
    escalation: Escalation,
    member_id: uuid.UUID,
    message_id: str,
    now: datetime,
    **values: Any,
) -> None:
    member = session.get(Member, member_id)
    if member is None:
        return
    locale = (member.languages or ["ja"])[0]
    enqueue(
        session,
        organization_id=escalation.organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.member_notice,
        to_phone=member.phone,
        body=render(message_id, locale, **_in_language(values, locale)),
        locale=locale,
        resident_id=escalation.resident_id,
        member_id=member.id,
        now=now,
    )


def resident_values(
    session: Session, escalation: Escalation, locale: str | None = None
) -> dict[str, Any]:
    """The values member texts name the resident with. The organization and the site are
    named in ``locale``; without one they stay :class:`LocalizedName` for ``_member_notice``
    to name in each member's language."""
    resident = session.get(Resident, escalation.resident_id)
    org = session.get(Organization, escalation.organization_id)
    assert resident is not None and org is not None
    site, unit = _where(session, resident)
    values = {
        "org": LocalizedName.of(org),
        "name": resident.name,
        "site": site,
        "unit": unit,
        "code": escalation.case_code,
    }
    return values if locale is None else _in_language(values, locale)

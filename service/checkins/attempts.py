"""Reaching a resident: which number a plan step can use, who is contacted at all, and the
rows of one attempt and its message."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlmodel import Session

from i18n.names import LocalizedName
from i18n.render import render
from service.checkins import policy
from service.checkins.models import (
    Attempt,
    AttemptStatus,
    CheckIn,
    CheckInState,
    Round,
)
from service.common import aware
from service.ids import uuid7
from service.registry.channels import APP_CHANNELS, CHANNELS, address_on
from service.registry.models import (
    Organization,
    ResidentStatus,
)
from service.registry.phones import PhoneKind
from service.telephony.models import (
    OutboxChannel,
    OutboxPurpose,
)
from service.telephony.outbox import (
    INVALID_NUMBER_CODES,
    dead_sms_numbers,
    outbox_row,
)

log = logging.getLogger(__name__)


# Plain values: a fan-out compares 100,000 residents with them, and an enum member is looked
# up through a descriptor on every use.
_MOBILE = PhoneKind.mobile.value
_QUEUED = AttemptStatus.queued.value
_MOVED_OUT = ResidentStatus.moved_out.value
_AWAY = ResidentStatus.away.value
_OPTED_OUT = ResidentStatus.opted_out.value


def pick_number(resident: Any, channel: str) -> str | None:
    if channel == "sms":
        if resident.phone and resident.phone_kind == _MOBILE:
            return resident.phone
        if resident.phone2 and resident.phone2_kind == _MOBILE:
            return resident.phone2
        return None
    return resident.phone or resident.phone2


def reachable_by(resident: Any, channel: str, dead: dict[str, int]) -> tuple[str, str] | None:
    """(channel, number) for a plan step of ``channel``, or None when the step cannot reach
    the resident. ``dead`` holds numbers an SMS failed to for good (Twilio's code): an SMS
    step never goes to one of them again; the resident gets a call instead if they have a
    number that can be called (not one Twilio called invalid). A messaging app's step goes
    to the resident's address there (``registry.channels``), or is skipped."""
    if channel in APP_CHANNELS:
        address = address_on(resident, channel)
        return (channel, address) if address else None
    if channel == "sms":
        if pick_number(resident, "sms") is None:
            return None
        numbers = ((resident.phone, resident.phone_kind), (resident.phone2, resident.phone2_kind))
        for phone, kind in numbers:
            if phone and kind == _MOBILE and phone not in dead:
                return "sms", phone
        channel = "voice"
    for phone in (resident.phone, resident.phone2):
        if phone and dead.get(phone) not in INVALID_NUMBER_CODES:
            return channel, phone
    return None


def dead_numbers_of(session: Session, residents: Iterable[Any]) -> dict[str, int]:
    """The residents' numbers an SMS failed to for good (21610, 21614, 21211), with the
    code, unless the resident has texted us since (a START after a STOP, say)."""
    owners: dict[str, list[Any]] = {}
    for resident in residents:
        for phone in (resident.phone, resident.phone2):
            if phone:
                owners.setdefault(phone, []).append(resident.id)
    dead = dead_sms_numbers(session, owners)
    if not dead:
        return {}
    from service.telephony.models import InboundMessage

    ids = {rid for phone in dead for rid in owners[phone]}
    heard = {
        rid: aware(at)
        for rid, at in session.execute(
            select(InboundMessage.resident_id, func.max(InboundMessage.received_at))
            .where(InboundMessage.resident_id.in_(ids))  # type: ignore[union-attr]
            .group_by(InboundMessage.resident_id)
        )
    }
    return {
        phone: code
        for phone, (code, at) in dead.items()
        if not any((heard.get(rid) or at) > at for rid in owners[phone])
    }


def eligible(resident: Any, today: date) -> tuple[bool, str | None]:
    """(contact by phone?, reason for the visit list instead). Away and moved-out residents
    are outside the round; everyone else is either contacted or visited."""
    status = resident.status
    if status == _MOVED_OUT:
        return False, None
    if status == _AWAY and resident.away_until and resident.away_until >= today:
        return False, None
    if status == _OPTED_OUT:
        return False, "opted_out"
    if resident.consent_at is None:
        return False, "no_consent"
    if not (resident.phone or resident.phone2):
        return False, "no_phone"
    return True, None


def _attempt_rows(
    round_: Round,
    org: Organization,
    resident: Any,
    step: dict[str, Any],
    step_index: int,
    checkin_id: uuid.UUID,
    now: datetime,
    start_at: datetime,
    bodies: dict[tuple[str, str], str] | None = None,
    phone: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    channel = step["channel"]
    if channel in APP_CHANNELS:
        address = phone or address_on(resident, channel)
        phone = _app_phone(resident, channel, address)
    else:
        address = None
        phone = phone or pick_number(resident, channel)
    assert phone is not None
    attempt_id = uuid7()
    language = resident.language
    message_id = (
        "resident.checkin"
        if step.get("message", "prompt") == "prompt"
        else "resident.checkin.reminder"
    )
    body = (
        _checkin_body(message_id, language, org, resident.name, bodies)
        if channel == "sms" or channel in APP_CHANNELS
        else None
    )
    attempt = {
        "id": attempt_id,
        "checkin_id": checkin_id,
        "step_index": step_index,
        "channel": channel,
        "message": step.get("message", "prompt"),
        "phone": phone,
        "status": _QUEUED,
        "sid": None,
        "error_code": None,
        "created_at": now,
        "updated_at": now,
    }
    message = outbox_row(
        organization_id=round_.organization_id,
        channel=_OUTBOX_CHANNEL[channel],
        address=address,
        purpose=OutboxPurpose.checkin,
        to_phone=phone,
        body=body,
        locale=language,
        resident_id=resident.id,
        attempt_id=attempt_id,
        now=now,
        not_before=start_at,
        deadline=timedelta(minutes=max(10, int(step["wait_minutes"]) // 2)),
    )
    return attempt, message


_NAME_SLOT = "\x00name\x00"
# A plan step's channel, as the outbox names it.
_OUTBOX_CHANNEL = {
    "sms": OutboxChannel.sms,
    "voice": OutboxChannel.call,
    "whatsapp": OutboxChannel.whatsapp,
    "line": OutboxChannel.line,
}


def _app_phone(resident: Any, channel: str, address: str | None) -> str:
    """What an app attempt records as its number: the phone itself for WhatsApp; for an
    app addressed otherwise (LINE), the app's name (the address is on the outbox row)."""
    assert address is not None
    return address if CHANNELS[channel].by_phone else channel


def _checkin_body(
    message_id: str,
    language: str,
    org: Organization,
    name: str,
    bodies: dict[tuple[str, str], str] | None,
) -> str:
    """The check-in text for one resident, with the organization's name in their language.
    A round renders each (message, language) once and inserts each name into it, exactly as
    ``render`` inserts values (verbatim): a 100,000-resident fan-out then costs a handful of
    catalog look-ups and name choices, not 100,000."""
    if bodies is None:
        org_name = LocalizedName.of(org).for_reader(language)
        return render(message_id, language, org=org_name, name=name)
    key = (message_id, language)
    text = bodies.get(key)
    if text is None:
        org_name = LocalizedName.of(org).for_reader(language)
        text = bodies[key] = render(message_id, language, org=org_name, name=_NAME_SLOT)
    return text.replace(_NAME_SLOT, name)


# --- Attempts and delivery ------------------------------------------------------------------------


def attempt_failed(
    session: Session,
    *,
    attempt_id: uuid.UUID,
    now: datetime,
    status: AttemptStatus = AttemptStatus.failed,
    error_code: int | None = None,
) -> None:
    """A channel failed for good: move the check-in on now instead of waiting out the step."""
    attempt = session.get(Attempt, attempt_id)
    if attempt is None:
        return
    attempt.status = status
    attempt.error_code = error_code
    attempt.updated_at = now
    session.add(attempt)
    checkin = session.get(CheckIn, attempt.checkin_id)
    if checkin is not None and policy.retry_at_once(
        checkin.state == CheckInState.waiting, checkin.step_index, attempt.step_index
    ):
        checkin.next_action_at = now
        checkin.updated_at = now
        session.add(checkin)


def set_attempt_status(
    session: Session,
    *,
    attempt_id: uuid.UUID,
    status: AttemptStatus,
    now: datetime,
    sid: str | None = None,
) -> None:
    attempt = session.get(Attempt, attempt_id)
    if attempt is None:
        return
    attempt.status = status
    if sid:
        attempt.sid = sid
    attempt.updated_at = now
    session.add(attempt)

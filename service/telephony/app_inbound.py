"""Replies that come by a messaging app: WhatsApp (on Twilio's SMS webhook, ``From`` is
``whatsapp:+81…``) and LINE (its own signed webhook, ``line_webhook``).

Each reply is stored, and a resident's goes through the same classifier, escalation and
timeline as an SMS (``checkins.handle_resident_reply``, the timeline kind names the
channel). A message from someone nobody knows is stored for staff, unrouted, as an SMS
from an unknown number is.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from i18n.classifier import classify
from service.audit.service import Actor, record
from service.checkins import events, routing
from service.checkins import service as checkins
from service.checkins.models import CheckIn, CheckInState, StaffTask, TaskKind
from service.config import get_settings
from service.privacy import mask_phone
from service.registry.channels import LineLinkCode, code_usable, normalize_link_code
from service.registry.models import Resident, ResidentStatus
from service.telephony.messaging import WHATSAPP_PREFIX
from service.telephony.models import (
    InboundMessage,
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
)
from service.telephony.outbox import enqueue
from service.timeline.service import timeline

log = logging.getLogger(__name__)
LINE_WEBHOOK = Actor(label="line webhook")
LINE = "line"


def _answers_allowed(
    session: Session, *, channel: str, resident_id: uuid.UUID, now: datetime
) -> bool:
    """Against reply loops (an auto-responder answering our answers): a resident's messages
    on an app are answered up to the chatter cap per hour; beyond it they are still read
    and acted on, only not answered."""
    recent = session.execute(
        select(func.count())
        .select_from(InboundMessage)
        .where(
            InboundMessage.resident_id == resident_id,
            InboundMessage.channel == channel,
            InboundMessage.received_at >= now - timedelta(hours=1),  # type: ignore[operator]
        )
    ).scalar_one()
    if recent <= get_settings().sms_per_recipient_per_hour:
        return True
    log.warning("not answering resident %s on %s: per-recipient cap", resident_id, channel)
    return False


def is_whatsapp(sender: str) -> bool:
    return sender.startswith(WHATSAPP_PREFIX)


def _resident_reply(
    session: Session,
    *,
    resident: Resident,
    channel: str,
    sid: str,
    from_address: str,
    to: str | None,
    text: str,
    params: dict[str, Any],
    now: datetime,
) -> str | None:
    inbound = InboundMessage(
        message_sid=sid,
        channel=channel,
        from_phone=from_address[:32],
        to_phone=to,
        body=text,
        received_at=now,
        organization_id=resident.organization_id,
        resident_id=resident.id,
        params=params,
        processed_at=now,  # acted on here, in this request
    )
    session.add(inbound)
    session.flush()
    return checkins.handle_resident_reply(
        session, resident=resident, text=text, channel=channel, now=now, inbound_id=inbound.id
    )


def _stranger(
    session: Session,
    *,
    channel: str,
    sid: str,
    sender: str,
    to: str | None,
    text: str,
    params: dict[str, Any],
    now: datetime,
) -> None:
    """Stored for staff as an SMS from an unknown number is: read for a cry for help, and
    put on the inbox of the one organization it can belong to, else on every
    organization's inbox as unrouted (a message with no task is seen by nobody)."""
    inbound = InboundMessage(
        message_sid=sid,
        channel=channel,
        from_phone=sender[:32],
        to_phone=to,
        body=text,
        received_at=now,
        params=params,
        organization_id=routing.organization_for_stranger(session, to_phone=to, params=params),
        classification=classify(text, None).kind.value,
        needs_staff=True,
        processed_at=now,
    )
    session.add(inbound)
    session.flush()
    session.add(
        StaffTask(
            organization_id=inbound.organization_id,
            kind=TaskKind.unknown_sender,
            inbound_id=inbound.id,
            created_at=now,
        )
    )


# --- WhatsApp ----------------------------------------------------------------------------------


def accept_whatsapp(session: Session, form: dict[str, str], now: datetime) -> str | None:
    """A WhatsApp message on Twilio's signed SMS webhook (its event key already recorded).
    Returns the answer, sent back by TwiML on WhatsApp, inside the session it opened."""
    sender = form["From"]
    phone = sender[len(WHATSAPP_PREFIX) :]
    text = form.get("Body", "")
    if events.answering_as_member(session, InboundMessage(from_phone=phone, body=text)):
        return _whatsapp_not_resident(session, form, phone, now)  # a member's answer
    resident, _member = events.find_sender(session, phone, form.get("To"))
    if resident is None:
        return _whatsapp_not_resident(session, form, phone, now)
    answer = _resident_reply(
        session,
        resident=resident,
        channel="whatsapp",
        sid=form["MessageSid"],
        from_address=sender,
        to=form.get("To"),
        text=text,
        params=form,
        now=now,
    )
    allowed = _answers_allowed(session, channel="whatsapp", resident_id=resident.id, now=now)
    return answer if allowed else None


def _whatsapp_not_resident(
    session: Session, form: dict[str, str], phone: str, now: datetime
) -> str | None:
    """A member's or a stranger's WhatsApp message: routed as their SMS would be (a member's
    answer to an alert by the member protocol, a stranger's to staff's inbox), and answered
    on WhatsApp up to the per-recipient cap."""
    inbound = InboundMessage(
        message_sid=form["MessageSid"],
        channel="whatsapp",
        from_phone=phone[:32],
        to_phone=form.get("To"),
        body=form.get("Body", ""),
        received_at=now,
        params=form,
        processed_at=now,
    )
    session.add(inbound)
    session.flush()
    answer, _locale = events.on_inbound_sms(session, inbound, now)
    log.info("whatsapp from a non-resident %s", mask_phone(phone))
    recent = session.execute(
        select(func.count())
        .select_from(InboundMessage)
        .where(
            InboundMessage.from_phone == inbound.from_phone,
            InboundMessage.channel == "whatsapp",
            InboundMessage.received_at >= now - timedelta(hours=1),  # type: ignore[operator]
        )
    ).scalar_one()
    return answer if recent <= get_settings().sms_per_recipient_per_hour else None


# --- LINE --------------------------------------------------------------------------------------


def _line_resident(session: Session, user_id: str) -> Resident | None:
    """The resident a LINE user is linked to. One account on several records (a household,
    a resident registered again): the one whose check-in is waiting, else one who still
    lives here, the most recently changed first."""
    residents = list(
        session.execute(select(Resident).where(Resident.line_user_id == user_id)).scalars()
    )
    if len(residents) <= 1:
        return residents[0] if residents else None
    waiting = set(
        session.execute(
            select(CheckIn.resident_id).where(
                CheckIn.resident_id.in_([r.id for r in residents]),  # type: ignore[attr-defined]
                CheckIn.state == CheckInState.waiting,
            )
        ).scalars()
    )

    def rank(resident: Resident) -> tuple[bool, bool, float]:
        updated = _aware(resident.updated_at) if resident.updated_at else None
        return (
            resident.id not in waiting,
            resident.status == ResidentStatus.moved_out,
            -(updated.timestamp() if updated else 0.0),
        )

    return min(residents, key=rank)


def line_text(
    session: Session,
    *,
    user_id: str,
    message_id: str,
    text: str,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    """A message from a LINE user, as the signed webhook names them: a linked resident's
    reply (answered by a LINE push through the outbox), a link code, or a stranger's
    message. ``extra``: what a message that is not text carried (a sticker, a photo, a
    location), kept for staff; its ``text`` is only a placeholder, read as unclear."""
    sid = f"line:{message_id}"
    if session.execute(select(InboundMessage.id).where(InboundMessage.message_sid == sid)).first():
        return  # LINE's redelivery of an event already stored
    params = {"line_user_id": user_id, "message_id": message_id, **(extra or {})}
    # A valid code links even from an account already linked (a resident registered again,
    # a household): read first, it is never taken for a reply to the old record.
    code = normalize_link_code(text) if extra is None else None
    if code is not None and link_line_user(session, code=code, user_id=user_id, now=now):
        _link_message(session, sid=sid, code=code, params=params, now=now)
        return
    resident = _line_resident(session, user_id)
    if resident is not None:
        answer = _resident_reply(
            session,
            resident=resident,
            channel=LINE,
            sid=sid,
            from_address=LINE,
            to=None,
            text=text,
            params=params,
            now=now,
        )
        if answer and _answers_allowed(session, channel=LINE, resident_id=resident.id, now=now):
            enqueue(
                session,
                organization_id=resident.organization_id,
                channel=OutboxChannel.line,
                purpose=OutboxPurpose.resident_notice,
                to_phone=LINE,
                address=user_id,
                body=answer,
                locale=resident.language,
                resident_id=resident.id,
                now=now,
            )
        return
    _stranger(
        session, channel=LINE, sid=sid, sender=LINE, to=None, text=text, params=params, now=now
    )


def _link_message(
    session: Session, *, sid: str, code: str, params: dict[str, Any], now: datetime
) -> None:
    """The message that linked an account, kept (its id only: no body, no resident, so
    nothing reads it as a reply, translates it or counts it) so that LINE's redelivery of
    it is known and not read again as the resident's reply."""
    organization_id = session.execute(
        select(LineLinkCode.organization_id).where(LineLinkCode.code == code)
    ).scalar_one()
    session.add(
        InboundMessage(
            message_sid=sid,
            channel=LINE,
            from_phone=LINE,
            body="",
            received_at=now,
            organization_id=organization_id,
            params=params,
            processed_at=now,
        )
    )


def link_line_user(session: Session, *, code: str, user_id: str, now: datetime) -> bool:
    """Link the LINE user who sent a valid, unused, unexpired code to its resident."""
    link = (
        session.execute(select(LineLinkCode).where(LineLinkCode.code == code).with_for_update())
        .scalars()
        .first()
    )
    if link is None or not code_usable(_aware(link.expires_at), link.used_at, now):
        return False
    resident = session.get(Resident, link.resident_id)
    if resident is None or resident.organization_id != link.organization_id:
        return False
    link.used_at = now
    session.add(link)
    _set_line_user(session, resident, user_id, now, via="line link code")
    return True


def _set_line_user(
    session: Session, resident: Resident, user_id: str | None, now: datetime, *, via: str
) -> None:
    """Link (or, with ``None``, unlink) a resident's LINE account: audited, and on their
    timeline as linked or as blocking us."""
    resident.line_user_id = user_id
    resident.updated_at = now
    session.add(resident)
    record(
        session=session,
        organization_id=resident.organization_id,
        actor=LINE_WEBHOOK,
        action="update",
        entity_type="resident",
        entity_id=resident.id,
        fields=["line_user_id"],
        detail={"via": via},
    )
    timeline(
        session,
        resident_id=resident.id,
        organization_id=resident.organization_id,
        kind="channel.line_linked" if user_id else "channel.line_blocked",
        at=now,
    )


def line_unfollow(session: Session, *, user_id: str, now: datetime) -> int:
    """The user blocked the account: unlinked, and a LINE check-in message still on its way
    to them, or waiting for them, fails, so the check-in falls back to its next channel."""
    residents = list(
        session.execute(select(Resident).where(Resident.line_user_id == user_id)).scalars()
    )
    for resident in residents:
        _set_line_user(session, resident, None, now, via="line unfollow")
    open_messages = session.execute(
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == OutboxChannel.line,
            OutboxMessage.address == user_id,
            OutboxMessage.attempt_id.is_not(None),  # type: ignore[union-attr]
            OutboxMessage.status.in_([OutboxStatus.pending, OutboxStatus.sent]),  # type: ignore[attr-defined]
        )
        .with_for_update()
    ).scalars()
    for message in open_messages:
        message.status = OutboxStatus.undelivered
        message.final_at = now
        message.updated_at = now
        message.last_error = "LINE: the user blocked the account"
        session.add(message)
        session.flush()
        events.on_outbox_failed(session, message, now)
    return len(residents)


def _aware(at: datetime) -> datetime:
    from service.common import aware

    result = aware(at)
    assert result is not None
    return result


def new_line_link_code(
    session: Session,
    *,
    organization_id: uuid.UUID,
    resident_id: uuid.UUID,
    actor: Actor,
    now: datetime,
) -> LineLinkCode:
    """Issued by staff for one resident of their organization (checked by the caller)."""
    from service.registry.channels import LINK_CODE_TTL, new_link_code

    link = LineLinkCode(
        organization_id=organization_id,
        resident_id=resident_id,
        code=new_link_code(),
        created_by=actor.label,
        created_at=now,
        expires_at=now + LINK_CODE_TTL,
    )
    session.add(link)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="create",
        entity_type="line_link_code",
        entity_id=link.id,
        detail={"resident_id": str(resident_id)},
    )
    return link

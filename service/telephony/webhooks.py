"""The five Twilio webhooks. Signed, stored, idempotent, and quick: nothing here calls
Twilio, and the only work is a few database writes in one transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session

from i18n.names import LocalizedName
from i18n.voice import VoicePrompt
from i18n.voice import voice_prompt as _voice_prompt
from service.checkins import events, routing
from service.checkins import service as checkins
from service.clock import get_clock
from service.config import get_settings
from service.db import SessionDep, get_engine
from service.escalations import service as escalations
from service.escalations.models import Alert, AlertState, Escalation, EscalationState
from service.privacy import mask_phone
from service.registry.models import Member, Organization, Resident
from service.telephony import app_inbound, twiml
from service.telephony.errors import classify_twilio_error_code
from service.telephony.models import (
    InboundMessage,
    OutboxChannel,
    OutboxMessage,
    OutboxPurpose,
    OutboxStatus,
    WebhookEvent,
)
from service.telephony.outbox import enqueue, recent_sms_count, sms_cap
from service.telephony.provider import gather_action_url
from service.telephony.signature import TwilioForm

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio webhooks"])
AttemptParam = Annotated[str | None, Query(alias="attempt")]

XML = "application/xml"


def voice_prompt(prompt_id: str, locale: str | None, **values: object) -> VoicePrompt:
    """``i18n.voice.voice_prompt`` with this installation's audio: an operator's recordings
    and the built prompts, played from ``GET /audio/...`` under the public URL."""
    settings = get_settings()
    return _voice_prompt(
        prompt_id,
        locale,
        public_url=settings.public_url,
        recordings_dir=settings.voice_audio_dir,
        prompts_dir=settings.voice_prompts_dir,
        **values,
    )


# The order a message moves in; a late or repeated callback never moves it backwards.
_PROGRESS = {
    OutboxStatus.pending: 0,
    OutboxStatus.sending: 1,
    OutboxStatus.ambiguous: 1,
    OutboxStatus.sent: 2,
    OutboxStatus.delivered: 3,
    OutboxStatus.answered: 3,
}
_FINAL_FAILURE = {
    OutboxStatus.failed,
    OutboxStatus.undelivered,
    OutboxStatus.no_answer,
    OutboxStatus.busy,
    OutboxStatus.machine,
}
_SMS_STATUS = {
    "accepted": OutboxStatus.sent,
    "queued": OutboxStatus.sent,
    "sending": OutboxStatus.sent,
    "sent": OutboxStatus.sent,
    "delivered": OutboxStatus.delivered,
    "read": OutboxStatus.delivered,
    "undelivered": OutboxStatus.undelivered,
    "failed": OutboxStatus.failed,
}
_CALL_STATUS = {
    "completed": OutboxStatus.answered,
    "busy": OutboxStatus.busy,
    "no-answer": OutboxStatus.no_answer,
    "failed": OutboxStatus.failed,
    "canceled": OutboxStatus.no_answer,
}


def _xml(body: str) -> Response:
    return Response(content=body, media_type=XML)


def _require(form: dict[str, str], *names: str) -> None:
    missing = [n for n in names if not form.get(n)]
    if missing:
        raise HTTPException(status_code=400, detail=f"missing webhook fields: {', '.join(missing)}")


def _event_insert(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = WebhookEvent.__table__  # type: ignore[attr-defined]
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["kind", "sid", "status"])
        .returning(table.c.sid)
    )


# Built once per dialect: the statement is the same for every webhook, only the values change.
_EVENT_INSERT = {name: _event_insert(name) for name in ("postgresql", "sqlite")}


def first_time_many(
    connection: Connection, kind: str, sids: Collection[str], status: str, now: datetime
) -> set[str]:
    """Record the events' keys in the caller's transaction; return the SIDs not seen before.

    One ``INSERT … ON CONFLICT DO NOTHING``: the same event racing in on another worker
    waits for that worker's transaction and then inserts nothing. Callers pass many SIDs in
    a sorted order, so that two transactions lock their keys in the same order.
    """
    rows = [
        {"id": uuid.uuid4(), "kind": kind, "sid": sid, "status": status, "received_at": now}
        for sid in sids
    ]
    if not rows:
        return set()
    result = connection.execute(_EVENT_INSERT[connection.dialect.name], rows)
    return set(result.scalars().all())


def _first_time(session: Session, kind: str, sid: str, status: str) -> bool:
    """Record the event's key in the caller's transaction; False if it was seen before."""
    return bool(first_time_many(session.connection(), kind, [sid], status, get_clock().now()))


def _find_message(session: Session, sid: str | None, row_id: str | None) -> OutboxMessage | None:
    """The outbox row a callback is about, locked until the request commits (on PostgreSQL):
    two callbacks for one message on two workers would otherwise both start from the same
    status, and the one committing last could move the message backwards."""
    if sid:
        found = (
            session.execute(select(OutboxMessage).where(OutboxMessage.sid == sid).with_for_update())
            .scalars()
            .first()
        )
        if found is not None:
            return found
    if row_id:
        try:
            message = session.get(OutboxMessage, uuid.UUID(row_id), with_for_update=True)
        except ValueError:
            return None
        if message is not None and sid and message.sid is None:
            # The callback arrived before the dispatcher recorded the send (or the send was
            # ambiguous): the SID in the callback is the proof Twilio has it.
            message.sid = sid
        return message
    return None


def _apply_status(
    session: Session, message: OutboxMessage, status: OutboxStatus, error_code: int | None
) -> None:
    now = get_clock().now()
    current = OutboxStatus(message.status)
    if current in _FINAL_FAILURE or current == OutboxStatus.cancelled:
        return
    if status in _FINAL_FAILURE:
        message.status = status
        message.last_error_code = error_code
        message.final_at = now
        message.updated_at = now
        session.add(message)
        session.flush()
        events.on_outbox_failed(session, message, now)
        return
    if _PROGRESS.get(status, 0) <= _PROGRESS.get(current, 0):
        return
    message.status = status
    if message.sent_at is None:
        message.sent_at = now
    message.updated_at = now
    session.add(message)
    events.on_outbox_status(session, message, status, now)


@router.post("/sms")
def inbound_sms(form: TwilioForm) -> Response:
    """An SMS to our number. Stored whoever sent it; answered in the sender's language.

    A resident's reply (the burst after an earthquake round: thousands within minutes) is
    stored, classified and answered, and acted on by the scheduler's ``process_replies``
    within a second. Most of those never reach this route: ``intake.SmsIntakeMiddleware``
    takes them many to a transaction and answers the same way. What reaches it is a reply
    the intake left (its batch failed, or the form is unusual), done here in four
    statements and a commit, and a member's reply, a shared phone's or a stranger's,
    routed here and now: its answer depends on the cases it is about.

    The session is opened here rather than through ``SessionDep``: a generator dependency
    costs two more hops through the thread pool per request.
    """
    _require(form, "MessageSid", "From")
    with Session(get_engine()) as session:
        return _inbound_sms(form, session)


def _inbound_sms(form: dict[str, str], session: Session) -> Response:
    sid = form["MessageSid"]
    now = get_clock().now()
    if not _first_time(session, "sms", sid, "received"):
        return _xml(twiml.sms_reply(None))
    if app_inbound.is_whatsapp(form["From"]):
        # A WhatsApp reply: answered on WhatsApp by the same TwiML (``app_inbound``).
        answer = app_inbound.accept_whatsapp(session, form, now)
        session.commit()
        return _xml(twiml.sms_reply(answer))
    reply: str | None
    sender = events.sole_resident_sender(session, form["From"])
    if sender is not None:
        reply, locale = events.accept_resident_reply(session, form, sender, now)
        recipient = (sender.organization_id, sender.resident_id, None)
    else:
        inbound = InboundMessage(
            message_sid=sid,
            from_phone=form["From"],
            to_phone=form.get("To"),
            body=form.get("Body", ""),
            received_at=now,
            params=form,
            processed_at=now,
        )
        session.add(inbound)
        session.flush()
        reply, locale = events.on_inbound_sms(session, inbound, now)
        recipient = (inbound.organization_id, inbound.resident_id, inbound.member_id)
    member_answer = recipient[2] is not None and recipient[1] is None
    if reply and not _reply_allowed(
        session, form["From"], now, unrouted=recipient[0] is None, member=member_answer
    ):
        reply = None
    if reply:
        organization_id, resident_id, member_id = recipient
        checkins.record_reply_sent(
            session,
            organization_id=organization_id,
            to_phone=form["From"],
            body=reply,
            locale=locale,
            resident_id=resident_id,
            member_id=member_id,
            now=now,
        )
    session.commit()
    log.info(
        "inbound sms from %s",
        mask_phone(form["From"]),
        extra={"event": "webhook.sms", "sid": sid},
    )
    return _xml(twiml.sms_reply(reply))


def _reply_allowed(
    session: Session, phone: str, now: datetime, *, unrouted: bool, member: bool = False
) -> bool:
    """A TwiML answer counts against the same per-recipient cap as any other SMS of its
    kind: the answer to a member's reply (a confirmation of their outcome, the case they
    took) against the alerts' cap, never the chatter's. An answer to an unrouted message
    has no outbox row (it has no organization): the earlier unrouted messages from the
    number, each answered, count instead."""
    cap = sms_cap(get_settings(), alerts=member)
    sent = recent_sms_count(session.connection(), phone, now, alerts=member)
    if unrouted:
        sent += routing.recent_unrouted_count(session, phone, now) - 1  # not this one
    if sent < cap:
        return True
    log.warning("not replying to %s: per-recipient cap", mask_phone(phone))
    return False


@router.post("/status")
def message_status(form: TwilioForm, session: SessionDep, attempt: AttemptParam = None) -> Response:
    _require(form, "MessageSid")
    sid = form["MessageSid"]
    raw_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not _first_time(session, "status", sid, raw_status):
        return Response(status_code=204)
    message = _find_message(session, sid, attempt)
    status = _SMS_STATUS.get(raw_status)
    if message is not None and status is not None:
        code = form.get("ErrorCode")
        error_code = int(code) if code and code.isdigit() else None
        if status == OutboxStatus.failed and classify_twilio_error_code(error_code) == "transient":
            status = OutboxStatus.undelivered
        _apply_status(session, message, status, error_code)
    session.commit()
    return Response(status_code=204)


def _org_name(session: Session, message: OutboxMessage) -> str:
    """The organization's name as the call's voice can pronounce it: an English voice is
    never given kanji (``i18n.names.spoken_name``)."""
    org = session.get(Organization, message.organization_id)
    return LocalizedName.of(org).spoken(message.locale) if org else ""


@router.post("/voice")
def voice(form: TwilioForm, session: SessionDep, attempt: AttemptParam = None) -> Response:
    """TwiML for a check-in call we placed. A machine is not an answer."""
    _require(form, "CallSid")
    message = _find_message(session, form["CallSid"], attempt)
    if message is None:
        return _xml(twiml.hangup())
    locale, org = message.locale, _org_name(session, message)
    alert_call = message.alert_id is not None and message.channel == OutboxChannel.call
    case = _open_alert_case(session, message) if alert_call else None
    answered_by = form.get("AnsweredBy", "").lower()
    if answered_by.startswith("machine") or answered_by == "fax":
        _apply_status(session, message, OutboxStatus.machine, None)
        session.commit()
        if alert_call:
            voicemail = "voice.alert_voicemail"
        else:  # a resident we reach only by phone is not told to answer by SMS
            voicemail = checkins.voicemail_message_id(session, message.resident_id)
        return _xml(twiml.machine_message(voice_prompt(voicemail, locale, org=org)))
    session.commit()
    if alert_call and case is None:
        # Answered by SMS, taken by someone else, or resolved since the call was placed.
        return _xml(twiml.gather_result(voice_prompt("voice.alert_closed", locale)))
    settings = get_settings()
    if case is not None:
        greeting = voice_prompt("voice.alert", locale, org=org, code=case.case_code)
        menu = voice_prompt("voice.alert_menu", locale)
    else:
        greeting = voice_prompt("voice.greeting", locale, org=org)
        menu = voice_prompt("voice.menu", locale)
    return _xml(
        twiml.checkin_call(
            greeting=greeting,
            menu=menu,
            gather_action_url=gather_action_url(settings, attempt_id=message.id),
            no_input=voice_prompt("voice.no_input", locale),
        )
    )


def _open_alert_case(session: Session, message: OutboxMessage) -> Escalation | None:
    """The escalation an alert call is about, if that alert still waits for its member."""
    alert = session.get(Alert, message.alert_id) if message.alert_id else None
    if alert is None or alert.state != AlertState.sent:
        return None
    escalation = session.get(Escalation, alert.escalation_id)
    if escalation is None or escalation.state != EscalationState.alerting:
        return None
    return escalation


def _alert_call_keypad(
    session: Session, message: OutboxMessage, form: dict[str, str], digits: str, now: datetime
) -> str:
    """A member pressed a key on an alert call: 1 is "I'll go", 2 "I can't", as by SMS.
    The answer the SMS would have got (the address, on "1") goes to them by SMS."""
    locale = message.locale
    case = _open_alert_case(session, message)
    member = session.get(Member, message.member_id) if message.member_id else None
    if case is None or member is None or message.alert_id is None:
        return voice_prompt("voice.alert_closed", locale)
    if digits not in ("1", "2"):
        return voice_prompt("voice.no_input", locale)
    inbound = InboundMessage(
        message_sid=f"{form['CallSid']}/gather/{digits}",
        channel="keypad",
        from_phone=member.phone,
        # Stored as the SMS answer it stands for (digit first: an answer to the alert), for
        # the timeline and the records. A later "1 A7" by SMS is the same acknowledgement
        # (member protocol v2, escalations.policy).
        body=f"{digits} {case.case_code}",
        received_at=now,
        organization_id=member.organization_id,
        member_id=member.id,
        params=form,
        processed_at=now,
    )
    session.add(inbound)
    session.flush()
    answer = escalations.answer_alert_by_keypad(
        session, alert_id=message.alert_id, member=member, digit=digits, now=now
    )
    if answer is None:  # settled meanwhile, by an SMS answer or the sweep
        return voice_prompt("voice.alert_closed", locale)
    enqueue(
        session,
        organization_id=member.organization_id,
        channel=OutboxChannel.sms,
        purpose=OutboxPurpose.member_notice,
        to_phone=member.phone,
        body=answer,
        locale=(member.languages or ["ja"])[0],
        resident_id=case.resident_id,
        member_id=member.id,
        now=now,
    )
    _apply_status(session, message, OutboxStatus.answered, None)
    return voice_prompt("voice.thanks", locale)


@router.post("/voice/gather")
def voice_gather(form: TwilioForm, session: SessionDep, attempt: AttemptParam = None) -> Response:
    """Keypad digits from a check-in call: the same reply handling as an SMS."""
    _require(form, "CallSid")
    call_sid = form["CallSid"]
    digits = form.get("Digits", "").strip()
    message = _find_message(session, call_sid, attempt)
    locale = message.locale if message else "easy_ja"
    if not digits:
        return _xml(twiml.gather_result(voice_prompt("voice.no_input", locale)))
    if not _first_time(session, "gather", call_sid, digits):
        return _xml(twiml.gather_result(voice_prompt("voice.thanks", locale)))
    now = get_clock().now()
    if message is not None and message.alert_id is not None:
        said = _alert_call_keypad(session, message, form, digits, now)
        session.commit()
        return _xml(twiml.gather_result(said))
    if message is not None and message.resident_id is not None:
        resident = session.get(Resident, message.resident_id)
        if resident is not None:
            inbound = InboundMessage(
                message_sid=f"{call_sid}/gather/{digits}",
                channel="keypad",
                from_phone=form.get("To") or resident.phone or "",
                body=digits,
                received_at=now,
                organization_id=resident.organization_id,
                resident_id=resident.id,
                params=form,
                processed_at=now,  # acted on below, in this request
            )
            session.add(inbound)
            session.flush()
            checkins.handle_resident_reply(
                session,
                resident=resident,
                text=digits,
                channel="voice",
                now=now,
                inbound_id=inbound.id,
            )
            _apply_status(session, message, OutboxStatus.answered, None)
    session.commit()
    return _xml(twiml.gather_result(voice_prompt("voice.thanks", locale)))


@router.post("/voice/status")
def call_status(form: TwilioForm, session: SessionDep, attempt: AttemptParam = None) -> Response:
    _require(form, "CallSid")
    sid = form["CallSid"]
    raw_status = form.get("CallStatus", "").lower()
    if not _first_time(session, "call", sid, raw_status):
        return Response(status_code=204)
    message = _find_message(session, sid, attempt)
    status = _CALL_STATUS.get(raw_status)
    if message is not None and status is not None:
        if status == OutboxStatus.answered and message.status == OutboxStatus.machine:
            status = OutboxStatus.machine
        _apply_status(session, message, status, None)
    session.commit()
    return Response(status_code=204)

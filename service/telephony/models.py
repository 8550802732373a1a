"""Outbox, inbound messages and webhook idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field


class OutboxChannel(StrEnum):
    sms = "sms"
    call = "call"
    # Messaging apps (``service.telephony.messaging``): to_phone is the number for
    # WhatsApp; a LINE message goes to its ``address`` (the LINE user id).
    whatsapp = "whatsapp"
    line = "line"


class OutboxStatus(StrEnum):
    pending = "pending"  # waiting to be sent (next_try_at says when)
    sending = "sending"  # its request is leaving or in flight (lease_until says how long)
    sent = "sent"  # Twilio accepted it: it has a SID and is never sent again
    delivered = "delivered"
    undelivered = "undelivered"
    failed = "failed"  # permanent failure, or transient failures past the deadline
    # May or may not have reached Twilio: reconciled with Twilio's own record (see
    # ``reconcile.py``); final only when it could not be resolved and is not resent.
    ambiguous = "ambiguous"
    cancelled = "cancelled"
    # Call outcomes
    answered = "answered"
    no_answer = "no_answer"
    busy = "busy"
    machine = "machine"


FINAL_FAILURES = {
    OutboxStatus.failed,
    OutboxStatus.undelivered,
    OutboxStatus.no_answer,
    OutboxStatus.busy,
    OutboxStatus.machine,
}


class Reconciliation(StrEnum):
    """How a row whose fate was uncertain was resolved (``OutboxMessage.reconciliation``)."""

    uncertain = "uncertain"  # not resolved yet (Twilio not asked yet, or not answering)
    found = "found"  # Twilio had it: its SID was stored, it was not sent again
    not_found = "not_found"  # Twilio did not have it: sent (again)
    resent = "resent"  # Twilio could not be asked for the set time: a check-in or alert resent
    gave_up = "gave_up"  # the same, for a notice: left ambiguous, not resent


class OutboxPurpose(StrEnum):
    checkin = "checkin"  # a check-in attempt to a resident (SMS or call)
    resident_notice = "resident_notice"  # confirmations to a resident outside TwiML
    alert = "alert"  # escalation alert to a member or staff
    alert_call = "alert_call"  # the same alert as a call, besides the SMS (if configured)
    member_notice = "member_notice"  # reminders, confirmations, late-reply notices


# What a member needs to act on a case, and the answers to a member's own replies: their
# per-recipient cap is ``alert_sms_per_hour``, much higher than the chatter's
# (``sms_per_recipient_per_hour``, against floods and reply loops), and neither cap counts
# the other's messages. Everything else (check-ins, notices to residents) is chatter.
ALERT_PURPOSES: frozenset[str] = frozenset(
    {OutboxPurpose.alert.value, OutboxPurpose.alert_call.value, OutboxPurpose.member_notice.value}
)
CHATTER_PURPOSES: frozenset[str] = frozenset(p.value for p in OutboxPurpose) - ALERT_PURPOSES


def is_alert_purpose(purpose: str) -> bool:
    """Whether a message of this purpose counts against the alert cap, not the chatter's."""
    return str(getattr(purpose, "value", purpose)) in ALERT_PURPOSES


# An SMS that failed for good: no SMS to its number can succeed (``outbox.dead_sms_numbers``).
DEAD_SMS_WHERE = (
    "channel = 'sms' AND status = 'failed' AND last_error_code IN (21211, 21610, 21614)"
)


class OutboxMessage(SQLModel, table=True):
    """One outbound SMS or call, written in the same transaction as the change that needs it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_try_at"),
        Index("ix_outbox_recipient", "to_phone", "created_at"),
        # Partial: a round's check-in messages have no alert and, until sent, no SID, so
        # starting a round for 100,000 residents does not write 200,000 index entries of
        # NULL. Looking a message up by either still uses them (``x = ?`` implies NOT NULL).
        Index(
            "ix_outbox_alert_id",
            "alert_id",
            postgresql_where=text("alert_id IS NOT NULL"),
            sqlite_where=text("alert_id IS NOT NULL"),
        ),
        Index(
            "uq_outbox_sid",
            "sid",
            unique=True,
            postgresql_where=text("sid IS NOT NULL"),
            sqlite_where=text("sid IS NOT NULL"),
        ),
        # SMS that failed for good (21610 STOP, 21614 not a mobile, 21211 invalid): few rows,
        # looked up for every resident a round or a plan step is about to text.
        Index(
            "ix_outbox_dead_sms",
            "to_phone",
            postgresql_where=text(DEAD_SMS_WHERE),
            sqlite_where=text(DEAD_SMS_WHERE),
        ),
        # Retries waiting (few, even in a round of 100,000): the dispatcher takes those due
        # before first sends, so a resident's retries are not queued behind a whole round.
        Index(
            "ix_outbox_due_retry",
            "next_try_at",
            postgresql_where=text("status = 'pending' AND tries > 0"),
            sqlite_where=text("status = 'pending' AND tries > 0"),
        ),
        # Only rows whose fate was ever uncertain: the reconciliation pass and /metrics.
        Index(
            "ix_outbox_reconciliation",
            "reconciliation",
            postgresql_where=text("reconciliation IS NOT NULL"),
            sqlite_where=text("reconciliation IS NOT NULL"),
        ),
    )
    id: uuid.UUID = id_field()
    # No index of its own: the outbox is read by status, recipient, resident, attempt or
    # alert, each indexed; every row's organization is checked by its foreign key.
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    channel: OutboxChannel = Field(sa_type=String(8))
    purpose: OutboxPurpose = Field(sa_type=String(20))
    to_phone: str = Field(max_length=20)
    # A messaging app's address where it is not the phone number (a LINE user id, 33
    # characters); to_phone then names the app (``messaging.address_of``).
    address: str | None = Field(default=None, max_length=64)
    body: str | None = Field(default=None, sa_type=Text)
    locale: str = Field(default="ja", max_length=16)
    resident_id: uuid.UUID | None = Field(
        default=None, foreign_key="resident.id", ondelete="SET NULL", index=True
    )
    member_id: uuid.UUID | None = Field(default=None, foreign_key="member.id", ondelete="SET NULL")
    attempt_id: uuid.UUID | None = Field(default=None, index=True)
    alert_id: uuid.UUID | None = Field(default=None)
    status: OutboxStatus = Field(default=OutboxStatus.pending, sa_type=String(16))
    sid: str | None = Field(default=None, max_length=64)
    tries: int = 0
    next_try_at: datetime = timestamp_field()
    give_up_at: datetime = timestamp_field()
    claimed_at: datetime | None = timestamp_field(nullable=True)
    # While "sending": the dispatcher that claimed the row renews this every few seconds.
    # Past it, that dispatcher is gone, and the row's fate is reconciled with Twilio.
    lease_until: datetime | None = timestamp_field(nullable=True)
    # When the row's fate became uncertain (a timeout after sending, an expired lease), and
    # how that was resolved (``Reconciliation``).
    uncertain_since: datetime | None = timestamp_field(nullable=True)
    reconciliation: str | None = Field(default=None, max_length=16)
    sent_at: datetime | None = timestamp_field(nullable=True)
    final_at: datetime | None = timestamp_field(nullable=True)
    last_error_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class InboundMessage(SQLModel, table=True):
    """Every inbound SMS is stored, including one from a number nobody knows."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        Index("ix_inbound_org_received", "organization_id", "received_at"),
        Index("ix_inbound_unprocessed", "processed_at", "received_at"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID | None = Field(default=None, foreign_key="organization.id")
    channel: str = Field(default="sms", max_length=8)  # sms, or keypad for voice digits
    message_sid: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    from_phone: str = Field(max_length=32)
    to_phone: str | None = Field(default=None, max_length=32)
    body: str = Field(default="", sa_type=Text)
    received_at: datetime = timestamp_field()
    resident_id: uuid.UUID | None = Field(
        default=None, foreign_key="resident.id", ondelete="SET NULL", index=True
    )
    member_id: uuid.UUID | None = Field(default=None, foreign_key="member.id", ondelete="SET NULL")
    classification: str | None = Field(default=None, max_length=32)
    needs_staff: bool = False
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # A resident's SMS is answered by the webhook and acted on by ``process_replies`` (the
    # scheduler, within a second): NULL until then. ``language`` is the one it was read in.
    processed_at: datetime | None = timestamp_field(nullable=True)
    language: str | None = Field(default=None, max_length=16)
    # A message no organization could be identified for has no ``organization_id``: every
    # organization's inbox shows it as unrouted until one claims it, then (``routing``).
    claimed_at: datetime | None = timestamp_field(nullable=True)


class WebhookEvent(SQLModel, table=True):
    """Twilio retries a webhook it did not hear back from; the unique key makes it a no-op."""

    __tablename__ = "webhook_event"
    __table_args__ = (UniqueConstraint("kind", "sid", "status"),)
    id: uuid.UUID = id_field()
    kind: str = Field(max_length=20)
    sid: str = Field(max_length=64)
    status: str = Field(max_length=32)
    received_at: datetime = timestamp_field()

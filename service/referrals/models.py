"""Consent to share with a partner, and referrals (issue 21).

A referral copies, when it is sent, exactly what the partner may see into ``shared``: the
resident's name, phone, site and language when the resident consented to sharing with
THAT partner (plus notes or health details only if the consent covers them), and nothing
personal at all for an anonymous request (language, a site-level place, the reason).
The partner reads only that copy, and only while the referral is open.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from service.common import StrictBody, id_field, timestamp_field
from service.texts import N_, TextError


class ConsentMethod(StrEnum):
    verbal_phone = "verbal_phone"  # said so on the phone
    verbal_in_person = "verbal_in_person"  # said so at a visit
    written = "written"  # signed a form


class SourceKind(StrEnum):
    case = "case"  # an escalation
    callback = "callback"  # a call-back task (the resident wants to talk)
    inbox = "inbox"  # any other inbox item (staff task) of the resident


class ReasonCategory(StrEnum):
    language_support = "language_support"
    daily_life = "daily_life"
    health_care = "health_care"
    housing = "housing"
    work = "work"
    money = "money"
    safety = "safety"
    isolation = "isolation"
    other = "other"


class ReferralStatus(StrEnum):
    sent = "sent"  # waiting for the partner
    accepted = "accepted"  # the partner takes it on
    declined = "declined"  # the partner cannot: closed
    closed = "closed"  # an outcome was recorded, or the referring side withdrew it


#: While a referral is in one of these, its partner can read it.
OPEN_REFERRAL = frozenset({ReferralStatus.sent, ReferralStatus.accepted})


class ReferralOutcome(StrEnum):
    helped = "helped"
    referred_on = "referred_on"
    not_reached = "not_reached"
    not_needed = "not_needed"
    other = "other"


class ReferralConsent(SQLModel, table=True):
    """The resident agreed that THIS partner may receive their basic details (name, phone,
    site, language), and, if said so, their notes or health details too."""

    __tablename__ = "referral_consent"
    __table_args__ = (Index("ix_referral_consent_resident", "resident_id", "partner_org_id"),)

    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE")
    partner_org_id: uuid.UUID = Field(foreign_key="organization.id")
    method: ConsentMethod = Field(sa_type=String(20))
    share_notes: bool = False
    share_health: bool = False
    recorded_by: uuid.UUID | None = None
    recorded_at: datetime = timestamp_field()
    withdrawn_at: datetime | None = timestamp_field(nullable=True)
    withdrawn_by: uuid.UUID | None = None


class Referral(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (
        Index("ix_referral_org_status", "organization_id", "status"),
        Index("ix_referral_partner_status", "partner_org_id", "status"),
    )

    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    partner_org_id: uuid.UUID = Field(foreign_key="organization.id")
    partnership_id: uuid.UUID = Field(foreign_key="partnership.id")
    # The referring side's own references; never shown to the partner.
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE", index=True)
    source_kind: SourceKind = Field(sa_type=String(12))
    escalation_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    consent_id: uuid.UUID | None = Field(default=None, foreign_key="referral_consent.id")
    anonymous: bool = False
    reason: ReasonCategory = Field(sa_type=String(24))
    language: str = Field(max_length=16)
    area: str | None = Field(default=None, max_length=200)
    # What the partner sees of the resident, copied when sent: {} for an anonymous request.
    shared: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: ReferralStatus = Field(default=ReferralStatus.sent, sa_type=String(12))
    created_by: uuid.UUID | None = None
    created_at: datetime = timestamp_field()
    # The partner's answer: who of theirs helps, what happened.
    answered_by: uuid.UUID | None = None
    answered_at: datetime | None = timestamp_field(nullable=True)
    contact_name: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=20)
    decline_reason: str | None = Field(default=None, max_length=500)
    contacted_at: datetime | None = timestamp_field(nullable=True)
    contact_note: str | None = Field(default=None, sa_type=Text)
    outcome: ReferralOutcome | None = Field(default=None, sa_type=String(16))
    outcome_note: str | None = Field(default=None, sa_type=Text)
    closed_at: datetime | None = timestamp_field(nullable=True)
    closed_by: uuid.UUID | None = None


# --- Request bodies ---------------------------------------------------------------------------


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


class ConsentCreate(StrictBody):
    partner_org_id: uuid.UUID
    method: ConsentMethod
    share_notes: bool = False
    share_health: bool = False


class ReferralCreate(StrictBody):
    """``source_id`` is the escalation (``case``) or staff task (``callback``, ``inbox``)."""

    partner_org_id: uuid.UUID
    source_kind: SourceKind
    source_id: uuid.UUID
    reason: ReasonCategory
    language: str | None = Field(default=None, max_length=16)
    anonymous: bool = False
    area: str | None = Field(default=None, max_length=200)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        value = _text(value)
        if value is None:
            return None
        from i18n.languages import SUPPORTED_CODES, normalize_language_code

        code = normalize_language_code(value)
        if code is None:
            raise TextError(
                N_(
                    "unsupported language %(value)s; use one of: %(codes)s",
                    value=repr(value),
                    codes=", ".join(sorted(SUPPORTED_CODES)),
                )
            )
        return code

    @field_validator("area")
    @classmethod
    def _area(cls, value: str | None) -> str | None:
        return _text(value)


class ReferralAnswer(StrictBody):
    """The partner accepts, naming the person of theirs who will help."""

    contact_name: str = Field(min_length=1, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=20)

    @field_validator("contact_name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise TextError(N_("%(field)s is required and cannot be blank", field="contact_name"))
        return value

    @field_validator("contact_phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        value = _text(value)
        if value is None:
            return None
        from service.registry.phones import PhoneError, normalize_phone

        try:
            return normalize_phone(value)
        except PhoneError as exc:
            raise TextError(N_("invalid phone number: %(reason)s", reason=exc.text)) from None


class ReferralDecline(StrictBody):
    reason: str | None = Field(default=None, max_length=500)


class ReferralContact(StrictBody):
    note: str | None = Field(default=None, max_length=2000)


class ReferralOutcomeCreate(StrictBody):
    outcome: ReferralOutcome
    note: str | None = Field(default=None, max_length=2000)


# --- What each side reads ----------------------------------------------------------------------


class ConsentPublic(SQLModel):
    id: uuid.UUID
    resident_id: uuid.UUID
    partner_org_id: uuid.UUID
    method: ConsentMethod
    share_notes: bool
    share_health: bool
    recorded_by: uuid.UUID | None
    recorded_at: datetime
    withdrawn_at: datetime | None


class ReferralPublic(SQLModel):
    """The referring side's view: everything, including the partner's answers."""

    id: uuid.UUID
    partner_org_id: uuid.UUID
    partner_name: str | None = None
    resident_id: uuid.UUID
    source_kind: SourceKind
    escalation_id: uuid.UUID | None
    task_id: uuid.UUID | None
    anonymous: bool
    reason: ReasonCategory
    language: str
    area: str | None
    shared: dict[str, Any]
    status: ReferralStatus
    created_at: datetime
    answered_at: datetime | None
    contact_name: str | None
    contact_phone: str | None
    decline_reason: str | None
    contacted_at: datetime | None
    contact_note: str | None
    outcome: ReferralOutcome | None
    outcome_note: str | None
    closed_at: datetime | None


class PartnerReferralPublic(SQLModel):
    """The partner's view: only what the referral carries. ``person`` is the copy made when
    it was sent (name, phone, site; notes or health only if consented), absent when the
    request is anonymous. No resident id, no case or task id, no room."""

    id: uuid.UUID
    from_org_id: uuid.UUID
    from_org_name: str | None = None
    anonymous: bool
    reason: ReasonCategory
    language: str
    area: str | None
    person: dict[str, Any] | None
    status: ReferralStatus
    created_at: datetime
    answered_at: datetime | None
    contact_name: str | None
    contact_phone: str | None
    contacted_at: datetime | None
    outcome: ReferralOutcome | None
    outcome_note: str | None

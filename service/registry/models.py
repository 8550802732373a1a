"""Registry tables and their API schemas: organizations, sites, residents, members, assignments."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import ValidationInfo, field_validator, model_validator
from sqlalchemy import JSON, Column, Index, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from service.common import StrictBody, UtcDateTime, id_field, timestamp_field
from service.registry.channels import check_channels
from service.registry.phones import PhoneError, PhoneKind, normalize_phone
from service.texts import N_, Text, TextError


class ResidentStatus(StrEnum):
    active = "active"
    away = "away"
    moved_out = "moved_out"
    opted_out = "opted_out"


class Channel(StrEnum):
    sms = "sms"
    voice = "voice"
    both = "both"


class MemberKind(StrEnum):
    welfare_committee = "welfare_committee"
    supporter = "supporter"
    interpreter = "interpreter"
    staff_on_duty = "staff_on_duty"


def _check_language(value: str | None) -> str | None:
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


def _check_phone(value: str | None) -> str | None:
    try:
        return normalize_phone(value)
    except PhoneError as exc:
        raise TextError(N_("invalid phone number: %(reason)s", reason=exc.text)) from None


_REQUIRED_TEXT = {"name"}


def _blank_to_none(value: object, field: str | None = None) -> object:
    if isinstance(value, str) and not value.strip():
        if field in _REQUIRED_TEXT:
            raise TextError(N_("%(field)s is required and cannot be blank", field=field))
        return None
    return value.strip() if isinstance(value, str) else value


_DIGITS = re.compile(r"^\d+$")


def _names_column() -> object:
    """Names in other languages, ``{language code: name}``: the kana reading under
    ``easy_ja``, romanised or translated names under the others (see ``i18n.names``)."""
    return Field(default_factory=dict, sa_type=JSON, sa_column_kwargs={"server_default": "{}"})


def _check_names(value: object) -> object:
    """Language codes known, names non-empty, short and free of control characters; a
    ``null`` name removes that language's name in an update."""
    from i18n.names import LocalizedNameError, clean_names

    try:
        return clean_names(value, allow_removal=True)
    except LocalizedNameError as exc:
        raise TextError(Text(exc.msgid, exc.values)) from None


# i18n.names says what is wrong with a name in these words; the catalog carries them.
NAME_PROBLEMS = (
    N_("%(label)s: a name must be text, got %(kind)s"),
    N_("%(label)s: control characters are not allowed (found %(char)s)"),
    N_("%(label)s: the name cannot be empty"),
    N_("%(label)s: the name is %(length)s characters long; at most %(max)s"),
    N_("names: unknown language %(key)s; use one of: %(choices)s"),
    N_("names.ja: the Japanese name is the record's name; change `name` instead"),
    N_('names: expected an object of language codes and names, e.g. {"en": "…"}'),
    N_("names: %(key)s is given twice (as %(code)s)"),
)


# --- Organization -------------------------------------------------------------------------


# How long an alerted member has to answer before the next one is asked, and how long a
# member who said "I'll go" has to send the result before being reminded (then, after
# another hour, the case goes on). The organization's own; new cases take them.
DEFAULT_ACK_MINUTES = 30
DEFAULT_OUTCOME_HOURS = 4


class Organization(SQLModel, table=True):
    id: uuid.UUID = id_field()
    name: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    timezone: str = Field(default="Asia/Tokyo", max_length=64)
    ack_minutes: int = Field(
        default=DEFAULT_ACK_MINUTES, sa_column_kwargs={"server_default": str(DEFAULT_ACK_MINUTES)}
    )
    outcome_hours: int = Field(
        default=DEFAULT_OUTCOME_HOURS,
        sa_column_kwargs={"server_default": str(DEFAULT_OUTCOME_HOURS)},
    )
    names: dict[str, str] = _names_column()  # type: ignore[assignment]
    created_at: datetime = timestamp_field()


class SenderKind(StrEnum):
    """What identifies an organization to Twilio: a number of its own, or a Messaging
    Service (a pool of numbers Twilio chooses from)."""

    number = "number"
    messaging_service = "messaging_service"


class OrganizationSender(SQLModel, table=True):
    """A sender number or Messaging Service SID, and the organization that owns it.

    Unique across organizations: an inbound SMS belongs to the organization that owns the
    number (or service) it was sent to (``service.checkins.routing``).
    """

    __tablename__ = "organization_sender"
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(
        foreign_key="organization.id", ondelete="CASCADE", index=True
    )
    kind: SenderKind = Field(sa_type=String(20))
    address: str = Field(max_length=40, sa_column_kwargs={"unique": True})
    created_at: datetime = timestamp_field()


_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")
MAX_SENDER_NUMBERS = 20


def check_sender_numbers(value: object) -> list[str]:
    """E.164 numbers, validated as every phone is (``registry.phones``), without repeats."""
    if not isinstance(value, list):
        raise TextError(N_("sender_numbers must be a list of phone numbers"))
    if len(value) > MAX_SENDER_NUMBERS:
        raise TextError(N_("at most %(max)s sender numbers", max=MAX_SENDER_NUMBERS))
    numbers: list[str] = []
    for raw in value:
        if not isinstance(raw, str) or not raw.strip():
            raise TextError(N_("a sender number cannot be blank"))
        try:
            number = normalize_phone(raw)
        except PhoneError as exc:
            raise TextError(
                N_(
                    "invalid sender number %(number)s: %(reason)s",
                    number=repr(raw),
                    reason=exc.text,
                )
            ) from None
        if number is not None and number not in numbers:
            numbers.append(number)
    return numbers


def check_messaging_service_sid(value: object) -> str | None:
    """A Twilio Messaging Service SID: "MG" and 32 hexadecimal digits; blank clears it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if not _MESSAGING_SERVICE_SID.match(text[:2].upper() + text[2:].lower()):
        raise TextError(
            N_(
                "invalid Messaging Service SID %(sid)s: it is MG followed by 32 hexadecimal digits",
                sid=repr(text),
            )
        )
    return "MG" + text[2:].lower()


class OrganizationPublic(SQLModel):
    id: uuid.UUID
    name: str
    timezone: str
    ack_minutes: int
    outcome_hours: int
    names: dict[str, str] = {}
    # The numbers (E.164) and Messaging Service that are this organization's own: messages
    # to them come to its inbox, and its messages are sent from them.
    sender_numbers: list[str] = []
    messaging_service_sid: str | None = None


class OrganizationUpdate(StrictBody):
    """What an administrator may change. The windows apply to cases opened after the
    change; ``names`` is merged into the stored names (a ``null`` name removes one)."""

    __stored__ = OrganizationPublic

    ack_minutes: int | None = Field(default=None, ge=5, le=240)
    outcome_hours: int | None = Field(default=None, ge=1, le=72)
    names: dict[str, str | None] | None = None
    # Replaces the organization's sender numbers ([] removes them all); a ``null`` or
    # blank Messaging Service SID removes it.
    sender_numbers: list[str] | None = None
    messaging_service_sid: str | None = None

    @field_validator("names", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        return value if value is None else _check_names(value)

    @field_validator("sender_numbers", mode="before")
    @classmethod
    def _sender_numbers(cls, value: object) -> object:
        return value if value is None else check_sender_numbers(value)

    @field_validator("messaging_service_sid", mode="before")
    @classmethod
    def _messaging_service_sid(cls, value: object) -> object:
        return check_messaging_service_sid(value)


# --- Site -------------------------------------------------------------------------------


class SiteBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    address: str | None = Field(default=None, max_length=300)
    municipality_code: str | None = Field(default=None, max_length=6)
    jma_area_code: str | None = Field(default=None, max_length=3)
    tsunami_area_code: str | None = Field(default=None, max_length=3)
    notes: str | None = Field(default=None, max_length=2000)


class _SiteValidators(StrictBody):
    @field_validator("name", "address", "notes", mode="before", check_fields=False)
    @classmethod
    def _strip(cls, value: object, info: ValidationInfo) -> object:
        return _blank_to_none(value, info.field_name)

    @field_validator("municipality_code", mode="before", check_fields=False)
    @classmethod
    def _municipality(cls, value: object) -> object:
        value = _blank_to_none(value)
        if value is not None and not (_DIGITS.match(str(value)) and len(str(value)) in (5, 6)):
            raise ValueError("municipality code must be the 5- or 6-digit 全国地方公共団体コード")
        return value

    @field_validator("jma_area_code", "tsunami_area_code", mode="before", check_fields=False)
    @classmethod
    def _area(cls, value: object) -> object:
        value = _blank_to_none(value)
        if value is not None and not (_DIGITS.match(str(value)) and len(str(value)) == 3):
            raise ValueError("JMA area codes have 3 digits, for example 390 for 石川県能登")
        return value

    @field_validator("names", mode="before", check_fields=False)
    @classmethod
    def _names(cls, value: object) -> object:
        return value if value is None else _check_names(value)


class Site(SiteBase, table=True):
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    names: dict[str, str] = _names_column()  # type: ignore[assignment]
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class SiteCreate(_SiteValidators, SiteBase):
    names: dict[str, str | None] | None = None


class SiteUpdate(_SiteValidators):
    __stored__ = SiteBase
    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = None
    municipality_code: str | None = None
    jma_area_code: str | None = None
    tsunami_area_code: str | None = None
    notes: str | None = None
    names: dict[str, str | None] | None = None


class SitePublic(SiteBase):
    id: uuid.UUID
    names: dict[str, str] = {}
    created_at: datetime
    updated_at: datetime


# --- Resident -------------------------------------------------------------------------------

RESIDENT_SENSITIVE_FIELDS = frozenset(
    {"phone", "phone2", "notes", "disability", "pregnancy", "name", "name_kana"}
)


class ResidentBase(SQLModel):
    external_id: str | None = Field(default=None, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    name_kana: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=20)
    phone2: str | None = Field(default=None, max_length=20)
    language: str = Field(default="ja", max_length=16)
    preferred_channel: Channel = Field(default=Channel.sms, sa_type=String(8))
    # The messaging apps and phone channels in the resident's order, e.g. ["line",
    # "whatsapp", "sms", "voice"] (``registry.channels``); empty: SMS and voice as planned.
    channels: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, server_default=text("'[]'"))
    )
    site_id: uuid.UUID | None = Field(default=None, foreign_key="site.id")
    unit: str | None = Field(default=None, max_length=50)
    household: str | None = Field(default=None, max_length=100)
    lives_alone: bool = False
    elderly: bool = False
    disability: bool = False
    pregnancy: bool = False
    needs_interpreter: bool = False
    consent_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    consent_method: str | None = Field(default=None, max_length=50)
    status: ResidentStatus = Field(default=ResidentStatus.active, sa_type=String(16))
    away_until: date | None = None
    notes: str | None = Field(default=None, max_length=4000)


class _ResidentValidators(StrictBody):
    @field_validator(
        "external_id",
        "name",
        "name_kana",
        "unit",
        "household",
        "consent_method",
        "notes",
        mode="before",
        check_fields=False,
    )
    @classmethod
    def _strip(cls, value: object, info: ValidationInfo) -> object:
        return _blank_to_none(value, info.field_name)

    @field_validator("phone", "phone2", mode="before", check_fields=False)
    @classmethod
    def _phone(cls, value: object) -> object:
        return _check_phone(value)  # type: ignore[arg-type]

    @field_validator("language", mode="before", check_fields=False)
    @classmethod
    def _language(cls, value: object) -> object:
        return _check_language(value)  # type: ignore[arg-type]

    @field_validator("channels", mode="before", check_fields=False)
    @classmethod
    def _channels(cls, value: object) -> object:
        return check_channels(value)


class Resident(ResidentBase, table=True):
    __table_args__ = (
        UniqueConstraint("organization_id", "external_id"),
        Index("ix_resident_org_site_kana", "organization_id", "site_id", "name_kana", "name"),
        Index("ix_resident_org_kana", "organization_id", "name_kana", "name"),
        Index("ix_resident_org_phone", "organization_id", "phone"),
        # Inbound SMS are matched to their sender by number, across organizations.
        Index("ix_resident_phone", "phone"),
        Index("ix_resident_phone2", "phone2"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    phone_kind: PhoneKind | None = Field(default=None, sa_type=String(10))
    phone2_kind: PhoneKind | None = Field(default=None, sa_type=String(10))
    # Set only from a signed LINE webhook (``registry.channels.LineLinkCode``), never by hand.
    line_user_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class ResidentCreate(_ResidentValidators, ResidentBase):
    @model_validator(mode="after")
    def _away_needs_date(self) -> ResidentCreate:
        if self.status == ResidentStatus.away and self.away_until is None:
            raise TextError(N_("status 'away' needs away_until (the date they return)"))
        return self


class ResidentUpdate(_ResidentValidators):
    __stored__ = ResidentBase
    external_id: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    name_kana: str | None = None
    phone: str | None = None
    phone2: str | None = None
    language: str | None = None
    preferred_channel: Channel | None = None
    channels: list[str] | None = None
    site_id: uuid.UUID | None = None
    unit: str | None = None
    household: str | None = None
    lives_alone: bool | None = None
    elderly: bool | None = None
    disability: bool | None = None
    pregnancy: bool | None = None
    needs_interpreter: bool | None = None
    consent_at: datetime | None = None
    consent_method: str | None = None
    status: ResidentStatus | None = None
    away_until: date | None = None
    notes: str | None = Field(default=None, max_length=4000)


class ResidentPublic(ResidentBase):
    id: uuid.UUID
    phone_kind: PhoneKind | None
    phone2_kind: PhoneKind | None
    created_at: datetime
    updated_at: datetime
    # Whether a LINE account is linked (the id itself is not shown).
    line_linked: bool = False

    @model_validator(mode="before")
    @classmethod
    def _line_linked(cls, data: object) -> object:
        if isinstance(data, Resident):
            values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
            values["line_linked"] = bool(data.line_user_id)
            values["channels"] = list(data.channels or [])  # a row written without them
            return values
        return data


# --- Member ---------------------------------------------------------------------------------


class MemberBase(SQLModel):
    external_id: str | None = Field(default=None, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    name_kana: str | None = Field(default=None, max_length=200)
    phone: str = Field(max_length=20)
    kind: MemberKind = Field(default=MemberKind.welfare_committee, sa_type=String(20))
    languages: list[str] = Field(default_factory=lambda: ["ja"], sa_column=Column(JSON))
    active: bool = True
    notes: str | None = Field(default=None, max_length=2000)


class _MemberValidators(StrictBody):
    __also_accepts__ = (("languages", "string"),)  # "ja, vi" as well as ["ja", "vi"]

    @field_validator("external_id", "name", "name_kana", "notes", mode="before", check_fields=False)
    @classmethod
    def _strip(cls, value: object, info: ValidationInfo) -> object:
        return _blank_to_none(value, info.field_name)

    @field_validator("phone", mode="before", check_fields=False)
    @classmethod
    def _phone(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise TextError(N_("a member needs a phone number to receive alerts"))
        return _check_phone(value)  # type: ignore[arg-type]

    @field_validator("languages", mode="before", check_fields=False)
    @classmethod
    def _languages(cls, value: object) -> object:
        if value is None:
            return value
        if isinstance(value, str):
            value = [v for v in re.split(r"[,、，;；/・\s]+", value) if v]
        codes: list[str] = []
        for item in value:  # type: ignore[union-attr]
            code = _check_language(str(item))
            if code and code not in codes:
                codes.append(code)
        return codes


class Member(MemberBase, table=True):
    __table_args__ = (
        UniqueConstraint("organization_id", "external_id"),
        Index("ix_member_phone", "phone"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    phone_kind: PhoneKind | None = Field(default=None, sa_type=String(10))
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class MemberCreate(_MemberValidators, MemberBase):
    pass


class MemberUpdate(_MemberValidators):
    __stored__ = MemberBase
    external_id: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    name_kana: str | None = None
    phone: str | None = None
    kind: MemberKind | None = None
    languages: list[str] | None = None
    active: bool | None = None
    notes: str | None = None


class MemberPublic(MemberBase):
    id: uuid.UUID
    phone_kind: PhoneKind | None
    created_at: datetime
    updated_at: datetime


# --- Assignment ----------------------------------------------------------------------------


class AssignmentBase(SQLModel):
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE")
    member_id: uuid.UUID = Field(foreign_key="member.id", ondelete="CASCADE", index=True)
    rank: int = Field(default=1, ge=1, le=20)


class Assignment(AssignmentBase, table=True):
    """Who watches over whom: rank 1 is the first contact, 2 the second, and so on."""

    __table_args__ = (
        UniqueConstraint("resident_id", "member_id"),
        UniqueConstraint("resident_id", "rank"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    created_at: datetime = timestamp_field()


class AssignmentCreate(StrictBody, AssignmentBase):
    pass


class AssignmentUpdate(StrictBody):
    __stored__ = AssignmentBase
    rank: int | None = Field(default=None, ge=1, le=20)


class AssignmentPublic(AssignmentBase):
    id: uuid.UUID
    created_at: datetime

"""The channels a resident is reached on, in the order they chose, and how a resident's
LINE account is linked.

A channel is an entry in ``CHANNELS`` (a plain dict, no if-chains): its name and how a
resident's address on it is found. SMS and voice are the base every phone has; the
messaging apps (WhatsApp through Twilio, LINE through its Messaging API) come first when a
resident asked for them, and an undelivered app message falls back to the next channel and
finally to SMS and voice. Facebook Messenger or Zalo would be one more entry here, one
sender in ``service.telephony.messaging`` and one webhook.

A LINE user id is never taken from anyone's word: it is linked only from a LINE webhook
whose signature was checked, when the user sends the one-time code staff issued for that
resident (``LineLinkCode``).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field
from service.texts import N_, Text, TextError

_MOBILE = "mobile"


def _mobile(resident: Any) -> str | None:
    for phone, kind in (
        (resident.phone, resident.phone_kind),
        (resident.phone2, resident.phone2_kind),
    ):
        if phone and str(getattr(kind, "value", kind)) == _MOBILE:
            return phone
    return None


def _line_user(resident: Any) -> str | None:
    return getattr(resident, "line_user_id", None) or None


@dataclass(frozen=True, slots=True)
class ChannelKind:
    """One channel: ``app`` channels are tried first, in the resident's order, each falling
    back to the next when its message is not delivered; ``address`` finds the resident's
    address on it (None: not reachable there); ``by_phone``: that address is a phone number
    (otherwise an id of the app's own, like a LINE user id)."""

    name: str
    app: bool
    address: Callable[[Any], str | None]
    by_phone: bool = True


CHANNELS: dict[str, ChannelKind] = {
    "line": ChannelKind("line", app=True, address=_line_user, by_phone=False),
    "whatsapp": ChannelKind("whatsapp", app=True, address=_mobile),
    "sms": ChannelKind("sms", app=False, address=_mobile),
    "voice": ChannelKind("voice", app=False, address=lambda r: r.phone or r.phone2),
}
APP_CHANNELS: frozenset[str] = frozenset(name for name, kind in CHANNELS.items() if kind.app)
UNKNOWN_CHANNEL = N_("unknown channel; use one of %(allowed)s")


def check_channels(value: object) -> list[str] | None:
    """A resident's ordered channel list: known names, each once, in their order. An
    unknown name is refused, naming the allowed ones."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part for part in value.replace(";", ",").split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise TextError(Text(UNKNOWN_CHANNEL.msgid, {"allowed": ", ".join(CHANNELS)}))
    out: list[str] = []
    for item in value:
        name = str(item).strip().lower()
        if name not in CHANNELS:
            raise TextError(Text(UNKNOWN_CHANNEL.msgid, {"allowed": ", ".join(CHANNELS)}))
        if name not in out:
            out.append(name)
    return out


def app_chain(channels: Iterable[str], resident: Any) -> list[tuple[str, str]]:
    """(channel, address) of each messaging app the resident asked for, in their order,
    that can reach them now (a linked LINE account; a mobile number for WhatsApp)."""
    chain = []
    for name in channels or ():
        kind = CHANNELS.get(name)
        if kind is None or not kind.app:
            continue
        address = kind.address(resident)
        if address:
            chain.append((name, address))
    return chain


def address_on(resident: Any, channel: str) -> str | None:
    kind = CHANNELS.get(channel)
    return kind.address(resident) if kind else None


# --- Linking a LINE account -------------------------------------------------------------------

LINK_CODE_TTL = timedelta(days=7)
LINK_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
LINK_CODE_LENGTH = 8


class LineLinkCode(SQLModel, table=True):
    """A one-time code staff give a resident: sent to the organization's LINE account from
    the resident's own LINE, it links that LINE user (as the signed webhook names it) to
    the resident. Used once, and only before it expires."""

    __tablename__ = "line_link_code"
    __table_args__ = (Index("ix_line_link_code_code", "code", unique=True),)
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", ondelete="CASCADE", index=True)
    code: str = Field(max_length=16)
    created_by: str = Field(max_length=200)
    created_at: datetime = timestamp_field()
    expires_at: datetime = timestamp_field()
    used_at: datetime | None = timestamp_field(nullable=True)


class LineLinkCodePublic(SQLModel):
    code: str
    expires_at: datetime


def new_link_code() -> str:
    return "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))


def normalize_link_code(text: str) -> str | None:
    """The code in a LINE message, if the message is one (spaces, hyphens and case aside)."""
    compact = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(compact) != LINK_CODE_LENGTH or any(ch not in LINK_CODE_ALPHABET for ch in compact):
        return None
    return compact


def code_usable(expires_at: datetime, used_at: datetime | None, now: datetime) -> bool:
    return used_at is None and now < expires_at

"""Messaging apps residents use, behind one small interface: WhatsApp (through Twilio) and
LINE (through its Messaging API). Facebook Messenger or Zalo would be one more entry in
``MESSAGING_CHANNELS``; the dispatcher sends every app message the same way.

A channel answers like a provider: a ``SendResult`` with an id that makes a resend
impossible, or a classified ``TransientSendError`` / ``PermanentSendError``. A permanent
failure (a LINE user who blocked the account, a WhatsApp number without WhatsApp, a channel
not configured) fails the attempt, and the check-in moves on at once to its next channel.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Protocol

from service.config import Settings
from service.telephony.channel import SendResult, TelephonyProvider
from service.telephony.errors import PermanentSendError


class MessagingChannel(Protocol):
    name: str

    async def send_text(
        self, *, to: str, body: str, status_callback: str, opening: bool, key: str
    ) -> SendResult:
        """Send ``body`` to ``to`` (the address on the app). ``opening``: the message may
        start a conversation (a check-in), so WhatsApp uses its approved template. ``key``
        is the outbox row's id: the same key never sends twice (LINE's retry key)."""
        ...

    async def aclose(self) -> None: ...


class UnconfiguredChannel:
    """An app with no account configured: every message fails for good, so the check-in
    falls back to its next channel instead of waiting."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def send_text(
        self, *, to: str, body: str, status_callback: str, opening: bool, key: str
    ) -> SendResult:
        raise PermanentSendError(None, f"{self.name} is not configured")

    async def aclose(self) -> None:
        return None


MessagingFactory = Callable[[Settings, TelephonyProvider], MessagingChannel]


def _whatsapp(settings: Settings, provider: TelephonyProvider) -> MessagingChannel:
    from service.telephony.whatsapp import WhatsAppChannel

    if not settings.whatsapp_from_number:
        return UnconfiguredChannel("whatsapp")
    return WhatsAppChannel(provider, settings)


def _line(settings: Settings, provider: TelephonyProvider) -> MessagingChannel:
    from service.telephony.line_channel import LineChannel

    if not settings.line_channel_access_token:
        return UnconfiguredChannel("line")
    return LineChannel.from_settings(settings)


MESSAGING_CHANNELS: dict[str, MessagingFactory] = {
    "whatsapp": _whatsapp,
    "line": _line,
}


def make_messaging_channels(
    settings: Settings, provider: TelephonyProvider
) -> dict[str, MessagingChannel]:
    return {name: factory(settings, provider) for name, factory in MESSAGING_CHANNELS.items()}


# One set of app channels per provider and configuration, for the process's lifetime (a
# dispatcher is made per tick; a LINE client holds a connection pool).
_made: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], dict[str, MessagingChannel]]] = (
    weakref.WeakKeyDictionary()
)


def _configuration(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.whatsapp_from_number,
        settings.whatsapp_checkin_content_sid,
        settings.line_channel_access_token,
        settings.line_api_url,
    )


def channels_for(settings: Settings, provider: TelephonyProvider) -> dict[str, MessagingChannel]:
    """The app channels the dispatcher sends through, next to ``provider`` (SMS, calls)."""
    per_provider = _made.setdefault(provider, {})
    key = _configuration(settings)
    channels = per_provider.get(key)
    if channels is None:
        channels = per_provider[key] = make_messaging_channels(settings, provider)
    return channels


async def close_channels_for(provider: TelephonyProvider) -> None:
    for channels in _made.pop(provider, {}).values():
        for channel in channels.values():
            await channel.aclose()


WHATSAPP_PREFIX = "whatsapp:"


def app_senders(settings: Settings) -> frozenset[str]:
    """The apps' own sender addresses in Twilio's record (the WhatsApp sender)."""
    number = settings.whatsapp_from_number
    return frozenset({WHATSAPP_PREFIX + number}) if number else frozenset()


# Apps whose sends carry the outbox row's id as a retry key (LINE's X-Line-Retry-Key): a
# send whose fate is uncertain is simply sent again, and the app drops the repeat.
IDEMPOTENT_CHANNELS: frozenset[str] = frozenset({"line"})


def reconcile_address(channel: str, to: str) -> tuple[str, str] | None:
    """How Twilio's own record names a message of ``channel``: a WhatsApp message is in
    its Messages list, to ``whatsapp:+81…``. None: nothing to ask (an idempotent app)."""
    if channel in IDEMPOTENT_CHANNELS:
        return None
    if channel == "whatsapp":
        return "sms", WHATSAPP_PREFIX + to
    return channel, to

"""The channel interface the outbox dispatcher talks to, and the choice of implementation.

The interface is async because the dispatcher sends many messages at once with bounded
concurrency; a blocking SDK call would serialise a whole round behind the slowest
request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlencode
from uuid import UUID

from service.config import Settings

SMS_STATUS_PATH = "/twilio/status"
VOICE_TWIML_PATH = "/twilio/voice"
VOICE_GATHER_PATH = "/twilio/voice/gather"
VOICE_STATUS_PATH = "/twilio/voice/status"

# Query parameter that ties a Twilio callback back to our attempt row, so that even a
# send whose answer was lost (an ambiguous timeout) is reconciled by its first callback.
ATTEMPT_QUERY_PARAM = "attempt"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the dispatcher stores on the attempt: the SID makes a resend impossible."""

    sid: str
    status: str


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One message or call in the provider's own record (Twilio's list resources), as the
    reconciliation of an uncertain send reads it."""

    sid: str
    status: str
    to: str
    created_at: datetime | None
    body: str | None = None


class ReconcileUnavailable(Exception):
    """The provider's record cannot be read now (Twilio down, or a console that did not
    exist when the row was claimed): the row stays uncertain and is asked about again."""


class TelephonyProvider(Protocol):
    """A channel that can send an SMS and place a call.

    Implementations raise ``TransientSendError`` or ``PermanentSendError`` (see
    ``errors.py``) and never retry by themselves.
    """

    name: str

    async def send_sms(self, *, to: str, body: str, status_callback: str) -> SendResult: ...

    async def place_call(self, *, to: str, twiml_url: str, status_callback: str) -> SendResult: ...

    async def sent_to(self, *, channel: str, to: str, since: datetime) -> list[SentRecord]:
        """What the provider has sent to ``to`` (an SMS or a call, by ``channel``) since
        about ``since``, newest first. Raises ``ReconcileUnavailable`` when it cannot say."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections when the process shuts down."""
        ...


ProviderFactory = Callable[[Settings], TelephonyProvider]


def _twilio_from_settings(settings: Settings) -> TelephonyProvider:
    # Imported here because the implementations import SendResult from this module.
    from service.telephony.twilio_provider import TwilioProvider

    return TwilioProvider.from_settings(settings)


def _console_from_settings(settings: Settings) -> TelephonyProvider:
    from service.telephony.console import ConsoleProvider

    return ConsoleProvider.from_settings(settings)


PROVIDERS: dict[str, ProviderFactory] = {
    "twilio": _twilio_from_settings,
    "console": _console_from_settings,
}


def provider_name_for(settings: Settings) -> str:
    """Twilio when an account is configured; otherwise the console, which needs nothing.
    An explicit MIMAMORI_TELEPHONY_PROVIDER wins."""
    if settings.telephony_provider != "auto":
        return settings.telephony_provider
    return "twilio" if settings.twilio_configured else "console"


def make_provider(settings: Settings, name: str | None = None) -> TelephonyProvider:
    """Build the provider for these settings (or the one named, e.g. in tests)."""
    chosen = name or provider_name_for(settings)
    try:
        factory = PROVIDERS[chosen]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown telephony provider {chosen!r} (known: {known})") from None
    return factory(settings)


def _public(settings: Settings, path: str, attempt_id: str | UUID | None) -> str:
    url = f"{settings.public_url}{path}"
    if attempt_id is not None:
        url += "?" + urlencode({ATTEMPT_QUERY_PARAM: str(attempt_id)})
    return url


def sms_status_callback_url(settings: Settings, *, attempt_id: str | UUID | None = None) -> str:
    """StatusCallback for an outbound SMS."""
    return _public(settings, SMS_STATUS_PATH, attempt_id)


def call_twiml_url(settings: Settings, *, attempt_id: str | UUID | None = None) -> str:
    """Url Twilio fetches TwiML from when the called party answers."""
    return _public(settings, VOICE_TWIML_PATH, attempt_id)


def call_status_callback_url(settings: Settings, *, attempt_id: str | UUID | None = None) -> str:
    """StatusCallback for an outbound call."""
    return _public(settings, VOICE_STATUS_PATH, attempt_id)


def gather_action_url(settings: Settings, *, attempt_id: str | UUID | None = None) -> str:
    """Action of the check-in call's Gather, where the keypad digit arrives."""
    return _public(settings, VOICE_GATHER_PATH, attempt_id)

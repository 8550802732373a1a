"""The channel interface the outbox dispatcher talks to, and the choice of implementation.

The interface is async because the dispatcher sends many messages at once with bounded
concurrency; a blocking SDK call would serialise a whole round behind the slowest
request.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode
from uuid import UUID

from service.config import Settings

# The interface lives in channel.py (the implementations import it from there).
from service.telephony.channel import ReconcileUnavailable as ReconcileUnavailable
from service.telephony.channel import SendResult as SendResult
from service.telephony.channel import SentRecord as SentRecord
from service.telephony.channel import TelephonyProvider as TelephonyProvider

SMS_STATUS_PATH = "/twilio/status"
VOICE_TWIML_PATH = "/twilio/voice"
VOICE_GATHER_PATH = "/twilio/voice/gather"
VOICE_STATUS_PATH = "/twilio/voice/status"

# Query parameter that ties a Twilio callback back to our attempt row, so that even a
# send whose answer was lost (an ambiguous timeout) is reconciled by its first callback.
ATTEMPT_QUERY_PARAM = "attempt"


ProviderFactory = Callable[[Settings], TelephonyProvider]


def _twilio_from_settings(settings: Settings) -> TelephonyProvider:
    # Imported here: an implementation loads its HTTP client only when it is chosen.
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

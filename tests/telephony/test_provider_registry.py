"""Choosing the provider and building the callback URLs from settings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.config import Settings
from service.telephony.console import ConsoleProvider
from service.telephony.provider import (
    PROVIDERS,
    TelephonyProvider,
    call_status_callback_url,
    call_twiml_url,
    gather_action_url,
    make_provider,
    sms_status_callback_url,
)
from service.telephony.twilio_provider import TwilioProvider
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL

pytestmark = pytest.mark.anyio


def test_registry_names_both_providers() -> None:
    assert set(PROVIDERS) == {"twilio", "console"}


async def test_without_credentials_the_console_is_chosen(
    make_settings: Callable[..., Settings],
) -> None:
    provider = make_provider(make_settings())
    assert isinstance(provider, ConsoleProvider)
    assert provider.name == "console"


async def test_with_credentials_twilio_is_chosen(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_from_number=FROM_NUMBER
    )
    provider = make_provider(settings)
    try:
        assert isinstance(provider, TwilioProvider)
        assert provider.name == "twilio"
    finally:
        await provider.aclose()


def test_twilio_without_any_sender_fails_at_start_up(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN)
    with pytest.raises(ValueError, match="FROM_NUMBER"):
        make_provider(settings)


def test_unknown_provider_name_is_an_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="unknown telephony provider"):
        make_provider(make_settings(), name="carrier-pigeon")


async def test_both_providers_satisfy_the_protocol(make_settings: Callable[..., Settings]) -> None:
    console: TelephonyProvider = ConsoleProvider()
    twilio: TelephonyProvider = TwilioProvider(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER
    )
    try:
        for provider in (console, twilio):
            assert callable(provider.send_sms)
            assert callable(provider.place_call)
    finally:
        await twilio.aclose()


def test_callback_urls_come_from_the_public_url(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(public_url=PUBLIC_URL + "/")
    assert sms_status_callback_url(settings) == f"{PUBLIC_URL}/twilio/status"
    assert call_status_callback_url(settings) == f"{PUBLIC_URL}/twilio/voice/status"
    assert call_twiml_url(settings) == f"{PUBLIC_URL}/twilio/voice"
    assert gather_action_url(settings) == f"{PUBLIC_URL}/twilio/voice/gather"


def test_callback_urls_carry_the_attempt_id(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert (
        sms_status_callback_url(settings, attempt_id="abc")
        == f"{PUBLIC_URL}/twilio/status?attempt=abc"
    )
    assert call_twiml_url(settings, attempt_id="a b") == f"{PUBLIC_URL}/twilio/voice?attempt=a+b"

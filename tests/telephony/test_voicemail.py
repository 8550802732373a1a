"""What a check-in call leaves on an answering machine (issue 17, item 10: a landline
resident's voicemail told them to reply by SMS, which a landline cannot send).

A resident we reach only by phone (landlines only, or who asked to be called) hears "we
will call again" and nothing about text messages; a resident who gets our SMS also hears
that they can answer it. The TwiML is parsed as Twilio reads it.
"""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from i18n.catalogs import catalog_codes_on_disk
from i18n.render import render
from i18n.voice import voice_prompt
from service.telephony.models import OutboxMessage
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.worlds import (
    ACCOUNT,
    LANDLINE,
    LANDLINE_LOCAL,
    MOBILE,
    MOBILE_LOCAL,
    OUR_NUMBER,
    outbox_to,
    signed_headers,
    start_round_for,
)

ORG = "輪島市社会福祉協議会"
ONE_CALL = [{"channel": "voice", "message": "prompt", "wait_minutes": 30}]
# How each catalog's ordinary voicemail invites an SMS answer: never said to a resident we
# reach only by phone.
SMS_WORDS = ("SMS", "ショートメッセージ", "メッセージ", "text message", "短信", "簡訊", "문자")


def _machine_answers(world: World, phone_local: str, phone: str, **resident) -> ET.Element:
    world.resident("R1", phone_local, **resident)
    start_round_for(world, "R1", plan=ONE_CALL)
    world.tick()  # placed through the console provider: it has a SID now
    [call] = outbox_to(world.engine, phone, "call")
    return _post_machine(world, call)


def _post_machine(world: World, call: OutboxMessage) -> ET.Element:
    path = f"/twilio/voice?attempt={call.id}"
    params = {
        "CallSid": call.sid or "",
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": call.to_phone,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "AnsweredBy": "machine_end_beep",
    }
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text.encode("utf-8"))
    assert root.tag == "Response"
    return root


def _spoken(root: ET.Element) -> str:
    assert [child.tag for child in root] == ["Say", "Hangup"]  # no Gather: nobody to press keys
    return root[0].text or ""


def test_a_landline_residents_voicemail_never_mentions_sms(world: World):
    said = _spoken(_machine_answers(world, LANDLINE_LOCAL, LANDLINE, language="ja"))
    assert said == voice_prompt("voice.voicemail.voice_only", "ja", org=ORG).text
    assert "またお電話します" in said
    assert not any(word in said for word in SMS_WORDS)


def test_a_resident_who_asked_to_be_called_is_not_told_to_text_either(world: World):
    said = _spoken(
        _machine_answers(world, MOBILE_LOCAL, MOBILE, language="en", preferred_channel="voice")
    )
    assert "We will call again" in said
    assert not any(word.lower() in said.lower() for word in SMS_WORDS)


def test_a_resident_who_gets_our_sms_still_hears_they_can_answer_it(world: World):
    said = _spoken(_machine_answers(world, MOBILE_LOCAL, MOBILE, language="ja"))
    assert said == voice_prompt("voice.voicemail", "ja", org=ORG).text
    assert "ショートメッセージ" in said


@pytest.mark.parametrize("code", catalog_codes_on_disk())
def test_every_catalogs_voice_only_voicemail_asks_for_no_reply(code: str):
    """The draft translations drop the ordinary voicemail's SMS sentence: no "SMS", and
    none of the digits an SMS answer would use."""
    text = render("voice.voicemail.voice_only", code, org="{org}")
    ordinary = render("voice.voicemail", code, org="{org}")
    assert text and text != ordinary and "{org}" in text
    assert "SMS" not in text.upper()
    assert not any(digit in text for digit in "123")

"""TwiML documents, checked by parsing the XML the way Twilio would read it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from service.telephony.twiml import (
    Prompt,
    checkin_call,
    gather_result,
    hangup,
    machine_message,
    sms_reply,
)

ACTION = "https://mimamori.example.org/twilio/voice/gather?attempt=7f0c&lang=vi"

GREETING = Prompt("Xin chào, đây là hội đồng phúc lợi xã hội.", "vi-VN", "Google.vi-VN-Standard-A")
MENU = Prompt(
    "Nhấn 1 nếu bạn khỏe, 2 nếu cần giúp đỡ, 3 để nói chuyện.", "vi-VN", "Google.vi-VN-Standard-A"
)
NO_INPUT = Prompt("Chúng tôi sẽ gọi lại sau.", "vi-VN", "Google.vi-VN-Standard-A")


def parse(document: str) -> ET.Element:
    root = ET.fromstring(document.encode("utf-8"))
    assert root.tag == "Response"
    return root


def test_sms_reply_with_body_and_without() -> None:
    assert list(parse(sms_reply(None))) == []
    root = parse(sms_reply("ありがとうございます"))
    [message] = list(root)
    assert (message.tag, message.text) == ("Message", "ありがとうございます")


def test_checkin_call_says_greeting_then_gathers_one_digit() -> None:
    root = parse(
        checkin_call(greeting=GREETING, menu=MENU, gather_action_url=ACTION, no_input=NO_INPUT)
    )

    tags = [child.tag for child in root]
    assert tags == ["Say", "Gather", "Say", "Hangup"]
    greeting = root[0]
    assert greeting.text == GREETING.text
    assert greeting.get("language") == "vi-VN"
    assert greeting.get("voice") == "Google.vi-VN-Standard-A"

    gather = root[1]
    assert gather.get("numDigits") == "1"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("action") == ACTION
    assert gather.get("method") == "POST"
    assert gather.get("input") == "dtmf"
    assert int(gather.get("timeout", "0")) >= 5


def test_checkin_call_says_the_menu_twice_with_a_pause_between() -> None:
    root = parse(
        checkin_call(greeting=GREETING, menu=MENU, gather_action_url=ACTION, no_input=NO_INPUT)
    )
    gather = root.find("Gather")
    assert gather is not None

    assert [child.tag for child in gather] == ["Say", "Pause", "Say"]
    spoken = gather.findall("Say")
    assert [say.text for say in spoken] == [MENU.text, MENU.text]
    assert all(say.get("language") == "vi-VN" for say in spoken)


def test_checkin_call_ends_with_no_input_prompt_then_hangup() -> None:
    root = parse(
        checkin_call(greeting=GREETING, menu=MENU, gather_action_url=ACTION, no_input=NO_INPUT)
    )
    assert root[2].text == NO_INPUT.text
    assert root[-1].tag == "Hangup"


def test_recorded_audio_is_played_instead_of_text_to_speech() -> None:
    recorded_menu = Prompt("Pindutin ang 1", "fil-PH", None, "https://cdn.example.org/tl/menu.mp3")
    root = parse(
        checkin_call(
            greeting=GREETING, menu=recorded_menu, gather_action_url=ACTION, no_input=NO_INPUT
        )
    )
    gather = root.find("Gather")
    assert gather is not None
    assert [child.tag for child in gather] == ["Play", "Pause", "Play"]
    assert all(play.text == recorded_menu.audio_url for play in gather.findall("Play"))
    assert root[0].tag == "Say"  # the greeting has no recording, so it is spoken


def test_say_without_voice_or_language_has_no_empty_attributes() -> None:
    root = parse(gather_result(Prompt("Thank you.")))
    say = root[0]
    assert say.attrib == {}


def test_any_object_with_prompt_attributes_fits() -> None:
    """i18n.voice.VoicePrompt carries an extra spoken_locale; it must be accepted as is."""

    @dataclass(frozen=True)
    class VoicePrompt:
        text: str
        say_language: str
        voice: str | None
        audio_url: str | None
        spoken_locale: str

    prompt = VoicePrompt("ありがとうございました。", "ja-JP", "Polly.Mizuki", None, "ja")
    root = parse(gather_result(prompt))
    assert root[0].get("voice") == "Polly.Mizuki"
    assert root[0].get("language") == "ja-JP"


def test_gather_result_thanks_then_hangs_up() -> None:
    root = parse(gather_result(Prompt("Cảm ơn bạn.", "vi-VN")))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == "Cảm ơn bạn."


def test_machine_message_is_short_and_hangs_up() -> None:
    root = parse(machine_message(Prompt("Mimamori check-in. We will call again.", "en-US")))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.find("Gather") is None


def test_hangup_is_only_a_hangup() -> None:
    assert [child.tag for child in parse(hangup())] == ["Hangup"]

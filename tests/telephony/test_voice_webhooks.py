"""Check-in calls: the TwiML our voice webhooks answer with, parsed as Twilio reads it, and
what a keypress, an answering machine and the call status do to the check-in."""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from i18n.render import render
from i18n.voice import voice_prompt
from service.checkins.models import CheckInState, TimelineEvent
from service.config import get_settings
from service.telephony.models import InboundMessage, OutboxMessage, OutboxStatus
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.worlds import (
    ACCOUNT,
    LANDLINE,
    LANDLINE_LOCAL,
    OUR_NUMBER,
    attempt_of,
    checkin_of,
    message_row,
    outbox_to,
    signed_headers,
    start_round_for,
)

ORG = "輪島市社会福祉協議会"
ONE_CALL = [{"channel": "voice", "message": "prompt", "wait_minutes": 30}]


def parse(document: str) -> ET.Element:
    root = ET.fromstring(document.encode("utf-8"))
    assert root.tag == "Response"
    return root


def call_for(
    world: World, language: str, plan: list[dict[str, Any]] | None = None
) -> OutboxMessage:
    world.resident("R-call", LANDLINE_LOCAL, language=language)
    start_round_for(world, "R-call", plan=plan)
    world.tick()  # placed through the console provider: it has a SID now
    [call] = outbox_to(world.engine, LANDLINE)
    assert call.channel == "call" and call.sid
    return call


def post(world: World, path: str, params: dict[str, str]) -> Any:
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code in (200, 204), response.text
    return response


def answered(call: OutboxMessage, answered_by: str = "human", **extra: str) -> dict[str, str]:
    return {
        "CallSid": call.sid or "",
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": LANDLINE,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "AnsweredBy": answered_by,
        **extra,
    }


def test_call_speaks_the_residents_language_and_gathers_one_key_with_the_menu_twice(world: World):
    call = call_for(world, "vi")
    root = parse(post(world, f"/twilio/voice?attempt={call.id}", answered(call)).text)

    # Without a Vietnamese or romanised name, a Vietnamese voice says the generic phrase,
    # never the kanji it cannot read.
    greeting = voice_prompt("voice.greeting", "vi", org=render("name.org_generic", "vi"))
    assert ORG not in greeting.text
    menu = voice_prompt("voice.menu", "vi")
    assert [child.tag for child in root] == ["Say", "Gather", "Say", "Hangup"]
    say = root[0]
    assert say.text == greeting.text
    assert (say.get("language"), say.get("voice")) == ("vi-VN", "Google.vi-VN-Standard-A")

    gather = root[1]
    assert gather.get("numDigits") == "1"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("input") == "dtmf"
    assert gather.get("method") == "POST"
    assert (
        gather.get("action") == f"{get_settings().public_url}/twilio/voice/gather?attempt={call.id}"
    )
    spoken = gather.findall("Say")
    assert [s.text for s in spoken] == [menu.text, menu.text]
    assert all(s.get("language") == "vi-VN" for s in spoken)
    assert all(s.get("voice") == "Google.vi-VN-Standard-A" for s in spoken)
    # Answering is not replying: nothing is closed until a key says so.
    assert checkin_of(world.engine, world.residents["R-call"]).state == CheckInState.waiting


def test_nepali_resident_hears_easy_japanese_in_a_japanese_voice(world: World):
    call = call_for(world, "ne")
    root = parse(post(world, f"/twilio/voice?attempt={call.id}", answered(call)).text)

    says = list(root.iter("Say"))
    assert says, "the call says something"
    assert {(s.get("language"), s.get("voice")) for s in says} == {("ja-JP", "Polly.Mizuki")}
    easy_greeting = voice_prompt("voice.greeting", "easy_ja", org=ORG).text
    easy_menu = voice_prompt("voice.menu", "easy_ja").text
    assert root[0].text == easy_greeting
    assert [s.text for s in root.find("Gather").findall("Say")] == [easy_menu, easy_menu]  # type: ignore[union-attr]


def test_answering_machine_gets_a_short_message_and_counts_as_no_reply(world: World):
    call = call_for(world, "ja", plan=ONE_CALL)
    root = parse(
        post(world, f"/twilio/voice?attempt={call.id}", answered(call, "machine_end_beep")).text
    )

    assert [child.tag for child in root] == ["Say", "Hangup"]  # no Gather: nobody to press keys
    # A landline: the message does not ask for an SMS it cannot send (tests/telephony/test_voicemail.py).
    assert root[0].text == voice_prompt("voice.voicemail.voice_only", "ja", org=ORG).text
    assert message_row(world.engine, call.id).status == OutboxStatus.machine
    assert attempt_of(world.engine, call.attempt_id).status == "machine"

    # Twilio then reports the call "completed": a machine stays a machine, never "answered".
    post(
        world,
        f"/twilio/voice/status?attempt={call.id}",
        {**answered(call), "CallStatus": "completed"},
    )
    assert message_row(world.engine, call.id).status == OutboxStatus.machine
    checkin = checkin_of(world.engine, world.residents["R-call"])
    assert checkin.state == CheckInState.waiting and checkin.replied_at is None
    with Session(world.engine) as s:
        assert s.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 0

    # The plan has nothing after the call: a machine was no reply (not unreachable, not safe).
    world.tick()
    assert checkin_of(world.engine, world.residents["R-call"]).state == CheckInState.no_reply


def test_keypad_one_closes_the_checkin_once_even_when_the_gather_is_retried(world: World):
    call = call_for(world, "ja")
    post(world, f"/twilio/voice?attempt={call.id}", answered(call))
    path = f"/twilio/voice/gather?attempt={call.id}"
    params = answered(call, Digits="1")
    thanks = voice_prompt("voice.thanks", "ja").text
    for _ in range(3):
        root = parse(post(world, path, params).text)
        assert [(el.tag, el.text) for el in root] == [("Say", thanks), ("Hangup", None)]

    checkin = checkin_of(world.engine, world.residents["R-call"])
    assert checkin.state == CheckInState.ok
    assert message_row(world.engine, call.id).status == OutboxStatus.answered
    assert attempt_of(world.engine, call.attempt_id).status == "answered"
    with Session(world.engine) as s:
        keypad = list(s.execute(select(InboundMessage)).scalars())
        replies = s.execute(
            select(func.count())
            .select_from(TimelineEvent)
            .where(TimelineEvent.kind == "reply.voice")
        ).scalar_one()
    assert [(m.channel, m.body) for m in keypad] == [("keypad", "1")]
    assert replies == 1


def test_no_key_pressed_is_not_an_answer(world: World):
    call = call_for(world, "ja")
    root = parse(
        post(world, f"/twilio/voice/gather?attempt={call.id}", answered(call, Digits="")).text
    )
    assert root[0].text == voice_prompt("voice.no_input", "ja").text
    assert checkin_of(world.engine, world.residents["R-call"]).state == CheckInState.waiting


def test_busy_call_fails_the_attempt_and_moves_the_checkin_on(world: World):
    call = call_for(world, "ja")
    world.clock.advance(minutes=2)
    post(world, f"/twilio/voice/status?attempt={call.id}", {**answered(call), "CallStatus": "busy"})
    assert message_row(world.engine, call.id).status == OutboxStatus.busy
    assert attempt_of(world.engine, call.attempt_id).status == "no_answer"
    checkin = checkin_of(world.engine, world.residents["R-call"])
    assert checkin.next_action_at is not None
    assert checkin.next_action_at.replace(tzinfo=None) == world.clock.now().replace(tzinfo=None)


def test_a_call_we_do_not_know_is_hung_up(world: World):
    params = {"CallSid": "CA" + "9" * 32, "AccountSid": ACCOUNT, "AnsweredBy": "human"}
    root = parse(post(world, "/twilio/voice", params).text)
    assert [child.tag for child in root] == ["Hangup"]

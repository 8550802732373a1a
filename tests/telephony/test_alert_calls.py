"""Escalation alerts as voice calls too (MIMAMORI_ALERT_VOICE_CALLS): the member hears that a
visit is needed and the case code, never who or where, and answers with the keypad as they
would by SMS. The SMS stays the alert of record: a call that fails or reaches a machine
declines nothing.

Each test asks "help" from a resident watched by M1 (rank 1) and M2 (rank 2).
"""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlmodel import Session, select

from i18n.render import render
from i18n.voice import voice_prompt
from service.checkins import flows
from service.config import get_settings
from service.escalations import service as escalations
from service.escalations.models import Alert, Escalation
from service.registry.models import Member
from service.telephony import webhooks
from service.telephony.models import OutboxMessage, OutboxPurpose
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.worlds import ACCOUNT, OUR_NUMBER, signed_headers

ORG = "輪島市社会福祉協議会"
RESIDENT = "+819010000001"
M1, M2 = "+818030000001", "+818030000002"


@pytest.fixture
def calls_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMAMORI_ALERT_VOICE_CALLS", "true")
    get_settings.cache_clear()


def _help(
    world: World, member_language: str = "ja", m1_phone: str = "080-3000-0001", dispatch=True
) -> None:
    world.site("A団地")
    world.member("M1", m1_phone, languages=[member_language])
    world.member("M2", "080-3000-0002")
    world.resident("R1", "090-1000-0001", site="A団地", name="山田 花子")
    world.assign("R1", "M1", 1)
    world.assign("R1", "M2", 2)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()
    world.sms(RESIDENT, "2")
    if dispatch:
        world.tick()  # dispatched through the console provider: SIDs


def _to(world: World, phone: str, channel: str) -> list[OutboxMessage]:
    with Session(world.engine) as s:
        return list(
            s.exec(
                select(OutboxMessage)
                .where(OutboxMessage.to_phone == phone, OutboxMessage.channel == channel)
                .order_by(OutboxMessage.created_at)
            ).all()
        )


def _escalation(world: World) -> Escalation:
    with Session(world.engine) as s:
        return s.exec(select(Escalation)).one()


def _post(world: World, path: str, params: dict[str, str]) -> ET.Element:
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text.encode("utf-8"))
    assert root.tag == "Response"
    return root


def _answered(call: OutboxMessage, answered_by: str = "human", **extra: str) -> dict[str, str]:
    return {
        "CallSid": call.sid or "",
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": call.to_phone,
        "AnsweredBy": answered_by,
        **extra,
    }


def _spoken(root: ET.Element) -> str:
    return " ".join(say.text or "" for say in root.iter("Say"))


def test_without_the_setting_alerts_are_sms_only(world: World):
    _help(world)
    assert len(_to(world, M1, "sms")) == 1
    assert _to(world, M1, "call") == []


def test_the_alert_call_says_a_visit_is_needed_and_the_case_code_but_not_who(
    world: World, calls_on: None
):
    _help(world, member_language="vi")
    [sms] = _to(world, M1, "sms")
    [call] = _to(world, M1, "call")
    assert call.purpose == OutboxPurpose.alert_call and call.sid and call.locale == "vi"
    assert call.alert_id == sms.alert_id
    code = _escalation(world).case_code
    root = _post(world, f"/twilio/voice?attempt={call.id}", _answered(call))
    assert [child.tag for child in root] == ["Say", "Gather", "Say", "Hangup"]
    # A Vietnamese voice cannot read the kanji name: without other names, the generic phrase.
    generic = render("name.org_generic", "vi")
    assert root[0].text == voice_prompt("voice.alert", "vi", org=generic, code=code).text
    assert ORG not in (root[0].text or "")
    menu = voice_prompt("voice.alert_menu", "vi").text
    assert [say.text for say in root[1].findall("Say")] == [menu, menu]
    spoken = _spoken(root)
    assert "山田" not in spoken and "A団地" not in spoken
    # The SMS carries the details.
    assert "山田" in (sms.body or "")


def test_pressing_1_acknowledges_and_the_address_follows_by_sms(world: World, calls_on: None):
    _help(world)
    [call] = _to(world, M1, "call")
    path = f"/twilio/voice/gather?attempt={call.id}"
    root = _post(world, path, _answered(call, Digits="1"))
    assert _spoken(root) == voice_prompt("voice.thanks", "ja").text
    escalation = _escalation(world)
    assert escalation.state == "acknowledged"
    assert escalation.acknowledged_by == world.members["M1"]
    notices = [m for m in _to(world, M1, "sms") if m.purpose == OutboxPurpose.member_notice]
    assert len(notices) == 1 and "山田" in (notices[0].body or "")
    # Twilio retrying the keypress changes nothing more.
    _post(world, path, _answered(call, Digits="1"))
    assert len([m for m in _to(world, M1, "sms") if m.purpose == "member_notice"]) == 1


def test_pressing_2_declines_and_the_next_member_is_alerted_at_once(world: World, calls_on: None):
    _help(world)
    [call] = _to(world, M1, "call")
    _post(world, f"/twilio/voice/gather?attempt={call.id}", _answered(call, Digits="2"))
    escalation = _escalation(world)
    assert escalation.state == "alerting" and escalation.step_index == 1
    world.tick()
    assert len(_to(world, M2, "sms")) == 1 and len(_to(world, M2, "call")) == 1


def test_a_machine_gets_no_details_and_declines_nothing(world: World, calls_on: None):
    _help(world)
    [call] = _to(world, M1, "call")
    root = _post(world, f"/twilio/voice?attempt={call.id}", _answered(call, "machine_end_beep"))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == voice_prompt("voice.alert_voicemail", "ja", org=ORG).text
    escalation = _escalation(world)
    assert (escalation.state, escalation.step_index) == ("alerting", 0)


def test_an_unanswered_alert_call_declines_nothing(world: World, calls_on: None):
    _help(world)
    [call] = _to(world, M1, "call")
    path = f"/twilio/voice/status?attempt={call.id}"
    params = {"CallSid": call.sid or "", "CallStatus": "no-answer", "AccountSid": ACCOUNT}
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code == 204
    escalation = _escalation(world)
    assert (escalation.state, escalation.step_index) == ("alerting", 0)
    with Session(world.engine) as s:
        assert s.exec(select(Alert)).one().state == "sent"


def test_a_call_answered_after_the_sms_reply_has_nothing_to_ask(world: World, calls_on: None):
    _help(world)
    [call] = _to(world, M1, "call")
    code = _escalation(world).case_code
    world.sms(M1, "1")  # acknowledged by SMS while the phone was ringing
    root = _post(world, f"/twilio/voice?attempt={call.id}", _answered(call))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == voice_prompt("voice.alert_closed", "ja").text
    # A late keypress does not act either.
    root = _post(world, f"/twilio/voice/gather?attempt={call.id}", _answered(call, Digits="2"))
    assert _spoken(root) == voice_prompt("voice.alert_closed", "ja").text
    escalation = _escalation(world)
    assert escalation.state == "acknowledged" and escalation.case_code == code


def test_another_key_is_not_an_answer(world: World, calls_on: None):
    _help(world)
    [call] = _to(world, M1, "call")
    root = _post(world, f"/twilio/voice/gather?attempt={call.id}", _answered(call, Digits="9"))
    assert _spoken(root) == voice_prompt("voice.no_input", "ja").text
    assert _escalation(world).state == "alerting"


@pytest.mark.parametrize("sms", ["1 {code}", "1-{code}", "1"])
def test_acknowledging_on_the_call_and_again_by_sms_records_no_visit(
    world: World, calls_on: None, sms: str
):
    """The alert SMS asks for "1"; a member who pressed 1 on the call may reply to it too.
    That is the same acknowledgement (digit first, member protocol v2), never the outcome
    "safe", which is sent code first ("A7 1")."""
    _help(world)
    [call] = _to(world, M1, "call")
    code = _escalation(world).case_code
    _post(world, f"/twilio/voice/gather?attempt={call.id}", _answered(call, Digits="1"))
    world.clock.advance(minutes=1)
    world.sms(M1, sms.format(code=code))
    escalation = _escalation(world)
    assert escalation.state == "acknowledged" and escalation.outcome is None


def test_a_keypress_on_an_alert_settled_meanwhile_acts_on_nothing(
    world: World, calls_on: None, monkeypatch: pytest.MonkeyPatch
):
    """The alert looked open when the key was pressed, but the member's SMS "1" was
    committed just before the keypress took the lock: the "1" is not read again."""
    _help(world)
    [call] = _to(world, M1, "call")
    stale = _escalation(world)
    monkeypatch.setattr(webhooks, "_open_alert_case", lambda session, message: stale)
    world.sms(M1, "1")
    root = _post(world, f"/twilio/voice/gather?attempt={call.id}", _answered(call, Digits="1"))
    assert _spoken(root) == voice_prompt("voice.alert_closed", "ja").text
    escalation = _escalation(world)
    assert escalation.state == "acknowledged" and escalation.outcome is None
    with Session(world.engine) as s:
        member = s.get(Member, world.members["M1"])
        answer = escalations.answer_alert_by_keypad(
            s, alert_id=call.alert_id, member=member, digit="2", now=world.clock.now()
        )
    assert answer is None


def test_no_call_is_placed_for_an_alert_settled_before_it_went_out(world: World, calls_on: None):
    _help(world, dispatch=False)
    world.sms(M1, "1")  # answered by SMS before the dispatcher got to the call
    world.tick()
    [call] = _to(world, M1, "call")
    assert call.status == "cancelled" and call.sid is None


def test_a_landline_member_gets_the_call_as_the_alert_itself(world: World, calls_on: None):
    _help(world, m1_phone="0768-22-0001")
    landline = "+81768220001"
    assert _to(world, landline, "sms") == []
    [call] = _to(world, landline, "call")
    assert call.purpose == OutboxPurpose.alert
    # Reached: the alert call, as to a mobile.
    code = _escalation(world).case_code
    root = _post(world, f"/twilio/voice?attempt={call.id}", _answered(call))
    assert root[0].text == voice_prompt("voice.alert", "ja", org=ORG, code=code).text
    # Not reached: unlike a call beside an SMS, that is a decline; the chain moves on.
    path = f"/twilio/voice/status?attempt={call.id}"
    params = {"CallSid": call.sid or "", "CallStatus": "no-answer", "AccountSid": ACCOUNT}
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code == 204
    assert _escalation(world).step_index == 1
    world.tick()
    assert len(_to(world, M2, "sms")) == 1


def test_an_alert_sms_that_cannot_be_delivered_still_moves_the_chain_on(
    world: World, calls_on: None
):
    _help(world)
    [sms] = _to(world, M1, "sms")
    path = f"/twilio/status?attempt={sms.id}"
    params = {"MessageSid": sms.sid or "", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code == 204
    assert _escalation(world).step_index == 1

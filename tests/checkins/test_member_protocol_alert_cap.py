"""Issue 17, item 4 (item 5 in its list of findings), as a council would meet it after an
aftershock: a welfare committee member who watches over 14 residents gets 14 calls for
help within a minute.

The per-recipient cap (``sms_per_recipient_per_hour``) stops floods and reply loops of
chatter: check-ins and notices to residents. Alerts, reminders and the answers to a
member's own replies (``telephony.models.ALERT_PURPOSES``) have a cap of their own, much
higher (``alert_sms_per_hour``, 120), and neither cap counts the other's messages. An alert
held anyway is shown to staff, with the reason, and the chain waits for it to be sent.

Everything goes through the real dispatcher (the scheduler's job, the console provider)
and the signed SMS webhook.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlmodel import select

from service.checkins.events import ALERT_HELD
from service.checkins.models import TimelineEvent
from service.common import aware
from service.config import Settings, get_settings
from service.escalations.models import Alert, Escalation, EscalationState
from service.telephony.dispatch import dispatch_once
from service.telephony.models import OutboxChannel, OutboxMessage, OutboxPurpose, OutboxStatus
from service.telephony.outbox import enqueue, sms_cap
from tests.conftest import TEST_PASSWORD

from .conftest import ONE_MESSAGE

M1 = "+818030000001"
HELPED = 14


def _calls_for_help(world, helped: int = HELPED) -> None:
    """``helped`` residents watched over by M1 each answer the round with "2" (help), all
    within the minute; their cases open and alert M1, and the dispatcher sends."""
    world.member("M1", "080-3000-0001")
    for n in range(1, helped + 1):
        key = f"R{n}"
        world.resident(key, f"090-1000-{n:04d}")
        world.assign(key, "M1", 1)
    world.broadcast(plan=ONE_MESSAGE)
    world.tick()
    for n in range(1, helped + 1):
        world.sms(f"+81901000{n:04d}", "2", act=False)  # help, all within the minute
    world.tick()  # acted on, alerted, dispatched
    world.tick()


def _alerts(world) -> list:
    return [m for m in world.sent_to(M1) if m.purpose == OutboxPurpose.alert]


@pytest.fixture
def alert_cap(monkeypatch: pytest.MonkeyPatch):
    """Set the alert cap for one test (before the world's settings are read), and the
    chatter's to the same: the alert cap is never lower than the chatter's."""

    def set_cap(value: int) -> None:
        monkeypatch.setenv("MIMAMORI_ALERT_SMS_PER_HOUR", str(value))
        monkeypatch.setenv("MIMAMORI_SMS_PER_RECIPIENT_PER_HOUR", str(value))
        get_settings.cache_clear()

    return set_cap


def test_the_default_alert_cap_is_sized_for_a_member_after_an_earthquake():
    assert get_settings().alert_sms_per_hour >= 120
    assert get_settings().sms_per_recipient_per_hour == 10
    assert sms_cap(get_settings(), alerts=True) == get_settings().alert_sms_per_hour
    assert sms_cap(get_settings(), alerts=False) == 10


def test_the_alert_cap_is_never_lower_than_chatters():
    """An installation that raised the chatter cap (a staff member on duty who gets every
    exhausted case) never holds an alert back where a check-in would go."""
    raised = Settings(_env_file=None, sms_per_recipient_per_hour=100_000)
    assert sms_cap(raised, alerts=True) == 100_000
    assert sms_cap(Settings(_env_file=None, alert_sms_per_hour=5), alerts=True) == 10


def test_fourteen_help_alerts_to_one_member_all_go_out_at_once(world):
    """The issue's case: 14 calls for help to one member within a minute. All 14 alerts
    leave in the same tick; none waits as "deferred: over 10 SMS per hour"."""
    _calls_for_help(world)
    alerts = _alerts(world)
    assert len(alerts) == HELPED
    assert [m.status for m in alerts] == ["sent"] * HELPED, [m.last_error for m in alerts]
    assert all(m.last_error is None for m in alerts)
    sent_at = {aware(m.sent_at) for m in alerts}
    assert sent_at == {world.clock.now()}  # at once: the same tick, no ten-minute wait


def test_thirty_help_alerts_to_one_member_all_go_out_at_once(world):
    """A member watching over 30 residents after an earthquake."""
    _calls_for_help(world, 30)
    alerts = _alerts(world)
    assert len(alerts) == 30
    assert [m.status for m in alerts] == ["sent"] * 30, [m.last_error for m in alerts]
    with world.session() as s:
        cases = s.exec(select(Escalation)).all()
        assert {c.state for c in cases} == {EscalationState.alerting}
        assert {c.step_index for c in cases} == {0}


def test_a_members_result_is_confirmed_after_a_busy_hour_of_alerts(world):
    _calls_for_help(world)
    with world.session() as s:
        code = s.exec(select(Escalation).order_by(Escalation.created_at)).first().case_code
    world.sms(M1, f"1 {code}")
    world.clock.advance(minutes=20)
    answer = world.sms(M1, f"{code} 1")
    with world.session() as s:
        assert s.exec(select(Escalation).where(Escalation.case_code == code)).one().outcome
    assert "結果を記録しました" in answer


def test_a_members_answers_are_never_held_by_the_chatter_cap(world):
    """Eleven answers to a member's replies within the hour, after 14 alerts: every one is
    sent (the chatter cap is 10), and each is stored against the alerts' cap."""
    _calls_for_help(world)
    with world.session() as s:
        codes = [e.case_code for e in s.exec(select(Escalation).order_by(Escalation.created_at))]
    answers = [world.sms(M1, f"1 {code}") for code in codes[:11]]
    assert all("<Message>" in a for a in answers), answers
    notices = [m for m in world.sent_to(M1) if m.purpose == OutboxPurpose.member_notice]
    assert len(notices) >= 11 and all(m.status == OutboxStatus.sent for m in notices)


def test_chatter_over_its_cap_still_waits_while_alerts_to_the_number_go(world):
    """One number, twelve notices and fourteen alerts due at once: ten notices go and two
    wait (chatter's cap), every alert goes, and neither cap counted the other's."""
    settings = get_settings()
    phone = "+819010009999"
    now = world.clock.now()
    with world.session() as s:
        notices = [
            enqueue(
                s,
                organization_id=world.org_id,
                channel=OutboxChannel.sms,
                purpose=OutboxPurpose.resident_notice,
                to_phone=phone,
                body=f"notice {i}",
                now=now,
            ).id
            for i in range(12)
        ]
        alerts = [
            enqueue(
                s,
                organization_id=world.org_id,
                channel=OutboxChannel.sms,
                purpose=OutboxPurpose.alert,
                to_phone=phone,
                body=f"alert {i}",
                now=now,
            ).id
            for i in range(14)
        ]
        s.commit()
    asyncio.run(
        dispatch_once(engine=world.engine, provider=world.provider, settings=settings, now=now)
    )
    with world.session() as s:
        notice_rows = [s.get(OutboxMessage, i) for i in notices]
        alert_rows = [s.get(OutboxMessage, i) for i in alerts]
    assert [r.status for r in alert_rows] == [OutboxStatus.sent] * 14
    statuses = sorted(r.status for r in notice_rows)
    assert statuses == [OutboxStatus.pending] * 2 + [OutboxStatus.sent] * 10
    waiting = [r for r in notice_rows if r.status == OutboxStatus.pending]
    assert all("deferred: over 10 SMS per hour" in (r.last_error or "") for r in waiting)
    assert all(aware(r.next_try_at) > now for r in waiting)


def _login(world, coordinator) -> None:
    page = world.client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = world.client.post(
        "/login",
        data={
            "csrf_token": token,
            "email": coordinator.email,
            "password": TEST_PASSWORD,
            "next": "/",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def _held_cases(world) -> list[Escalation]:
    with world.session() as s:
        held = s.exec(
            select(Escalation)
            .join(Alert, Alert.escalation_id == Escalation.id)
            .where(Alert.id.in_([m.alert_id for m in _alerts(world) if m.status == "pending"]))
        ).all()
        return list(held)


def test_a_held_alert_shows_why_and_the_chain_waits_for_it(world, alert_cap, coordinator):
    """With the alert cap at 3, five calls for help: three alerts go, two are held. Staff
    see why (the case's timeline, in the API and on the case page, in Japanese), and the
    chain does not move on at the end of the acknowledgement window of alerts never sent:
    the window runs from when the held alert goes."""
    alert_cap(3)
    world.ctx.settings = get_settings()
    _calls_for_help(world, 5)
    alerts = _alerts(world)
    assert sorted(m.status for m in alerts) == ["pending"] * 2 + ["sent"] * 3
    held = [m for m in alerts if m.status == "pending"]
    assert all("deferred: over 3 alert SMS per hour" in (m.last_error or "") for m in held)
    cases = _held_cases(world)
    assert len(cases) == 2
    ack = cases[0].ack_minutes
    first_try = min(aware(m.next_try_at) for m in held)
    assert all(aware(c.next_action_at) >= first_try + timedelta(minutes=ack) for c in cases)

    # Staff see why: the timeline entry, once per held alert, in the API and the page.
    with world.session() as s:
        entries = s.exec(select(TimelineEvent).where(TimelineEvent.kind == ALERT_HELD)).all()
    assert sorted(e.escalation_id for e in entries) == sorted(c.id for c in cases)
    assert {e.detail["held_cap"] for e in entries} == {3}
    timeline = world.client.get(
        f"/api/v1/residents/{cases[0].resident_id}/timeline", headers=coordinator.headers
    )
    assert timeline.status_code == 200, timeline.text
    kinds = [item for item in timeline.json() if item["kind"] == ALERT_HELD]
    assert kinds and kinds[0]["detail"]["held_cap"] == 3
    _login(world, coordinator)
    page = world.client.get(f"/cases/{cases[0].id}")
    assert page.status_code == 200
    assert "保留: この方への通知が1時間に3件を超えました" in page.text
    assert "通知を保留中" in page.text

    # The window of the alerts that went runs out, and their cases move on (M1 is the
    # whole chain); the held ones' cases stay where they are, held again each time they
    # are tried within the hour, never counted as unanswered.
    for _ in range(6):
        world.tick(10)
        with world.session() as s:
            for case in cases:
                now_case = s.get(Escalation, case.id)
                assert (now_case.state, now_case.step_index) == (EscalationState.alerting, 0)
    with world.session() as s:
        others = s.exec(select(Escalation).where(Escalation.id.not_in([c.id for c in cases])))
        assert {e.state for e in others} == {EscalationState.exhausted}
        entries = s.exec(select(TimelineEvent).where(TimelineEvent.kind == ALERT_HELD)).all()
    assert len(entries) == 2  # noted once per alert, however often it is held again
    assert all(m.status == "pending" for m in _alerts(world) if m.id in {h.id for h in held})

    # Past the hour, the held alerts go, and their cases wait a full window from then.
    world.tick(10)
    alerts = {m.id: m for m in _alerts(world)}
    assert [alerts[m.id].status for m in held] == ["sent", "sent"]
    with world.session() as s:
        for message in held:
            case = s.exec(
                select(Escalation)
                .join(Alert, Alert.escalation_id == Escalation.id)
                .where(Alert.id == message.alert_id)
            ).one()
            assert (case.state, case.step_index) == (EscalationState.alerting, 0)
            sent_at = aware(alerts[message.id].sent_at)
            assert aware(case.next_action_at) >= sent_at + timedelta(minutes=ack)

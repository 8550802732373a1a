"""A round reaches residents in Mongolian, Bengali, Urdu, Hindi and Tamil in their own
language, and answers their replies in it, through the real webhook and scheduler jobs."""

from __future__ import annotations

import pytest
from sqlmodel import select

from i18n.render import render
from service.checkins import flows
from service.checkins.models import CheckIn

ORG = "輪島市社会福祉協議会"
NAME = "Test Resident"
PHONE = "+819010000001"


@pytest.mark.parametrize("code", ["mn", "bn", "ur", "hi", "ta"])
def test_a_check_in_in_each_new_language_is_sent_and_answered_in_it(world, code: str) -> None:
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001", language=code, site="A団地", name=NAME)
    world.assign("R1", "M1", 1)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()

    [checkin] = world.sent_to(PHONE)
    assert checkin.status == "sent", checkin.last_error
    assert checkin.locale == code
    assert checkin.body == render("resident.checkin", code, org=ORG, name=NAME)

    reply = world.sms(PHONE, "1")
    assert render("resident.reply.ok", code, org=ORG) in reply
    with world.session() as s:
        assert s.exec(select(CheckIn)).one().state == "ok"

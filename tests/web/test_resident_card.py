"""The resident page's "最新の安否確認" (latest check-in) shows the newest word about the
resident (issue 17, item 9: it still said "元気" after a call for help), over HTTP, as staff
read it."""

from __future__ import annotations

import re

from sqlmodel import select

from service.auth.models import Role
from service.escalations.models import Escalation
from tests.checkins.conftest import ONE_MESSAGE
from tests.web.conftest import FormClient, add_staff

R1, M1 = "+819010000001", "+818030000001"
# The paragraph under the card's heading.
LATEST = re.compile(r"<h3>最新の安否確認</h3>\s*<p[^>]*>(.*?)</p>", re.S)


def _resident(world) -> None:
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001", name="能登 花子")
    world.assign("R1", "M1", 1)


def _card(forms: FormClient, world) -> str:
    page = forms.client.get(f"/residents/{world.residents['R1']}")
    assert page.status_code == 200, page.text
    [latest] = LATEST.findall(page.text)
    return latest


def _round(world) -> None:
    world.broadcast(plan=ONE_MESSAGE)
    world.tick()


def test_help_after_fine_shows_help(forms: FormClient, world, engine) -> None:
    forms.login(add_staff(engine, Role.viewer))
    _resident(world)
    _round(world)
    world.clock.advance(minutes=5)
    world.sms(R1, "1")  # fine: the check-in closes as fine
    assert "元気" in _card(forms, world)
    world.clock.advance(minutes=50)
    world.sms(R1, "2")  # an hour later: help
    card = _card(forms, world)
    assert "助けが必要" in card and "元気" not in card


def test_fine_after_help_shows_fine(forms: FormClient, world, engine) -> None:
    """The newest word wins either way (the open case stays on the page's notice)."""
    forms.login(add_staff(engine, Role.viewer))
    _resident(world)
    _round(world)
    world.clock.advance(minutes=5)
    world.sms(R1, "2")
    world.clock.advance(minutes=30)
    world.sms(R1, "1")
    card = _card(forms, world)
    assert "元気" in card and "助けが必要" not in card


def test_a_visits_outcome_after_help_shows_the_outcome(forms: FormClient, world, engine) -> None:
    forms.login(add_staff(engine, Role.viewer))
    _resident(world)
    _round(world)
    world.sms(R1, "2")
    world.tick()
    with world.session() as s:
        code = s.exec(select(Escalation)).one().case_code
    world.sms(M1, f"1 {code}")
    world.clock.advance(minutes=40)
    world.sms(M1, f"{code} 1")  # the visit: safe
    card = _card(forms, world)
    assert "結果" in card and "無事" in card and "助けが必要" not in card


def test_help_without_any_check_in_shows_help(forms: FormClient, world, engine) -> None:
    forms.login(add_staff(engine, Role.viewer))
    _resident(world)
    assert "まだありません" in _card(forms, world)
    world.sms(R1, "たすけて")
    assert "助けが必要" in _card(forms, world)


def test_silence_shows_no_answer_and_a_later_reply_replaces_it(
    forms: FormClient, world, engine
) -> None:
    forms.login(add_staff(engine, Role.viewer))
    _resident(world)
    _round(world)
    assert "返信待ち" in _card(forms, world)
    world.tick(60)  # the plan runs out: escalated as no answer
    assert "最後まで応答なし" in _card(forms, world)
    world.clock.advance(minutes=10)
    world.sms(R1, "1")
    assert "元気" in _card(forms, world)

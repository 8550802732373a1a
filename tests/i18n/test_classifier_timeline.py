"""Every reading of a reply names the words that decided it, on the timeline staff read.

Through the real webhook, database and dashboard: a reply goes in as SMS, the timeline
event keeps the deciding words and the reason code, and the resident page shows them in
Japanese.
"""

from __future__ import annotations

from sqlmodel import select

from service.auth.models import Role
from service.checkins import flows
from service.checkins.models import TimelineEvent
from tests.checkins.conftest import world  # noqa: F401  (the fixture)
from tests.web.conftest import FormClient, add_staff

R1 = "+819010000001"
R2 = "+819010000002"


def _setup(world, *residents) -> None:  # noqa: F811
    world.site("A団地")
    world.member("M1", "080-3000-0001")
    for key, phone, lang in residents:
        world.resident(key, phone, language=lang, site="A団地")
        world.assign(key, "M1", 1)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()


def _reply_events(world, key: str) -> list[TimelineEvent]:  # noqa: F811
    with world.session() as s:
        return list(
            s.exec(
                select(TimelineEvent)
                .where(TimelineEvent.kind == "reply.sms")
                .where(TimelineEvent.resident_id == world.residents[key])
            ).all()
        )


def test_a_need_is_help_and_the_timeline_names_the_need(world) -> None:  # noqa: F811
    _setup(world, ("R1", "090-1000-0001", "ja"))
    world.sms(R1, "大丈夫だけど停電してる")
    [event] = _reply_events(world, "R1")
    assert event.detail["class"] == "help"
    assert event.detail["why"] == "need"
    assert event.detail["words"] == ["停電"]
    assert event.detail["matched"] == "停電"


def test_a_doubtful_fine_names_its_doubt_and_a_plain_fine_its_words(world) -> None:  # noqa: F811
    _setup(world, ("R1", "090-1000-0001", "ja"), ("R2", "090-1000-0002", "en"))
    world.sms(R1, "大丈夫ですよね")
    world.sms(R2, "I'm fine, thank you")
    [doubt] = _reply_events(world, "R1")
    assert (doubt.detail["class"], doubt.detail["why"]) == ("unclear", "question")
    assert doubt.detail["words"] == ["ですよね"]
    [fine] = _reply_events(world, "R2")
    assert (fine.detail["class"], fine.detail["why"], fine.detail["words"]) == (
        "fine",
        "fine",
        ["fine"],
    )


def test_replies_acted_on_in_a_batch_keep_their_words_too(world) -> None:  # noqa: F811
    """Plain fine replies are closed in bulk by ``process_replies`` (checkins.events)."""
    _setup(world, ("R1", "090-1000-0001", "vi"))
    world.sms(R1, "ổn rồi ạ", act=False)
    world.clock.advance(seconds=3)
    assert flows.process_replies(world.engine, world.clock.now) == 1
    [event] = _reply_events(world, "R1")
    assert (event.detail["class"], event.detail["why"]) == ("fine", "fine")
    assert event.detail["words"] == ["ổn rồi"]


def test_the_resident_page_shows_why_a_reply_was_read_so(
    world,  # noqa: F811
    client,
    engine,
) -> None:
    _setup(world, ("R1", "090-1000-0001", "ne"))
    world.sms(R1, "pani chaina")
    forms = FormClient(client)
    forms.login(add_staff(engine, Role.viewer))
    html = forms.client.get(f"/residents/{world.residents['R1']}").text
    assert "判定：助け" in html
    assert "理由：困りごと（必要なもの）（pani chaina）" in html

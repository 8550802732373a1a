"""The translation job on a real database (SQLite, and PostgreSQL in CI): replies arrive
through the signed Twilio webhook, the scheduler job translates them in batches, rate limits
come back later, permanent failures are stored, and nothing leaves without a provider."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from sqlmodel import select

from service.audit.models import AuditEntry
from service.telephony.models import InboundMessage
from service.translation.models import Translation
from service.translation.policy import FIRST_RETRY
from tests.translation.conftest import DEEPL_URL, deepl_answer, e164
from tests.translation.wire import Memory

STRANGER = "+819099990001"
MEMORY = {
    "ai vậy?": ("誰ですか?", "vi"),
    "my mother fell, please come": ("母が転びました。来てください", "en"),
    "siapa ini?": ("どなたですか?", "id"),
}


def _by_body(world) -> dict[str, Translation | None]:
    with world.session() as s:
        rows = s.exec(
            select(InboundMessage, Translation).join(
                Translation, Translation.inbound_id == InboundMessage.id, isouter=True
            )
        ).all()
        return {message.body: translation for message, translation in rows}


def test_the_job_translates_free_text_replies_and_inbox_items_only(morning, deepl_wire, deepl):
    world = morning.world
    world.sms(STRANGER, "ai vậy?")  # an unknown number: an inbox item
    world.sms(e164(4), "my mother fell, please come")  # a Vietnamese resident, in English
    memory = Memory(MEMORY).on_deepl(deepl_wire)
    world.ctx.translator = deepl
    world.tick()

    assert sorted(text for batch in memory.sent for text in batch) == [
        "ai vậy?",
        "my mother fell, please come",
    ]
    assert set(memory.targets) == {"JA"}
    found = _by_body(world)
    stranger, resident = found["ai vậy?"], found["my mother fell, please come"]
    assert (stranger.status, stranger.translated_text, stranger.detected_language) == (
        "done",
        "誰ですか?",
        "vi",
    )
    assert stranger.provider == "deepl" and stranger.translated_at is not None
    assert (resident.status, resident.detected_language) == ("done", "en")
    # Digits need nothing; Japanese is looked at once and skipped.
    assert found["1"] is None and found["2"] is None and found["3"] is None
    assert found["元気です"].status == "skipped" and found["あいうえお"].status == "skipped"

    world.tick()  # nothing new: nothing sent again
    assert len(memory.sent) == 1


def test_what_was_sent_is_audited_without_the_text(morning, deepl_wire, deepl):
    world = morning.world
    world.sms(STRANGER, "ai vậy?")
    Memory(MEMORY).on_deepl(deepl_wire)
    world.ctx.translator = deepl
    world.tick()
    with world.session() as s:
        entries = s.exec(select(AuditEntry).where(AuditEntry.action == "translate")).all()
        message = s.exec(select(InboundMessage).where(InboundMessage.body == "ai vậy?")).one()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.entity_type == "inbound_message" and entry.entity_id == str(message.id)
    assert entry.organization_id == world.org_id
    assert entry.detail == {
        "kind": "reply",
        "provider": "deepl",
        "chars": len("ai vậy?"),
        "target": "ja",
        "outcome": "done",
    }
    dumped = json.dumps(entry.detail, ensure_ascii=False) + entry.actor + str(entry.fields)
    assert "ai vậy" not in dumped and "誰" not in dumped and STRANGER not in dumped


@pytest.mark.parametrize(("status", "words"), [(429, "too many requests"), (456, "quota")])
def test_a_rate_limited_reply_is_tried_again_later(morning, deepl_wire, deepl, status, words):
    world = morning.world
    world.sms(STRANGER, "siapa ini?")
    deepl_wire.post(DEEPL_URL, status=status, json={"message": "slow down"})
    deepl_wire.post(DEEPL_URL, json=deepl_answer(("どなたですか?", "ID")))
    world.ctx.translator = deepl
    world.tick()
    row = _by_body(world)["siapa ini?"]
    assert row.status == "pending" and row.tries == 1 and words in row.error
    assert row.next_try_at.replace(tzinfo=None) > world.clock.now().replace(tzinfo=None)

    world.tick()  # not due yet: the translator is left alone
    assert len(deepl_wire.calls) == 1

    world.clock.advance(seconds=(FIRST_RETRY * 1.2 + timedelta(seconds=1)).total_seconds())
    world.tick()
    row = _by_body(world)["siapa ini?"]
    assert len(deepl_wire.calls) == 2
    assert (row.status, row.translated_text, row.detected_language, row.tries) == (
        "done",
        "どなたですか?",
        "id",
        2,
    )
    assert row.error is None
    with world.session() as s:
        outcomes = [
            e.detail["outcome"]
            for e in s.exec(select(AuditEntry).where(AuditEntry.action == "translate")).all()
        ]
    assert sorted(outcomes) == ["done", "retry"]


def test_a_permanent_failure_is_stored_with_its_reason_and_not_retried(morning, deepl_wire, deepl):
    world = morning.world
    world.sms(STRANGER, "siapa ini?")
    deepl_wire.post(DEEPL_URL, status=403, json={"message": "Wrong key"})
    world.ctx.translator = deepl
    world.tick()
    row = _by_body(world)["siapa ini?"]
    assert row.status == "failed" and "key was refused" in row.error
    world.tick(minutes=120)
    assert len(deepl_wire.calls) == 1


def test_the_job_translates_with_google(morning, google_wire, google):
    world = morning.world
    world.sms(STRANGER, "siapa ini?")
    memory = Memory(MEMORY).on_google(google_wire)
    world.ctx.translator = google
    world.tick()
    row = _by_body(world)["siapa ini?"]
    assert (row.status, row.translated_text, row.detected_language, row.provider) == (
        "done",
        "どなたですか?",
        "id",
        "google",
    )
    assert memory.targets == ["ja"]


def test_a_google_rate_limit_waits_as_long_as_google_asks(morning, google_wire, google):
    import httpx

    world = morning.world
    world.sms(STRANGER, "siapa ini?")
    google_wire.post(
        "https://translation.googleapis.com/v3/projects/mimamori-test/locations/global:translateText"
    ).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "600"}, json={"error": {"code": 429}}),
            httpx.Response(
                200,
                json={
                    "translations": [{"translatedText": "どなた?", "detectedLanguageCode": "id"}]
                },
            ),
        ]
    )
    world.ctx.translator = google
    world.tick()
    row = _by_body(world)["siapa ini?"]
    assert row.status == "pending"
    wait = row.next_try_at.replace(tzinfo=None) - world.clock.now().replace(tzinfo=None)
    assert wait >= timedelta(seconds=600)
    world.tick(minutes=5)
    assert _by_body(world)["siapa ini?"].status == "pending"
    world.tick(minutes=6)
    assert _by_body(world)["siapa ini?"].status == "done"


def test_nothing_is_sent_or_queued_when_the_provider_is_none(morning):
    world = morning.world
    world.sms(STRANGER, "ai vậy?")
    assert world.ctx.settings.translation_provider == "none"
    with responses.RequestsMock() as wire:  # any request at all would fail here
        world.tick()
        assert len(wire.calls) == 0
    with world.session() as s:
        assert s.exec(select(Translation)).all() == []


def test_turning_the_provider_off_holds_pending_items_and_on_again_resumes(
    morning, deepl_wire, deepl
):
    world = morning.world
    world.sms(STRANGER, "siapa ini?")
    deepl_wire.post(DEEPL_URL, status=429)
    world.ctx.translator = deepl
    world.tick()
    assert _by_body(world)["siapa ini?"].status == "pending"
    world.ctx.translator, world.ctx._translator_built = None, True  # provider "none" now
    world.tick(minutes=10)
    assert _by_body(world)["siapa ini?"].status == "not_configured"
    assert len(deepl_wire.calls) == 1
    deepl_wire.replace(responses.POST, DEEPL_URL, json=deepl_answer(("どなたですか?", "ID")))
    world.ctx.translator = deepl
    world.tick()
    assert _by_body(world)["siapa ini?"].status == "done"


def test_a_big_round_of_replies_is_discovered_in_batches(morning, deepl_wire, deepl, monkeypatch):
    from service.translation import service as translation_service

    monkeypatch.setattr(translation_service, "DISCOVER_BATCH", 2)
    world = morning.world
    texts = {f"xin chào {n}": (f"こんにちは {n}", "vi") for n in range(5)}
    for n, text in enumerate(texts):
        world.sms(f"+81909999100{n}", text)
    memory = Memory(texts).on_deepl(deepl_wire)
    world.ctx.translator = deepl
    world.tick()
    assert sorted(t for batch in memory.sent for t in batch) == sorted(texts)
    found = _by_body(world)
    assert all(found[text].status == "done" for text in texts)

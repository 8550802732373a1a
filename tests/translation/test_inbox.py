"""The dashboard's inbox and timeline show each reply with its Japanese translation, and a
staff answer is translated, checked and sent in the resident's language: HTTP-level tests
with the dashboard's own forms (CSRF and roles included) and the API's routes."""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest
import responses
from sqlmodel import select

from service.audit.models import AuditEntry
from service.auth.models import Role
from service.checkins.models import StaffTask
from service.registry.models import Resident
from service.telephony.models import InboundMessage, OutboxMessage
from service.translation.deps import get_translator
from service.translation.models import Translation
from tests.conftest import make_staff
from tests.translation.conftest import DEEPL_URL, add_staff, e164
from tests.translation.wire import Memory

STRANGER = "+819099990001"
ANSWER_JA = "社会福祉協議会です。すぐにお電話します。"
ANSWER_VI = "Đây là hội đồng phúc lợi xã hội. Chúng tôi sẽ gọi cho bạn ngay."
MEMORY = {
    "ai vậy?": ("誰ですか?", "vi"),
    "my mother fell, please come": ("母が転びました。来てください", "en"),
    ANSWER_JA: (ANSWER_VI, "ja"),
}


def _translated(world, deepl_wire, deepl) -> Memory:
    memory = Memory(MEMORY).on_deepl(deepl_wire)
    world.ctx.translator = deepl
    world.tick()
    return memory


def _task(world, kind: str, body: str | None = None) -> StaffTask:
    with world.session() as s:
        query = select(StaffTask).where(StaffTask.kind == kind)
        tasks = s.exec(query).all()
        if body is None:
            return tasks[0]
        for task in tasks:
            if task.inbound_id and s.get(InboundMessage, task.inbound_id).body == body:
                return task
    raise AssertionError(f"no {kind} task for {body!r}")


def _article(html: str, task: StaffTask) -> str:
    start = html.index(f'aria-labelledby="task-{task.id}"')
    return html[start : html.index("</article>", start)]


def test_the_inbox_shows_the_original_its_translation_and_the_detected_language(
    forms, morning, engine, deepl_wire, deepl
):
    world = morning.world
    world.sms(STRANGER, "ai vậy?")
    _translated(world, deepl_wire, deepl)
    forms.login(add_staff(engine, Role.viewer))
    html = forms.client.get("/inbox").text
    item = _article(html, _task(world, "unknown_sender"))
    assert "ai vậy?" in item  # the original, as written
    assert "日本語訳" in item and "誰ですか?" in item
    assert 'data-detected="vi"' in item and "ベトナム語で書かれています" in item
    # A Japanese reply needs nothing: no translation, no note.
    unclear = _article(html, _task(world, "unclear"))
    assert "あいうえお" in unclear and "日本語訳" not in unclear and "翻訳" not in unclear
    forms.post("/language", {"language": "en", "next": "/inbox"})
    english = forms.client.get("/inbox").text
    assert "Japanese translation" in english and "Written in Vietnamese" in english


def test_a_failed_translation_shows_the_original_with_a_note(
    forms, morning, engine, deepl_wire, deepl
):
    world = morning.world
    world.sms(STRANGER, "ai vậy?")
    deepl_wire.post(DEEPL_URL, status=403, json={"message": "Wrong key"})
    world.ctx.translator = deepl
    world.tick()
    forms.login(add_staff(engine, Role.viewer))
    item = _article(forms.client.get("/inbox").text, _task(world, "unknown_sender"))
    assert "ai vậy?" in item
    assert "翻訳できませんでした: DeepL: the API key was refused (HTTP 403)" in unescape(item)
    assert "日本語訳" not in item


def test_without_a_provider_the_inbox_shows_just_the_original(forms, morning, engine):
    world = morning.world
    world.sms(STRANGER, "ai vậy?")
    world.tick()
    forms.login(add_staff(engine, Role.coordinator))
    item = _article(forms.client.get("/inbox").text, _task(world, "unknown_sender"))
    assert "ai vậy?" in item and "翻訳" not in item.split("<form", 1)[0]
    assert "/answer/preview" not in item  # staff write in the resident's language instead


def test_the_timeline_shows_a_reply_with_its_translation(forms, morning, engine, deepl_wire, deepl):
    world = morning.world
    world.sms(e164(4), "my mother fell, please come")
    _translated(world, deepl_wire, deepl)
    forms.login(add_staff(engine, Role.viewer))
    html = forms.client.get(f"/residents/{world.residents['R04']}").text
    assert "my mother fell, please come" in html and "母が転びました。来てください" in html
    assert "英語で書かれています" in html  # a Vietnamese resident wrote in English


def test_a_staff_answer_is_translated_checked_and_sent_in_the_residents_language(
    forms, morning, engine, deepl_wire, deepl
):
    world = morning.world
    memory = _translated(world, deepl_wire, deepl)
    forms.client.app.dependency_overrides[get_translator] = lambda: deepl
    forms.login(add_staff(engine, Role.coordinator))
    task = _task(world, "callback")  # R04, Vietnamese, replied 3
    inbox = forms.client.get("/inbox").text
    assert f'action="/inbox/{task.id}/answer/preview"' in _article(inbox, task)

    preview = forms.post(f"/inbox/{task.id}/answer/preview", {"text": ANSWER_JA})
    assert preview.status_code == 200
    assert memory.sent[-1] == [ANSWER_JA] and memory.targets[-1] == "VI"
    page = unescape(preview.text)
    assert ANSWER_JA in page and ANSWER_VI in page and "ベトナム語" in page
    draft_id = re.search(r'name="draft" value="([0-9a-f-]+)"', preview.text).group(1)
    with world.session() as s:
        assert s.exec(select(OutboxMessage).where(OutboxMessage.body == ANSWER_VI)).all() == []

    corrected = ANSWER_VI.replace("ngay", "ngay bây giờ")
    sent = forms.post(f"/inbox/{task.id}/answer", {"body": corrected, "draft": draft_id})
    assert sent.status_code == 303
    with world.session() as s:
        message = s.exec(select(OutboxMessage).where(OutboxMessage.body == corrected)).one()
        assert message.locale == "vi" and message.to_phone == e164(4)
        assert message.purpose == "resident_notice" and message.channel == "sms"
        draft = s.get(Translation, uuid.UUID(draft_id))
        assert draft.outbox_id == message.id and draft.source_text == ANSWER_JA
        audits = s.exec(select(AuditEntry).where(AuditEntry.entity_id == str(task.id))).all()
    translate = next(e for e in audits if e.action == "translate")
    assert translate.detail == {
        "kind": "answer",
        "provider": "deepl",
        "chars": len(ANSWER_JA),
        "target": "vi",
        "outcome": "done",
    }
    answer = next(e for e in audits if e.action == "answer")
    assert answer.detail["edited"] is True and answer.detail["language"] == "vi"
    for entry in audits:
        assert "電話" not in str(entry.detail) and "Chúng" not in str(entry.detail)
    # The timeline shows what was sent and what staff wrote.
    timeline = forms.client.get(f"/residents/{world.residents['R04']}").text
    assert corrected in timeline and ANSWER_JA in timeline


def test_an_unknown_sender_is_answered_in_the_language_their_message_was_written_in(
    forms, morning, engine, deepl_wire, deepl
):
    world = morning.world
    world.sms(STRANGER, "ai vậy?")
    memory = _translated(world, deepl_wire, deepl)
    forms.client.app.dependency_overrides[get_translator] = lambda: deepl
    forms.login(add_staff(engine, Role.coordinator))
    task = _task(world, "unknown_sender")
    preview = forms.post(f"/inbox/{task.id}/answer/preview", {"text": ANSWER_JA})
    assert preview.status_code == 200 and memory.targets[-1] == "VI"


def test_a_ready_made_answer_goes_out_in_the_residents_language(forms, morning, engine):
    world = morning.world
    forms.login(add_staff(engine, Role.coordinator))
    task = _task(world, "callback")
    inbox = forms.client.get("/inbox").text
    assert "Chúng tôi sẽ gọi điện cho bạn sớm." in unescape(_article(inbox, task))
    forms.post(f"/inbox/{task.id}/answer", {"ready": "resident.answer.emergency"})
    with world.session() as s:
        message = s.exec(
            select(OutboxMessage)
            .where(OutboxMessage.purpose == "resident_notice", OutboxMessage.to_phone == e164(4))
            .order_by(OutboxMessage.created_at.desc())
        ).first()
    assert message.body == "輪島市社会福祉協議会: Nếu khẩn cấp, hãy gọi 119."
    assert message.locale == "vi"


def test_without_a_provider_staff_write_in_the_residents_language_and_nothing_is_sent_out(
    forms, morning, engine
):
    world = morning.world
    forms.login(add_staff(engine, Role.coordinator))
    task = _task(world, "callback")
    item = _article(forms.client.get("/inbox").text, task)
    assert "ベトナム語でSMSの返信を書いてください" in item
    with responses.RequestsMock() as wire:
        preview = forms.post(f"/inbox/{task.id}/answer/preview", {"text": ANSWER_JA})
        assert len(wire.calls) == 0
    assert "翻訳サービスが設定されていません" in preview.text
    forms.post(f"/inbox/{task.id}/answer", {"body": "Chúng tôi sẽ gọi."})
    with world.session() as s:
        message = s.exec(
            select(OutboxMessage).where(OutboxMessage.body == "Chúng tôi sẽ gọi.")
        ).one()
        assert message.locale == "vi"
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "translate")).all() == []


def test_viewers_cannot_answer_and_forms_need_their_csrf_token(forms, morning, engine):
    world = morning.world
    task = _task(world, "callback")
    forms.login(add_staff(engine, Role.viewer))
    assert forms.post(f"/inbox/{task.id}/answer/preview", {"text": ANSWER_JA}).status_code == 403
    assert (
        forms.post(f"/inbox/{task.id}/answer", {"ready": "resident.answer.visit"}).status_code
        == 403
    )
    forms.login(add_staff(engine, Role.coordinator, "c2@example.jp"))
    forged = forms.client.post(
        f"/inbox/{task.id}/answer", data={"csrf_token": "forged", "ready": "resident.answer.visit"}
    )
    assert forged.status_code == 403
    with world.session() as s:
        visits = select(OutboxMessage).where(OutboxMessage.body.contains("đến thăm"))
        assert s.exec(visits).all() == []


def test_the_api_drafts_and_sends_with_the_same_commands(
    client, morning, engine, deepl_wire, deepl
):
    world = morning.world
    world.sms(e164(4), "my mother fell, please come")
    memory = _translated(world, deepl_wire, deepl)
    client.app.dependency_overrides[get_translator] = lambda: deepl
    coordinator = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.coordinator)
    viewer = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.viewer)
    stranger = make_staff(client, engine, org="天草市社会福祉協議会", role=Role.admin)
    task = _task(world, "callback")
    url = f"/api/v1/tasks/{task.id}/answer"
    assert (
        client.post(url + "/draft", json={"text": ANSWER_JA}, headers=viewer.headers).status_code
        == 403
    )
    assert (
        client.post(url + "/draft", json={"text": ANSWER_JA}, headers=stranger.headers).status_code
        == 404
    )
    assert (
        client.post(url + "/draft", json={"text": " "}, headers=coordinator.headers).status_code
        == 422
    )
    draft = client.post(url + "/draft", json={"text": ANSWER_JA}, headers=coordinator.headers)
    assert draft.status_code == 200, draft.text
    body = draft.json()
    assert body["language"] == "vi" and body["draft"]["status"] == "done"
    assert body["draft"]["translated_text"] == ANSWER_VI and memory.sent[-1] == [ANSWER_JA]
    sent = client.post(
        url,
        json={"body": body["draft"]["translated_text"], "draft_id": body["draft"]["id"]},
        headers=coordinator.headers,
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["language"] == "vi" and sent.json()["body"] == ANSWER_VI
    again = client.post(
        url, json={"body": ANSWER_VI, "draft_id": body["draft"]["id"]}, headers=coordinator.headers
    )
    assert again.status_code == 422  # a draft is sent once
    unknown = client.post(url, json={"ready": "resident.reply.ok"}, headers=coordinator.headers)
    assert unknown.status_code == 422
    assert "/api/v1/tasks/{task_id}/answer/draft" in client.get("/openapi.json").json()["paths"]
    with world.session() as s:
        reply = s.exec(
            select(InboundMessage).where(InboundMessage.body == "my mother fell, please come")
        ).one()
    shown = client.get(f"/api/v1/inbound/{reply.id}/translation", headers=viewer.headers)
    assert shown.status_code == 200
    assert shown.json()["translated_text"] == "母が転びました。来てください"
    assert shown.json()["detected_language"] == "en"
    hidden = client.get(f"/api/v1/inbound/{reply.id}/translation", headers=stranger.headers)
    assert hidden.status_code == 404  # another organization's message does not exist for them
    timeline = client.get(
        f"/api/v1/residents/{world.residents['R04']}/timeline", headers=viewer.headers
    )
    assert timeline.status_code == 200
    details = [item["detail"] for item in timeline.json()]
    assert any(d.get("translation", {}).get("detected") == "en" for d in details)
    assert any(d.get("original") == ANSWER_JA for d in details)  # the answer sent above


@pytest.mark.parametrize("language", ["ja", "easy_ja"])
def test_japanese_readers_get_the_answer_as_written(
    forms, morning, engine, deepl_wire, deepl, language
):
    world = morning.world
    forms.client.app.dependency_overrides[get_translator] = lambda: deepl
    forms.login(add_staff(engine, Role.coordinator))
    task = _task(world, "unclear")  # R05, Japanese
    with world.session() as s:
        from service.registry.models import Resident

        resident = s.get(Resident, task.resident_id)
        resident.language = language
        s.add(resident)
        s.commit()
    item = _article(forms.client.get("/inbox").text, task)
    assert "/answer/preview" not in item
    forms.post(f"/inbox/{task.id}/answer", {"body": "確認しました。"})
    assert len(deepl_wire.calls) == 0
    with world.session() as s:
        assert s.exec(select(OutboxMessage).where(OutboxMessage.body == "確認しました。")).one()


def test_a_language_the_provider_lacks_is_a_clear_stored_failure(
    forms, morning, engine, deepl_wire, deepl
):
    world = morning.world
    forms.client.app.dependency_overrides[get_translator] = lambda: deepl
    forms.login(add_staff(engine, Role.coordinator))
    task = _task(world, "callback")
    with world.session() as s:
        from service.registry.models import Resident

        resident = s.get(Resident, task.resident_id)
        resident.language = "km"  # DeepL has no Khmer
        s.add(resident)
        s.commit()
    preview = forms.post(f"/inbox/{task.id}/answer/preview", {"text": ANSWER_JA})
    assert preview.status_code == 200
    assert "翻訳できませんでした: DeepL cannot translate into km" in unescape(preview.text)
    assert len(deepl_wire.calls) == 0
    with world.session() as s:
        draft = s.exec(select(Translation).where(Translation.task_id == task.id)).one()
        assert draft.status == "failed" and draft.target_language == "km"
    # Staff can still answer, in Khmer, or with a ready-made answer in Khmer.
    assert "យើងនឹងទូរស័ព្ទមកអ្នកឆាប់ៗ" in preview.text


def test_an_answer_to_an_urdu_reader_opens_right_to_left(forms, morning, engine):
    """The council's name comes first in every SMS; without a right-to-left mark an Urdu
    answer after it would be laid out left to right on the resident's phone."""
    world = morning.world
    with world.session() as s:
        resident = s.get(Resident, world.residents["R04"])
        resident.language = "ur"
        s.add(resident)
        s.commit()
    forms.login(add_staff(engine, Role.coordinator))
    task = _task(world, "callback")
    urdu = "ہم آپ کو جلد فون کریں گے۔"
    forms.post(f"/inbox/{task.id}/answer", {"body": urdu})
    with world.session() as s:
        message = s.exec(select(OutboxMessage).where(OutboxMessage.locale == "ur")).one()
    assert message.body == "\u200f" + urdu

"""Announcements end to end through the API (issue 21, item 4): a notice written in
Japanese reaches residents in five languages, drafted by DeepL (its wire mocked), confirmed
by staff, its cost in SMS segments shown before sending, and sent through the outbox, with
the chosen sites and quiet hours respected and replies working as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from sqlalchemy import select

from service.announcements.models import AnnouncementDelivery
from service.audit.models import AuditEntry
from service.auth.models import Role
from service.escalations.models import Escalation
from service.registry.models import ResidentStatus
from service.telephony.models import OutboxMessage, OutboxPurpose, OutboxStatus
from service.timeline.models import TimelineEvent
from service.translation.deps import get_translator
from tests.announcements.conftest import DEEPL_URL, World
from tests.conftest import make_staff

SITE_A, SITE_B = "宅田町第2団地", "河井町団地"
NOTICE = "本日10時から宅田町第2団地の集会所で給水を始めます。容器をお持ちください。"
VI = (
    "Từ 10 giờ hôm nay, nước sạch được phát tại nhà sinh hoạt chung khu nhà tạm Takuta "
    "số 2. Vui lòng mang theo bình chứa."
)
ID = (
    "Mulai pukul 10 hari ini, air bersih dibagikan di balai pertemuan Takuta-machi Danchi 2. "
    "Harap bawa wadah sendiri."
)
FIL = (
    "Simula ngayong alas-10 ng umaga, mamimigay ng malinis na tubig sa bulwagan ng "
    "Takuta-machi Danchi 2. Mangyaring magdala ng sariling lalagyan para sa tubig. Salamat po."
)
PT_MACHINE = (
    "A partir das 10h de hoje, a água será distribuída no salão do Takuta-machi Danchi 2. "
    "Traga um recipiente."
)
PT_STAFF = (
    "A partir das 10h de hoje, haverá distribuição de água no salão comunitário do "
    "Conjunto Takuta 2. Traga seu próprio recipiente."
)
# DeepL's target codes, as the client sends them.
DRAFTS = {"VI": VI, "ID": ID, "TL": FIL, "PT-BR": PT_MACHINE}


class DeepLDrafts:
    """DeepL's /v2/translate, answering per target language; it fails the test on any text
    but the notice (a name or a number that reached the translator would be caught)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        self.requests.append(body)
        assert body["text"] == [NOTICE], body["text"]
        assert body["source_lang"] == "JA"
        target = body["target_lang"]
        if target not in DRAFTS:
            return 400, {}, json.dumps({"message": "Value for 'target_lang' not supported."})
        translation = {
            "detected_source_language": "JA",
            "text": DRAFTS[target],
            "billed_characters": len(NOTICE),
        }
        return 200, {}, json.dumps({"translations": [translation]})


def _build(world: World) -> dict[str, str]:
    """Site A: five residents in ja, vi (two), id, fil, pt_BR who can be texted, and one
    each moved out, stopped (STOP) and without consent; site B: one more Vietnamese."""
    world.site(SITE_A)
    world.site(SITE_B)
    phones = {}
    people = [
        ("R1", "ja", SITE_A, {}),
        ("R2", "vi", SITE_A, {}),
        ("R3", "id", SITE_A, {}),
        ("R4", "fil", SITE_A, {}),
        ("R5", "pt_BR", SITE_A, {}),
        ("R6", "vi", SITE_A, {}),
        ("R7", "vi", SITE_A, {"status": ResidentStatus.moved_out}),
        ("R8", "id", SITE_A, {"status": ResidentStatus.opted_out}),
        ("R9", "ne", SITE_A, {"consent": False}),
        ("R10", "vi", SITE_B, {}),
    ]
    for n, (key, language, site, extra) in enumerate(people, start=1):
        phone = f"090-4000-{n:04d}"
        world.resident(key, phone, language=language, site=site, **extra)
        phones[key] = f"+81904000{n:04d}"
    return phones


@pytest.fixture
def setup(world, client, engine, deepl_wire, deepl):
    phones = _build(world)
    drafts = DeepLDrafts()
    deepl_wire.add_callback(responses.POST, DEEPL_URL, callback=drafts)
    client.app.dependency_overrides[get_translator] = lambda: deepl
    staff = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.coordinator)
    yield world, client, staff, phones, drafts
    client.app.dependency_overrides.pop(get_translator, None)


def _compose(client, staff, world, sites=(SITE_A,), text=NOTICE):
    response = client.post(
        "/api/v1/announcements",
        json={"text": text, "site_ids": [str(world.sites[s]) for s in sites]},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


def _confirm(client, staff, announcement, language, text):
    response = client.post(
        f"/api/v1/announcements/{announcement['id']}/texts/{language}/confirm",
        json={"text": text},
        headers=staff.headers,
    )
    assert response.status_code == 200, response.text


def _announcement_rows(world: World) -> list[OutboxMessage]:
    with world.session() as s:
        ids = s.execute(select(AnnouncementDelivery.outbox_id)).scalars().all()
        return list(
            s.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).scalars()  # type: ignore[attr-defined]
        )


def test_an_announcement_reaches_five_languages_with_its_cost_shown_first(setup):
    world, client, staff, phones, drafts = setup
    created = _compose(client, staff, world)
    base = f"/api/v1/announcements/{created['id']}"
    texts = {t["language"]: t for t in created["texts"]}
    # Drafted by DeepL, one request per language, nothing confirmed but the original.
    assert sorted(r["target_lang"] for r in drafts.requests) == ["ID", "PT-BR", "TL", "VI"]
    assert sorted(texts) == ["fil", "id", "ja", "pt_BR", "vi"]
    assert texts["vi"]["text"] == VI and texts["vi"]["origin"] == "machine"
    assert texts["vi"]["provider"] == "deepl" and texts["vi"]["confirmed_at"] is None
    assert texts["ja"]["origin"] == "source" and texts["ja"]["confirmed_by"]

    preview = client.get(f"{base}/preview", headers=staff.headers).json()
    assert preview["recipients"] == 6 and preview["ready"] is False
    assert preview["unconfirmed"] == ["fil", "id", "pt_BR", "vi"] and preview["missing"] == []
    assert preview["skipped"] == {"away_or_moved": 1, "no_consent": 1, "opted_out": 1}
    # Nothing leaves before every language is confirmed.
    refused = client.post(f"{base}/send", json={}, headers=staff.headers)
    assert refused.status_code == 422, refused.text
    assert "fil, id, pt_BR, vi" in refused.json()["detail"][0]["msg"]
    assert _announcement_rows(world) == []

    # Staff correct the Portuguese draft, then confirm each language as they read it.
    edited = client.put(f"{base}/texts/pt_BR", json={"text": PT_STAFF}, headers=staff.headers)
    assert edited.status_code == 200 and edited.json()["origin"] == "staff"
    stale = client.post(
        f"{base}/texts/pt_BR/confirm", json={"text": PT_MACHINE}, headers=staff.headers
    )
    assert stale.status_code == 409  # they confirmed what they read, not what is stored
    for language, text in (("vi", VI), ("id", ID), ("fil", FIL), ("pt_BR", PT_STAFF)):
        _confirm(client, staff, created, language, text)

    preview = client.get(f"{base}/preview", headers=staff.headers).json()
    lines = {line["language"]: line for line in preview["languages"]}
    figures = {
        code: (line["recipients"], line["encoding"], line["segments_each"], line["segments"])
        for code, line in lines.items()
    }
    assert figures == {
        "vi": (2, "UCS-2", 2, 4),  # tone marks: UCS-2, 117 characters, two parts
        "ja": (1, "UCS-2", 1, 1),
        "id": (1, "GSM-7", 1, 1),
        "fil": (1, "GSM-7", 2, 2),  # 167 GSM-7 characters: concatenated, two parts
        "pt_BR": (1, "UCS-2", 2, 2),  # ç and ã are not GSM-7
    }
    assert preview["segments"] == 10 and preview["recipients"] == 6 and preview["ready"]
    assert preview["quiet_now"] is False

    # A cost other than the one shown is refused; the one shown sends.
    changed = client.post(f"{base}/send", json={"segments": 9}, headers=staff.headers)
    assert changed.status_code == 409
    sent = client.post(f"{base}/send", json={"segments": 10}, headers=staff.headers)
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "sent" and sent.json()["recipients"] == 6

    rows = {row.to_phone: row for row in _announcement_rows(world)}
    expected = {"R1": NOTICE, "R2": VI, "R3": ID, "R4": FIL, "R5": PT_STAFF, "R6": VI}
    assert {phone: row.body for phone, row in rows.items()} == {
        phones[key]: body for key, body in expected.items()
    }
    for key, row in ((k, rows[phones[k]]) for k in expected):
        assert row.resident_id == world.residents[key]
        assert row.purpose == OutboxPurpose.resident_notice and row.channel == "sms"
        assert row.next_try_at == world.clock.now()
    assert [row.locale for row in rows.values()].count("vi") == 2

    # The dispatcher sends them like any other message.
    world.tick()
    with world.session() as s:
        statuses = {s.get(OutboxMessage, row.id).status for row in rows.values()}
    assert statuses == {OutboxStatus.sent}


def test_each_resident_timeline_says_announcement_sent_and_the_audit_names_everyone(setup):
    world, client, staff, _phones, _ = setup
    created = _compose(client, staff, world)
    for language, text in (("vi", VI), ("id", ID), ("fil", FIL), ("pt_BR", PT_MACHINE)):
        _confirm(client, staff, created, language, text)
    assert client.post(
        f"/api/v1/announcements/{created['id']}/send", json={}, headers=staff.headers
    ).is_success
    with world.session() as s:
        events = (
            s.execute(select(TimelineEvent).where(TimelineEvent.kind == "announcement.sent"))
            .scalars()
            .all()
        )
        audit = (
            s.execute(select(AuditEntry).where(AuditEntry.entity_type == "announcement"))
            .scalars()
            .all()
        )
    assert sorted(e.resident_id for e in events) == sorted(
        world.residents[k] for k in ("R1", "R2", "R3", "R4", "R5", "R6")
    )
    for event in events:
        # No text on the timeline: the outbox row and the announcement are linked instead.
        assert set(event.detail) == {"announcement_id", "language"} and event.outbox_id
    actions = [(a.action, a.detail.get("language")) for a in audit]
    assert ("write", None) in actions and ("send", None) in actions
    assert sorted(lang for act, lang in actions if act == "confirm_text") == [
        "fil",
        "id",
        "pt_BR",
        "vi",
    ]
    translated = [a for a in audit if a.action == "translate"]
    assert len(translated) == 4 and all(a.detail["outcome"] == "done" for a in translated)
    [send] = [a for a in audit if a.action == "send"]
    assert send.detail["recipients"] == 6 and send.detail["segments"] == 10
    assert send.actor.startswith("Test coordinator") and NOTICE not in json.dumps(send.detail)


def test_everyone_includes_every_site_and_one_site_only_its_own(setup):
    world, client, staff, phones, _ = setup
    everyone = _compose(client, staff, world, sites=())
    preview = client.get(
        f"/api/v1/announcements/{everyone['id']}/preview", headers=staff.headers
    ).json()
    assert preview["recipients"] == 7  # R10 on site B too
    only_b = _compose(client, staff, world, sites=(SITE_B,))
    assert [t["language"] for t in only_b["texts"]] == ["ja", "vi"]
    _confirm(client, staff, only_b, "vi", VI)
    sent = client.post(f"/api/v1/announcements/{only_b['id']}/send", json={}, headers=staff.headers)
    assert sent.status_code == 200, sent.text
    assert [row.to_phone for row in _announcement_rows(world)] == [phones["R10"]]


def test_in_quiet_hours_it_waits_for_morning_unless_staff_override(setup):
    world, client, staff, _phones, _ = setup
    # 22:30 in Tokyo.
    world.clock.set(datetime(2026, 12, 1, 13, 30, tzinfo=UTC))
    morning = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # 08:00 the next day in Tokyo
    held = _compose(client, staff, world, sites=(SITE_B,))
    _confirm(client, staff, held, "vi", VI)
    preview = client.get(
        f"/api/v1/announcements/{held['id']}/preview", headers=staff.headers
    ).json()
    assert preview["quiet_now"] is True
    assert datetime.fromisoformat(preview["send_at"]) == morning
    sent = client.post(f"/api/v1/announcements/{held['id']}/send", json={}, headers=staff.headers)
    assert datetime.fromisoformat(sent.json()["send_at"]) == morning
    [row] = _announcement_rows(world)
    assert row.next_try_at == morning
    world.tick()  # the dispatcher does not touch it at night
    with world.session() as s:
        assert s.get(OutboxMessage, row.id).status == OutboxStatus.pending

    urgent = _compose(client, staff, world, sites=(SITE_B,))
    _confirm(client, staff, urgent, "vi", VI)
    preview = client.get(
        f"/api/v1/announcements/{urgent['id']}/preview?override_quiet_hours=true",
        headers=staff.headers,
    ).json()
    assert datetime.fromisoformat(preview["send_at"]) == world.clock.now()
    sent = client.post(
        f"/api/v1/announcements/{urgent['id']}/send",
        json={"override_quiet_hours": True},
        headers=staff.headers,
    )
    assert sent.status_code == 200
    rows = {r.id: r for r in _announcement_rows(world)}
    [now_row] = [r for r in rows.values() if r.id != row.id]
    assert now_row.next_try_at == world.clock.now()
    world.tick()
    with world.session() as s:
        assert s.get(OutboxMessage, now_row.id).status == OutboxStatus.sent
    world.clock.set(morning + timedelta(seconds=1))
    world.tick()
    with world.session() as s:
        assert s.get(OutboxMessage, row.id).status == OutboxStatus.sent


def test_a_reply_to_an_announcement_asking_for_help_still_opens_a_case(setup):
    world, client, staff, phones, _ = setup
    only_b = _compose(client, staff, world, sites=(SITE_B,))
    _confirm(client, staff, only_b, "vi", VI)
    client.post(f"/api/v1/announcements/{only_b['id']}/send", json={}, headers=staff.headers)
    world.tick()
    world.sms(phones["R10"], "cứu tôi")  # "help me"
    world.tick()
    with world.session() as s:
        cases = (
            s.execute(select(Escalation).where(Escalation.resident_id == world.residents["R10"]))
            .scalars()
            .all()
        )
    assert len(cases) == 1


def test_the_per_recipient_cap_defers_an_announcement_and_never_drops_it(setup):
    """A resident who already had this hour's SMS gets the announcement later, not never."""
    world, client, staff, phones, _ = setup
    world.ctx.settings = world.ctx.settings.model_copy(update={"sms_per_recipient_per_hour": 1})
    with world.session() as s:
        from service.telephony.models import OutboxChannel
        from service.telephony.outbox import enqueue

        enqueue(
            s,
            organization_id=world.org_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.resident_notice,
            to_phone=phones["R10"],
            body="x",
            resident_id=world.residents["R10"],
            now=world.clock.now(),
        )
        s.commit()
    world.tick()
    only_b = _compose(client, staff, world, sites=(SITE_B,))
    _confirm(client, staff, only_b, "vi", VI)
    client.post(f"/api/v1/announcements/{only_b['id']}/send", json={}, headers=staff.headers)
    [row] = _announcement_rows(world)
    world.tick(1)
    with world.session() as s:
        held = s.get(OutboxMessage, row.id)
        assert held.status == OutboxStatus.pending and "deferred" in (held.last_error or "")
        assert held.next_try_at > world.clock.now()
    world.tick(61)
    with world.session() as s:
        assert s.get(OutboxMessage, row.id).status == OutboxStatus.sent

"""Bad input to announcements gets a clear, named, translated error and changes nothing;
other organizations' announcements do not exist; viewers cannot send; a language no
translator has is sent in another only when staff choose so."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.announcements.models import Announcement, AnnouncementDelivery
from service.auth.models import Role
from service.translation.deps import get_translator
from tests.conftest import make_staff

ORG = "輪島市社会福祉協議会"
NOTICE = "本日10時から集会所で給水を始めます。"
EASY = "きょう 10じ から しゅうかいじょ で みず を くばります。"


@pytest.fixture
def council(world, client, engine):
    world.site("宅田町第2団地")
    world.resident("R1", "090-4000-0001", language="ja", site="宅田町第2団地")
    world.resident("R2", "090-4000-0002", language="km", site="宅田町第2団地")
    staff = make_staff(client, engine, org=ORG, role=Role.coordinator)
    return world, client, staff


def _count(world, table) -> int:
    with world.session() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize(
    ("body", "field", "english", "japanese"),
    [
        (
            {"text": "  "},
            "text",
            "write the announcement first",
            "お知らせの本文を入力してください",
        ),
        ({"text": "あ" * 501}, "text", "at most 500 characters", "500文字以内にしてください"),
        (
            {"text": NOTICE, "site_ids": ["00000000-0000-0000-0000-000000000001"]},
            "site_ids",
            "no such site",
            "その団地はありません",
        ),
    ],
)
def test_bad_input_is_a_named_translated_422_and_nothing_is_stored(
    council, body, field, english, japanese
):
    world, client, staff = council
    for language, message in (("en", english), ("ja", japanese)):
        response = client.post(
            "/api/v1/announcements",
            json=body,
            headers={**staff.headers, "Accept-Language": language},
        )
        assert response.status_code == 422, response.text
        [detail] = response.json()["detail"]
        assert detail["loc"] == ["body", field] and detail["msg"] == message
    assert _count(world, Announcement) == 0


def test_wrong_json_types_are_422_not_500(council):
    _world, client, staff = council
    for body in ({"text": 5}, {"text": NOTICE, "site_ids": "all"}, {}):
        response = client.post("/api/v1/announcements", json=body, headers=staff.headers)
        assert response.status_code == 422, (body, response.text)


def test_another_organizations_announcement_does_not_exist_and_viewers_cannot_send(council, engine):
    _world, client, staff = council
    created = client.post("/api/v1/announcements", json={"text": NOTICE}, headers=staff.headers)
    base = f"/api/v1/announcements/{created.json()['id']}"
    stranger = make_staff(client, engine, org="天草市社会福祉協議会", role=Role.admin)
    for method, path, body in (
        ("get", base, None),
        ("get", f"{base}/preview", None),
        ("post", f"{base}/send", {}),
        ("put", f"{base}/texts/km", {"text": "x"}),
    ):
        response = client.request(method, path, json=body, headers=stranger.headers)
        assert response.status_code == 404, (path, response.text)
    viewer = make_staff(client, engine, org=ORG, role=Role.viewer)
    assert client.get(base, headers=viewer.headers).status_code == 200
    listed = client.get("/api/v1/announcements", headers=viewer.headers).json()
    assert [row["id"] for row in listed] == [created.json()["id"]]
    assert client.get("/api/v1/announcements", headers=stranger.headers).json() == []
    assert client.post(f"{base}/send", json={}, headers=viewer.headers).status_code == 403
    assert (
        client.post(
            "/api/v1/announcements", json={"text": NOTICE}, headers=viewer.headers
        ).status_code
        == 403
    )


def test_a_language_no_translator_has_goes_out_only_in_what_staff_choose(
    council, deepl_wire, deepl
):
    """DeepL has no Khmer: its draft is a stored failure; staff choose Easy Japanese for
    Khmer readers, write the Easy Japanese text and confirm it; then it can be sent."""
    world, client, staff = council
    client.app.dependency_overrides[get_translator] = lambda: deepl
    try:
        created = client.post(
            "/api/v1/announcements", json={"text": NOTICE}, headers=staff.headers
        ).json()
    finally:
        client.app.dependency_overrides.pop(get_translator, None)
    assert len(deepl_wire.calls) == 0  # refused before anything left
    khmer = next(t for t in created["texts"] if t["language"] == "km")
    assert khmer["text"] is None and khmer["error"] == "DeepL cannot translate into km"
    base = f"/api/v1/announcements/{created['id']}"
    preview = client.get(f"{base}/preview", headers=staff.headers).json()
    assert preview["missing"] == ["km"] and not preview["ready"]
    assert client.post(f"{base}/send", json={}, headers=staff.headers).status_code == 422

    bad = client.post(f"{base}/texts/km/confirm", json={"fallback": "en"}, headers=staff.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "fallback"]
    chosen = client.post(
        f"{base}/texts/km/confirm", json={"fallback": "easy_ja"}, headers=staff.headers
    )
    assert chosen.status_code == 200 and chosen.json()["origin"] == "fallback"
    preview = client.get(f"{base}/preview", headers=staff.headers).json()
    assert preview["missing"] == ["easy_ja"] and preview["unconfirmed"] == ["km"]
    client.put(f"{base}/texts/easy_ja", json={"text": EASY}, headers=staff.headers)
    client.post(f"{base}/texts/easy_ja/confirm", json={"text": EASY}, headers=staff.headers)
    preview = client.get(f"{base}/preview", headers=staff.headers).json()
    assert preview["ready"] and preview["recipients"] == 2
    assert {line["language"]: line["segments"] for line in preview["languages"]} == {
        "ja": 1,
        "km": 1,
    }
    assert client.post(f"{base}/send", json={}, headers=staff.headers).status_code == 200
    assert _count(world, AnnouncementDelivery) == 2
    [khmer_row] = [m for m in world.sent_to("+819040000002")]
    assert khmer_row.body == EASY and khmer_row.locale == "km"
    again = client.post(f"{base}/send", json={}, headers=staff.headers)
    assert again.status_code == 409  # sent once, never twice
    assert _count(world, AnnouncementDelivery) == 2


def test_a_phone_number_in_the_notice_is_warned_about(council):
    _world, client, staff = council
    response = client.post(
        "/api/v1/announcements",
        json={"text": "お問い合わせは社協 0768-22-1111 まで"},
        headers=staff.headers,
    )
    assert response.status_code == 201 and response.json()["warnings"] == ["phone_number"]
    plain = client.post("/api/v1/announcements", json={"text": NOTICE}, headers=staff.headers)
    assert plain.json()["warnings"] == []


def test_the_japanese_original_is_not_edited_and_unknown_languages_are_refused(council):
    _world, client, staff = council
    created = client.post("/api/v1/announcements", json={"text": NOTICE}, headers=staff.headers)
    base = f"/api/v1/announcements/{created.json()['id']}"
    assert (
        client.put(f"{base}/texts/ja", json={"text": "x"}, headers=staff.headers).status_code == 422
    )
    unknown = client.put(f"{base}/texts/xx", json={"text": "x"}, headers=staff.headers)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "language"]
    long = client.put(f"{base}/texts/km", json={"text": "a" * 1001}, headers=staff.headers)
    assert long.status_code == 422
    nothing = client.post(f"{base}/texts/km/confirm", json={}, headers=staff.headers)
    assert nothing.status_code == 422


def test_two_staff_sending_at_once_send_it_once(council, engine):
    """The second send waits for the first (its row lock on PostgreSQL, the write lock on
    SQLite), then finds it sent: 409, and each resident has one message."""
    import threading
    import uuid

    from sqlmodel import Session

    from service.announcements import commands
    from service.audit.service import Actor
    from service.errors import Conflict

    world, client, staff = council
    created = client.post(
        "/api/v1/announcements", json={"text": NOTICE}, headers=staff.headers
    ).json()
    base = f"/api/v1/announcements/{created['id']}"
    client.post(f"{base}/texts/km/confirm", json={"fallback": "ja"}, headers=staff.headers)
    now = world.clock.now()
    args = {
        "organization_id": staff.org_id,
        "announcement_id": uuid.UUID(created["id"]),
        "now": now,
    }
    outcome: list[object] = []

    def second() -> None:
        with Session(engine) as s:
            try:
                commands.send(s, actor=Actor(label="B"), **args)
                s.commit()
                outcome.append("sent")
            except Conflict:
                outcome.append("conflict")

    with Session(engine) as first:
        commands.send(first, actor=Actor(label="A"), **args)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive()  # waiting for the first to finish
        first.commit()
    thread.join(timeout=30)
    assert outcome == ["conflict"]
    assert _count(world, AnnouncementDelivery) == 2

"""Drafts from Google Cloud Translation, its wire (httpx) mocked with respx: only the notice
is sent, one request per language, and an unsupported or failing language is a stored
failure for staff, never a 500."""

from __future__ import annotations

import json

import httpx

from service.auth.models import Role
from service.translation.deps import get_translator
from tests.conftest import make_staff
from tests.translation.conftest import GOOGLE_URL

NOTICE = "明日9時から河井町団地で物資を配ります。"
DRAFTS = {"vi": "Từ 9 giờ sáng mai, hàng cứu trợ được phát tại khu Kawai-machi.", "ne": None}


def test_google_drafts_each_language_and_a_failure_is_stored(
    world, client, engine, google, google_wire
):
    world.site("河井町団地")
    world.resident("R1", "090-4000-0001", language="vi", site="河井町団地")
    world.resident("R2", "090-4000-0002", language="ne", site="河井町団地")
    seen: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        assert body["contents"] == [NOTICE] and body["sourceLanguageCode"] == "ja"
        text = DRAFTS[body["targetLanguageCode"]]
        if text is None:
            return httpx.Response(503, json={"error": {"code": 503, "message": "unavailable"}})
        return httpx.Response(200, json={"translations": [{"translatedText": text}]})

    google_wire.post(GOOGLE_URL).mock(side_effect=answer)
    staff = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.coordinator)
    client.app.dependency_overrides[get_translator] = lambda: google
    try:
        response = client.post(
            "/api/v1/announcements", json={"text": NOTICE}, headers=staff.headers
        )
    finally:
        client.app.dependency_overrides.pop(get_translator, None)
    assert response.status_code == 201, response.text
    texts = {t["language"]: t for t in response.json()["texts"]}
    assert sorted(b["targetLanguageCode"] for b in seen) == ["ne", "vi"]
    assert texts["vi"]["text"] == DRAFTS["vi"] and texts["vi"]["provider"] == "google"
    assert texts["ne"]["text"] is None and texts["ne"]["error"]
    preview = client.get(
        f"/api/v1/announcements/{response.json()['id']}/preview", headers=staff.headers
    ).json()
    assert preview["missing"] == ["ne"] and preview["unconfirmed"] == ["vi"]

"""The announcements screens: Japanese first, the same commands as the API, the dashboard's
own forms (CSRF and roles), the cost shown before the send button, and a real Chromium."""

from __future__ import annotations

import re
from html import unescape

import pytest
import responses
from sqlalchemy import select

from service.announcements.models import Announcement, AnnouncementDelivery
from service.auth.models import Role
from service.telephony.models import OutboxMessage
from service.translation.deps import get_translator
from tests.announcements.conftest import DEEPL_URL, add_staff
from tests.announcements.test_announcements import ID, NOTICE, VI, DeepLDrafts

SITE = "宅田町第2団地"


@pytest.fixture
def residents(world):
    world.site(SITE)
    world.site("河井町団地")
    world.resident("R1", "090-4000-0001", language="ja", site=SITE)
    world.resident("R2", "090-4000-0002", language="vi", site=SITE)
    world.resident("R3", "090-4000-0003", language="id", site=SITE)
    world.resident("R4", "090-4000-0004", language="vi", site="河井町団地")
    return world


@pytest.fixture
def translated(client, deepl_wire, deepl):
    deepl_wire.add_callback(responses.POST, DEEPL_URL, callback=DeepLDrafts())
    client.app.dependency_overrides[get_translator] = lambda: deepl
    yield
    client.app.dependency_overrides.pop(get_translator, None)


def _id(world) -> str:
    with world.session() as s:
        return str(s.execute(select(Announcement.id)).scalar_one())


def test_staff_compose_confirm_and_send_from_the_dashboard(residents, forms, engine, translated):
    world = residents
    forms.login(add_staff(engine, Role.coordinator))
    page = forms.client.get("/announcements").text
    assert "お知らせ" in page and 'name="site_ids"' in page
    response = forms.post("/announcements", {"text": NOTICE, "site_ids": [str(world.sites[SITE])]})
    assert response.status_code == 303
    url = response.headers["location"]
    page = unescape(forms.client.get(url).text)
    assert VI in page and ID in page and "機械翻訳" in page
    assert 'id="not-ready"' in page and re.search(r'<button type="submit" disabled>', page)
    # 3 residents on the site: ja 1 (1 segment), vi 1 (2), id 1 (1).
    assert re.search(r'data-preview="segments"><strong>4<', page)
    assert 'data-preview="recipients"><strong>3<' in page

    for language, text in (("vi", VI), ("id", ID)):
        done = forms.post(
            f"{url}/texts/{language}", {"action": "confirm", "text": text, "shown": text}
        )
        assert done.status_code == 303
    page = unescape(forms.client.get(url).text)
    assert 'id="not-ready"' not in page
    assert "3人に送信（4通分）" in page
    sent = forms.post(f"{url}/send", {"segments": "4"})
    assert sent.status_code == 303
    page = unescape(forms.client.get(url).text)
    assert 'id="sent"' in page and 'id="send"' not in page
    with world.session() as s:
        bodies = sorted(m.body for m in s.execute(select(OutboxMessage)).scalars())
    assert bodies == sorted([NOTICE, VI, ID])


def test_an_edited_draft_is_what_is_sent_and_a_changed_cost_refuses(
    residents, forms, engine, translated
):
    world = residents
    forms.login(add_staff(engine, Role.coordinator))
    url = forms.post("/announcements", {"text": NOTICE}).headers["location"]
    corrected = VI.replace("nước sạch", "nước uống")
    forms.post(f"{url}/texts/vi", {"action": "confirm", "text": corrected, "shown": VI})
    forms.post(f"{url}/texts/id", {"action": "confirm", "text": ID, "shown": ID})
    refused = forms.post(f"{url}/send", {"segments": "1"})
    page = unescape(forms.client.get(refused.headers["location"]).text)
    assert "送信量が" in page  # the cost is now …; check it again
    with world.session() as s:
        assert s.execute(select(AnnouncementDelivery)).first() is None
    forms.post(f"{url}/send", {"segments": "6"})  # everyone: ja 1, vi 2×2, id 1
    vi_bodies = {m.body for m in world.sent_to("+819040000002") + world.sent_to("+819040000004")}
    assert vi_bodies == {corrected}


def test_bad_input_on_the_dashboard_is_named_in_japanese(residents, forms, engine):
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post("/announcements", {"text": "   "})
    assert response.headers["location"] == "/announcements"
    page = unescape(forms.client.get("/announcements").text)
    assert "お知らせの本文を入力してください" in page


def test_viewers_see_but_cannot_act(residents, forms, engine, client):
    forms.login(add_staff(engine, Role.viewer))
    page = forms.client.get("/announcements").text
    assert 'id="compose"' not in page
    assert forms.post("/announcements", {"text": NOTICE}).status_code == 403


def test_the_resident_timeline_says_announcement_sent(residents, forms, engine, translated):
    world = residents
    forms.login(add_staff(engine, Role.coordinator))
    url = forms.post("/announcements", {"text": NOTICE}).headers["location"]
    for language, text in (("vi", VI), ("id", ID)):
        forms.post(f"{url}/texts/{language}", {"action": "confirm", "text": text, "shown": text})
    forms.post(f"{url}/send", {"segments": "6"})
    page = forms.client.get(f"/residents/{world.residents['R2']}").text
    assert "お知らせを送信" in page


@pytest.fixture
def deepl_configured(monkeypatch, deepl_wire):
    """DeepL chosen by configuration, as in production: the live server builds its own
    translator from the settings; its wire (``requests``, in this process) is mocked."""
    from service.config import get_settings

    deepl_wire.add_callback(responses.POST, DEEPL_URL, callback=DeepLDrafts())
    monkeypatch.setenv("MIMAMORI_TRANSLATION_PROVIDER", "deepl")
    monkeypatch.setenv("MIMAMORI_DEEPL_AUTH_KEY", "0123abcd-test-key")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("MIMAMORI_TRANSLATION_PROVIDER")
    get_settings.cache_clear()


@pytest.mark.browser
def test_a_coordinator_sends_an_announcement_in_chromium(
    residents, engine, live_server, browser_context, deepl_configured
):
    from tests.announcements.conftest import log_in_browser, screenshot

    email = add_staff(engine, Role.coordinator)
    page = browser_context.new_page()
    log_in_browser(page, live_server, email)
    page.click("nav >> text=お知らせ")
    page.fill("#announcement-text", NOTICE)
    page.check("input[name=site_ids] >> nth=0")
    page.click("#compose button[type=submit]")
    page.wait_for_selector("#lang-vi")
    assert page.input_value("#text-vi") == VI
    assert page.is_disabled("#send button")
    page.click("#lang-vi button[value=confirm]")
    page.wait_for_selector("#lang-vi [data-state=confirmed]")
    page.click("#lang-id button[value=confirm]")
    page.wait_for_selector("#lang-id [data-state=confirmed]")
    assert page.inner_text("[data-preview=segments]") == "4"
    assert page.inner_text("#cost tr[data-language=vi] td:nth-child(3)") == "UCS-2"
    screenshot(page, "announcement_preview.png")
    page.click("#send button")
    page.wait_for_selector("#sent")
    with residents.session() as s:
        assert len(s.execute(select(AnnouncementDelivery)).all()) == 3

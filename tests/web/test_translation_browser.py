"""The two-step answer in a real Chromium: staff write Japanese, check the Vietnamese the
translator proposes, correct it, and send it. DeepL's wire is mocked (``responses`` patches
``requests`` in the live server's thread too); everything else is real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from sqlmodel import select

from service.auth.models import Role
from service.config import get_settings
from service.telephony.models import OutboxMessage
from service.translation.deepl_provider import DeepLTranslator
from tests.translation.conftest import DEEPL_URL
from tests.translation.wire import Memory

# The browser fixtures (one Chromium for the whole session) come from tests/web/conftest.py;
# importing them into another folder's module would start a second Playwright beside it.
from tests.web.conftest import add_staff, e164, log_in_browser, screenshot

pytestmark = pytest.mark.browser

ANSWER_JA = "すぐにお電話します。"
ANSWER_VI = "Chúng tôi sẽ gọi cho bạn ngay."
MEMORY = {
    "tôi muốn nói chuyện với ai đó": ("誰かと話したいです", "vi"),
    ANSWER_JA: (ANSWER_VI, "ja"),
}


@pytest.fixture
def deepl_configured(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MIMAMORI_TRANSLATION_PROVIDER", "deepl")
    monkeypatch.setenv("MIMAMORI_DEEPL_AUTH_KEY", "0123abcd-test-key")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_staff_check_and_correct_the_translation_before_it_is_sent(
    deepl_configured, morning, engine, live_server, browser_context
):
    world = morning.world
    with responses.RequestsMock(assert_all_requests_are_fired=False) as wire:
        wire.add_callback(responses.POST, DEEPL_URL, callback=Memory(MEMORY).deepl)
        world.ctx.translator = DeepLTranslator("0123abcd-test-key")
        world.sms(e164(4), "tôi muốn nói chuyện với ai đó")
        world.tick()
        email = add_staff(engine, Role.coordinator)
        page = browser_context.new_page()
        log_in_browser(page, live_server, email)
        page.goto(f"{live_server}/inbox")
        assert "誰かと話したいです" in page.content()
        screenshot(page, "inbox-translated.png")
        form = page.locator("form[action$='/answer/preview']").first
        form.locator("textarea").fill(ANSWER_JA)
        form.get_by_role("button", name="翻訳して確認").click()
        page.wait_for_selector("#answer-body")
        assert page.locator("#answer-body").input_value() == ANSWER_VI
        screenshot(page, "inbox-answer-check.png")
        page.fill("#answer-body", ANSWER_VI + " Xin cảm ơn.")
        page.get_by_role("button", name="返信を送る", exact=True).click()
        page.wait_for_selector(".notice")
        screenshot(page, "inbox-after-answer.png")
    with world.session() as s:
        sent = s.exec(
            select(OutboxMessage).where(OutboxMessage.body == ANSWER_VI + " Xin cảm ơn.")
        ).one()
    assert sent.locale == "vi" and sent.to_phone == e164(4)

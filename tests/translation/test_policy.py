"""What needs a translator, and when a rate-limited item comes back: pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.translation.languages import base_language, differs_from
from service.translation.policy import (
    FIRST_RETRY,
    GIVE_UP_AFTER,
    MAX_RETRY,
    MAX_TRIES,
    after_transient_failure,
    needs_translation,
)

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["1", " 2 ", "１", "３!", "👍", "🙏🙏", "!!!", "", "   ", "1 2 3", "0902000"]
)
def test_digits_symbols_and_emoji_are_not_free_text(text) -> None:
    assert needs_translation(text) is False


@pytest.mark.parametrize(
    "text", ["大丈夫です", "元気です!", "OKです", "だいじょうぶ", "助けてください🙏"]
)
def test_japanese_needs_no_translation(text) -> None:
    assert needs_translation(text) is False


@pytest.mark.parametrize(
    "text",
    [
        "ai vậy?",
        "siapa ini?",
        "想聊聊",  # kanji alone is Chinese, not Japanese
        "我没事儿啦",
        "ok",
        "oi tudo bem",
        "괜찮아요 ㅎㅎ",
        "สบายดี 555",
        "ठीक छ",
        "1번",
        "I'm fine ありがとう but my mother fell down yesterday",
        "សុខសប្បាយទេ",
    ],
)
def test_free_text_in_any_script_needs_translation(text) -> None:
    assert needs_translation(text) is True


def test_backoff_doubles_with_jitter_up_to_an_hour() -> None:
    first = after_transient_failure(tries=1, created_at=NOW, now=NOW, jitter=0.5)
    second = after_transient_failure(tries=2, created_at=NOW, now=NOW, jitter=0.5)
    late = after_transient_failure(tries=10, created_at=NOW, now=NOW, jitter=1.0)
    assert first.next_try_at == NOW + FIRST_RETRY
    assert second.next_try_at == NOW + 2 * FIRST_RETRY
    assert late.next_try_at == NOW + MAX_RETRY * 1.2
    low = after_transient_failure(tries=1, created_at=NOW, now=NOW, jitter=0.0)
    assert low.next_try_at == NOW + FIRST_RETRY * 0.8


def test_backoff_waits_at_least_as_long_as_the_provider_asked() -> None:
    decision = after_transient_failure(
        tries=1, created_at=NOW, now=NOW, retry_after=600, jitter=0.5
    )
    assert decision.next_try_at == NOW + timedelta(seconds=600)


def test_retries_give_up_after_too_many_tries_or_too_long() -> None:
    assert after_transient_failure(tries=MAX_TRIES, created_at=NOW, now=NOW).give_up
    assert after_transient_failure(tries=2, created_at=NOW - GIVE_UP_AFTER, now=NOW).give_up
    assert not after_transient_failure(tries=MAX_TRIES - 1, created_at=NOW, now=NOW).give_up


@pytest.mark.parametrize(
    ("detected", "registered", "differs"),
    [
        ("vi", "vi", False),
        ("zh-tw", "zh_Hant", False),
        ("zh", "zh_Hans", False),
        ("pt", "pt_BR", False),
        ("tl", "fil", False),
        ("fil", "fil", False),
        ("ja", "easy_ja", False),
        ("en", "vi", True),
        ("ja", "vi", True),
        (None, "vi", False),
        ("vi", None, False),
    ],
)
def test_the_detected_language_is_news_only_when_it_is_another_language(
    detected, registered, differs
) -> None:
    assert differs_from(detected, registered) is differs


def test_base_language_reads_both_code_styles() -> None:
    assert base_language("PT-BR") == base_language("pt_BR") == "pt"
    assert base_language("ZH-HANT") == "zh"


@pytest.mark.parametrize(
    ("resident", "task", "detected", "language"),
    [
        ("vi", None, "en", "vi"),  # the registry wins over what one message was written in
        (None, "ne", None, "ne"),
        (None, None, "vi", "vi"),  # a stranger: the language their message was written in
        (None, None, "zh-tw", "zh_Hant"),
        (None, None, "zh", "zh_Hans"),
        (None, None, "pt", "pt_BR"),
        (None, None, "tl", "fil"),
        (None, None, "de", "easy_ja"),  # no catalog for it: Easy Japanese
        (None, None, None, "easy_ja"),
    ],
)
def test_the_answer_language(resident, task, detected, language) -> None:
    from service.translation.answers import answer_language

    assert answer_language(resident, task, detected) == language

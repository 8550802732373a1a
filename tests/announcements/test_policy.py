"""The announcement rules on their own: no database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.announcements import policy
from service.announcements.policy import LanguageText

TOKYO = "Asia/Tokyo"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        (None, "empty"),
        ("給水", None),
        ("あ" * policy.MAX_SOURCE_CHARS, None),
        ("あ" * (policy.MAX_SOURCE_CHARS + 1), "too_long"),
    ],
)
def test_text_problems(text, problem):
    assert policy.text_problem(text, policy.MAX_SOURCE_CHARS) == problem


@pytest.mark.parametrize(
    ("text", "warned"),
    [
        ("お問い合わせは 0768-22-1111 まで", True),
        ("お問い合わせは０７６８－２２－１１１１まで", True),  # full-width, as often written
        ("Call +81 90 1234 5678", True),
        ("090-1234-5678に電話してください", True),
        ("本日10時から12時まで、第2集会所で給水します", False),
        ("2026年12月8日 10:00〜15:00", False),
    ],
)
def test_a_phone_number_is_warned_about(text, warned):
    assert policy.looks_like_phone(text) is warned


@pytest.mark.parametrize(
    ("contact", "visit_reason", "mobile", "reason"),
    [
        (True, None, "+819012345678", None),
        (True, None, None, "no_mobile"),  # a landline only: an SMS cannot reach it
        (False, None, "+819012345678", "away_or_moved"),
        (False, "opted_out", "+819012345678", "opted_out"),  # replied STOP
        (False, "no_consent", "+819012345678", "no_consent"),
        (False, "no_phone", None, "no_phone"),
    ],
)
def test_who_is_skipped(contact, visit_reason, mobile, reason):
    assert policy.skip_reason(contact, visit_reason, mobile) == reason


def _t(text=None, fallback=None, confirmed=False):
    return LanguageText(text, fallback, confirmed)


def test_every_recipient_language_needs_a_confirmed_text():
    languages = {"ja": 3, "vi": 2, "km": 1, "easy_ja": 1}
    texts = {"ja": _t("給水", confirmed=True), "vi": _t("Nước", confirmed=False)}
    assert policy.open_languages(languages, texts) == (["easy_ja", "km"], ["vi"])
    texts["vi"] = _t("Nước", confirmed=True)
    # Khmer: staff choose Easy Japanese, which nobody has written yet.
    texts["km"] = _t(fallback="easy_ja", confirmed=True)
    # Khmer waits on the Easy Japanese text it points to.
    assert policy.open_languages(languages, texts) == (["easy_ja"], ["km"])
    texts["easy_ja"] = _t("きょう 10じ から みず を くばります", confirmed=False)
    assert policy.open_languages(languages, texts) == ([], ["easy_ja", "km"])
    texts["easy_ja"] = _t("きょう 10じ から みず を くばります", confirmed=True)
    assert policy.open_languages(languages, texts) == ([], [])
    assert policy.body_for("km", texts) == "きょう 10じ から みず を くばります"


def test_a_fallback_is_never_chosen_for_staff():
    texts = {"ja": _t("給水", confirmed=True)}
    assert policy.body_for("km", texts) is None
    # Chosen but not confirmed: nothing either.
    texts["km"] = _t(fallback="ja", confirmed=False)
    assert policy.body_for("km", texts) is None
    texts["km"] = _t(fallback="ja", confirmed=True)
    assert policy.body_for("km", texts) == "給水"


def test_the_cost_counts_each_resident_once_per_segment():
    lines, total = policy.cost(
        {"ja": 2, "en": 3, "vi": 1},
        {"ja": "あ" * 71, "en": "a" * 160, "vi": None},
    )
    figures = {line.language: (line.encoding, line.segments_each, line.segments) for line in lines}
    assert figures == {"ja": ("UCS-2", 2, 4), "en": ("GSM-7", 1, 3), "vi": ("", 0, 0)}
    assert total == 7
    assert [line.language for line in lines] == ["en", "ja", "vi"]  # most recipients first


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ja", "vi", "en", "fil", "pt_BR"]), st.integers(1, 500), min_size=1
    ),
    st.text(min_size=1, max_size=400),
)
def test_the_total_is_the_sum_of_the_lines(languages, body):
    lines, total = policy.cost(languages, dict.fromkeys(languages, body))
    assert total == sum(line.recipients * line.segments_each for line in lines)
    assert all(line.segments_each >= 1 for line in lines)


@pytest.mark.parametrize(
    ("utc", "override", "quiet", "leaves"),
    [
        (datetime(2026, 12, 1, 1, 0, tzinfo=UTC), False, False, None),  # 10:00 JST
        (
            datetime(2026, 12, 1, 13, 30, tzinfo=UTC),
            False,
            True,
            datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
        ),
        (datetime(2026, 12, 1, 13, 30, tzinfo=UTC), True, True, None),  # overridden: now
        (
            datetime(2026, 12, 1, 20, 0, tzinfo=UTC),
            False,
            True,
            datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
        ),
        (datetime(2026, 12, 1, 23, 0, tzinfo=UTC), False, False, None),  # 08:00 sharp
    ],
)
def test_quiet_hours_hold_it_until_morning_unless_overridden(utc, override, quiet, leaves):
    assert policy.send_time(utc, TOKYO, override) == (quiet, leaves or utc)

"""Per-recipient rendering, fallbacks and the language registry it relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from i18n.catalogs import load_catalogs
from i18n.languages import (
    FALLBACK_CODE,
    LANGUAGES,
    SUPPORTED_CODES,
    babel_locale,
    display_name,
    get_language,
    normalize_language_code,
)
from i18n.messages import (
    LONG_SAMPLE_VALUES,
    MESSAGES,
    RESIDENT_CHECKIN,
    RESIDENT_OPTIN,
    RESIDENT_OPTOUT,
    placeholders_in,
)
from i18n.render import (
    MissingPlaceholderError,
    UnknownMessageError,
    available_locales,
    fallback_chain,
    format_datetime,
    format_time,
    render,
    resolve_catalog,
)

REQUIRED_CODES = (
    "ja easy_ja en zh_Hans zh_Hant ko vi fil ne pt_BR es id my th km si mn bn ur hi ta".split()
)
CHECKIN_VALUES = {"org": "輪島市社会福祉協議会", "name": "Nguyễn Văn An"}


def test_registry_has_the_twenty_one_resident_language_codes_exactly() -> None:
    assert set(REQUIRED_CODES) <= set(SUPPORTED_CODES)
    assert len(SUPPORTED_CODES) == len(set(SUPPORTED_CODES))
    for code in REQUIRED_CODES:
        language = get_language(code)
        assert language is not None and language.code == code


def test_every_language_has_its_own_catalog_first_in_its_fallback_chain() -> None:
    for language in LANGUAGES:
        assert fallback_chain(language.code)[0] == language.catalog, language.code


def test_unknown_language_falls_back_to_easy_japanese() -> None:
    assert resolve_catalog(RESIDENT_CHECKIN, "xx") == "easy_ja"
    text = render(RESIDENT_CHECKIN, "klingon", **CHECKIN_VALUES)
    assert text == render(RESIDENT_CHECKIN, "easy_ja", **CHECKIN_VALUES)
    assert "げんき" in text


def test_missing_language_falls_back_to_easy_japanese() -> None:
    assert render(RESIDENT_CHECKIN, None, **CHECKIN_VALUES) == render(
        RESIDENT_CHECKIN, FALLBACK_CODE, **CHECKIN_VALUES
    )


def test_pt_br_uses_the_portuguese_catalog() -> None:
    assert fallback_chain("pt_BR") == ("pt", "easy_ja")
    text = render(RESIDENT_CHECKIN, "pt_BR", **CHECKIN_VALUES)
    assert "Você está bem?" in text
    assert text == render(RESIDENT_CHECKIN, "pt-BR", **CHECKIN_VALUES)


def test_region_variant_falls_back_to_base_language() -> None:
    assert resolve_catalog(RESIDENT_CHECKIN, "vi_VN") == "vi"
    assert resolve_catalog(RESIDENT_CHECKIN, "en-AU") == "en"


def test_message_missing_from_a_catalog_falls_back_to_easy_japanese(
    locales_copy,
) -> None:
    po = locales_copy / "vi" / "LC_MESSAGES" / "messages.po"
    text = po.read_text(encoding="utf-8")
    start = text.index('msgid "resident.checkin"\n')
    end = text.index("\n\n", start)
    po.write_text(text[:start] + 'msgid "resident.checkin"\nmsgstr ""' + text[end:], "utf-8")
    assert resolve_catalog(RESIDENT_CHECKIN, "vi", locales_dir=locales_copy) == "easy_ja"
    assert resolve_catalog(RESIDENT_OPTOUT, "vi", locales_dir=locales_copy) == "vi"


def test_every_message_renders_in_every_language_with_all_placeholders_filled() -> None:
    for code in SUPPORTED_CODES:
        for message_id, spec in MESSAGES.items():
            values = {name: f"<{name}>" for name in spec.placeholders}
            text = render(message_id, code, **values)
            assert text.strip(), (code, message_id)
            assert "{" not in text and "}" not in text, (code, message_id, text)
            for name in spec.placeholders:
                assert f"<{name}>" in text, (code, message_id, name)


def test_languages_other_than_the_fallback_are_really_translated() -> None:
    """Guards against a catalog that silently copies the Easy Japanese text."""
    for code in SUPPORTED_CODES:
        if code == FALLBACK_CODE:
            continue
        assert render(RESIDENT_CHECKIN, code, **CHECKIN_VALUES) != render(
            RESIDENT_CHECKIN, FALLBACK_CODE, **CHECKIN_VALUES
        ), code


def test_missing_placeholder_value_raises_a_clear_error() -> None:
    with pytest.raises(MissingPlaceholderError) as raised:
        render(RESIDENT_CHECKIN, "vi", org="輪島市社会福祉協議会")
    assert raised.value.missing == frozenset({"name"})
    assert "resident.checkin" in str(raised.value) and "{name}" in str(raised.value)


def test_unknown_message_id_raises() -> None:
    with pytest.raises(UnknownMessageError):
        render("resident.no_such_message", "ja")


def test_values_with_braces_are_inserted_verbatim() -> None:
    text = render(RESIDENT_CHECKIN, "en", org="{org}", name="{0} {name!r}")
    assert "{0} {name!r}" in text


def test_extra_values_are_ignored() -> None:
    text = render(RESIDENT_CHECKIN, "en", unused="x", **CHECKIN_VALUES)
    assert "Nguyễn Văn An" in text


def test_opt_out_explains_how_to_opt_back_in_in_every_language() -> None:
    for code in SUPPORTED_CODES:
        assert "START" in render(RESIDENT_OPTOUT, code, org="X"), code
        assert "STOP" in render(RESIDENT_OPTIN, code, org="X"), code


def test_resident_menu_uses_ascii_digits_in_every_language() -> None:
    for code in SUPPORTED_CODES:
        text = render(RESIDENT_CHECKIN, code, **CHECKIN_VALUES)
        assert all(digit in text for digit in "123"), code


def test_no_placeholder_collides_with_render_parameters() -> None:
    for spec in MESSAGES.values():
        assert not spec.placeholders & {"message_id", "locale", "locales_dir"}


def test_sample_values_cover_every_placeholder() -> None:
    used = set().union(*(spec.placeholders for spec in MESSAGES.values()))
    assert used <= LONG_SAMPLE_VALUES.keys()


def test_placeholder_parser_rejects_anything_but_bare_names() -> None:
    assert placeholders_in("{org}: hi {name}") == {"org", "name"}
    for bad in ("{0}", "{name!r}", "{name:>10}", "{name.attr}", "{name[0]}", "{oops"):
        with pytest.raises(ValueError):
            placeholders_in(bad)


def test_available_locales_lists_every_catalog() -> None:
    locales = available_locales()
    assert set(locales) == set(load_catalogs())
    assert {language.catalog for language in LANGUAGES} <= set(locales)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pt-BR", "pt_BR"),
        ("pt_br", "pt_BR"),
        ("PT", "pt_BR"),
        ("zh-CN", "zh_Hans"),
        ("zh", "zh_Hans"),
        ("zh-TW", "zh_Hant"),
        ("zh-Hant-HK", "zh_Hant"),
        ("tl", "fil"),
        ("ja-easy", "easy_ja"),
        ("Easy Japanese", "easy_ja"),
        ("やさしい日本語", "easy_ja"),
        ("Tiếng Việt", "vi"),
        ("Vietnamese", "vi"),
        ("ベトナム語", "vi"),
        ("日本語", "ja"),
        ("英語", "en"),
        ("中国語", "zh_Hans"),
        ("中国語(簡体)", "zh_Hans"),
        ("中国語（繁体）", "zh_Hant"),
        ("韓国語", "ko"),
        ("タガログ語", "fil"),
        ("フィリピン語", "fil"),
        ("ネパール語", "ne"),
        ("ポルトガル語", "pt_BR"),
        ("スペイン語", "es"),
        ("インドネシア語", "id"),
        ("ミャンマー語", "my"),
        ("ビルマ語", "my"),
        ("タイ語", "th"),
        ("クメール語", "km"),
        ("カンボジア語", "km"),
        ("シンハラ語", "si"),
        ("モンゴル語", "mn"),
        ("Монгол хэл", "mn"),
        ("монгол", "mn"),
        ("Mongolian", "mn"),
        ("mn-MN", "mn"),
        ("ベンガル語", "bn"),
        ("বাংলা", "bn"),
        ("Bangla", "bn"),
        ("bn-BD", "bn"),
        ("ウルドゥー語", "ur"),
        ("اردو", "ur"),
        ("urdu", "ur"),
        ("ur-PK", "ur"),
        ("ヒンディー語", "hi"),
        ("हिन्दी", "hi"),
        ("हिंदी", "hi"),
        ("Hindi", "hi"),
        ("タミル語", "ta"),
        ("தமிழ்", "ta"),
        ("ta-LK", "ta"),
        ("tam", "ta"),
        (" ＥＮ ", "en"),
        ("ภาษาไทย", "th"),
        ("en-AU", "en"),
    ],
)
def test_normalize_language_code_accepts_common_spellings(value: str, expected: str) -> None:
    assert normalize_language_code(value) == expected


@pytest.mark.parametrize("value", ["", "   ", "xx", "klingon", "ドイツ語", None])
def test_normalize_language_code_rejects_unknown_languages(value: str | None) -> None:
    assert normalize_language_code(value) is None


def test_every_language_knows_its_name_in_its_own_script() -> None:
    expected = {
        "vi": "Tiếng Việt",
        "th": "ภาษาไทย",
        "en": "English",
        "ja": "日本語",
        "easy_ja": "やさしい日本語",
    }
    for code, name in expected.items():
        language = get_language(code)
        assert language is not None and language.native_name == name
    for language in LANGUAGES:
        assert normalize_language_code(language.native_name) == language.code
        assert normalize_language_code(language.english_name) == language.code
        assert normalize_language_code(language.japanese_name) == language.code


def test_member_alert_names_the_resident_language_in_the_reader_language() -> None:
    assert display_name("vi", "ja") == "ベトナム語"
    assert display_name("vi", "en") == "Vietnamese"
    assert display_name("vi", "vi") == "Tiếng Việt"


def test_easy_japanese_formats_dates_as_japanese() -> None:
    assert str(babel_locale("easy_ja")) == "ja"
    assert str(babel_locale("unknown")) == "ja"


def test_format_datetime_uses_recipient_locale_and_organization_timezone() -> None:
    moment = datetime(2024, 1, 1, 7, 10, tzinfo=UTC)  # 16:10 in Japan
    assert format_datetime(moment, "ja", "Asia/Tokyo") == "2024/01/01 16:10"
    assert format_datetime(moment, "easy_ja", "Asia/Tokyo") == "2024/01/01 16:10"
    english = format_datetime(moment, "en", "Asia/Tokyo")
    assert "4:10" in english and "PM" in english
    assert format_time(moment, "ja", "Asia/Tokyo") == "16:10"
    assert format_time(moment, "ja", "UTC") == "7:10"
    assert format_time(moment, "ja", timezone(timedelta(hours=9))) == "16:10"


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = datetime(2024, 1, 1, 7, 10)
    assert format_time(naive, "ja", "Asia/Tokyo") == "16:10"

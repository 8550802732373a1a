"""Which name of an organization a reader reads and a listener hears (``i18n.names``):
pure rules, tried over every registered language, not only the quoted examples."""

from __future__ import annotations

import pytest

from i18n.languages import LANGUAGES, SUPPORTED_CODES, get_language
from i18n.names import (
    MAX_NAME_LENGTH,
    LocalizedName,
    LocalizedNameError,
    clean_names,
    has_japanese_script,
    is_latin_script,
    merged_names,
    romanise,
    spoken_name,
    voice_reads_kanji,
    written_name,
)
from i18n.render import render

JA = "輪島市社会福祉協議会"
READING = "わじまし しゃかいふくし きょうぎかい"
EN = "Wajima City Social Welfare Council"
VI = "Hội đồng Phúc lợi Xã hội thành phố Wajima"

NAME_SETS = [
    {},
    {"en": EN},
    {"easy_ja": READING},
    {"en": EN, "easy_ja": READING},
    {"vi": VI},
    {"en": EN, "easy_ja": READING, "vi": VI},
]


def test_latin_script_is_judged_from_each_languages_own_name() -> None:
    for code in ("en", "vi", "fil", "id", "pt_BR", "es"):
        assert is_latin_script(code), code
    for code in ("ja", "easy_ja", "zh_Hans", "zh_Hant", "ko", "ne", "my", "th", "km", "si"):
        assert not is_latin_script(code), code
    assert not is_latin_script("klingon")


def test_a_reader_gets_their_own_name_first() -> None:
    names = {"en": EN, "easy_ja": READING, "vi": VI}
    assert written_name(JA, names, "vi") == (VI, "own")
    assert written_name(JA, names, "en") == (EN, "own")
    assert written_name(JA, names, "easy_ja") == (READING, "own")
    # Codes are normalised as residents' languages are.
    assert written_name(JA, {"pt_BR": "Conselho"}, "pt-BR") == ("Conselho", "own")


@pytest.mark.parametrize("code", SUPPORTED_CODES)
def test_without_their_own_name_latin_readers_get_the_english_one_the_others_japanese(
    code: str,
) -> None:
    text, source = written_name(JA, {"en": EN}, code)
    if code == "en":
        assert (text, source) == (EN, "own")
    elif is_latin_script(code):
        assert (text, source) == (EN, "english")
    else:
        assert (text, source) == (JA, "japanese")


@pytest.mark.parametrize("code", SUPPORTED_CODES)
def test_without_any_names_every_reader_gets_the_japanese_name(code: str) -> None:
    assert written_name(JA, {}, code) == (JA, "japanese")
    assert written_name(JA, None, code) == (JA, "japanese")


def test_japanese_readers_always_read_the_japanese_name() -> None:
    assert written_name(JA, {"en": EN, "easy_ja": READING}, "ja") == (JA, "japanese")
    assert LocalizedName(JA, {"en": EN}).for_reader("zh_Hans") == JA


@pytest.mark.parametrize("names", NAME_SETS)
@pytest.mark.parametrize("language", LANGUAGES, ids=lambda language: language.code)
def test_no_voice_is_given_a_name_it_cannot_pronounce(language, names) -> None:
    """The rule, for every language and every set of names: only a Japanese or Chinese
    voice is ever given kanji or kana; every call names the council somehow."""
    choice = spoken_name(JA, names, language.code)
    spoken_in = get_language(choice.locale)
    assert spoken_in is not None
    said = LocalizedName(JA, names).spoken(language.code)
    assert said
    if not voice_reads_kanji(spoken_in):
        assert not has_japanese_script(said), (language.code, said)
    if choice.source == "generic":
        assert said == render("name.org_generic", choice.locale)


def test_a_vietnamese_voice_says_the_vietnamese_name_else_a_latin_one_else_the_generic_phrase():
    assert spoken_name(JA, {"vi": VI, "en": EN}, "vi").text == VI
    assert spoken_name(JA, {"en": EN}, "vi").text == EN
    romanised = spoken_name(JA, {"easy_ja": READING}, "vi")
    assert (romanised.text, romanised.source) == ("Wajimashi Shakaifukushi Kyougikai", "romanised")
    nothing = spoken_name(JA, {}, "vi")
    assert (nothing.text, nothing.source, nothing.locale) == (None, "generic", "vi")
    assert LocalizedName(JA).spoken("vi") == render("name.org_generic", "vi")
    assert LocalizedName(JA).spoken("en") == "your social welfare council"


def test_japanese_voices_say_the_kana_reading_and_chinese_voices_the_kanji() -> None:
    names = {"easy_ja": READING, "en": EN}
    assert spoken_name(JA, names, "ja").text == READING
    assert spoken_name(JA, names, "easy_ja").text == READING
    assert spoken_name(JA, {}, "ja").text == JA
    assert spoken_name(JA, names, "zh_Hans").text == JA
    # Nepali has no Twilio voice: the call is in Easy Japanese, with the reading.
    nepali = spoken_name(JA, names, "ne")
    assert (nepali.text, nepali.locale, nepali.source) == (READING, "easy_ja", "reading")


def test_a_non_latin_voice_that_cannot_read_kanji_says_its_own_name_or_the_generic_phrase():
    assert (
        spoken_name(JA, {"ko": "와지마시 사회복지협의회"}, "ko").text == "와지마시 사회복지협의회"
    )
    # A Korean voice is not given a Latin romanisation it would spell out.
    korean = spoken_name(JA, {"en": EN, "easy_ja": READING}, "ko")
    assert korean.source == "generic"
    # An own name in kanji (a mistake) is still never given to a voice that cannot read it.
    assert spoken_name(JA, {"vi": JA}, "vi").source == "generic"


def test_romanising_keeps_word_breaks_and_gives_plain_latin_letters() -> None:
    assert romanise(READING) == "Wajimashi Shakaifukushi Kyougikai"
    assert romanise("ワジマシ・シャカイフクシ") == "Wajimashi Shakaifukushi"
    assert romanise("たくだまち　だい2　だんち") == "Takudamachi Dai2 Danchi"
    assert romanise("わじま、ぼらんてぃあ") == "Wajima Boranteia"
    assert romanise("  ") is None


def test_clean_names_normalises_codes_and_text() -> None:
    cleaned = clean_names({"pt-BR": "  Conselho   de  Wajima ", "EN": EN, "ベトナム語": VI})
    assert cleaned == {"pt_BR": "Conselho de Wajima", "en": EN, "vi": VI}
    assert clean_names(None) == {}
    assert clean_names({"en": None}, allow_removal=True) == {"en": None}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"xx": "Name"}, "unknown language 'xx'"),
        ({"ja": "輪島"}, "names.ja"),
        ({"en": "   "}, "names.en: the name cannot be empty"),
        ({"en": "A" * (MAX_NAME_LENGTH + 1)}, f"at most {MAX_NAME_LENGTH}"),
        ({"en": "Wajima\nCouncil"}, "control characters"),
        ({"en": "Wajima\x00"}, "control characters"),
        ({"en": 5}, "must be text"),
        ({"en": None}, "must be text"),
        (["en", "Wajima"], "expected an object"),
        ({"pt-BR": "A", "pt_br": "B"}, "given twice"),
    ],
)
def test_bad_names_are_refused_with_a_reason(value, fragment) -> None:
    with pytest.raises(LocalizedNameError) as raised:
        clean_names(value)
    assert fragment in str(raised.value)


def test_zero_width_joiners_stay_allowed_for_scripts_that_need_them() -> None:
    sinhala = "සමාජ සුබසාධන ශ්\u200dරී"
    assert clean_names({"si": sinhala}) == {"si": sinhala}


def test_merging_sets_and_removes_names() -> None:
    merged = merged_names({"en": "Old", "vi": VI}, {"en": EN, "vi": None, "id": "Dewan"})
    assert merged == {"en": EN, "id": "Dewan"}
    assert merged_names(None, {"vi": None}) == {}

"""Mongolian, Bengali, Urdu, Hindi and Tamil: registered, spoken where Twilio can, and laid
out in the right direction.

The general catalog, render and status tests cover every language (complete, placeholders
kept, three SMS segments at most); these check what is particular to the five: the names
staff type for them, which of them Twilio can speak, and Urdu's right-to-left layout.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from babel import Locale

from i18n.catalogs import load_catalogs, po_path, read_review_status
from i18n.languages import (
    LANGUAGES,
    display_name,
    get_language,
    mark_direction,
    normalize_language_code,
)
from i18n.messages import LONG_SAMPLE_VALUES, MESSAGES, VOICE_IDS, Audience
from i18n.render import render, resolve_catalog
from i18n.voice import AUDIO_MAP_ENV, voice_prompt

NEW_CODES = ("mn", "bn", "ur", "hi", "ta")
JAPANESE_NAMES = {
    "mn": "モンゴル語",
    "bn": "ベンガル語",
    "ur": "ウルドゥー語",
    "hi": "ヒンディー語",
    "ta": "タミル語",
}
#: Scripts each catalog is written in (the first word of the letters' Unicode names).
SCRIPTS = {"mn": "CYRILLIC", "bn": "BENGALI", "ur": "ARABIC", "hi": "DEVANAGARI", "ta": "TAMIL"}
SMS_AUDIENCES = (Audience.RESIDENT_SMS, Audience.MEMBER_SMS)
ORGS = ("輪島市社会福祉協議会", "Wajima Council")
RLM, LRM = "\u200f", "\u200e"


@pytest.fixture(autouse=True)
def _no_audio_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUDIO_MAP_ENV, raising=False)


def _values(org: str) -> dict[str, str]:
    return {**LONG_SAMPLE_VALUES, "org": org, "name": "Maria Santos"}


def _paragraph_directions(text: str) -> list[str]:
    """Each paragraph's base direction by the Unicode rule phones apply (UAX #9, P2-P3):
    the first strong letter decides, "L" or "R"; a paragraph without one is "L"."""
    directions = []
    for paragraph in text.split("\n"):
        direction = "L"
        for char in paragraph:
            kind = unicodedata.bidirectional(char)
            if kind in ("L", "R", "AL"):
                direction = "L" if kind == "L" else "R"
                break
        directions.append(direction)
    return directions


def _letters_script(text: str) -> set[str]:
    return {
        unicodedata.name(char, "?").split()[0]
        for char in re.sub(r"\{[a-z_]+\}", "", text)
        if char.isalpha()
    }


@pytest.mark.parametrize("code", NEW_CODES)
def test_each_new_language_is_registered_with_its_names_and_catalog(code: str) -> None:
    language = get_language(code)
    assert language is not None and language.catalog == code
    assert language.japanese_name == JAPANESE_NAMES[code]
    assert display_name(code, "ja") == JAPANESE_NAMES[code]
    assert display_name(code, code) == language.native_name
    assert language.sms_encoding == "UCS-2"
    assert str(Locale.parse(language.babel_locale)) == code
    for name in (code, language.native_name, language.english_name, language.japanese_name):
        assert normalize_language_code(name) == code
    assert resolve_catalog("resident.checkin", code) == code


@pytest.mark.parametrize("code", NEW_CODES)
def test_each_new_catalog_is_a_draft_written_in_its_own_script(code: str) -> None:
    """Drafts awaiting native review, like the first sixteen, and really translated: every
    text's letters are in the language's script, apart from the kept keywords."""
    assert read_review_status(po_path(code)) in ("draft", "reviewed")
    catalog = load_catalogs()[code]
    assert catalog.translated_ids >= set(MESSAGES)
    for message_id in MESSAGES:
        template = catalog.translations.gettext(message_id)
        scripts = _letters_script(template.replace("START", "").replace("STOP", ""))
        # Case codes ("A7") and the abbreviation SMS may stay in Latin letters.
        assert scripts <= {SCRIPTS[code], "LATIN"}, (code, message_id, scripts)
        assert SCRIPTS[code] in scripts, (code, message_id)


def test_twilio_voices_name_the_language_they_are_given() -> None:
    """Twilio rejects a <Say> whose Google voice and language attribute disagree."""
    for language in LANGUAGES:
        if language.voice is not None and language.voice.voice.startswith("Google."):
            locale = language.voice.voice.removeprefix("Google.").rsplit("-", 2)[0]
            assert locale == language.voice.language, language.code


@pytest.mark.parametrize(
    ("code", "voice", "tag"),
    [
        ("hi", "Google.hi-IN-Standard-A", "hi-IN"),
        ("bn", "Google.bn-IN-Standard-A", "bn-IN"),
        ("ta", "Google.ta-IN-Standard-A", "ta-IN"),
    ],
)
def test_hindi_bengali_and_tamil_calls_are_spoken_in_the_language(
    code: str, voice: str, tag: str
) -> None:
    for prompt_id in VOICE_IDS:
        prompt = voice_prompt(prompt_id, code, org=ORGS[0], code="A7")
        assert (prompt.spoken_locale, prompt.voice, prompt.say_language) == (code, voice, tag)
        assert prompt.text == render(prompt_id, code, org=ORGS[0], code="A7")
    menu = voice_prompt("voice.menu", code).text
    assert all(digit in menu for digit in "123")


@pytest.mark.parametrize("code", ["mn", "ur"])
def test_mongolian_and_urdu_calls_fall_back_to_easy_japanese(code: str) -> None:
    """Twilio has no Mongolian or Urdu voice: without a recording or a built prompt the
    call says the Easy Japanese text in a Japanese voice, and the keypad menu still works."""
    language = get_language(code)
    assert language is not None and language.voice is None
    for prompt_id in VOICE_IDS:
        prompt = voice_prompt(prompt_id, code, org=ORGS[0], code="A7")
        assert (prompt.spoken_locale, prompt.say_language) == ("easy_ja", "ja-JP")
        assert prompt.text == render(prompt_id, "easy_ja", org=ORGS[0], code="A7")


def test_every_sms_is_laid_out_in_its_language_s_direction() -> None:
    """A phone decides a paragraph's direction by its first strong letter. Texts begin with
    the council's name (kanji or Latin), so an Urdu text must say it is right to left, and
    no left-to-right language may carry a right-to-left mark."""
    for language in LANGUAGES:
        rtl = Locale.parse(language.babel_locale).character_order == "right-to-left"
        expected = "R" if rtl else "L"
        for message_id, spec in MESSAGES.items():
            if spec.audience not in SMS_AUDIENCES:
                continue
            for org in ORGS:
                text = render(message_id, language.code, **_values(org))
                assert set(_paragraph_directions(text)) == {expected}, (
                    language.code,
                    message_id,
                    text,
                )
                if not rtl:
                    assert RLM not in text, (language.code, message_id)


def test_urdu_keeps_phone_numbers_left_to_right_and_prompts_free_of_marks() -> None:
    """Between Arabic letters the groups of "090-1234-5678" would be shown in reverse
    order; a left-to-right mark before the number keeps them as dialled. Prompts are
    spoken, so they carry no layout marks."""
    text = render("member.callback", "ur", name="Maria Santos", language="اردو", phone="090-1")
    assert f"{LRM}090-1" in text
    for prompt_id in VOICE_IDS:
        spoken = render(prompt_id, "ur", org=ORGS[0], code="A7")
        assert RLM not in spoken and LRM not in spoken, prompt_id
    checkin = render("resident.checkin", "ur", org=ORGS[0], name="Maria Santos")
    assert checkin.startswith(RLM + ORGS[0]) and "1 = " in checkin


@pytest.mark.parametrize("code", NEW_CODES)
def test_language_changed_names_the_language_in_its_own_words(code: str) -> None:
    language = get_language(code)
    assert language is not None
    text = render("resident.language_changed", code, org=ORGS[0], language=language.native_name)
    assert language.native_name in text and ORGS[0] in text


def test_only_urdu_is_right_to_left() -> None:
    assert [language.code for language in LANGUAGES if language.right_to_left] == ["ur"]


def test_mark_direction_makes_a_composed_urdu_text_right_to_left_once() -> None:
    """For texts not taken from a catalog (a staff answer translated into Urdu)."""
    composed = f"{ORGS[1]}: ہم جلد ہی آپ کو فون کریں گے۔\n\n{ORGS[0]}"
    marked = mark_direction(composed, "ur-PK")
    assert _paragraph_directions(composed) == ["L", "L", "L"]
    assert _paragraph_directions(marked) == ["R", "L", "R"]  # the empty line has no letter
    assert marked.count(RLM) == 2
    assert mark_direction(marked, "ur") == marked
    catalog_text = render("resident.answer.call_soon", "ur", org=ORGS[0])
    assert mark_direction(catalog_text, "ur") == catalog_text
    for code in ("hi", "en", None, "xx"):
        assert mark_direction(composed, code) == composed

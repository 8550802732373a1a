"""`i18n status` counts SMS segments with the names each language really gets: a kanji
name in an English text is reported as the UCS-2 it makes, never as GSM-7."""

from __future__ import annotations

import io

from i18n.languages import LANGUAGES
from i18n.names import LocalizedName, is_latin_script
from i18n.status import SAMPLE_ORG, status_rows
from service.cli.language_status import print_status

JA = "輪島市社会福祉協議会"
GSM7_LANGUAGES = [language.code for language in LANGUAGES if language.sms_encoding == "GSM-7"]


def _rows(org: LocalizedName | None = None) -> dict[str, dict]:
    return {row["code"]: row for row in status_rows(org=org)}


def test_the_gsm7_languages_are_at_least_english_filipino_and_indonesian() -> None:
    assert {"en", "fil", "id"} <= set(GSM7_LANGUAGES)


def test_a_kanji_name_is_reported_as_the_ucs2_it_makes() -> None:
    rows = _rows(LocalizedName(JA))
    for code in GSM7_LANGUAGES:
        row = rows[code]
        assert row["declared_encoding"] == "GSM-7"
        assert row["sms_encoding"] == "UCS-2", code
        assert row["org_name"] == JA and row["org_name_source"] == "japanese"
        assert row["segments"]["resident.checkin"] >= 2, code


def test_with_a_latin_name_the_gsm7_languages_stay_gsm7() -> None:
    org = LocalizedName(JA, {"en": "Wajima City Social Welfare Council"})
    rows = _rows(org)
    plain = _rows(LocalizedName(JA))
    for code in GSM7_LANGUAGES:
        assert rows[code]["sms_encoding"] == "GSM-7", code
        assert rows[code]["org_name"] == "Wajima City Social Welfare Council"
        # Counted with a 35-letter resident name: fewer segments than with kanji, though
        # not always 1 (real names are 1 segment: tests/registry/test_localized_names.py).
        checkin = rows[code]["segments"]["resident.checkin"]
        assert checkin < plain[code]["segments"]["resident.checkin"], code
        assert rows[code]["max_segments"] < plain[code]["max_segments"], code


def test_a_non_gsm7_latin_name_is_counted_as_ucs2() -> None:
    rows = _rows(LocalizedName(JA, {"en": "Wajima Shakai Fukushi Kyōgikai"}))
    assert rows["en"]["sms_encoding"] == "UCS-2"


def test_without_an_organization_the_sample_gives_latin_languages_the_latin_name() -> None:
    rows = _rows()
    for language in LANGUAGES:
        row = rows[language.code]
        expected = SAMPLE_ORG.for_reader(language.code)
        assert row["org_name"] == expected
        if is_latin_script(language.code):
            assert row["org_name"] == SAMPLE_ORG.names["en"]
        elif language.code != "easy_ja":
            assert row["org_name"] == SAMPLE_ORG.japanese


def test_status_says_which_name_each_call_says() -> None:
    rows = _rows(LocalizedName(JA, {"easy_ja": "わじまし しゃかいふくし きょうぎかい"}))
    assert rows["vi"]["org_name_spoken_source"] == "romanised"
    assert rows["vi"]["org_name_spoken"] == "Wajimashi Shakaifukushi Kyougikai"
    assert rows["ja"]["org_name_spoken_source"] == "reading"
    assert rows["zh_Hans"]["org_name_spoken_source"] == "japanese"
    bare = _rows(LocalizedName(JA))
    assert bare["en"]["org_name_spoken_source"] == "generic"
    assert bare["en"]["org_name_spoken"] == "your social welfare council"


def test_the_table_states_which_names_it_counted_with() -> None:
    sample = io.StringIO()
    print_status(file=sample)
    text = " ".join(sample.getvalue().split())
    assert "a sample" in text and SAMPLE_ORG.names["en"] in text
    real = io.StringIO()
    print_status(file=real, org=LocalizedName(JA, {"en": "Wajima"}), org_label=JA)
    text = " ".join(real.getvalue().split())
    assert f"{JA} from the database" in text and "other languages: en" in text

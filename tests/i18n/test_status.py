"""`mimamori i18n status`: readiness of every language, and the SMS length budget."""

from __future__ import annotations

import io
import json

from i18n.languages import LANGUAGES, SUPPORTED_CODES, get_language
from i18n.messages import RESIDENT_SMS_IDS
from i18n.render import render
from i18n.segments import is_gsm7, sms_segments
from i18n.status import status_rows, worst_case_values
from service.cli.language_status import print_status

MAX_RESIDENT_SEGMENTS = 3


def test_status_lists_twenty_one_languages_all_complete() -> None:
    rows = status_rows()
    assert len(rows) >= 21
    assert {"mn", "bn", "ur", "hi", "ta"} <= {row["code"] for row in rows}
    assert {row["code"] for row in rows} == set(SUPPORTED_CODES)
    for row in rows:
        assert row["completeness"] == 100.0, row["code"]
        assert row["translated"] == row["total"] > 0


def test_status_reports_review_voice_and_encoding() -> None:
    rows = {row["code"]: row for row in status_rows()}
    assert all(row["review_status"] in ("draft", "reviewed") for row in rows.values())
    assert rows["ja"]["voice"] == "Polly.Mizuki" and rows["ja"]["voice_language"] == "ja-JP"
    for code in ("ne", "my", "km", "si", "mn", "ur"):
        assert rows[code]["voice"] is None
    for code, voice, tag in (
        ("hi", "Google.hi-IN-Standard-A", "hi-IN"),
        ("bn", "Google.bn-IN-Standard-A", "bn-IN"),
        ("ta", "Google.ta-IN-Standard-A", "ta-IN"),
    ):
        assert (rows[code]["voice"], rows[code]["voice_language"]) == (voice, tag)
    assert rows["en"]["sms_encoding"] == "GSM-7"
    assert rows["vi"]["sms_encoding"] == "UCS-2"
    assert rows["pt_BR"]["catalog"] == "pt"


def test_status_counts_segments_for_every_resident_message() -> None:
    for row in status_rows():
        assert set(row["segments"]) == set(RESIDENT_SMS_IDS)
        assert all(count >= 1 for count in row["segments"].values())
        assert row["max_segments"] == max(row["segments"].values())


def test_every_resident_sms_in_every_language_fits_three_segments() -> None:
    for language in LANGUAGES:
        values = worst_case_values(language)
        for message_id in RESIDENT_SMS_IDS:
            text = render(message_id, language.code, **values)
            info = sms_segments(text)
            assert info.segments <= MAX_RESIDENT_SEGMENTS, (
                f"{language.code} {message_id}: {info} for {text!r}"
            )


def test_worst_case_values_really_are_long() -> None:
    """The budget test means nothing if the sample values are short or pure ASCII."""
    values = worst_case_values(LANGUAGES[0])
    assert len(values["name"]) >= 30
    assert not is_gsm7(values["org"])


def test_declared_sms_encoding_matches_the_translated_texts() -> None:
    """GSM-7 languages must stay GSM-7 with Latin values; UCS-2 ones really need UCS-2."""
    latin_values = {"org": "Wajima Council", "name": "Maria Santos", "language": "English"}
    for code in SUPPORTED_CODES:
        language = get_language(code)
        assert language is not None
        texts = [render(message_id, code, **latin_values) for message_id in RESIDENT_SMS_IDS]
        all_gsm = all(is_gsm7(text) for text in texts)
        if language.sms_encoding == "GSM-7":
            assert all_gsm, code
        else:
            assert not all_gsm, code


def test_print_status_json_is_the_row_list() -> None:
    out = io.StringIO()
    print_status(json=True, file=out)
    assert json.loads(out.getvalue()) == status_rows()


def test_print_status_table_names_every_language() -> None:
    out = io.StringIO()
    print_status(json=False, file=out)
    for code in SUPPORTED_CODES:
        assert code in out.getvalue()

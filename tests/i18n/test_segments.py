"""SMS segment counting: the budget every resident message is held to."""

from __future__ import annotations

from i18n.segments import SegmentInfo, is_gsm7, sms_segments


def test_empty_text_has_no_segments() -> None:
    assert sms_segments("") == SegmentInfo("GSM-7", 0, 0)


def test_160_gsm_chars_fit_one_segment_and_161_need_two() -> None:
    assert sms_segments("a" * 160) == SegmentInfo("GSM-7", 160, 1)
    assert sms_segments("a" * 161) == SegmentInfo("GSM-7", 161, 2)


def test_multipart_gsm_segments_hold_153_chars() -> None:
    assert sms_segments("a" * 306).segments == 2
    assert sms_segments("a" * 307).segments == 3


def test_70_ucs2_chars_fit_one_segment_and_71_need_two() -> None:
    assert sms_segments("あ" * 70) == SegmentInfo("UCS-2", 70, 1)
    assert sms_segments("あ" * 71) == SegmentInfo("UCS-2", 71, 2)


def test_multipart_ucs2_segments_hold_67_chars() -> None:
    assert sms_segments("あ" * 134).segments == 2
    assert sms_segments("あ" * 135).segments == 3


def test_gsm_extension_chars_count_twice() -> None:
    info = sms_segments("€" * 80)
    assert info == SegmentInfo("GSM-7", 160, 1)
    assert sms_segments("a" * 159 + "{").segments == 2
    assert sms_segments("[]{}|~^\\").units == 16


def test_gsm_escape_sequence_is_never_split_across_segments() -> None:
    # 152 plain chars then a 2-septet "€" would straddle the 153 boundary, so the euro
    # sign moves to the next segment: 152 + 2 + 152 = 306 septets need 3 segments.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_segments(text) == SegmentInfo("GSM-7", 306, 3)


def test_one_non_gsm_character_switches_the_whole_text_to_ucs2() -> None:
    text = "a" * 100 + "ệ"
    assert sms_segments(text) == SegmentInfo("UCS-2", 101, 2)


def test_emoji_counts_as_two_utf16_units() -> None:
    assert sms_segments("🙂") == SegmentInfo("UCS-2", 2, 1)
    assert sms_segments("🙂" * 35).segments == 1
    assert sms_segments("🙂" * 35 + "a").segments == 2


def test_surrogate_pair_is_never_split_across_segments() -> None:
    text = "あ" * 66 + "🙂" + "あ" * 66  # 134 units, but the emoji cannot straddle 67
    assert sms_segments(text) == SegmentInfo("UCS-2", 134, 3)


def test_gsm_alphabet_includes_common_latin_accents_but_not_all() -> None:
    assert is_gsm7("éèñüÄÖ¿¡")
    assert not is_gsm7("á")
    assert not is_gsm7("ç")
    assert not is_gsm7("ã")

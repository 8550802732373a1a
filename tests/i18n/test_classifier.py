"""The reply classifier: only a recognisable "fine" may ever close a check-in.

Most tests are tables of (reply, resident language) → verdict. The ids read
as "<language>: <reply> -> <verdict>" so a failure names the reply.
"""

from __future__ import annotations

import random
import string

import pytest

from i18n.classifier import (
    MAX_INPUT_CHARS,
    RESIDENT_LANGUAGES,
    Classification,
    ReplyKind,
    _normalize,
    classify,
    load_keywords,
    prepare,
)

FINE = ReplyKind.FINE
HELP = ReplyKind.HELP
TALK = ReplyKind.TALK
UNCLEAR = ReplyKind.UNCLEAR
STOP = ReplyKind.STOP
START = ReplyKind.START
LANG = ReplyKind.CHANGE_LANGUAGE


def case(locale: str | None, text: str, kind: ReplyKind, language: str | None = None):
    """One table row, with an id that says what is being protected."""
    shown = text if text.strip() else repr(text)
    return pytest.param(text, locale, kind, language, id=f"{locale}: {shown} -> {kind.value}")


def check(text: str, locale: str | None, kind: ReplyKind, language: str | None) -> None:
    result = classify(text, locale)
    assert result.kind is kind, f"{text!r} ({locale}) gave {result}"
    if kind is LANG:
        assert result.language == language
    else:
        assert result.language is None


# --------------------------------------------------------------------------
# Per-language tables
# --------------------------------------------------------------------------

JA = [
    case("ja", "大丈夫", FINE),
    case("ja", "大丈夫です", FINE),
    case("ja", "大丈夫です。ありがとうございます。", FINE),
    case("ja", "はい、元気です", FINE),
    case("ja", "元気にしています", FINE),
    case("ja", "おかげさまで無事です", FINE),
    case("ja", "問題ありません", FINE),
    case("ja", "ダイジョウブ", FINE),
    case("ja", "ﾀﾞｲｼﾞｮｳﾌﾞ", FINE),
    case("ja", "daijobu", FINE),
    case("ja", "OKです", FINE),
    case("ja", "⭕", FINE),
    case("ja", "1です", FINE),
    case("ja", "１番", FINE),
    case("ja", "大丈夫？", UNCLEAR),
    case("ja", "大丈夫ですか", UNCLEAR),
    case("ja", "大丈夫じゃない", HELP),
    case("ja", "元気がない", HELP),
    case("ja", "元気ではありません", HELP),
    case("ja", "大丈夫じゃない？", UNCLEAR),
    case("ja", "助けて", HELP),
    case("ja", "足が痛い", HELP),
    case("ja", "救急車を呼んで", HELP),
    case("ja", "大丈夫だけど薬がない", HELP),
    case("ja", "電話ください", TALK),
    case("ja", "話したいです", TALK),
    case("ja", "相談したいことがあります", TALK),
    case("ja", "まあまあです", UNCLEAR),
    case("ja", "困っていません", UNCLEAR),
    case("ja", "やめて", UNCLEAR),
    case("ja", "10時", UNCLEAR),
    case("ja", "1と2", HELP),
    case("ja", "配信停止", STOP),
    case("ja", "停止", STOP),
    case("ja", "再開", START),
    case("ja", "日本語", LANG, "ja"),
    case("ja", "英語", UNCLEAR),
    case("ja", "はい", UNCLEAR),
    case("ja", "いいえ", UNCLEAR),
]

EASY_JA = [
    case("easy_ja", "だいじょうぶ", FINE),
    case("easy_ja", "だいじょうぶです", FINE),
    case("easy_ja", "だいじょぶ", FINE),
    case("easy_ja", "げんき", FINE),
    case("easy_ja", "げんきです ありがとう", FINE),
    case("easy_ja", "はい だいじょうぶ", FINE),
    case("easy_ja", "１", FINE),
    case("easy_ja", "①", FINE),
    case("easy_ja", "👍", FINE),
    case("easy_ja", "だいじょうぶ？", UNCLEAR),
    case("easy_ja", "だいじょうぶじゃない", HELP),
    case("easy_ja", "げんきじゃない", HELP),
    case("easy_ja", "げんきない", HELP),
    case("easy_ja", "たすけて", HELP),
    case("easy_ja", "たすけてください", HELP),
    case("easy_ja", "おなかが いたい", HELP),
    case("easy_ja", "くるしい", HELP),
    case("easy_ja", "だいじょうぶ でも くすりがない", HELP),
    case("easy_ja", "２", HELP),
    case("easy_ja", "はなしたい", TALK),
    case("easy_ja", "でんわ ください", TALK),
    case("easy_ja", "③", TALK),
    case("easy_ja", "さびしい", TALK),
    case("easy_ja", "わからない", UNCLEAR),
    case("easy_ja", "やさしい日本語", LANG, "easy_ja"),
    case("easy_ja", "やさしいにほんご", LANG, "easy_ja"),
    case("easy_ja", "ていし", STOP),
]

EN = [
    case("en", "ok", FINE),
    case("en", "OK", FINE),
    case("en", "Okay!", FINE),
    case("en", "okk", FINE),
    case("en", "okkk", FINE),
    case("en", "Fine", FINE),
    case("en", "fien", FINE),
    case("en", "I'm fine", FINE),
    case("en", "I’m fine, thank you", FINE),
    case("en", "im good thanks", FINE),
    case("en", "All good", FINE),
    case("en", "  fine   thanks  ", FINE),
    case("en", "No problem", FINE),
    case("en", "1", FINE),
    case("en", "1 ok", FINE),
    case("en", "1!", FINE),
    case("en", "👍🏽", FINE),
    case("en", "ok?", UNCLEAR),
    case("en", "not ok", HELP),
    case("en", "NOT OK", HELP),
    case("en", "I'm not okay", HELP),
    case("en", "I don't feel good", HELP),
    case("en", "not really fine", HELP),
    case("en", "No, I'm fine", UNCLEAR),
    case("en", "not bad", UNCLEAR),
    case("en", "fine but tired", UNCLEAR),
    case("en", "help", HELP),
    case("en", "Please help me", HELP),
    case("en", "I'm ok but my wife is sick", HELP),
    case("en", "I can't stop crying", HELP),
    case("en", "🆘", HELP),
    case("en", "2", HELP),
    case("en", "call me", TALK),
    case("en", "I want to talk", TALK),
    case("en", "3", TALK),
    case("en", "📞", TALK),
    case("en", "fire", HELP),
    case("en", "STOP", STOP),
    case("en", "Stop.", STOP),
    case("en", "unsubscribe", STOP),
    case("en", "START", START),
    case("en", "English", LANG, "en"),
    case("en", "English please", LANG, "en"),
    case("en", "yes", UNCLEAR),
    case("en", "090-1234-5678", UNCLEAR),
    case("en", "12", HELP),
    case("en", "1 2", HELP),
    case("en", "13", UNCLEAR),
]

VI = [
    case("vi", "ổn", FINE),
    case("vi", "Tôi ổn", FINE),
    case("vi", "tôi ổn ạ", FINE),
    case("vi", "Dạ em khỏe ạ, cảm ơn", FINE),
    case("vi", "khoẻ", FINE),
    case("vi", "không sao", FINE),
    case("vi", "Không sao đâu", FINE),
    case("vi", "khong sao dau", FINE),
    case("vi", "toi on", FINE),
    case("vi", "1", FINE),
    case("vi", "👍", FINE),
    case("vi", "ổn?", UNCLEAR),
    case("vi", "không ổn", HELP),
    case("vi", "khong on", HELP),
    case("vi", "ko ổn", HELP),
    case("vi", "chưa ổn", HELP),
    case("vi", "không khỏe", HELP),
    case("vi", "không được khỏe lắm", HELP),
    case("vi", "tạm ổn", UNCLEAR),
    case("vi", "giúp tôi", HELP),
    case("vi", "cuu toi", HELP),
    case("vi", "Tôi ổn nhưng bị đau chân", HELP),
    case("vi", "２", HELP),
    case("vi", "muốn nói chuyện", TALK),
    case("vi", "gọi cho tôi", TALK),
    case("vi", "goi cho toi", TALK),
    case("vi", "dừng", STOP),
    case("vi", "dung", STOP),
    case("vi", "bắt đầu", START),
    case("vi", "Tiếng Việt", LANG, "vi"),
    case("vi", "tieng viet", LANG, "vi"),
    case("vi", "tôi ổn nhưng", UNCLEAR),
]

ID = [
    case("id", "baik", FINE),
    case("id", "Saya baik", FINE),
    case("id", "baik-baik saja", FINE),
    case("id", "Alhamdulillah sehat", FINE),
    case("id", "tidak apa-apa", FINE),
    case("id", "tidak apa apa", FINE),
    case("id", "gpp", FINE),
    case("id", "aman pak, terima kasih", FINE),
    case("id", "1", FINE),
    case("id", "oke", FINE),
    case("id", "sehat?", UNCLEAR),
    case("id", "tidak baik", HELP),
    case("id", "gak baik", HELP),
    case("id", "kurang sehat", HELP),
    case("id", "saya tidak sehat", HELP),
    case("id", "tolong", HELP),
    case("id", "saya sakit", HELP),
    case("id", "baik tapi lapar", HELP),
    case("id", "butuh bantuan", HELP),
    case("id", "ingin bicara", TALK),
    case("id", "tolong telepon saya", TALK),
    case("id", "③", TALK),
    case("id", "lumayan", UNCLEAR),
    case("id", "berhenti", STOP),
    case("id", "mulai", START),
    case("id", "Bahasa Indonesia", LANG, "id"),
    case("id", "baik tapi", UNCLEAR),
]

FIL = [
    case("fil", "okay lang", FINE),
    case("fil", "Ok lang po", FINE),
    case("fil", "mabuti naman", FINE),
    case("fil", "ayos lang po, salamat", FINE),
    case("fil", "walang problema", FINE),
    case("fil", "Salamat po, okay lang kami", FINE),
    case("fil", "ligtas kami", FINE),
    case("fil", "1", FINE),
    case("fil", "okay lang?", UNCLEAR),
    case("fil", "hindi ako okay", HELP),
    case("fil", "hindi ok", HELP),
    case("fil", "hindi po ako okay", HELP),
    case("fil", "di ako ok", HELP),
    case("fil", "hindi mabuti", HELP),
    case("fil", "medyo ok", UNCLEAR),
    case("fil", "tulong", HELP),
    case("fil", "tulungan mo ako", HELP),
    case("fil", "okay lang pero masakit ulo ko", HELP),
    case("fil", "tawagan mo ako", TALK),
    case("fil", "gusto kong makipag-usap", TALK),
    case("fil", "Tagalog", LANG, "fil"),
    case("fil", "Filipino", LANG, "fil"),
    case("fil", "tigil", STOP),
    case("fil", "simula", START),
    case("fil", "２", HELP),
]

NE = [
    case("ne", "ठीक छ", FINE),
    case("ne", "म ठीक छु", FINE),
    case("ne", "ठिक छ", FINE),
    case("ne", "सन्चै छ", FINE),
    case("ne", "हजुर, ठीक छ। धन्यवाद", FINE),
    case("ne", "thik chha", FINE),
    case("ne", "sanchai xa", FINE),
    case("ne", "१", FINE),
    case("ne", "1", FINE),
    case("ne", "ठीक छ?", UNCLEAR),
    case("ne", "ठीक छैन", HELP),
    case("ne", "म ठीक छैन", HELP),
    case("ne", "सन्चो छैन", HELP),
    case("ne", "thik chaina", HELP),
    case("ne", "मद्दत", HELP),
    case("ne", "गुहार", HELP),
    case("ne", "ठीक छ तर बिरामी छु", HELP),
    case("ne", "२", HELP),
    case("ne", "कुरा गर्न चाहन्छु", TALK),
    case("ne", "फोन गर्नुहोस्", TALK),
    case("ne", "३", TALK),
    case("ne", "नेपाली", LANG, "ne"),
    case("ne", "nepali", LANG, "ne"),
    case("ne", "रोक", STOP),
    case("ne", "ठीकै", UNCLEAR),
]

PT_BR = [
    case("pt_BR", "estou bem", FINE),
    case("pt_BR", "Tô bem", FINE),
    case("pt_BR", "to bem", FINE),
    case("pt_BR", "Tudo bem, obrigado!", FINE),
    case("pt_BR", "tudo certo", FINE),
    case("pt_BR", "beleza", FINE),
    case("pt_BR", "Estamos bem, graças a Deus", FINE),
    case("pt_BR", "1", FINE),
    case("pt_BR", "👌", FINE),
    case("pt_BR", "tudo bem?", UNCLEAR),
    case("pt_BR", "não estou bem", HELP),
    case("pt_BR", "não tô bem", HELP),
    case("pt_BR", "nao to bem", HELP),
    case("pt_BR", "n tô bem", HELP),
    case("pt_BR", "mais ou menos", UNCLEAR),
    case("pt_BR", "socorro", HELP),
    case("pt_BR", "preciso de ajuda", HELP),
    case("pt_BR", "estou bem, mas estou com dor", HELP),
    case("pt_BR", "quero conversar", TALK),
    case("pt_BR", "me liga", TALK),
    case("pt_BR", "Português", LANG, "pt_BR"),
    case("pt_BR", "portugues", LANG, "pt_BR"),
    case("pt_BR", "parar", STOP),
    case("pt_BR", "sair", STOP),
    case("pt_BR", "②", HELP),
    case("pt-BR", "estou bem", FINE),
]

ZH = [
    case("zh_Hans", "我很好", FINE),
    case("zh_Hans", "很好", FINE),
    case("zh_Hans", "好", FINE),
    case("zh_Hans", "好的，谢谢", FINE),
    case("zh_Hans", "没事", FINE),
    case("zh_Hans", "没问题", FINE),
    case("zh_Hans", "你好，我很好", FINE),
    case("zh_Hans", "不要紧", FINE),
    case("zh_Hans", "１", FINE),
    case("zh_Hans", "①", FINE),
    case("zh_Hans", "没事？", UNCLEAR),
    case("zh_Hans", "不好", HELP),
    case("zh_Hans", "不太好", HELP),
    case("zh_Hans", "我不太好", HELP),
    case("zh_Hans", "不是很好", HELP),
    case("zh_Hans", "还行", UNCLEAR),
    case("zh_Hans", "不错", UNCLEAR),
    case("zh_Hans", "救命", HELP),
    case("zh_Hans", "帮帮我", HELP),
    case("zh_Hans", "不舒服", HELP),
    case("zh_Hans", "好痛", HELP),
    case("zh_Hans", "我很好但是没有药", HELP),
    case("zh_Hans", "想聊聊", TALK),
    case("zh_Hans", "给我打电话", TALK),
    case("zh_Hans", "退订", STOP),
    case("zh_Hans", "中文", LANG, "zh_Hans"),
    case("zh_Hans", "简体中文", LANG, "zh_Hans"),
    case("zh_Hans", "我好累", UNCLEAR),
    case("zh", "我很好", FINE),
]

OTHERS = [
    # Traditional Chinese
    case("zh_Hant", "1", FINE),
    case("zh_Hant", "沒事", FINE),
    case("zh_Hant", "我很好", FINE),
    case("zh_Hant", "不太好", HELP),
    case("zh_Hant", "救命", HELP),
    case("zh_Hant", "繁體中文", LANG, "zh_Hant"),
    # Korean
    case("ko", "1", FINE),
    case("ko", "괜찮아요", FINE),
    case("ko", "문제없어", FINE),
    case("ko", "괜찮지 않아", HELP),
    case("ko", "안 괜찮아요", HELP),
    case("ko", "도와주세요", HELP),
    case("ko", "한국어", LANG, "ko"),
    # Spanish
    case("es", "1", FINE),
    case("es", "Estoy bien", FINE),
    case("es", "no pasa nada", FINE),
    case("es", "no estoy bien", HELP),
    case("es", "ayuda", HELP),
    case("es", "llámame", TALK),
    case("es", "Español", LANG, "es"),
    case("es", "baja", STOP),
    # Burmese
    case("my", "1", FINE),
    case("my", "၁", FINE),
    case("my", "နေကောင်းပါတယ်", FINE),
    case("my", "နေမကောင်းဘူး", HELP),
    case("my", "မြန်မာ", LANG, "my"),
    # Thai
    case("th", "1", FINE),
    case("th", "๒", HELP),
    case("th", "สบายดีครับ", FINE),
    case("th", "ไม่สบาย", HELP),
    case("th", "ไม่โอเค", HELP),
    case("th", "ไม่เป็นไรค่ะ", FINE),
    case("th", "ภาษาไทย", LANG, "th"),
    # Khmer
    case("km", "1", FINE),
    case("km", "ខ្ញុំសុខសប្បាយ", FINE),
    case("km", "មិនសុខសប្បាយ", HELP),
    case("km", "ជួយផង", HELP),
    case("km", "ខ្មែរ", LANG, "km"),
    # Sinhala
    case("si", "1", FINE),
    case("si", "මම හොඳින්", FINE),
    case("si", "හොඳ නැහැ", HELP),
    case("si", "උදව්", HELP),
    case("si", "සිංහල", LANG, "si"),
]


@pytest.mark.parametrize(("text", "locale", "kind", "language"), JA)
def test_japanese(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), EASY_JA)
def test_easy_japanese(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), EN)
def test_english(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), VI)
def test_vietnamese(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), ID)
def test_indonesian(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), FIL)
def test_filipino(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), NE)
def test_nepali(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), PT_BR)
def test_brazilian_portuguese(
    text: str, locale: str, kind: ReplyKind, language: str | None
) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), ZH)
def test_simplified_chinese(text: str, locale: str, kind: ReplyKind, language: str | None) -> None:
    check(text, locale, kind, language)


@pytest.mark.parametrize(("text", "locale", "kind", "language"), OTHERS)
def test_other_resident_languages(
    text: str, locale: str, kind: ReplyKind, language: str | None
) -> None:
    check(text, locale, kind, language)


# --------------------------------------------------------------------------
# The safety rules, named
# --------------------------------------------------------------------------

NEGATED_OK = [
    ("ja", "大丈夫じゃない"),
    ("ja", "大丈夫ではない"),
    ("ja", "大丈夫じゃないです"),
    ("ja", "元気ない"),
    ("ja", "元気じゃない"),
    ("ja", "だいじょうぶじゃない"),
    ("ja", "daijoubu janai"),
    ("en", "not ok"),
    ("en", "not fine"),
    ("en", "im not ok"),
    ("en", "I am not feeling well"),
    ("es", "no estoy bien"),
    ("pt_BR", "não estou bem"),
    ("pt_BR", "não tô bem"),
    ("vi", "không ổn"),
    ("vi", "khong on"),
    ("id", "tidak baik"),
    ("fil", "hindi ako okay"),
    ("fil", "hindi ok"),
    ("zh_Hans", "不好"),
    ("zh_Hans", "不太好"),
    ("ko", "괜찮지 않아"),
    ("ne", "ठीक छैन"),
]


@pytest.mark.parametrize(
    ("locale", "text"), [pytest.param(loc, t, id=f"{loc}: {t}") for loc, t in NEGATED_OK]
)
def test_negated_ok_is_never_safe(locale: str, text: str) -> None:
    """A negated OK answers "are you all right?" with "no": it escalates.

    It must not be fine whatever the resident's registered language is, so
    every phrase is also tried with no locale and with an unrelated one.
    """
    assert classify(text, locale).kind is HELP
    assert classify(text, None).kind is not FINE
    assert classify(text, "th").kind is not FINE
    assert classify(f"{text}?", locale).kind is UNCLEAR
    assert classify(f"{text} 👍", locale).kind is not FINE


FINE_IDIOMS_WITH_A_NEGATION_WORD = [
    ("zh_Hans", "没事"),
    ("zh_Hant", "沒事"),
    ("zh_Hans", "没问题"),
    ("zh_Hans", "不要紧"),
    ("id", "tidak apa-apa"),
    ("id", "nggak apa-apa"),
    ("fil", "walang problema"),
    ("vi", "không sao"),
    ("ko", "문제없어"),
    ("en", "no problem"),
    ("en", "no worries"),
    ("es", "no pasa nada"),
    ("ja", "問題ない"),
    ("ja", "問題ありません"),
    ("ja", "心配ない"),
    ("th", "ไม่เป็นไร"),
    ("km", "មិនអីទេ"),
    ("si", "කමක් නැහැ"),
]


@pytest.mark.parametrize(
    ("locale", "text"),
    [pytest.param(loc, t, id=f"{loc}: {t}") for loc, t in FINE_IDIOMS_WITH_A_NEGATION_WORD],
)
def test_fine_idioms_containing_a_negation_word_are_fine(locale: str, text: str) -> None:
    assert classify(text, locale).kind is FINE


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param("１", FINE, id="full-width 1"),
        pytest.param("２", HELP, id="full-width 2"),
        pytest.param("３", TALK, id="full-width 3"),
        pytest.param("①", FINE, id="circled 1"),
        pytest.param("②", HELP, id="circled 2"),
        pytest.param("③", TALK, id="circled 3"),
        pytest.param("❶", FINE, id="negative circled 1"),
        pytest.param("❷", HELP, id="negative circled 2"),
        pytest.param("➀", FINE, id="dingbat circled 1"),
        pytest.param("⑴", FINE, id="parenthesised 1"),
        pytest.param("⒉", HELP, id="digit 2 full stop"),
        pytest.param("1️⃣", FINE, id="keycap 1"),
        pytest.param("１です", FINE, id="full-width 1 desu"),
        pytest.param("①番", FINE, id="circled 1 ban"),
        pytest.param("１２", HELP, id="full-width 12"),
        pytest.param("①③", UNCLEAR, id="circled 1 and 3"),
        pytest.param("⑩", UNCLEAR, id="circled 10 is not a menu answer"),
        pytest.param("१", FINE, id="Devanagari 1"),
        pytest.param("๓", TALK, id="Thai 3"),
        pytest.param("２人とも元気", UNCLEAR, id="a count is not a menu answer"),
    ],
)
def test_full_width_and_circled_digits(text: str, kind: ReplyKind) -> None:
    for locale in ("ja", "vi", None):
        assert classify(text, locale).kind is kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param("toi on", FINE, id="toi on"),
        pytest.param("Toi on a", FINE, id="Toi on a"),
        pytest.param("khoe", FINE, id="khoe"),
        pytest.param("em khoe a", FINE, id="em khoe a"),
        pytest.param("khong sao", FINE, id="khong sao"),
        pytest.param("binh thuong", FINE, id="binh thuong"),
        pytest.param("khong on", HELP, id="khong on"),
        pytest.param("KHONG ON", HELP, id="KHONG ON"),
        pytest.param("chua on", HELP, id="chua on"),
        pytest.param("khong khoe", HELP, id="khong khoe"),
        pytest.param("ko on", HELP, id="ko on"),
        pytest.param("giup toi", HELP, id="giup toi"),
        pytest.param("cap cuu", HELP, id="cap cuu"),
        pytest.param("toi on nhung dau bung", HELP, id="toi on nhung dau bung"),
        pytest.param("muon noi chuyen", TALK, id="muon noi chuyen"),
        pytest.param("dung", STOP, id="dung"),
        pytest.param("tieng viet", LANG, id="tieng viet"),
        pytest.param("Tôi ổn", FINE, id="with diacritics still works"),
        pytest.param("tôi on", FINE, id="half the diacritics"),
    ],
)
def test_vietnamese_without_diacritics(text: str, kind: ReplyKind) -> None:
    result = classify(text, "vi")
    assert result.kind is kind
    if kind is LANG:
        assert result.language == "vi"


def test_vietnamese_without_diacritics_is_not_read_into_other_languages() -> None:
    """Stripped of accents "ổn" is the English "on": never fine for others."""
    assert classify("on", "en").kind is UNCLEAR
    assert classify("toi on", "ja").kind is UNCLEAR
    assert classify("dung", "en").kind is UNCLEAR
    # Issue 15: keyword sets are scoped to the resident's languages, so even
    # the accented Vietnamese word is not a "fine" for an English resident.
    assert classify("ổn", "en").kind is UNCLEAR
    assert classify("ổn", "vi").kind is FINE


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        pytest.param("ja", "大丈夫だけど薬がない", id="ja: fine but no medicine"),
        pytest.param("ja", "元気です。でも足が痛い", id="ja: fine but leg hurts"),
        pytest.param("ja", "大丈夫 助けて", id="ja: fine help"),
        pytest.param("ja", "1 2", id="ja: 1 and 2"),
        pytest.param("ja", "1と2", id="ja: 1 to 2"),
        pytest.param("ja", "12", id="ja: 12"),
        pytest.param("ja", "21", id="ja: 21"),
        pytest.param("en", "ok but I need help", id="en: ok but need help"),
        pytest.param("en", "fine 🆘", id="en: fine sos emoji"),
        pytest.param("en", "👍 2", id="en: thumbs up 2"),
        pytest.param("en", "I'm fine but my husband fell", id="en: fine but husband fell"),
        pytest.param("vi", "tôi ổn nhưng cần giúp", id="vi: fine but need help"),
        pytest.param("id", "baik, tapi sakit", id="id: fine but sick"),
        pytest.param("fil", "okay lang pero may sakit", id="fil: ok but sick"),
        pytest.param("pt_BR", "tudo bem mas preciso de ajuda", id="pt: fine but need help"),
        pytest.param("zh_Hans", "我很好，救命", id="zh: fine help"),
        pytest.param("ne", "ठीक छ तर मद्दत चाहियो", id="ne: fine but help"),
        pytest.param("ko", "괜찮아요 도와주세요", id="ko: fine help"),
        pytest.param("es", "bien pero con dolor", id="es: fine but pain"),
    ],
)
def test_mixed_fine_and_help_is_help(locale: str, text: str) -> None:
    assert classify(text, locale).kind is HELP


UNRECOGNISED = [
    "",
    " ",
    "\n\t",
    "...",
    "？",
    "🌧",
    "😐",
    "🍙🍙",
    "はい",
    "yes",
    "hmm",
    "asdfgh",
    "ok ok but",
    "fine???",
    "10時",
    "09012345678",
    "+81 90 1234 5678",
    "2024/1/1",
    "¥2,000",
    "0",
    "4",
    "9",
    "11",
    "13",
    "fire",  # a word one letter away from "fine" is not fine
    "find",
    "fin",
    "god",
    "on",
    "\x00\x01\x02",
    "\ud800",
    "\u200b\u200d",
    "a" * 5000,
    "大丈夫" * 1000,
    "👍" * 3000,
]


@pytest.mark.parametrize("text", [pytest.param(t, id=repr(t)[:40]) for t in UNRECOGNISED])
def test_anything_unrecognised_is_unclear_never_fine(text: str) -> None:
    result = classify(text, "en")
    assert result.kind is not FINE
    if text not in ("fire",):
        assert result.kind is UNCLEAR


def test_random_input_never_raises_and_fine_always_names_its_reason() -> None:
    """Fuzz with a fixed seed: any code point, any length, any locale.

    What can honestly be promised of arbitrary text is that classification
    never fails and that "fine" is only ever given with the fine signal that
    justified it, visible in the (normalised) reply.
    """
    rng = random.Random(20240101)
    alphabets = [
        string.printable,
        "".join(chr(c) for c in range(0x3000, 0x30FF)),
        "".join(chr(c) for c in range(0x0900, 0x097F)),
        "👍🆘📞😭🙂❌\u200d\ufe0f\U0001f3fd",
    ]
    locales: list[str | None] = [*RESIDENT_LANGUAGES, None, "xx", ""]
    for _ in range(1500):
        if rng.random() < 0.2:
            text = "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(0, 40)))
        else:
            alphabet = rng.choice(alphabets)
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        result = classify(text, rng.choice(locales))
        assert isinstance(result, Classification)
        assert result.kind in ReplyKind
        if result.kind is FINE:
            assert result.matched and result.matched in _normalize(text)


def test_random_ascii_words_are_never_fine() -> None:
    """Words of 6+ random letters and punctuation are never fine.

    Every such word is unknown (no fine keyword or filler is 6+ letters
    made of a random mix), and any unknown word keeps a reply out of "fine".
    A random word is prefixed with "zq" to make sure it is not a keyword.
    """
    rng = random.Random(7)
    pool = string.ascii_letters + string.punctuation + " "
    for _ in range(1000):
        noise = "zq" + "".join(rng.choice(pool) for _ in range(rng.randrange(4, 30)))
        assert classify(noise, rng.choice(RESIDENT_LANGUAGES)).kind is not FINE
        assert classify(f"ok {noise}", "en").kind is not FINE
        assert classify(f"{noise} 大丈夫", "ja").kind is not FINE


def _fine_keywords() -> list[pytest.ParameterSet]:
    params = []
    for code, keywords in sorted(load_keywords().items()):
        for word in keywords.get("fine"):
            locale = code if code in RESIDENT_LANGUAGES else None
            params.append(pytest.param(locale, word, id=f"{code}: {word}"))
    return params


@pytest.mark.parametrize(("locale", "word"), _fine_keywords())
def test_every_fine_keyword_is_fine_alone_and_never_with_a_doubt(
    locale: str | None, word: str
) -> None:
    """Data check: each fine keyword works, and no addition of doubt passes.

    A question mark, an unknown word, a negation in front or behind, or a
    help word must each take it out of "fine".
    """
    assert classify(word, locale).kind is FINE
    for doubtful in (
        f"{word}?",
        f"{word} zqxv",
        f"zqxv {word}",
        f"not {word}",
        f"{word} じゃない",
        f"{word} छैन",
        f"không {word}",
        f"不{word}",
        f"{word} 😭",
    ):
        assert classify(doubtful, locale).kind is not FINE, doubtful
    assert classify(f"{word} help", locale).kind is HELP


# --------------------------------------------------------------------------
# Opt-out, opt-in, language change
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "text", "kind"),
    [
        pytest.param("en", "STOP", STOP, id="STOP"),
        pytest.param("en", "stopall", STOP, id="STOPALL"),
        pytest.param("en", "Unsubscribe", STOP, id="UNSUBSCRIBE"),
        pytest.param("en", "cancel", STOP, id="CANCEL"),
        pytest.param("en", "END", STOP, id="END"),
        pytest.param("en", "quit", STOP, id="QUIT"),
        pytest.param("ja", "ＳＴＯＰ", STOP, id="full-width STOP"),
        pytest.param("ja", "配信停止", STOP, id="ja 配信停止"),
        pytest.param("zh_Hans", "退订", STOP, id="zh 退订"),
        pytest.param("ko", "수신거부", STOP, id="ko 수신거부"),
        pytest.param("ko", "중지", STOP, id="ko 중지"),
        pytest.param("id", "berhenti", STOP, id="id berhenti"),
        pytest.param("es", "baja", STOP, id="es baja"),
        pytest.param("en", "start", START, id="START"),
        pytest.param("en", "UNSTOP", START, id="UNSTOP"),
        pytest.param("ja", "開始", START, id="ja 開始"),
        pytest.param("ja", "再開", START, id="ja 再開"),
        pytest.param("en", "stop please call me", TALK, id="stop inside a sentence"),
        pytest.param("en", "I can't stop crying", HELP, id="cant stop crying"),
        pytest.param("en", "please stop", UNCLEAR, id="please stop is not the command"),
        pytest.param("ja", "やめて", UNCLEAR, id="yamete may be distress"),
        pytest.param("en", "the end", UNCLEAR, id="the end"),
    ],
)
def test_stop_and_start_only_as_the_whole_message(locale: str, text: str, kind: ReplyKind) -> None:
    assert classify(text, locale).kind is kind


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param("Tiếng Việt", "vi", id="Tiếng Việt"),
        pytest.param("tieng viet", "vi", id="tieng viet"),
        pytest.param("English", "en", id="English"),
        pytest.param("English please", "en", id="English please"),
        pytest.param("ภาษาไทย", "th", id="ภาษาไทย"),
        pytest.param("日本語", "ja", id="日本語"),
        pytest.param("日本語でお願いします", "ja", id="日本語でお願いします"),
        pytest.param("やさしい日本語", "easy_ja", id="やさしい日本語"),
        pytest.param("Bahasa Indonesia", "id", id="Bahasa Indonesia"),
        pytest.param("Tagalog", "fil", id="Tagalog"),
        pytest.param("Filipino", "fil", id="Filipino"),
        pytest.param("नेपाली", "ne", id="नेपाली"),
        pytest.param("Português", "pt_BR", id="Português"),
        pytest.param("Español", "es", id="Español"),
        pytest.param("한국어", "ko", id="한국어"),
        pytest.param("中文", "zh_Hans", id="中文"),
        pytest.param("简体中文", "zh_Hans", id="简体中文"),
        pytest.param("繁體中文", "zh_Hant", id="繁體中文"),
        pytest.param("မြန်မာ", "my", id="မြန်မာ"),
        pytest.param("ខ្មែរ", "km", id="ខ្មែរ"),
        pytest.param("සිංහල", "si", id="සිංහල"),
    ],
)
def test_a_language_name_asks_to_change_language(text: str, language: str) -> None:
    for locale in ("ja", "en", None):
        result = classify(text, locale)
        assert result.kind is LANG
        assert result.language == language


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("I speak English but I need help", id="name inside a sentence"),
        pytest.param("English or 日本語", id="two languages"),
        pytest.param("English ok", id="name and fine"),
    ],
)
def test_a_language_name_inside_a_sentence_is_not_a_request(text: str) -> None:
    assert classify(text, "en").kind is not LANG


def test_every_resident_language_has_a_complete_keyword_file() -> None:
    keywords = load_keywords()
    names: dict[str, str] = {}
    for code in RESIDENT_LANGUAGES:
        assert code in keywords, f"keywords/{code}.toml is missing"
        for key in (
            "fine",
            "filler",
            "help",
            "needs",
            "talk",
            "question",
            "hedge",
            "past",
            "reported",
            "greetings",
            "statement",
            "stop",
            "start",
            "names",
        ):
            assert keywords[code].get(key), f"keywords/{code}.toml has no {key}"
        negation = ("negated", "negators_before", "negators_after")
        assert any(keywords[code].get(key) for key in negation), f"{code}: no negation"
        for name in keywords[code].get("names"):
            assert names.setdefault(name, code) == code, f"{name} names two languages"
    assert set(keywords) <= {*RESIDENT_LANGUAGES, "_common"}


def test_locale_spelling_variants_are_understood() -> None:
    for locale in ("pt_BR", "pt-BR", "pt-br", "pt"):
        assert classify("nao to bem", locale).kind is HELP
    assert classify("khong on", "vi-VN").kind is HELP


def test_input_is_truncated_and_a_truncated_reply_is_never_fine() -> None:
    assert classify("ok " + "ok " * MAX_INPUT_CHARS, "en").kind is UNCLEAR
    assert classify("ok " * 100, "en").kind is FINE


def test_classification_is_frozen_and_reply_kind_is_a_string() -> None:
    result = classify("ok", "en")
    with pytest.raises(AttributeError):
        result.kind = HELP  # type: ignore[misc]
    assert result.kind == "fine"
    assert result.matched == "ok"
    assert classify("大丈夫じゃない", "ja").matched == "大丈夫じゃない"


def test_private_use_characters_keep_a_reply_out_of_fine() -> None:
    """Old Japanese phones send carrier emoji as private-use code points."""
    assert classify("大丈夫\ue001", "ja").kind is UNCLEAR


def test_prepare_builds_the_matchers_without_error() -> None:
    prepare()


# --------------------------------------------------------------------------
# Issue 15: "fine" is a decision about the whole message
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        # Questions without a question mark, greetings that ask after someone.
        pytest.param("en", "are we safe", id="en: are we safe"),
        pytest.param("en", "is everyone ok", id="en: is everyone ok"),
        pytest.param("en", "how are you", id="en: how are you"),
        pytest.param("pt_BR", "oi tudo bem", id="pt: oi tudo bem"),
        pytest.param("es", "hola todo bien", id="es: hola todo bien"),
        pytest.param("km", "សុខសប្បាយទេ", id="km: how are you"),
        pytest.param("mn", "сайн байна уу", id="mn: how are you"),
        pytest.param("ta", "நலமா", id="ta: are you well"),
        pytest.param("hi", "kya aap theek hain", id="hi: are you fine"),
        # Tag questions.
        pytest.param("ja", "大丈夫ですよね", id="ja: desu yo ne"),
        pytest.param("ja", "大丈夫だよね", id="ja: da yo ne"),
        pytest.param("ja", "大丈夫でしょ", id="ja: desho"),
        pytest.param("en", "we're fine right", id="en: right"),
        pytest.param("zh_Hans", "没事吧", id="zh: mei shi ba"),
        # Hedges and ellipses.
        pytest.param("id", "aman sih", id="id: aman sih"),
        pytest.param("en", "probably fine", id="en: probably"),
        pytest.param("en", "kind of ok", id="en: kind of"),
        pytest.param("ja", "まあ大丈夫", id="ja: maa"),
        pytest.param("ja", "大丈夫…", id="ja: ellipsis"),
        pytest.param("en", "I'm fine...", id="en: ellipsis"),
        # Past tense and reported speech.
        pytest.param("en", "we were ok", id="en: we were ok"),
        pytest.param("en", "was fine", id="en: was fine"),
        pytest.param("ja", "大丈夫だった", id="ja: datta"),
        pytest.param("en", "he says he's fine", id="en: he says"),
        pytest.param("ja", "母は大丈夫と言っている", id="ja: mother says"),
    ],
)
def test_questions_hedges_past_and_reported_speech_are_never_fine(locale: str, text: str) -> None:
    result = classify(text, locale)
    assert result.kind is UNCLEAR, result
    assert result.words, "the decision names its words"


@pytest.mark.parametrize(
    ("locale", "text", "word"),
    [
        pytest.param("en", "no water", "no water", id="en: no water"),
        pytest.param("ja", "水がない", "水がない", id="ja: mizu ga nai"),
        pytest.param("vi", "không có nước", "không có nước", id="vi: no water"),
        pytest.param("vi", "khong co nuoc", "khong co nuoc", id="vi: no water, no accents"),
        pytest.param("en", "mother fell", "fell", id="en: mother fell"),
        pytest.param("en", "house flooded", "flooded", id="en: house flooded"),
        pytest.param("en", "feeling unwell", "feeling unwell", id="en: feeling unwell"),
        pytest.param("en", "no food left", "no food left", id="en: no food left"),
        pytest.param("hi", "pani nahi", "pani nahi", id="hi: pani nahi"),
        pytest.param("ur", "پانی نہیں", "پانی نہیں", id="ur: no water"),
        pytest.param("bn", "pani nai", "pani nai", id="bn: pani nai"),
        pytest.param("ta", "thanni illa", "thanni illa", id="ta: no water"),
        pytest.param("mn", "ус байхгүй", "ус байхгүй", id="mn: no water"),
        pytest.param("ne", "khana chaina", "khana chaina", id="ne: no food"),
        pytest.param("fil", "walang bigas", "walang bigas", id="fil: no rice"),
        pytest.param("ja", "大丈夫だけど停電してる", "停電", id="ja: fine but power cut"),
    ],
)
def test_a_described_need_is_help_and_names_the_need(locale: str, text: str, word: str) -> None:
    result = classify(text, locale)
    assert result.kind is HELP, result
    assert word in result.words


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        pytest.param("vi", "ổn rồi", id="vi: on roi"),
        pytest.param("vi", "ko sao", id="vi: ko sao"),
        pytest.param("ko", "1번", id="ko: 1 beon"),
        pytest.param("ko", "괜찮아요 ㅎㅎ", id="ko: laughter"),
        pytest.param("th", "สบายดี 555", id="th: laughter"),
        pytest.param("zh_Hans", "我没事儿啦", id="zh: wo mei shir la"),
        pytest.param("ne", "thik nai chha", id="ne: thik nai chha"),
        pytest.param("ne", "ma thik nai chu", id="ne: ma thik nai chu"),
        pytest.param("hi", "theek hoon", id="hi: theek hoon"),
        pytest.param("ur", "میں ٹھیک ہوں", id="ur: I am fine"),
        pytest.param("bn", "ami bhalo achi", id="bn: I am fine"),
        pytest.param("ta", "naan nalla irukken", id="ta: I am fine"),
        pytest.param("mn", "би сайн байна", id="mn: I am fine"),
        pytest.param("ja", "元気です www", id="ja: www"),
        pytest.param("es", "estoy bien jaja", id="es: jaja"),
        pytest.param("id", "aman wkwk", id="id: wkwk"),
        pytest.param("pt_BR", "tô bem kkk", id="pt: kkk"),
        pytest.param("en", "hi, I'm fine thanks", id="en: greeting with a statement"),
        pytest.param("my", "၁", id="my: Burmese 1"),
        pytest.param("bn", "১", id="bn: Bengali 1"),
    ],
)
def test_plain_fine_replies_in_every_form_are_fine(locale: str, text: str) -> None:
    result = classify(text, locale)
    assert result.kind is FINE, result
    assert result.reason in ("fine", "menu") and result.words


def test_false_alarms_of_other_languages_are_gone() -> None:
    """Romaji "nai" is not a negator for Nepali; Khmer "ទេ" alone ends a question."""
    assert classify("thik nai chha", "ne").kind is FINE
    assert classify("សុខសប្បាយទេ", "km").kind is UNCLEAR
    assert classify("មិនសុខសប្បាយទេ", "km").kind is HELP
    # A warning word of a language out of scope still blocks "fine", but never alarms.
    result = classify("ok tolong", "vi")
    assert (result.kind, result.reason, result.words) == (UNCLEAR, "foreign", ("tolong",))
    assert classify("ok tolong", "id").kind is HELP
    # Unknown language: a help word of any language counts.
    assert classify("tolong", None).kind is HELP


def test_fine_words_count_only_in_the_residents_languages() -> None:
    assert classify("괜찮아요", "ko").kind is FINE
    assert classify("괜찮아요", "vi").kind is UNCLEAR
    assert classify("tudo bem", "es").kind is FINE  # Spanish residents mix in Portuguese
    assert classify("大丈夫", "vi").kind is FINE  # Japanese counts for everyone
    assert classify("I'm fine", "ko").kind is FINE  # and so does English
    assert classify("daijoubu", "ne").kind is UNCLEAR  # romaji does not, for Nepali
    assert classify("daijoubu", "vi").kind is FINE


def test_every_decision_names_its_words_and_reason() -> None:
    result = classify("大丈夫 zqx", "ja")
    assert (result.kind, result.reason, result.words) == (UNCLEAR, "leftover", ("zqx",))
    result = classify("大丈夫じゃない", "ja")
    assert (result.reason, result.matched) == ("negated", "大丈夫じゃない")


def test_an_unknown_language_is_read_conservatively() -> None:
    """Fine only in Japanese or English; help, need and talk words of any language count."""
    assert classify("大丈夫です", None).kind is FINE
    assert classify("I'm fine", None).kind is FINE
    assert classify("thik chha", None).kind is UNCLEAR
    assert classify("tudo bem", "xx").kind is UNCLEAR
    assert classify("pani chaina", None).kind is HELP
    assert classify("没水了", None).kind is HELP
    assert classify("想聊聊", None).kind is TALK

"""The languages Mimamori speaks to residents, members and staff.

A resident's ``language`` column stores one of :data:`SUPPORTED_CODES` exactly; everything
else (catalog lookup, date formats, the Twilio voice, SMS length budgets) is derived from
the :class:`Language` record here, so adding a language is one entry plus one catalog.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from babel import Locale

SmsEncoding = Literal["GSM-7", "UCS-2"]

#: The last step of every fallback chain. Easy Japanese (やさしい日本語) is what Japanese
#: disaster response uses for people whose language is not covered, so it is a better
#: default than standard Japanese or English.
FALLBACK_CODE = "easy_ja"


@dataclass(frozen=True, slots=True)
class TwilioVoice:
    """A ``<Say>`` voice; both attributes must be given because Twilio rejects mismatches."""

    voice: str
    language: str


@dataclass(frozen=True, slots=True)
class Language:
    """Everything the service needs to know to reach a person in this language."""

    code: str
    native_name: str
    english_name: str
    japanese_name: str
    babel_locale: str
    catalog: str
    sms_encoding: SmsEncoding
    voice: TwilioVoice | None
    aliases: tuple[str, ...] = field(default=())

    @property
    def has_voice(self) -> bool:
        return self.voice is not None

    @property
    def base_code(self) -> str:
        """The language without its region/script, used as the second fallback step."""
        return self.code.split("_", 1)[0]

    @property
    def right_to_left(self) -> bool:
        """Written right to left (Urdu), as CLDR says of the Babel locale."""
        return Locale.parse(self.babel_locale).character_order == "right-to-left"


# Voices were chosen from Twilio's published <Say> voice list (Amazon Polly and Google
# voices). Nepali, Burmese, Khmer, Sinhala, Mongolian and Urdu have no Twilio TTS voice
# (Twilio lists no mn-* or ur-* voice or <Say> language): calls to those residents speak
# Easy Japanese unless audio is shipped or recorded for them (see i18n.voice).
_JA_VOICE = TwilioVoice(voice="Polly.Mizuki", language="ja-JP")

LANGUAGES: tuple[Language, ...] = (
    Language(
        code="ja",
        native_name="日本語",
        english_name="Japanese",
        japanese_name="日本語",
        babel_locale="ja",
        catalog="ja",
        sms_encoding="UCS-2",
        voice=_JA_VOICE,
        aliases=("ja_jp", "jpn", "japanese", "にほんご", "日本語(標準)", "nihongo"),
    ),
    Language(
        code="easy_ja",
        native_name="やさしい日本語",
        english_name="Easy Japanese",
        japanese_name="やさしい日本語",
        babel_locale="ja",
        catalog="easy_ja",
        sms_encoding="UCS-2",
        voice=_JA_VOICE,
        aliases=(
            "ja_easy",
            "easy_japanese",
            "easyja",
            "easyjapanese",
            "plain_japanese",
            "simple_japanese",
            "ja_x_easy",
            "やさしいにほんご",
            "やさしい日本語",
            "優しい日本語",
            "易しい日本語",
        ),
    ),
    Language(
        code="en",
        native_name="English",
        english_name="English",
        japanese_name="英語",
        babel_locale="en",
        catalog="en",
        sms_encoding="GSM-7",
        voice=TwilioVoice(voice="Polly.Joanna", language="en-US"),
        aliases=("en_us", "en_gb", "eng", "english", "えいご"),
    ),
    Language(
        code="zh_Hans",
        native_name="简体中文",
        english_name="Chinese (Simplified)",
        japanese_name="中国語(簡体字)",
        babel_locale="zh_Hans_CN",
        catalog="zh_Hans",
        sms_encoding="UCS-2",
        voice=TwilioVoice(voice="Polly.Zhiyu", language="cmn-CN"),
        aliases=(
            "zh",
            "zh_cn",
            "zh_sg",
            "zh_hans_cn",
            "zho",
            "chi",
            "cmn",
            "chinese",
            "simplified_chinese",
            "chinese_simplified",
            "chinese(simplified)",
            "中文",
            "简体中文",
            "中文(简体)",
            "汉语",
            "普通话",
            "中国語",
            "中国語(簡体)",
            "中国語(簡体字)",
            "簡体字",
            "簡体中文",
        ),
    ),
    Language(
        code="zh_Hant",
        native_name="繁體中文",
        english_name="Chinese (Traditional)",
        japanese_name="中国語(繁体字)",
        babel_locale="zh_Hant_TW",
        catalog="zh_Hant",
        sms_encoding="UCS-2",
        voice=TwilioVoice(voice="Google.cmn-TW-Standard-A", language="cmn-TW"),
        aliases=(
            "zh_tw",
            "zh_hk",
            "zh_mo",
            "zh_hant_tw",
            "traditional_chinese",
            "chinese_traditional",
            "chinese(traditional)",
            "繁體中文",
            "中文(繁體)",
            "國語",
            "中国語(繁体)",
            "中国語(繁体字)",
            "繁体字",
            "繁体中文",
        ),
    ),
    Language(
        code="ko",
        native_name="한국어",
        english_name="Korean",
        japanese_name="韓国語",
        babel_locale="ko",
        catalog="ko",
        sms_encoding="UCS-2",
        voice=TwilioVoice(voice="Polly.Seoyeon", language="ko-KR"),
        aliases=("ko_kr", "kor", "korean", "韓国語", "朝鮮語", "韓国・朝鮮語", "ハングル"),
    ),
    Language(
        code="vi",
        native_name="Tiếng Việt",
        english_name="Vietnamese",
        japanese_name="ベトナム語",
        babel_locale="vi",
        catalog="vi",
        sms_encoding="UCS-2",
        voice=TwilioVoice(voice="Google.vi-VN-Standard-A", language="vi-VN"),
        aliases=("vi_vn", "vie", "vietnamese", "tieng_viet", "tiengviet"),
    ),
    Language(
        code="fil",
        native_name="Filipino",
        english_name="Filipino (Tagalog)",
        japanese_name="フィリピノ語(タガログ語)",
        babel_locale="fil",
        catalog="fil",
        sms_encoding="GSM-7",
        voice=TwilioVoice(voice="Google.fil-PH-Standard-A", language="fil-PH"),
        aliases=(
            "tl",
            "tl_ph",
            "fil_ph",
            "tgl",
            "tagalog",
            "wikang_filipino",
            "タガログ語",
            "フィリピン語",
            "フィリピノ語",
        ),
    ),
    Language(
        code="ne",
        native_name="नेपाली",
        english_name="Nepali",
        japanese_name="ネパール語",
        babel_locale="ne",
        catalog="ne",
        sms_encoding="UCS-2",
        voice=None,
        aliases=("ne_np", "nep", "nepali", "nepalese", "नेपाली भाषा"),
    ),
    Language(
        code="pt_BR",
        native_name="Português (Brasil)",
        english_name="Portuguese (Brazil)",
        japanese_name="ポルトガル語",
        babel_locale="pt_BR",
        # Brazilian Portuguese is written in the base "pt" catalog: pt_BR falls back to
        # pt by the ordinary rule, and a future pt_PT resident gets the same text.
        catalog="pt",
        sms_encoding="UCS-2",
        voice=TwilioVoice(voice="Polly.Camila", language="pt-BR"),
        aliases=(
            "pt",
            "pt_pt",
            "por",
            "portuguese",
            "brazilian_portuguese",
            "portuguese(brazil)",
            "português",
            "portugues",
            "português(brasil)",
            "português_brasileiro",
            "ポルトガル語(ブラジル)",
            "ブラジル・ポルトガル語",
            "ブラジルポルトガル語",
        ),
    ),
    Language(
        code="es",
        native_name="Español",
        english_name="Spanish",
        japanese_name="スペイン語",
        babel_locale="es",
        catalog="es",
        sms_encoding="UCS-2",
        # Latin American Spanish: most Spanish-speaking residents in Japan are from Peru,
        # Bolivia and Argentina.
        voice=TwilioVoice(voice="Google.es-US-Standard-A", language="es-US"),
        aliases=("es_es", "es_mx", "es_pe", "es_419", "spa", "spanish", "espanol", "castellano"),
    ),
    Language(
        code="id",
        native_name="Bahasa Indonesia",
        english_name="Indonesian",
        japanese_name="インドネシア語",
        babel_locale="id",
        catalog="id",
        sms_encoding="GSM-7",
        voice=TwilioVoice(voice="Google.id-ID-Standard-A", language="id-ID"),
        aliases=("id_id", "in", "ind", "indonesian", "indonesia", "bahasa"),
    ),
    Language(
        code="my",
        native_name="မြန်မာဘာသာ",
        english_name="Burmese",
        japanese_name="ミャンマー語",
        babel_locale="my",
        catalog="my",
        sms_encoding="UCS-2",
        voice=None,
        aliases=("my_mm", "mya", "bur", "burmese", "myanmar", "မြန်မာ", "ビルマ語"),
    ),
    Language(
        code="th",
        native_name="ภาษาไทย",
        english_name="Thai",
        japanese_name="タイ語",
        babel_locale="th",
        catalog="th",
        sms_encoding="UCS-2",
        voice=TwilioVoice(voice="Google.th-TH-Standard-A", language="th-TH"),
        aliases=("th_th", "tha", "thai", "ไทย"),
    ),
    Language(
        code="km",
        native_name="ភាសាខ្មែរ",
        english_name="Khmer",
        japanese_name="クメール語",
        babel_locale="km",
        catalog="km",
        sms_encoding="UCS-2",
        voice=None,
        aliases=("km_kh", "khm", "khmer", "cambodian", "ខ្មែរ", "カンボジア語"),
    ),
    Language(
        code="si",
        native_name="සිංහල",
        english_name="Sinhala",
        japanese_name="シンハラ語",
        babel_locale="si",
        catalog="si",
        sms_encoding="UCS-2",
        voice=None,
        aliases=("si_lk", "sin", "sinhala", "sinhalese", "シンハラ語"),
    ),
    Language(
        code="mn",
        native_name="Монгол хэл",
        english_name="Mongolian",
        japanese_name="モンゴル語",
        babel_locale="mn",
        catalog="mn",
        sms_encoding="UCS-2",
        voice=None,
        aliases=("mn_mn", "mon", "khk", "mongolian", "монгол", "mongol", "mongol_hel"),
    ),
    Language(
        code="bn",
        native_name="বাংলা",
        english_name="Bengali",
        japanese_name="ベンガル語",
        babel_locale="bn",
        catalog="bn",
        sms_encoding="UCS-2",
        # Most Bengali speakers in Japan are from Bangladesh; Twilio's Bengali voices are
        # bn-IN, which read the same script.
        voice=TwilioVoice(voice="Google.bn-IN-Standard-A", language="bn-IN"),
        aliases=("bn_bd", "bn_in", "ben", "bengali", "bangla", "বাংলা ভাষা", "バングラ語"),
    ),
    Language(
        code="ur",
        native_name="اردو",
        english_name="Urdu",
        japanese_name="ウルドゥー語",
        babel_locale="ur",
        catalog="ur",
        sms_encoding="UCS-2",
        voice=None,
        aliases=("ur_pk", "ur_in", "urd", "urdu", "ウルドゥ語"),
    ),
    Language(
        code="hi",
        native_name="हिन्दी",
        english_name="Hindi",
        japanese_name="ヒンディー語",
        babel_locale="hi",
        catalog="hi",
        sms_encoding="UCS-2",
        voice=TwilioVoice(voice="Google.hi-IN-Standard-A", language="hi-IN"),
        aliases=("hi_in", "hin", "hindi", "हिंदी", "ヒンディ語", "ヒンドゥー語"),
    ),
    Language(
        code="ta",
        native_name="தமிழ்",
        english_name="Tamil",
        japanese_name="タミル語",
        babel_locale="ta",
        catalog="ta",
        sms_encoding="UCS-2",
        # Tamil speakers in Japan come from India and Sri Lanka; Twilio's Tamil voices
        # are ta-IN.
        voice=TwilioVoice(voice="Google.ta-IN-Standard-A", language="ta-IN"),
        aliases=("ta_in", "ta_lk", "ta_sg", "tam", "tamil"),
    ),
)

_BY_CODE: dict[str, Language] = {language.code: language for language in LANGUAGES}

SUPPORTED_CODES: tuple[str, ...] = tuple(language.code for language in LANGUAGES)

#: Catalog directory names under ``i18n/locales`` (``pt`` serves ``pt_BR``).
CATALOG_CODES: tuple[str, ...] = tuple(language.catalog for language in LANGUAGES)

#: U+200F RIGHT-TO-LEFT MARK. A phone lays out each paragraph of an SMS in the direction of
#: its first letter; texts start with the council's name (kanji or Latin), so a text for a
#: right-to-left reader must start with this mark or its Urdu is shown left to right.
RIGHT_TO_LEFT_MARK = "\u200f"

_SPACES = re.compile(r"\s+")


def _alias_key(value: str) -> str:
    """Fold the ways people type a language name into one comparable key.

    NFKC turns full-width letters and brackets from Japanese spreadsheets into ASCII,
    casefold ignores case, and spaces and hyphens are treated like underscores so that
    "pt-BR", "pt_br" and "Bahasa Indonesia" all match.
    """
    folded = unicodedata.normalize("NFKC", value).strip().casefold()
    folded = folded.replace("-", "_")
    folded = _SPACES.sub("_", folded)
    folded = folded.replace("_(", "(").replace("(_", "(").replace("_)", ")")
    return folded


def _build_alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for language in LANGUAGES:
        names = (
            language.code,
            language.native_name,
            language.english_name,
            language.japanese_name,
            *language.aliases,
        )
        for name in names:
            key = _alias_key(name)
            existing = table.get(key)
            if existing is not None and existing != language.code:
                raise ValueError(
                    f"language alias {name!r} is ambiguous: {existing}, {language.code}"
                )
            table[key] = language.code
    return table


_ALIASES = _build_alias_table()


def get_language(code: str) -> Language | None:
    """The registry entry for a stored resident language code, or None if unsupported."""
    return _BY_CODE.get(code)


def normalize_language_code(value: str | None) -> str | None:
    """Map what a person or a CSV file wrote to a supported code, or None.

    Accepts codes in any case and separator ("pt-BR", "zh-TW"), legacy codes ("tl",
    "in"), and language names in English, in the language itself and in Japanese
    ("ベトナム語", "中国語(繁体)"). Unknown region subtags are dropped one at a time, so
    "en-AU" becomes "en" and "zh-Hant-HK" becomes "zh_Hant".
    """
    if value is None:
        return None
    key = _alias_key(value)
    if not key:
        return None
    while key:
        code = _ALIASES.get(key)
        if code is not None:
            return code
        if "_" not in key:
            return None
        key = key.rsplit("_", 1)[0]
    return None


def babel_locale(code: str) -> Locale:
    """The Babel locale for dates and numbers; unknown codes format like Easy Japanese."""
    language = get_language(code) or get_language(normalize_language_code(code) or FALLBACK_CODE)
    assert language is not None  # FALLBACK_CODE is always registered
    return Locale.parse(language.babel_locale)


def display_name(code: str, in_language: str) -> str:
    """Name language ``code`` in words a reader of ``in_language`` understands.

    Alerts to members say which language the resident speaks; a Japanese welfare
    committee member should read "ベトナム語", not "vi" or "Tiếng Việt".
    """
    language = get_language(code)
    if language is None:
        return code
    reader = get_language(in_language) or get_language(FALLBACK_CODE)
    assert reader is not None
    if reader.catalog in ("ja", "easy_ja"):
        return language.japanese_name
    if reader.code == language.code:
        return language.native_name
    if reader.code == "en":
        return language.english_name
    if language.code == "easy_ja":
        return language.english_name
    try:
        name = Locale.parse(language.babel_locale).get_display_name(reader.babel_locale)
    except (ValueError, LookupError):
        name = None
    return name or language.english_name


def mark_direction(text: str, code: str | None) -> str:
    """``text`` as an SMS to a reader of ``code``: every non-empty paragraph for a
    right-to-left language starts with :data:`RIGHT_TO_LEFT_MARK` (once); texts for other
    languages are returned unchanged.

    The catalogs already carry the mark; this is for texts composed elsewhere, such as a
    staff answer translated into Urdu and sent after the council's name.
    """
    language = get_language(normalize_language_code(code) or "") if code else None
    if language is None or not language.right_to_left:
        return text
    return "\n".join(
        line if not line or line.startswith(RIGHT_TO_LEFT_MARK) else RIGHT_TO_LEFT_MARK + line
        for line in text.split("\n")
    )

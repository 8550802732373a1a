"""Mimamori's language codes as each translation provider spells them, and back.

Pure data and functions. A language a provider cannot translate is missing from its
table on purpose: asking for it raises :class:`UnsupportedLanguageError`, which the caller
stores as a failure ("DeepL cannot translate into Khmer") instead of sending anything.

Facts checked against the providers' own documentation and client libraries:

* DeepL target codes carry the variant (``EN-US``, ``PT-BR``, ``ZH-HANS``, ``ZH-HANT``);
  source codes never do (``EN``, ``PT``, ``ZH``). Vietnamese and Thai are text-only,
  "next-gen" languages; Tagalog, Nepali, Burmese, Mongolian, Bengali, Urdu, Hindi and Tamil
  are DeepL beta languages, usable only with ``enable_beta_languages``. DeepL has neither
  Khmer nor Sinhala.
* Google Cloud Translation v3 takes BCP-47 codes: ``zh-CN`` and ``zh-TW`` for the two
  Chinese scripts, ``fil`` for Filipino, ``pt`` for Brazilian Portuguese.

Easy Japanese (やさしい日本語) is Japanese to a translator: a provider can read it, but
cannot write it, so it is never a translation target (staff write it themselves).
"""

from __future__ import annotations

from service.translation.errors import UnsupportedLanguageError

#: The language staff read. Every resident reply is translated into it.
STAFF_LANGUAGE = "ja"

#: Targets no translator can produce well: staff write these themselves.
WRITTEN_BY_STAFF: frozenset[str] = frozenset({"ja", "easy_ja"})

DEEPL_TARGET: dict[str, str] = {
    "ja": "JA",
    "en": "EN-US",
    "zh_Hans": "ZH-HANS",
    "zh_Hant": "ZH-HANT",
    "ko": "KO",
    "vi": "VI",
    "fil": "TL",
    "ne": "NE",
    "pt_BR": "PT-BR",
    "es": "ES",
    "id": "ID",
    "my": "MY",
    "th": "TH",
    "mn": "MN",
    "bn": "BN",
    "ur": "UR",
    "hi": "HI",
    "ta": "TA",
}

DEEPL_SOURCE: dict[str, str] = {
    "ja": "JA",
    "easy_ja": "JA",
    "en": "EN",
    "zh_Hans": "ZH",
    "zh_Hant": "ZH",
    "ko": "KO",
    "vi": "VI",
    "fil": "TL",
    "ne": "NE",
    "pt_BR": "PT",
    "es": "ES",
    "id": "ID",
    "my": "MY",
    "th": "TH",
    "mn": "MN",
    "bn": "BN",
    "ur": "UR",
    "hi": "HI",
    "ta": "TA",
}

GOOGLE_CODES: dict[str, str] = {
    "ja": "ja",
    "easy_ja": "ja",
    "en": "en",
    "zh_Hans": "zh-CN",
    "zh_Hant": "zh-TW",
    "ko": "ko",
    "vi": "vi",
    "fil": "fil",
    "ne": "ne",
    "pt_BR": "pt",
    "es": "es",
    "id": "id",
    "my": "my",
    "th": "th",
    "km": "km",
    "si": "si",
    "mn": "mn",
    "bn": "bn",
    "ur": "ur",
    "hi": "hi",
    "ta": "ta",
}

# ISO 639 base codes a provider may report for a detected language, where Mimamori's own
# code differs. Everything else is its own base code ("vi" is "vi").
_BASE_OF_CODE: dict[str, str] = {
    "easy_ja": "ja",
    "zh_Hans": "zh",
    "zh_Hant": "zh",
    "pt_BR": "pt",
    "fil": "tl",
}
_BASE_ALIASES: dict[str, str] = {"fil": "tl", "iw": "he", "jw": "jv"}


def provider_code(table: dict[str, str], code: str, provider: str, role: str) -> str:
    """The provider's code for a Mimamori language, or a clear, storable refusal."""
    try:
        return table[code]
    except KeyError:
        raise UnsupportedLanguageError(
            f"{provider} cannot translate {role} {code}", language=code
        ) from None


def base_language(code: str | None) -> str | None:
    """The ISO 639 base of a Mimamori or provider code, lower case: "PT-BR" and "pt_BR"
    give "pt", "ZH-HANT" gives "zh", Filipino's "fil" and Tagalog's "TL" both give "tl"."""
    if not code:
        return None
    if code in _BASE_OF_CODE:
        return _BASE_OF_CODE[code]
    base = code.replace("_", "-").split("-", 1)[0].lower()
    return _BASE_ALIASES.get(base, base) or None


def differs_from(detected: str | None, registered: str | None) -> bool:
    """Whether staff should be told the reply is in another language than the registry's.

    Compared on the base language, so a Traditional Chinese resident writing Chinese, or an
    Easy Japanese resident writing Japanese, is no news. Unknown on either side is no news.
    """
    left, right = base_language(detected), base_language(registered)
    return bool(left and right and left != right)

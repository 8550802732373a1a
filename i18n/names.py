"""Which name of an organization or a site a recipient reads, or hears.

An organization and a site have their Japanese name and, optionally, a name per language
(``names``: ``{"easy_ja": "わじまし しゃかいふくし きょうぎかい", "en": "Wajima City Social
Welfare Council", "vi": "…"}``). A resident must recognise who is writing or calling:

- a kanji name inside an English, Filipino or Indonesian SMS turns the whole message from
  GSM-7 into UCS-2 (1 segment becomes 2 or 3), and most of those residents cannot read it;
- an English or Vietnamese voice cannot read kanji aloud at all.

The choice is a pure function of the stored names and the recipient's language, so it can
be tested on its own and used by every message path (check-ins, replies, alerts, calls).
The round fan-out calls it once per language, not once per resident.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from i18n.languages import FALLBACK_CODE, SUPPORTED_CODES, Language, get_language
from i18n.languages import normalize_language_code as _normalize

log = logging.getLogger(__name__)

#: The same limit as the Japanese name's column.
MAX_NAME_LENGTH = 200
#: The Japanese name is the record's own ``name``; ``names`` holds the others.
JAPANESE_CODE = "ja"
#: The kana reading is kept as the Easy Japanese name.
READING_CODE = "easy_ja"
#: The name every Latin-script language falls back to before the Japanese one.
ROMAN_CODE = "en"
#: The fragment a voice says when no name it can pronounce is known.
GENERIC_ORG_MESSAGE = "name.org_generic"

#: Where a chosen name came from; ``i18n status`` and tests show it.
NameSource = Literal["own", "english", "reading", "japanese", "romanised", "generic"]

# Voices that read kanji (Japanese and Chinese); others cannot say a Japanese name.
_KANJI_VOICE_PREFIXES = ("ja", "cmn", "yue", "zh")
_READING_SEPARATORS = re.compile(r"[\s・･、，,]+")
_ROMAN_OK = re.compile(r"^[A-Za-z0-9' .,&()-]+$")


class LocalizedNameError(ValueError):
    """A per-language name that cannot be stored, phrased for the person who typed it.

    ``msgid`` (English, with ``%(name)s`` values) and ``values`` let the service render the
    problem in the reader's language (its ``service`` catalog carries these ids).
    """

    def __init__(self, msgid: str, **values: object) -> None:
        self.msgid = msgid
        self.values = values
        super().__init__(msgid % values)


# --- Validation --------------------------------------------------------------------------


def _bad_character(text: str) -> str | None:
    """The first control or line-breaking character, if any. Format characters (ZWJ,
    ZWNJ) stay allowed: Sinhala, Khmer and other scripts need them."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def clean_name(code: str, value: object) -> str:
    """One language's name, normalised (NFC, outer spaces, runs of spaces), or an error."""
    label = f"names.{code}"
    if not isinstance(value, str):
        raise LocalizedNameError(
            "%(label)s: a name must be text, got %(kind)s", label=label, kind=type(value).__name__
        )
    bad = _bad_character(value)
    if bad is not None:
        raise LocalizedNameError(
            "%(label)s: control characters are not allowed (found %(char)s)",
            label=label,
            char=f"U+{ord(bad):04X}",
        )
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if not text:
        raise LocalizedNameError("%(label)s: the name cannot be empty", label=label)
    if len(text) > MAX_NAME_LENGTH:
        raise LocalizedNameError(
            "%(label)s: the name is %(length)s characters long; at most %(max)s",
            label=label,
            length=len(text),
            max=MAX_NAME_LENGTH,
        )
    return text


def language_key(key: object) -> str:
    """A supported language code for a key of ``names`` ("vi", "pt-BR", "ベトナム語")."""
    code = _normalize(str(key)) if isinstance(key, str) else None
    if code is None:
        choices = ", ".join(c for c in SUPPORTED_CODES if c != JAPANESE_CODE)
        raise LocalizedNameError(
            "names: unknown language %(key)s; use one of: %(choices)s",
            key=repr(key),
            choices=choices,
        )
    if code == JAPANESE_CODE:
        raise LocalizedNameError(
            "names.ja: the Japanese name is the record's name; change `name` instead"
        )
    return code


def clean_names(value: object, *, allow_removal: bool = False) -> dict[str, str | None]:
    """Validate a ``{language: name}`` mapping as typed by an administrator.

    With ``allow_removal`` (a PATCH), a ``null`` name removes that language's name.
    Keys are normalised to the supported codes, so "pt-BR" and "pt_br" are one language;
    two keys for one language are refused rather than one silently winning.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LocalizedNameError(
            'names: expected an object of language codes and names, e.g. {"en": "…"}'
        )
    result: dict[str, str | None] = {}
    for key, name in value.items():
        code = language_key(key)
        if code in result:
            raise LocalizedNameError(
                "names: %(key)s is given twice (as %(code)s)", key=repr(key), code=repr(code)
            )
        if name is None and allow_removal:
            result[code] = None
        else:
            result[code] = clean_name(code, name)
    return result


def merged_names(
    current: Mapping[str, str] | None, changes: Mapping[str, str | None]
) -> dict[str, str]:
    """``current`` with ``changes`` applied (JSON merge patch: ``null`` removes)."""
    merged = dict(current or {})
    for code, name in changes.items():
        if name is None:
            merged.pop(code, None)
        else:
            merged[code] = name
    return {code: merged[code] for code in sorted(merged)}


# --- Scripts and voices ---------------------------------------------------------------------


def _script_letters(text: str) -> list[str]:
    return [unicodedata.name(char, "") for char in text if char.isalpha()]


@lru_cache(maxsize=64)
def is_latin_script(code: str) -> bool:
    """Whether a language is written in Latin letters (judged from its own name, so a new
    language needs no extra flag): its readers can read an English or romanised name."""
    language = get_language(code)
    if language is None:
        return False
    letters = _script_letters(language.native_name)
    return bool(letters) and all(name.startswith("LATIN") for name in letters)


def has_japanese_script(text: str) -> bool:
    """Kanji or kana, which only a Japanese (or, for kanji, Chinese) voice can read."""
    for name in _script_letters(text):
        if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA")):
            return True
    return "ー" in text or "々" in text


def voice_reads_kanji(language: Language) -> bool:
    return language.voice is not None and language.voice.language.startswith(_KANJI_VOICE_PREFIXES)


def spoken_language(code: str | None) -> Language:
    """The language a call to a resident of ``code`` is spoken in: their own if Twilio has a
    voice for it, otherwise Easy Japanese (the same rule as ``i18n.voice.voice_prompt``)."""
    language = get_language(_normalize(code) or "") if code else None
    if language is None or language.voice is None:
        language = get_language(FALLBACK_CODE)
    assert language is not None
    return language


# --- Choosing a name -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalizedName:
    """A name in Japanese and the per-language names of one organization or site."""

    japanese: str
    names: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        # A text that forgets to choose a language still names the record as before.
        return self.japanese

    @classmethod
    def of(cls, record: object) -> LocalizedName:
        """From any row with ``name`` and ``names`` (an Organization or a Site)."""
        return cls(getattr(record, "name", "") or "", getattr(record, "names", None) or {})

    def for_reader(self, code: str | None) -> str:
        """The name to write in a text for a reader of ``code`` (SMS, alerts)."""
        return written_name(self.japanese, self.names, code)[0]

    def for_listener(self, code: str | None) -> SpokenName:
        """The name a call to a resident of ``code`` says, and where it came from."""
        return spoken_name(self.japanese, self.names, code)

    def spoken(self, code: str | None) -> str:
        """The words a call to a resident of ``code`` says for this name: the chosen name,
        or the catalog's generic phrase ("your social welfare council") in the call's
        language when its voice can say none of the names."""
        choice = self.for_listener(code)
        if choice.text is not None:
            return choice.text
        from i18n.render import render

        return render(GENERIC_ORG_MESSAGE, choice.locale)


def _own_code(code: str | None) -> str | None:
    return _normalize(code) if code else None


def written_name(
    japanese: str, names: Mapping[str, str] | None, code: str | None
) -> tuple[str, NameSource]:
    """The language's own name; for a Latin-script language, else the English (romanised)
    one; else the Japanese name. Easy Japanese readers get the kana reading."""
    names = names or {}
    own = _own_code(code)
    if own and own != JAPANESE_CODE and names.get(own):
        return names[own], "own"
    if own and is_latin_script(own) and names.get(ROMAN_CODE):
        return names[ROMAN_CODE], "english"
    return japanese, "japanese"


@dataclass(frozen=True, slots=True)
class SpokenName:
    """What a voice says for a name, and where it came from.

    ``text`` is None for ``generic``: the caller says the catalog's generic phrase
    (:data:`GENERIC_ORG_MESSAGE`) in ``locale``, the language the call is spoken in.
    """

    text: str | None
    source: NameSource
    locale: str


def spoken_name(japanese: str, names: Mapping[str, str] | None, code: str | None) -> SpokenName:
    """A name the voice that calls a resident of ``code`` can pronounce.

    Japanese and Chinese voices read the kana reading or the kanji. Any other voice says
    the language's own name, then (Latin-script languages) the English one, then the kana
    reading romanised; never kanji or kana. With nothing it can say, ``generic``.
    """
    names = names or {}
    language = spoken_language(code)
    locale = language.code
    if voice_reads_kanji(language):
        if locale not in (JAPANESE_CODE, READING_CODE) and names.get(locale):
            return SpokenName(names[locale], "own", locale)
        if language.voice is not None and language.voice.language.startswith("ja"):
            # A Japanese voice guesses the readings of place names; the kana reading is sure.
            reading = names.get(READING_CODE)
            if reading:
                return SpokenName(reading, "reading", locale)
        return SpokenName(japanese, "japanese", locale)
    candidates: list[tuple[str | None, NameSource]] = [(names.get(locale), "own")]
    if is_latin_script(locale):
        candidates.append((names.get(ROMAN_CODE), "english"))
        candidates.append((romanise(names.get(READING_CODE) or ""), "romanised"))
    for text, source in candidates:
        if text and not has_japanese_script(text):
            return SpokenName(text, source, locale)
    return SpokenName(None, "generic", locale)


@lru_cache(maxsize=256)
def romanise(reading: str) -> str | None:
    """A kana reading in Latin letters a Latin-script voice can say ("わじまし しゃかい" →
    "Wajimashi Shakai"), word breaks kept. Only the reading is romanised, never the kanji
    name: kanji readings of place names are guesses (輪島 would come out "Washima")."""
    words = [word for word in _READING_SEPARATORS.split(reading) if word]
    if not words:
        return None
    try:
        import pykakasi
    except ImportError:  # pragma: no cover - a declared dependency
        log.warning("pykakasi is not installed; voices use the generic council phrase")
        return None
    converter = _kakasi(pykakasi)
    parts: list[str] = []
    for word in words:
        roman = "".join(item["hepburn"] for item in converter.convert(word)).strip()
        if not roman:
            return None
        parts.append(roman[:1].upper() + roman[1:])
    text = " ".join(parts)
    return text if _ROMAN_OK.match(text) else None


@lru_cache(maxsize=1)
def _kakasi(module: Any) -> Any:
    return module.kakasi()

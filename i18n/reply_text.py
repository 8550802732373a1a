"""Text handling for the reply classifier: normalisation, noise, laughter, menu digits.

Everything here is a pure function over strings. Keywords and replies go
through the same :func:`normalize`, so a keyword file can be written the way
people type and still match every full-width, katakana or stretched variant.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

LATIN_RANGES = "a-zA-Z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
LATIN_RE = re.compile(f"[{LATIN_RANGES}]")

_MARK_CATEGORIES = frozenset({"Mn", "Mc", "Me"})
_SKIN_TONES = re.compile("[\U0001f3fb-\U0001f3ff]")
#: "we're" is "we are", not the past tense "were"; "you're", "they're" alike.
_ARE_CONTRACTION = re.compile(r"\b(we|you|they|u)'re\b")
_APOSTROPHE_IN_WORD = re.compile(f"(?<=[{LATIN_RANGES}])'(?=[{LATIN_RANGES}])")
_HYPHEN_IN_WORD = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")
_WHITESPACE = re.compile(r"\s+")
#: Easy Japanese is written with spaces between words ("みず ない"); Japanese
#: matching ignores them, so "みず ない" reads like "みずない".
_JAPANESE_GAP = re.compile(r"(?<=[\u3040-\u30ff\u3400-\u9fff])\s+(?=[\u3040-\u30ff\u3400-\u9fff])")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_HYPHENS = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212"})
#: Arabic-keyboard letters typed for their Urdu forms (ي ى → ی, ك → ک).
_URDU_LETTERS = str.maketrans({"\u064a": "\u06cc", "\u0649": "\u06cc", "\u0643": "\u06a9"})


def splits_syllable(view: str, end: int) -> bool:
    """True if a match ending at ``end`` would cut a syllable in half.

    A keyword must not end just before a combining mark, or "ठीक छ" (fine)
    would match the start of "ठीक छैन" (not fine) in Nepali.
    """
    return end < len(view) and unicodedata.category(view[end]) in _MARK_CATEGORIES


@functools.cache
def _char_digit(ch: str) -> str:
    """Map any decimal digit (１, १, ๑) and circled digit (①, ❶, ⓵) to ASCII."""
    category = unicodedata.category(ch)
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    if category == "No":
        value = unicodedata.digit(ch, None)
        if value is not None:
            return str(value)
    return ch


def normalize(text: str) -> str:
    """Bring a reply (or a keyword) to the one form all matching happens on.

    NFKC folds full-width and half-width forms (and "…" into "..."), casefold
    folds case, katakana becomes hiragana (ダイジョウブ = だいじょうぶ), every
    script's digits become ASCII, format characters (ZWJ, variation selectors,
    skin tones, keycaps) are dropped so 👍🏽 is 👍 and 1️⃣ is 1, and in-word
    apostrophes and hyphens are unified (i'm = im, apa-apa = apa apa).
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_char_digit(ch) if not ch.isascii() else ch for ch in text)
    text = _SKIN_TONES.sub("", text)
    text = "".join(
        ch for ch in text if unicodedata.category(ch) != "Cf" and ch not in "\ufe0e\ufe0f\u20e3"
    )
    text = text.casefold().translate(_APOSTROPHES).translate(_HYPHENS).translate(_URDU_LETTERS)
    text = "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in text)
    text = _ARE_CONTRACTION.sub(r"\1 are", text)
    text = _APOSTROPHE_IN_WORD.sub("", text)
    text = _HYPHEN_IN_WORD.sub(" ", text)
    text = _JAPANESE_GAP.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


@functools.cache
def _fold_char(ch: str) -> str:
    if ch == "đ":
        return "d"
    if not LATIN_RE.fullmatch(ch) or ch.isascii():
        return ch
    base = unicodedata.normalize("NFD", ch)[0]
    return base if base.isascii() else ch


def fold(text: str) -> str:
    """Strip Latin diacritics one character for one, so spans line up.

    Vietnamese (and Portuguese, Spanish) are often typed without accents:
    "khong on" must read as "không ổn".
    """
    return "".join(_fold_char(ch) for ch in text)


_NOISE_CATEGORIES = frozenset({"Cc", "Sk", "Sm"})


def is_noise(ch: str) -> bool:
    """Characters that carry no meaning on their own: spaces, punctuation, math.

    Unassigned and private-use code points are *not* noise: old Japanese
    phones send carrier emoji there, and one of them might be a cry for help.
    """
    category = unicodedata.category(ch)
    return category[0] in "PZ" or category in _NOISE_CATEGORIES


def strip_edges(text: str) -> str:
    start, end = 0, len(text)
    while start < end and is_noise(text[start]):
        start += 1
    while end > start and is_noise(text[end - 1]):
        end -= 1
    return text[start:end]


def leftover_words(view: str, covered: set[int]) -> tuple[str, ...]:
    """The words of ``view`` no keyword explains, in order (what staff should look at)."""
    words: list[str] = []
    current: list[str] = []
    for i, ch in enumerate(view):
        if i in covered or is_noise(ch):
            if current:
                words.append("".join(current))
                current = []
            continue
        current.append(ch)
    if current:
        words.append("".join(current))
    return tuple(dict.fromkeys(words))


# --------------------------------------------------------------------------
# Questions, ellipses, laughter
# --------------------------------------------------------------------------

#: "?" (also the full-width one, after NFKC), Spanish "¿", Arabic-script "؟", Armenian "՞".
QUESTION_MARKS = frozenset("?¿؟՞")
#: A trailing (or any) ellipsis: "大丈夫…" (NFKC makes … "..."), "ok..", "元気。。。".
ELLIPSIS = re.compile(r"\.{2,}|。{2,}|・{2,}|、{2,}|,{3,}")

_LATIN_LAUGHS = (
    r"(?:a?h[aeio]){2,}h?",  # haha, hehe, hihi, ahah (not "huhu": sobbing)
    r"(?:j[aeiou]){2,}j?",  # jaja, jeje (Spanish)
    r"(?:k){3,}",  # kkk (Portuguese, Vietnamese)
    r"(?:wk){2,}w?",  # wkwk (Indonesian)
    r"w{2,}",  # www (Japanese)
    r"(?:rs){2,}",  # rsrs (Portuguese)
    r"(?:xi){2,}",  # xixi (Indonesian)
    r"l+o+l+",
    r"lmf?a+o+",
    r"xd+",
)
#: Laughter in every script: it may surround a fine word without adding doubt.
LAUGHTER = re.compile(
    "|".join(
        [f"(?<![{LATIN_RANGES}])(?:{p})(?![{LATIN_RANGES}])" for p in _LATIN_LAUGHS]
        + [
            r"[ㅋㅎᄏᄒ]{2,}",  # Korean (NFKC turns ㅋ into the leading jamo ᄏ)
            r"(?<![0-9])5{3,}(?![0-9])",  # Thai (ห้า = "ha")
            r"\(笑\)|笑|草",  # Japanese
            r"[哈呵嘻嘿]{2,}|(?<![0-9])23{3,}(?![0-9])",  # Chinese
        ]
    )
)


# --------------------------------------------------------------------------
# Menu digits
# --------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"[0-9]+")
_NUMBER_JOINERS = ".:/-"
#: A digit followed by one of these is a quantity or a time, not a menu press
#: ("10時", "2人", "3回"). "番" / "번" are deliberately absent: "１番" is option one.
_UNIT_CHARS = frozenset("時分秒日月年歳才人名円回階号棟室度個本枚週つ件台匹杯%°개명시살층")
_LATIN_UNITS = frozenset(
    {"am", "pm", "st", "nd", "rd", "th", "h", "hr", "hrs", "min", "kg", "km", "cm", "mm", "m"}
)
_LATIN_WORD = re.compile(f"[{LATIN_RANGES}]+")


@dataclass(frozen=True, slots=True)
class MenuDigits:
    """The menu keys (1 fine, 2 help, 3 talk) a reply contains."""

    menu: frozenset[str]
    multi: bool
    spans: tuple[tuple[int, int], ...]

    @property
    def help(self) -> bool:
        return "2" in self.menu

    @property
    def fine(self) -> bool:
        return self.menu == {"1"} and not self.multi

    @property
    def talk(self) -> bool:
        return self.menu == {"3"} and not self.multi

    @property
    def ambiguous(self) -> bool:
        return bool(self.menu) and not (self.help or self.fine or self.talk)


def _is_number_context(view: str, start: int, end: int) -> bool:
    """Phone numbers, times, dates, prices and quantities are not menu answers."""
    before = view[start - 1] if start else ""
    after = view[end] if end < len(view) else ""
    if before == "+" or (before and LATIN_RE.fullmatch(before)):
        return True
    if before in _NUMBER_JOINERS + "," and before and start >= 2 and view[start - 2].isdigit():
        return True
    if after and after in _NUMBER_JOINERS and end + 1 < len(view) and view[end + 1].isdigit():
        return True
    if after == "," and re.match(r",[0-9]{3}(?![0-9])", view[end:]):
        return True
    if after in _UNIT_CHARS and after:
        return True
    unit = _LATIN_WORD.match(view, end)
    return bool(unit and unit.group() in _LATIN_UNITS)


def menu_digits(view: str, covered: set[int]) -> MenuDigits:
    """Find the menu keys pressed, ignoring digits a keyword or laugh already explains."""
    menu: set[str] = set()
    multi = False
    runs: list[tuple[int, int]] = []
    for m in _DIGIT_RUN.finditer(view):
        if covered.intersection(range(m.start(), m.end())):
            continue
        if _is_number_context(view, m.start(), m.end()):
            continue
        digits = m.group()
        if len(digits) > 1:
            # "12" or "123": several keys pressed at once. Only ever a help
            # signal (if 2 is among them), never fine.
            if set(digits) <= {"1", "2", "3"} and len(digits) <= 3:
                menu.update(digits)
                multi = True
            continue
        if digits in {"1", "2", "3"}:
            menu.add(digits)
            runs.append((m.start(), m.end()))
    return MenuDigits(frozenset(menu), multi, tuple(runs))

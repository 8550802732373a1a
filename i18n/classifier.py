"""Read a resident's reply to a check-in and decide what it means.

The one rule that shapes everything here: only a recognisable "fine" may close
a check-in as safe. The classifier is therefore built so that every doubt
falls away from "fine":

* A reply is "fine" only when it carries a fine signal (a keyword, an OK emoji
  or the menu digit 1) *and* every other part of it is harmless filler
  ("です", "thank you", "po", "ạ", punctuation). Any word we do not know,
  any negation word, any question mark or any number that is not a menu
  answer keeps it out of "fine". That is what makes cross-language matching
  safe: residents may answer in Japanese or English whatever their registered
  language, so all keyword lists are always consulted, and an unknown word in
  any language simply blocks "fine".
* A help signal anywhere wins over everything else, so "大丈夫だけど薬がない"
  is help.
* A negated fine ("大丈夫じゃない", "not ok", "không ổn") is help, because it
  answers "are you all right?" with "no". Asked back as a question
  ("大丈夫じゃない？" can mean "it's fine, isn't it?") it is unclear instead.
* Idioms whose negation word is part of a fine expression ("没事", "tidak
  apa-apa", "không sao", "no problem", "問題ない") are keywords of their own;
  the longest keyword wins, so their negation word is never seen alone.

The keyword lists live as data in ``i18n/keywords/<code>.toml`` (plus
``_common.toml`` for emoji and Twilio's opt-out words), so translators and
council staff can review them without reading Python.

:func:`classify` never raises: a reply always gets an answer, and a failure
inside the classifier can only ever produce "unclear".
"""

from __future__ import annotations

import functools
import logging
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from importlib import resources

logger = logging.getLogger(__name__)

#: The languages residents can be registered with. Kept here (and not imported
#: from :mod:`i18n.languages`) so the classifier stays usable on its own.
RESIDENT_LANGUAGES: tuple[str, ...] = (
    "ja",
    "easy_ja",
    "en",
    "zh_Hans",
    "zh_Hant",
    "ko",
    "vi",
    "fil",
    "ne",
    "pt_BR",
    "es",
    "id",
    "my",
    "th",
    "km",
    "si",
)

#: Raw characters looked at. An SMS longer than ~1,600 characters is not a
#: check-in answer; reading further only costs time.
MAX_INPUT_CHARS = 2000
#: Normalised characters matched. A truncated reply is never "fine", because
#: something we did not read might have been a call for help.
MAX_MATCH_CHARS = 1000


class ReplyKind(StrEnum):
    """What a reply asks for; the check-in outcome is derived from this.

    A ``StrEnum`` (a ``str`` and an ``Enum``), like the other enums in the
    project, so it stores and compares as its plain value.
    """

    FINE = "fine"
    HELP = "help"
    TALK = "talk"
    UNCLEAR = "unclear"
    STOP = "stop"
    START = "start"
    CHANGE_LANGUAGE = "change_language"


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one reply.

    ``matched`` is the normalised text that decided the verdict, so staff can
    see *why* a reply was read the way it was (e.g. "大丈夫じゃない").
    ``language`` is set only for :attr:`ReplyKind.CHANGE_LANGUAGE`.
    """

    kind: ReplyKind
    language: str | None = None
    matched: str | None = None


_UNCLEAR = Classification(ReplyKind.UNCLEAR)


# --------------------------------------------------------------------------
# Keyword data
# --------------------------------------------------------------------------


class _Cat(Enum):
    """Internal keyword categories. Several may apply to one string."""

    FINE = "fine"
    FILLER = "filler"
    HELP = "help"
    TALK = "talk"
    NEGATED = "negated"
    NOT_FINE = "not_fine"
    NEG_BEFORE = "negators_before"
    NEG_AFTER = "negators_after"
    NAME = "names"
    WRAPPER = "name_wrappers"


#: Categories that must never be softened into fine/filler by another
#: language listing the same string as harmless.
_UNSAFE_CATS = frozenset(
    {_Cat.HELP, _Cat.TALK, _Cat.NEGATED, _Cat.NOT_FINE, _Cat.NEG_BEFORE, _Cat.NEG_AFTER}
)
_SAFE_CATS = frozenset({_Cat.FINE, _Cat.FILLER})
_LIST_KEYS = frozenset(c.value for c in _Cat) | {"stop", "start"}
_ALLOWED_KEYS = _LIST_KEYS | {"fold_diacritics"}


@dataclass(frozen=True)
class KeywordSet:
    """One language's keyword file, normalised the same way replies are."""

    code: str
    fold_diacritics: bool
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, key: str) -> tuple[str, ...]:
        return self.lists.get(key, ())


def _keyword_files() -> Iterable[tuple[str, str]]:
    folder = resources.files("i18n") / "keywords"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            yield entry.name.removesuffix(".toml"), entry.read_text(encoding="utf-8")


@functools.cache
def load_keywords() -> Mapping[str, KeywordSet]:
    """Load and validate every keyword file.

    Raises on bad data (unknown key, non-string entry) so that CI and
    ``mimamori i18n status`` catch a broken file; :func:`classify` itself
    swallows the error and answers "unclear".
    """
    sets: dict[str, KeywordSet] = {}
    for code, text in _keyword_files():
        data = tomllib.loads(text)
        unknown = set(data) - _ALLOWED_KEYS
        if unknown:
            raise ValueError(f"keywords/{code}.toml: unknown keys {sorted(unknown)}")
        lists: dict[str, tuple[str, ...]] = {}
        for key in _LIST_KEYS:
            values = data.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"keywords/{code}.toml: {key} must be a list of strings")
            normalised = (_normalize(v) for v in values)
            lists[key] = tuple(dict.fromkeys(v for v in normalised if v))
        sets[code] = KeywordSet(code, bool(data.get("fold_diacritics", False)), lists)
    return sets


# --------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------

_LATIN_RANGES = "a-zA-Z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_LATIN_RE = re.compile(f"[{_LATIN_RANGES}]")


_MARK_CATEGORIES = frozenset({"Mn", "Mc", "Me"})


def _splits_syllable(view: str, end: int) -> bool:
    """True if a match ending at ``end`` would cut a syllable in half.

    A keyword must not end just before a combining mark, or "ठीक छ" (fine)
    would match the start of "ठीक छैन" (not fine) in Nepali.
    """
    return end < len(view) and unicodedata.category(view[end]) in _MARK_CATEGORIES


_SKIN_TONES = re.compile("[\U0001f3fb-\U0001f3ff]")
_APOSTROPHE_IN_WORD = re.compile(f"(?<=[{_LATIN_RANGES}])'(?=[{_LATIN_RANGES}])")
_HYPHEN_IN_WORD = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")
_WHITESPACE = re.compile(r"\s+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_HYPHENS = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212"})


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


def _normalize(text: str) -> str:
    """Bring a reply (or a keyword) to the one form all matching happens on.

    NFKC folds full-width and half-width forms, casefold folds case, katakana
    becomes hiragana (ダイジョウブ = だいじょうぶ), format characters (ZWJ,
    variation selectors, skin tones, keycaps) are dropped so 👍🏽 is 👍 and 1️⃣
    is 1, and in-word apostrophes and hyphens are unified (i'm = im,
    apa-apa = apa apa).
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_char_digit(ch) if not ch.isascii() else ch for ch in text)
    text = _SKIN_TONES.sub("", text)
    text = "".join(
        ch for ch in text if unicodedata.category(ch) != "Cf" and ch not in "\ufe0e\ufe0f\u20e3"
    )
    text = text.casefold().translate(_APOSTROPHES).translate(_HYPHENS)
    text = "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in text)
    text = _APOSTROPHE_IN_WORD.sub("", text)
    text = _HYPHEN_IN_WORD.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


@functools.cache
def _fold_char(ch: str) -> str:
    if ch == "đ":
        return "d"
    if not _LATIN_RE.fullmatch(ch) or ch.isascii():
        return ch
    base = unicodedata.normalize("NFD", ch)[0]
    return base if base.isascii() else ch


def _fold(text: str) -> str:
    """Strip Latin diacritics one character for one, so spans line up.

    Vietnamese (and Portuguese, Spanish) are often typed without accents:
    "khong on" must read as "không ổn".
    """
    return "".join(_fold_char(ch) for ch in text)


_NOISE_CATEGORIES = frozenset({"Cc", "Sk", "Sm"})


def _is_noise(ch: str) -> bool:
    """Characters that carry no meaning on their own: spaces, punctuation, math.

    Unassigned and private-use code points are *not* noise: old Japanese
    phones send carrier emoji there, and one of them might be a cry for help.
    """
    category = unicodedata.category(ch)
    return category[0] in "PZ" or category in _NOISE_CATEGORIES


def _strip_edges(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_noise(text[start]):
        start += 1
    while end > start and _is_noise(text[end - 1]):
        end -= 1
    return text[start:end]


# --------------------------------------------------------------------------
# Keyword matching
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    text: str
    cats: frozenset[_Cat]
    language: str | None = None

    @property
    def length(self) -> int:
        return self.end - self.start


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Compile one keyword.

    Latin letters may be stretched ("okkk", "fineee", "nooo"), which is how
    phones and excited people type, but never swapped: fuzzy matching would
    let "fire" read as "fine". Latin words need word edges; other scripts
    are matched inside words but never cut a syllable in half.
    """
    parts = []
    for ch in keyword:
        if _LATIN_RE.fullmatch(ch):
            parts.append(re.escape(ch) + "+")
        else:
            parts.append(re.escape(ch))
    prefix = f"(?<![{_LATIN_RANGES}])" if _LATIN_RE.fullmatch(keyword[0]) else ""
    suffix = f"(?![{_LATIN_RANGES}])" if _LATIN_RE.fullmatch(keyword[-1]) else ""
    return re.compile(f"{prefix}{''.join(parts)}{suffix}")


class _Lexicon:
    """Keywords indexed by first character, so a reply is scanned in one pass."""

    def __init__(self, entries: Mapping[str, tuple[frozenset[_Cat], str | None]]) -> None:
        index: dict[str, list[tuple[int, re.Pattern[str], frozenset[_Cat], str | None]]] = {}
        for keyword, (cats, language) in entries.items():
            index.setdefault(keyword[0], []).append(
                (len(keyword), _keyword_pattern(keyword), cats, language)
            )
        for candidates in index.values():
            candidates.sort(key=lambda c: -c[0])
        self._index = index

    def spans(self, view: str) -> list[_Span]:
        found = []
        for i, ch in enumerate(view):
            for _, pattern, cats, language in self._index.get(ch, ()):
                m = pattern.match(view, i)
                if m and not _splits_syllable(view, m.end()):
                    found.append(_Span(i, m.end(), m.group(), cats, language))
        return found


def _select(candidates: Iterable[_Span]) -> list[_Span]:
    """Keep the longest non-overlapping matches.

    Longest-first is what lets idioms win over their parts: "tidak apa-apa"
    (fine) over "tidak" (not), "没事" (fine) over "没" (not).
    """
    taken: list[_Span] = []
    used: set[int] = set()
    for span in sorted(candidates, key=lambda s: (-s.length, s.start)):
        if not used.intersection(range(span.start, span.end)):
            taken.append(span)
            used.update(range(span.start, span.end))
    return sorted(taken, key=lambda s: s.start)


def _merge(
    target: dict[str, tuple[set[_Cat], str | None]], keyword: str, cat: _Cat, code: str | None
) -> None:
    cats, existing = target.setdefault(keyword, (set(), code))
    cats.add(cat)
    if existing is None and code is not None:
        target[keyword] = (cats, code)


def _freeze(
    entries: Mapping[str, tuple[set[_Cat], str | None]],
) -> dict[str, tuple[frozenset[_Cat], str | None]]:
    frozen = {}
    for keyword, (cats, code) in entries.items():
        if cats & _UNSAFE_CATS:
            # The same string listed as harmless in one language and as a
            # warning sign in another is treated as the warning sign.
            cats = cats - _SAFE_CATS
        frozen[keyword] = (frozenset(cats), code)
    return frozen


@dataclass(frozen=True)
class _Tables:
    main: _Lexicon
    folded: Mapping[str, _Lexicon]
    names: _Lexicon
    stop: frozenset[str]
    start: frozenset[str]
    folded_stop: Mapping[str, frozenset[str]]
    folded_start: Mapping[str, frozenset[str]]


_REPLY_CATS = (
    _Cat.FINE,
    _Cat.FILLER,
    _Cat.HELP,
    _Cat.TALK,
    _Cat.NEGATED,
    _Cat.NOT_FINE,
    _Cat.NEG_BEFORE,
    _Cat.NEG_AFTER,
)


@functools.cache
def _tables() -> _Tables:
    keywords = load_keywords()
    main: dict[str, tuple[set[_Cat], str | None]] = {}
    names: dict[str, tuple[set[_Cat], str | None]] = {}
    folded: dict[str, _Lexicon] = {}
    stop: set[str] = set()
    start: set[str] = set()
    folded_stop: dict[str, frozenset[str]] = {}
    folded_start: dict[str, frozenset[str]] = {}
    for code, kw in keywords.items():
        language = code if code in RESIDENT_LANGUAGES else None
        local: dict[str, tuple[set[_Cat], str | None]] = {}
        for cat in _REPLY_CATS:
            for word in kw.get(cat.value):
                _merge(main, word, cat, None)
                if kw.fold_diacritics:
                    _merge(local, _fold(word), cat, None)
        for word in kw.get(_Cat.NAME.value):
            _merge(names, word, _Cat.NAME, language)
            _merge(names, _fold(word), _Cat.NAME, language)
        for word in kw.get(_Cat.WRAPPER.value):
            _merge(names, word, _Cat.WRAPPER, None)
            _merge(names, _fold(word), _Cat.WRAPPER, None)
        stop.update(kw.get("stop"))
        start.update(kw.get("start"))
        if kw.fold_diacritics and language:
            folded[language] = _Lexicon(_freeze(local))
            folded_stop[language] = frozenset(_fold(w) for w in kw.get("stop"))
            folded_start[language] = frozenset(_fold(w) for w in kw.get("start"))
    return _Tables(
        main=_Lexicon(_freeze(main)),
        folded=folded,
        names=_Lexicon(_freeze(names)),
        stop=frozenset(stop),
        start=frozenset(start),
        folded_stop=folded_stop,
        folded_start=folded_start,
    )


def _resolve_locale(locale: object) -> str | None:
    """Accept "pt-BR", "pt_br", "vi-VN", "zh"; anything else means unknown."""
    if not isinstance(locale, str) or not locale.strip():
        return None
    wanted = locale.strip().replace("-", "_").casefold()
    by_fold = {code.casefold(): code for code in RESIDENT_LANGUAGES}
    if wanted in by_fold:
        return by_fold[wanted]
    base = wanted.split("_", 1)[0]
    return {"pt": "pt_BR", "zh": "zh_Hans", "tl": "fil"}.get(base, by_fold.get(base))


def _folded_languages(tables: _Tables, locale: str | None) -> tuple[str, ...]:
    """Which languages may match without diacritics.

    Only the resident's own language (or every such language when we do not
    know theirs): stripped of accents, Vietnamese "ổn" (fine) becomes "on",
    which is an ordinary English word.
    """
    if locale is None:
        return tuple(tables.folded)
    return (locale,) if locale in tables.folded else ()


# --------------------------------------------------------------------------
# Menu digits
# --------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"[0-9]+")
_NUMBER_JOINERS = ".:/-"
#: A digit followed by one of these is a quantity or a time, not a menu press
#: ("10時", "2人", "3回"). "番" is deliberately absent: "１番" is option one.
_UNIT_CHARS = frozenset("時分秒日月年歳才人名円回階号棟室度個本枚週つ件台匹杯%°")
_LATIN_UNITS = frozenset(
    {"am", "pm", "st", "nd", "rd", "th", "h", "hr", "hrs", "min", "kg", "km", "cm", "mm", "m"}
)
_LATIN_WORD = re.compile(f"[{_LATIN_RANGES}]+")


@dataclass(frozen=True, slots=True)
class _Digits:
    menu: frozenset[str]
    multi: bool
    fine_spans: tuple[tuple[int, int], ...]

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
    if before == "+" or (before and _LATIN_RE.fullmatch(before)):
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


def _menu_digits(view: str, spans: list[_Span]) -> _Digits:
    covered = {i for s in spans for i in range(s.start, s.end)}
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
    return _Digits(frozenset(menu), multi, tuple(runs))


# --------------------------------------------------------------------------
# Deciding
# --------------------------------------------------------------------------

_SENTENCE_BREAKS = frozenset(".,!?;:。、，！？；…")
_MAX_GAP_WORDS = 3
_MAX_GAP_CHARS = 24


def _gap_allows_negation(gap: str) -> bool:
    """A negator governs a fine word only within the same short clause.

    So "not really ok" is negated, but in "No, I'm fine" the "no" answers
    something else (it still keeps the reply out of "fine", as any
    negator does, but it does not make it a call for help).
    """
    return (
        not _SENTENCE_BREAKS.intersection(gap)
        and len(gap) <= _MAX_GAP_CHARS
        and len(gap.split()) <= _MAX_GAP_WORDS
    )


def _negated_fine(view: str, spans: list[_Span]) -> str | None:
    for span in spans:
        if _Cat.NEGATED in span.cats:
            return span.text
    negators = [s for s in spans if s.cats & {_Cat.NEG_BEFORE, _Cat.NEG_AFTER}]
    for fine in (s for s in spans if _Cat.FINE in s.cats):
        for neg in negators:
            if _Cat.NEG_BEFORE in neg.cats and neg.end <= fine.start:
                if _gap_allows_negation(view[neg.end : fine.start]):
                    return view[neg.start : fine.end]
            if _Cat.NEG_AFTER in neg.cats and neg.start >= fine.end:
                if _gap_allows_negation(view[fine.end : neg.start]):
                    return view[fine.start : neg.end]
    return None


def _language_request(view: str, folded: str, tables: _Tables) -> str | None:
    """A reply that is just a language name ("Tiếng Việt", "English please")."""
    spans = _select(tables.names.spans(view) + tables.names.spans(folded))
    codes = {s.language for s in spans if _Cat.NAME in s.cats and s.language}
    if len(codes) != 1:
        return None
    covered = {i for s in spans for i in range(s.start, s.end)}
    if any(not _is_noise(ch) for i, ch in enumerate(view) if i not in covered):
        return None
    return codes.pop()


def _decide(view: str, spans: list[_Span], digits: _Digits, truncated: bool) -> Classification:
    question = "?" in view or "¿" in view

    for span in spans:
        if _Cat.HELP in span.cats:
            return Classification(ReplyKind.HELP, matched=span.text)
    if digits.help:
        return Classification(ReplyKind.HELP, matched="2")

    negated = _negated_fine(view, spans)
    if negated is not None:
        # "大丈夫じゃない？" is often "it's fine, isn't it?": ask again.
        kind = ReplyKind.UNCLEAR if question else ReplyKind.HELP
        return Classification(kind, matched=negated)

    for span in spans:
        if _Cat.TALK in span.cats:
            return Classification(ReplyKind.TALK, matched=span.text)
    if digits.talk:
        return Classification(ReplyKind.TALK, matched="3")

    fine_spans = [s for s in spans if _Cat.FINE in s.cats]
    if not (fine_spans or digits.fine):
        return _UNCLEAR
    if question or truncated or digits.ambiguous:
        return _UNCLEAR
    if any(s.cats - _SAFE_CATS for s in spans):
        return _UNCLEAR  # a negator or "so-so" somewhere: not a clean fine
    covered = {i for s in spans for i in range(s.start, s.end)}
    if digits.fine:
        covered.update(i for a, b in digits.fine_spans for i in range(a, b))
    if any(not _is_noise(ch) for i, ch in enumerate(view) if i not in covered):
        return _UNCLEAR  # something we could not read: when in doubt, not fine
    matched = fine_spans[0].text if fine_spans else "1"
    return Classification(ReplyKind.FINE, matched=matched)


def _coerce(text: object) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", errors="replace")
    return ""


def _classify(text: object, locale: object) -> Classification:
    raw = _coerce(text)
    truncated = len(raw) > MAX_INPUT_CHARS
    view = _normalize(raw[:MAX_INPUT_CHARS])
    if len(view) > MAX_MATCH_CHARS:
        view, truncated = view[:MAX_MATCH_CHARS], True
    core = _strip_edges(view)
    if not core:
        return _UNCLEAR

    tables = _tables()
    language = _resolve_locale(locale)
    folded_languages = _folded_languages(tables, language)
    folded = _fold(view)

    # Opt-out and opt-in only when the whole message is the command, so
    # "I can't stop crying" is never read as STOP.
    folded_core = _fold(core)
    if core in tables.stop or any(folded_core in tables.folded_stop[c] for c in folded_languages):
        return Classification(ReplyKind.STOP, matched=core)
    if core in tables.start or any(folded_core in tables.folded_start[c] for c in folded_languages):
        return Classification(ReplyKind.START, matched=core)

    requested = _language_request(view, folded, tables)
    if requested is not None:
        return Classification(ReplyKind.CHANGE_LANGUAGE, language=requested, matched=core)

    candidates = tables.main.spans(view)
    for code in folded_languages:
        candidates += tables.folded[code].spans(folded)
    spans = _select(candidates)
    return _decide(view, spans, _menu_digits(view, spans), truncated)


def prepare() -> None:
    """Load the keyword files and build the matchers now (about half a second).

    Call at start-up so the first reply does not pay for it, and so a broken
    keyword file stops the process instead of turning every reply "unclear".
    """
    _tables()


def classify(text: str, locale: str | None) -> Classification:
    """Classify a reply to a check-in; ``locale`` is the resident's language.

    Every keyword list is consulted whatever the locale, because residents
    often answer in Japanese or English; the locale only decides which
    language may also be matched without diacritics. Never raises: on any
    internal failure the reply is "unclear", which is never treated as safe.
    """
    try:
        return _classify(text, locale)
    except Exception:
        # The reply text is personal data: log the failure, never the text.
        logger.exception("reply classifier failed; treating the reply as unclear")
        return _UNCLEAR

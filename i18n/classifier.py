"""Read a resident's reply to a check-in and decide what it means.

Only a recognisable "fine" may close a check-in, so "fine" is a decision
about the whole message (see :mod:`i18n.reply_rules` for the rules and the
language scope): every word must be a fine expression of a language the
resident uses, or harmless filler around it. A help word or a described need
anywhere wins over everything ("大丈夫だけど水がない" is help); a negated fine
("大丈夫じゃない", "not ok") is help; a question, hedge, ellipsis, past tense,
reported speech or any unknown word keeps a reply out of "fine". Every
verdict names the words that decided it (:attr:`Classification.words`).

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
from enum import StrEnum
from importlib import resources

from i18n.reply_combine import combine
from i18n.reply_rules import (
    COMMON,
    REPLY_CATS,
    ROMAJI,
    Cat,
    RawSpan,
    Span,
    decide,
    has_statement,
    has_unexplained,
    resolve,
    scope_for,
)
from i18n.reply_text import (
    LATIN_RE,
    LAUGHTER,
    fold,
    menu_digits,
    normalize,
    splits_syllable,
    strip_edges,
)

#: Scripts written with spaces between words, whose keywords need word edges.
WORD_RANGES = "a-zA-Z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\u0400-\u04ff"
WORD_RE = re.compile(f"[{WORD_RANGES}]")

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
    "mn",
    "bn",
    "ur",
    "hi",
    "ta",
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
    """The verdict on one reply, and why.

    ``words`` are the normalised words that decided it and ``reason`` says
    what they are (``fine``, ``menu``, ``help``, ``need``, ``negated``,
    ``talk``, ``question``, ``hedge``, ``past``, ``reported``, ``negator``,
    ``not_fine``, ``foreign``, ``leftover``, ``no_fine``, ``truncated``,
    ``stop``, ``start``, ``language``, ``empty``, ``error``), so staff can
    see *why* a reply was read the way it was. ``matched`` is the first of
    the words, kept for callers written before ``words`` existed.
    ``language`` is set only for :attr:`ReplyKind.CHANGE_LANGUAGE`.
    """

    kind: ReplyKind
    language: str | None = None
    matched: str | None = None
    words: tuple[str, ...] = ()
    reason: str | None = None


_UNCLEAR = Classification(ReplyKind.UNCLEAR, reason="error")


# --------------------------------------------------------------------------
# Keyword data
# --------------------------------------------------------------------------

_INTERNAL = frozenset({Cat.FOREIGN, Cat.INNER_FINE})
_LIST_KEYS = frozenset(c.value for c in Cat if c not in _INTERNAL) | {"stop", "start"}
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
            normalised = (normalize(v) for v in values)
            lists[key] = tuple(dict.fromkeys(v for v in normalised if v))
        sets[code] = KeywordSet(code, bool(data.get("fold_diacritics", False)), lists)
    return sets


#: Kept for callers (and tests) that normalise text the classifier's way.
_normalize = normalize


# --------------------------------------------------------------------------
# Keyword matching
# --------------------------------------------------------------------------


#: Categories whose Latin words also match with a plural ending ("pains", "injuries"
#: is listed). Over-matching a need only ever escalates, never closes.
_PLURAL_CATS = frozenset({Cat.HELP, Cat.NEEDS})


def _keyword_pattern(keyword: str, plural: bool = False) -> re.Pattern[str]:
    """Compile one keyword.

    Latin letters may be stretched ("okkk", "fineee", "nooo"), which is how
    phones and excited people type, but never swapped: fuzzy matching would
    let "fire" read as "fine". Latin and Cyrillic words need word edges
    (Mongolian "ус", water, must not match inside "тус"); other scripts are
    matched inside words but never cut a syllable in half.
    """
    parts = []
    for ch in keyword:
        if LATIN_RE.fullmatch(ch):
            parts.append(re.escape(ch) + "+")
        else:
            parts.append(re.escape(ch))
    prefix = f"(?<![{WORD_RANGES}])" if WORD_RE.fullmatch(keyword[0]) else ""
    suffix = f"(?![{WORD_RANGES}])" if WORD_RE.fullmatch(keyword[-1]) else ""
    if plural and suffix and LATIN_RE.fullmatch(keyword[-1]):
        suffix = "(?:e?s)?" + suffix
    return re.compile(f"{prefix}{''.join(parts)}{suffix}")


_Entries = dict[str, dict[str, set[Cat]]]


def _marks(ch: str) -> tuple[str, frozenset[str]]:
    """A Latin letter as its base letter and the set of accents on it."""
    parts = unicodedata.normalize("NFD", ch)
    return fold(ch), frozenset(parts[1:])


def _accents_fit(typed: str, keyword_letters: frozenset[str]) -> bool:
    """True if every accented letter typed is the keyword's letter, perhaps with fewer accents.

    "nươc" fits "nước" (a tone left out); "số" does not fit "sợ".
    """
    for ch in typed:
        if ch.isascii() or not LATIN_RE.fullmatch(ch):
            continue
        base, marks = _marks(ch)
        if not any(b == base and marks <= m for b, m in map(_marks, keyword_letters)):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Origin:
    """One accented keyword behind an accent-free entry, and what it means."""

    letters: frozenset[str]
    code: str
    cat: Cat


def _fitting(typed: str, origins: tuple[_Origin, ...]) -> dict[str, frozenset[Cat]]:
    """What the typed word can mean: only the keywords whose accents it fits.

    Vietnamese "đâu" (where) and "đau" (pain) both fold to "dau"; typed
    "đâu" must not mean pain.
    """
    by_code: dict[str, set[Cat]] = {}
    for origin in origins:
        if _accents_fit(typed, origin.letters):
            by_code.setdefault(origin.code, set()).add(origin.cat)
    return {code: frozenset(cats) for code, cats in by_code.items()}


def _head(text: str, i: int) -> str:
    """The first two characters at ``i``, a stretched Latin letter counted once.

    Keywords are indexed by this head, so a reply is only tried against the
    few keywords that can start where it stands ("gooood" has the head "go",
    like the keyword "good").
    """
    first = text[i]
    j = i + 1
    if LATIN_RE.fullmatch(first):
        while j < len(text) and text[j] == first:
            j += 1
    return first + text[j] if j < len(text) else first


class _Lexicon:
    """Keywords indexed by their head, so a reply is scanned in one pass.

    Each keyword carries what it means in each language that lists it; the
    resident's scope decides later which meaning counts.
    """

    def __init__(
        self, entries: _Entries, accents: Mapping[str, tuple[_Origin, ...]] | None = None
    ) -> None:
        index: dict[str, list[tuple[str, re.Pattern[str], Mapping[str, frozenset[Cat]]]]] = {}
        for keyword, by_code in entries.items():
            frozen = {code: frozenset(cats) for code, cats in by_code.items()}
            plural = any(cats & _PLURAL_CATS for cats in frozen.values())
            index.setdefault(_head(keyword, 0), []).append(
                (keyword, _keyword_pattern(keyword, plural), frozen)
            )
        for candidates in index.values():
            candidates.sort(key=lambda c: -len(c[0]))
        self._index = index
        self._accents = accents

    def spans(self, view: str, original: str | None = None) -> list[RawSpan]:
        """Keywords found in ``view``.

        For the accent-free lexicon, ``view`` is the folded reply and
        ``original`` the reply as typed: a match counts only if the accents
        the resident did type belong to the keyword, so "số" (number) is not
        read as "sợ" (afraid) just because both fold to "so".
        """
        found = []
        for i, ch in enumerate(view):
            head = _head(view, i)
            candidates = self._index.get(head, [])
            if len(head) > 1:
                candidates = candidates + self._index.get(ch, [])
            for keyword, pattern, by_code in candidates:
                m = pattern.match(view, i)
                if not m or splits_syllable(view, m.end()):
                    continue
                text = m.group()
                if original is not None and self._accents is not None:
                    text = original[m.start() : m.end()]
                    by_code = _fitting(text, self._accents.get(keyword, ()))
                    if not by_code:
                        continue
                found.append(RawSpan(i, m.end(), text, by_code))
        return found


def _add(target: _Entries, keyword: str, cat: Cat, code: str) -> None:
    if keyword:
        target.setdefault(keyword, {}).setdefault(code, set()).add(cat)


def _scope_code(file_code: str, keyword: str) -> str:
    """Romaji entries of the Japanese files form their own scope (see reply_rules)."""
    if file_code in ("ja", "easy_ja") and LATIN_RE.search(keyword):
        return ROMAJI
    return file_code


@dataclass(frozen=True)
class _Tables:
    main: _Lexicon
    folded: _Lexicon
    names: _Lexicon
    stop: frozenset[str]
    start: frozenset[str]
    folded_stop: Mapping[str, frozenset[str]]
    folded_start: Mapping[str, frozenset[str]]


@functools.cache
def _tables() -> _Tables:
    keywords = load_keywords()
    main: _Entries = {}
    folded: _Entries = {}
    names: _Entries = {}
    stop: set[str] = set()
    start: set[str] = set()
    folded_stop: dict[str, frozenset[str]] = {}
    folded_start: dict[str, frozenset[str]] = {}
    accents: dict[str, list[_Origin]] = {}
    for code, kw in keywords.items():
        for cat in REPLY_CATS:
            for word in kw.get(cat.value):
                _add(main, word, cat, _scope_code(code, word))
                if kw.fold_diacritics and fold(word) != word:
                    _add(folded, fold(word), cat, code)
                    letters = frozenset(c for c in word if not c.isascii())
                    accents.setdefault(fold(word), []).append(_Origin(letters, code, cat))
        if code in RESIDENT_LANGUAGES:
            for word in kw.get(Cat.NAME.value):
                _add(names, word, Cat.NAME, code)
                _add(names, fold(word), Cat.NAME, code)
        for word in kw.get(Cat.WRAPPER.value):
            _add(names, word, Cat.WRAPPER, COMMON)
            _add(names, fold(word), Cat.WRAPPER, COMMON)
        stop.update(kw.get("stop"))
        start.update(kw.get("start"))
        if kw.fold_diacritics:
            folded_stop[code] = frozenset(fold(w) for w in kw.get("stop"))
            folded_start[code] = frozenset(fold(w) for w in kw.get("start"))
    return _Tables(
        main=_Lexicon(main),
        folded=_Lexicon(folded, {k: tuple(v) for k, v in accents.items()}),
        names=_Lexicon(names),
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


def _language_request(view: str, folded: str, tables: _Tables) -> str | None:
    """A reply that is just a language name ("Tiếng Việt", "English please")."""
    raws = tables.names.spans(view) + tables.names.spans(folded)
    chosen: list[tuple[RawSpan, str | None]] = []
    used: set[int] = set()
    for raw in sorted(raws, key=lambda r: (r.start - r.end, r.start)):
        if used.intersection(range(raw.start, raw.end)):
            continue
        used.update(range(raw.start, raw.end))
        named = [c for c, cats in raw.by_code.items() if Cat.NAME in cats]
        chosen.append((raw, named[0] if len(named) == 1 else None))
    codes = {code for _, code in chosen if code}
    if len(codes) != 1 or has_unexplained(view, used):
        return None
    return codes.pop()


def _laughs(view: str) -> list[Span]:
    return [
        Span(m.start(), m.end(), m.group(), frozenset({Cat.FILLER}))
        for m in LAUGHTER.finditer(view)
    ]


def _classify(text: object, locale: object) -> Classification:
    raw = _coerce(text)
    truncated = len(raw) > MAX_INPUT_CHARS
    view = normalize(raw[:MAX_INPUT_CHARS])
    if len(view) > MAX_MATCH_CHARS:
        view, truncated = view[:MAX_MATCH_CHARS], True
    core = strip_edges(view)
    if not core:
        return Classification(ReplyKind.UNCLEAR, reason="empty")

    tables = _tables()
    language = _resolve_locale(locale)
    scope = scope_for(language)
    folded = fold(view)

    # Opt-out and opt-in only when the whole message is the command, so
    # "I can't stop crying" is never read as STOP.
    folded_core = fold(core)
    fold_codes = [c for c in tables.folded_stop if c in scope.codes or not scope.known]
    if core in tables.stop or any(folded_core in tables.folded_stop[c] for c in fold_codes):
        return Classification(ReplyKind.STOP, matched=core, words=(core,), reason="stop")
    if core in tables.start or any(folded_core in tables.folded_start[c] for c in fold_codes):
        return Classification(ReplyKind.START, matched=core, words=(core,), reason="start")

    requested = _language_request(view, folded, tables)
    if requested is not None:
        return Classification(
            ReplyKind.CHANGE_LANGUAGE,
            language=requested,
            matched=core,
            words=(core,),
            reason="language",
        )

    raws = tables.main.spans(view) + tables.folded.spans(folded, view)
    spans = combine(view, resolve(raws, _laughs(view), scope))
    covered = {i for s in spans for i in range(s.start, s.end)}
    statement = has_statement(raws, scope)
    verdict = decide(view, spans, menu_digits(view, covered), truncated, statement)
    return Classification(
        ReplyKind(verdict.kind),
        matched=verdict.words[0] if verdict.words else None,
        words=verdict.words,
        reason=verdict.reason,
    )


def _coerce(text: object) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", errors="replace")
    return ""


def prepare() -> None:
    """Load the keyword files and build the matchers now (about half a second).

    Call at start-up so the first reply does not pay for it, and so a broken
    keyword file stops the process instead of turning every reply "unclear".
    """
    _tables()


def classify(text: str, locale: str | None) -> Classification:
    """Classify a reply to a check-in; ``locale`` is the resident's language.

    The locale decides which languages' words count (see
    :mod:`i18n.reply_rules`). Never raises: on any internal failure the reply
    is "unclear", which is never treated as safe.
    """
    try:
        return _classify(text, locale)
    except Exception:
        # The reply text is personal data: log the failure, never the text.
        logger.exception("reply classifier failed; treating the reply as unclear")
        return _UNCLEAR

"""The rules that turn matched keywords into a verdict, and which languages apply.

Pure functions over plain data (spans found in the normalised reply); the
matching itself lives in :mod:`i18n.classifier`.

The one rule that shapes everything: only a recognisable "fine" may close a
check-in. "Fine" is a decision about the *whole* message: after
normalisation, every word must be explained by a fine expression of a
language in scope, or by harmless filler around it (politeness, emoji,
laughter). Anything that adds doubt (a question, a tag question, a hedge, an
ellipsis, the past tense, reported speech, a negator, an unknown word) keeps
it out of "fine", and the verdict names the words that decided it.

Language scope (:data:`MIXES`)
------------------------------
A keyword counts with its full meaning only for residents whose language is
in scope: their registered language, the languages they commonly mix in,
Japanese (written in Japanese script, for everyone: they live in Japan) and
English. Japanese *romaji* ("nai", "hai", "itai") applies only where it
cannot be an ordinary word of the resident's own romanised language, so it
is out of scope for South Asian languages ("thik nai chha" is Nepali for
"fine indeed", "thik hai" is Hindi for "fine").

A word of an out-of-scope language is never read as fine or filler. If it
is a warning word there (help, need, negation, question, hedge...), it still
keeps the reply out of "fine" (reason ``foreign``), but never turns it into
help: the Khmer or Nepali resident's ordinary phrase must not raise an alarm
because it looks like a word of another language.

When the resident's language is unknown we are conservative: fine and filler
come only from Japanese, Easy Japanese and English, and a help, need or talk
word of *any* language counts fully (an alarm is better than silence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from i18n.reply_text import ELLIPSIS, QUESTION_MARKS, MenuDigits, is_noise, leftover_words


class Cat(Enum):
    """Keyword categories (the keys of ``i18n/keywords/*.toml``). Several may apply."""

    FINE = "fine"
    FILLER = "filler"
    GREETING = "greetings"
    STATEMENT = "statement"
    HELP = "help"
    NEEDS = "needs"
    TALK = "talk"
    NEGATED = "negated"
    NOT_FINE = "not_fine"
    NEG_BEFORE = "negators_before"
    NEG_AFTER = "negators_after"
    QUESTION = "question"
    QUESTION_START = "question_start"
    HEDGE = "hedge"
    PAST = "past"
    REPORTED = "reported"
    NAME = "names"
    WRAPPER = "name_wrappers"
    #: The basics people run out of (eat, drink, food, water, medicine, power).
    #: Alone they decide nothing; with an absence word they are a need.
    STAPLE = "staples"
    #: Absence: "there is none" ("tidak ada", "không có", "alga", "no hay").
    ABSENT = "absent"
    #: Running out ("ran out", "khatam", "hết", "吃完"): a staple with it is a
    #: need, but "problem gone" is not a fine "no problem".
    DEPLETED = "depleted"
    #: "Problem", "trouble", "wrong": negated ("no problem at all") it is fine.
    PROBLEM = "problem"
    #: Wanting and needing verbs ("need", "necesito", "cần"): before a talk
    #: word they ask to talk, not for a described need.
    MODAL = "modal"
    #: Thanks ("thanks for the call"): a talk word beside it is gratitude.
    THANKS = "thanks"
    #: Internal: a warning word of a language out of the resident's scope.
    FOREIGN = "foreign"
    #: Internal: a question phrase with a fine word inside ("tá tudo bem").
    INNER_FINE = "inner_fine"


#: Words that never close a check-in by themselves and may surround a fine word.
SAFE_CATS = frozenset({Cat.FINE, Cat.FILLER, Cat.GREETING, Cat.STATEMENT, Cat.THANKS})
#: Warning signs. The same string listed as harmless in one language and as
#: a warning sign in another (both in scope) is treated as the warning sign.
UNSAFE_CATS = frozenset(
    {
        Cat.HELP,
        Cat.NEEDS,
        Cat.TALK,
        Cat.NEGATED,
        Cat.NOT_FINE,
        Cat.NEG_BEFORE,
        Cat.NEG_AFTER,
        Cat.QUESTION,
        Cat.HEDGE,
        Cat.PAST,
        Cat.REPORTED,
        Cat.ABSENT,
        Cat.DEPLETED,
    }
)
#: Categories read from a reply (names and wrappers are read separately).
#: Staples, problems and modals are neither safe nor warnings: alone they
#: keep a reply out of "fine" ("leftover"); :func:`combine` gives them meaning.
REPLY_CATS = tuple(
    SAFE_CATS | UNSAFE_CATS | {Cat.QUESTION_START, Cat.STAPLE, Cat.PROBLEM, Cat.MODAL}
)
#: Out of scope, these still count fully when the resident's language is unknown.
ALARM_CATS = frozenset({Cat.HELP, Cat.NEEDS, Cat.TALK, Cat.NEGATED})

# --------------------------------------------------------------------------
# Which languages apply
# --------------------------------------------------------------------------

#: Pseudo-language code for the Latin-script (romaji) entries of Japanese files.
ROMAJI = "ja_romaji"
#: Emoji, laughter and Twilio's words (``_common.toml``).
COMMON = "_common"
#: In scope for every resident: they live in Japan and many answer in English.
ALWAYS = frozenset({COMMON, "ja", "easy_ja", "en"})
#: Languages whose own romanisation collides with romaji ("nai", "hai", "the").
NO_ROMAJI = frozenset({"ne", "hi", "ur", "bn", "ta", "si"})
#: Languages a resident of each language commonly mixes in (besides Japanese
#: and English). Kept small on purpose: every added language brings its
#: fine words into scope. Documented in the README.
MIXES: Mapping[str, tuple[str, ...]] = {
    "ja": ("easy_ja",),
    "easy_ja": ("ja",),
    "en": ("fil",),
    "fil": ("en",),
    "pt_BR": ("es",),
    "es": ("pt_BR",),
    "zh_Hans": ("zh_Hant",),
    "zh_Hant": ("zh_Hans",),
    "ne": (),
    "hi": ("ur",),
    "ur": ("hi",),
    "bn": (),
    "id": (),
    "vi": (),
    "ko": (),
    "th": (),
    "my": (),
    "km": (),
    "si": (),
    "ta": (),
    "mn": (),
}


@dataclass(frozen=True, slots=True)
class Scope:
    """The languages whose words count for one resident."""

    codes: frozenset[str]
    known: bool


def scope_for(language: str | None) -> Scope:
    """The scope for a resident registered in ``language`` (None: unknown)."""
    if language is None:
        return Scope(ALWAYS | {ROMAJI}, known=False)
    codes = set(ALWAYS) | {language, *MIXES.get(language, ())}
    if not codes & NO_ROMAJI:
        codes.add(ROMAJI)
    return Scope(frozenset(codes), known=True)


# --------------------------------------------------------------------------
# Spans
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawSpan:
    """A keyword found in the reply, with what it means in each language listing it."""

    start: int
    end: int
    text: str
    by_code: Mapping[str, frozenset[Cat]]


@dataclass(frozen=True, slots=True)
class Span:
    """A keyword as it counts for this resident."""

    start: int
    end: int
    text: str
    cats: frozenset[Cat]

    @property
    def length(self) -> int:
        return self.end - self.start


def _in_scope(raw: RawSpan, scope: Scope) -> frozenset[Cat]:
    cats: set[Cat] = set()
    for code, code_cats in raw.by_code.items():
        if code in scope.codes:
            cats |= code_cats
    if cats & UNSAFE_CATS:
        cats -= SAFE_CATS
    return frozenset(cats)


def _foreign(raw: RawSpan, scope: Scope) -> frozenset[Cat]:
    cats: set[Cat] = set()
    for code, code_cats in raw.by_code.items():
        if code not in scope.codes:
            cats |= code_cats & UNSAFE_CATS
    if not cats:
        return frozenset()
    if not scope.known and cats & ALARM_CATS:
        return frozenset(cats & ALARM_CATS)
    return frozenset({Cat.FOREIGN})


def _select(candidates: Iterable[Span], used: set[int]) -> list[Span]:
    """Keep the longest matches that do not overlap each other or ``used``.

    Longest-first is what lets idioms win over their parts: "tidak apa-apa"
    (fine) over "tidak" (not), "没事" (fine) over "没" (not).
    """
    taken: list[Span] = []
    for span in sorted(candidates, key=lambda s: (-s.length, s.start)):
        if not used.intersection(range(span.start, span.end)):
            taken.append(span)
            used.update(range(span.start, span.end))
    return taken


def has_statement(raw_spans: Iterable[RawSpan], scope: Scope) -> bool:
    """True if a statement word ("I", "estou", "です") is present, even inside a fine phrase."""
    return any(Cat.STATEMENT in _in_scope(r, scope) for r in raw_spans)


def resolve(raw_spans: Iterable[RawSpan], laughs: Iterable[Span], scope: Scope) -> list[Span]:
    """Choose the spans that explain the reply for this resident.

    In-scope words are chosen first, so a foreign word never hides one of the
    resident's own; foreign warning words then fill the gaps left over.
    """
    merged: dict[tuple[int, int], RawSpan] = {}
    for raw in raw_spans:
        # The same stretch matched by two lexicons (as typed and accent-free)
        # means everything each of them says.
        seen = merged.get((raw.start, raw.end))
        if seen is not None:
            by_code = {
                c: seen.by_code.get(c, frozenset()) | raw.by_code.get(c, frozenset())
                for c in {*seen.by_code, *raw.by_code}
            }
            raw = RawSpan(raw.start, raw.end, seen.text, by_code)
        merged[(raw.start, raw.end)] = raw
    raws = list(merged.values())
    own = [Span(r.start, r.end, r.text, c) for r in raws if (c := _in_scope(r, scope))]
    foreign = [Span(r.start, r.end, r.text, c) for r in raws if (c := _foreign(r, scope))]
    if not scope.known:
        # Alarm words of any language count fully, so they compete with
        # Japanese and English words on length ("没水" over Japanese "水").
        own += [s for s in foreign if s.cats & ALARM_CATS]
        foreign = [s for s in foreign if not s.cats & ALARM_CATS]
    used: set[int] = set()
    # Laughter first on equal length: "kkk" is a laugh, not Vietnamese "k" (not).
    taken = _select([*laughs, *own], used)
    taken += _select(foreign, used)
    return _mark_inner_fine(sorted(taken, key=lambda s: s.start), own)


#: Absence, negation and running out.
NEGATORS = frozenset({Cat.NEG_BEFORE, Cat.NEG_AFTER})
ABSENCE = NEGATORS | {Cat.ABSENT}


def _mark_inner_fine(taken: list[Span], own: list[Span]) -> list[Span]:
    """Mark question phrases that hold a fine word ("tá tudo bem", "ok?").

    Negated ("não tá tudo bem") such a phrase is a negated fine, not a question.
    """
    fines = [s for s in own if Cat.FINE in s.cats]
    problems = [s for s in own if Cat.PROBLEM in s.cats]
    absences = [s for s in own if s.cats & ABSENCE]
    marked = []
    for span in taken:
        if Cat.QUESTION in span.cats and _holds(span, fines):
            span = Span(span.start, span.end, span.text, span.cats | {Cat.INNER_FINE})
        negated_problem = _holds(span, problems) and _holds(span, absences)
        if span.cats & {Cat.FINE, Cat.PROBLEM} and negated_problem:
            # "ningún problema", listed as fine, is a negated problem word
            # itself, so "sin ningún problema" is a double negation, not a
            # negated fine. ("大丈夫" holding the kana of "異常" is not.)
            span = Span(span.start, span.end, span.text, span.cats | {Cat.PROBLEM, Cat.FINE})
        marked.append(span)
    return marked


def _holds(span: Span, inner: list[Span]) -> bool:
    return any(
        span.start <= s.start and s.end <= span.end and s.length < span.length for s in inner
    )


# --------------------------------------------------------------------------
# Deciding
# --------------------------------------------------------------------------

_SENTENCE_BREAKS = frozenset(".,!?;:。、，！？；")
_MAX_GAP_WORDS = 3
_MAX_GAP_CHARS = 24


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`decide` found: a kind name, the reason and the deciding words."""

    kind: str
    reason: str
    words: tuple[str, ...]


def gap_allows_negation(gap: str) -> bool:
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


@dataclass(frozen=True, slots=True)
class _Negation:
    text: str
    end: int
    #: "not ok", "មិនសុខសប្បាយ": the negation comes first, so a particle after it
    #: (Khmer "មិន…ទេ") closes it rather than asking a question.
    leading: bool
    #: The question phrase negated ("não tá tudo bem"): it asks nothing any more.
    target: Span | None = None


def _negated_fine(view: str, spans: list[Span]) -> _Negation | None:
    for span in spans:
        if Cat.NEGATED in span.cats:
            return _Negation(span.text, span.end, leading=True)
    negators = [s for s in spans if s.cats & {Cat.NEG_BEFORE, Cat.NEG_AFTER}]
    for fine in (s for s in spans if s.cats & {Cat.FINE, Cat.INNER_FINE}):
        inner = fine if Cat.FINE not in fine.cats else None
        for neg in negators:
            if Cat.NEG_BEFORE in neg.cats and neg.end <= fine.start:
                if gap_allows_negation(view[neg.end : fine.start]):
                    text = view[neg.start : fine.end]
                    return _Negation(text, fine.end, leading=True, target=inner)
            if inner is not None:
                continue
            if Cat.NEG_AFTER in neg.cats and neg.start >= fine.end:
                if gap_allows_negation(view[fine.end : neg.start]):
                    return _Negation(view[fine.start : neg.end], neg.end, leading=False)
    return None


def _closes_negation(view: str, spans: list[Span], negation: _Negation) -> bool:
    """True if the only question sign is a particle right after a leading negation."""
    if not negation.leading or QUESTION_MARKS.intersection(view):
        return False
    asking = [s for s in spans if Cat.QUESTION in s.cats]
    if _opens_with_question(spans) is not None or len(asking) != 1:
        return False
    particle = asking[0]
    return particle.start >= negation.end and not view[negation.end : particle.start].strip()


def _words(spans: Iterable[Span], cats: frozenset[Cat] | set[Cat]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.text for s in spans if s.cats & cats))


def _opens_with_question(spans: list[Span]) -> Span | None:
    """An interrogative opening, "?" or not: "are we safe", "is everyone ok".

    Not when a fine word follows at once: "am fine", "is ok" drop their
    subject ("(I) am fine"); a question puts the subject in between.
    """
    rest = [s for s in spans if not s.cats & {Cat.GREETING}]
    if not rest or Cat.QUESTION_START not in rest[0].cats:
        return None
    if len(rest) > 1 and Cat.FINE in rest[1].cats:
        return None
    return rest[0]


#: Doubts that keep a reply with a fine word out of "fine", in the order reported.
_DOUBTS: tuple[tuple[str, frozenset[Cat]], ...] = (
    ("question", frozenset({Cat.QUESTION})),
    ("hedge", frozenset({Cat.HEDGE})),
    ("past", frozenset({Cat.PAST})),
    ("reported", frozenset({Cat.REPORTED})),
    ("negator", frozenset({Cat.NEG_BEFORE, Cat.NEG_AFTER, Cat.ABSENT, Cat.DEPLETED})),
    ("not_fine", frozenset({Cat.NOT_FINE})),
    ("foreign", frozenset({Cat.FOREIGN})),
)


def _is_question(view: str, spans: list[Span]) -> tuple[str, ...] | None:
    marks = tuple(ch for ch in dict.fromkeys(view) if ch in QUESTION_MARKS)
    words = _words(spans, {Cat.QUESTION})
    opening = _opens_with_question(spans)
    if opening is not None:
        words = (opening.text, *words)
    if marks or words:
        return (*words, *marks)
    return None


def decide(
    view: str, spans: list[Span], digits: MenuDigits, truncated: bool, statement: bool = False
) -> Verdict:
    """The verdict on one normalised reply, given the spans chosen for its resident.

    ``statement`` says a statement word was seen (see :func:`has_statement`).
    """
    needs = _words(spans, {Cat.NEEDS})
    helps = _words(spans, {Cat.HELP})
    if helps or needs:
        return Verdict("help", "help" if helps else "need", tuple(dict.fromkeys(helps + needs)))
    if digits.help:
        return Verdict("help", "menu", ("2",))

    question = _is_question(view, spans)
    negated = _negated_fine(view, spans)
    if negated is not None and negated.target is not None:
        question = _is_question(view, [s for s in spans if s is not negated.target])
    if negated is not None:
        # "大丈夫じゃない？" is often "it's fine, isn't it?": ask again.
        if question and not _closes_negation(view, spans, negated):
            return Verdict("unclear", "question", (negated.text, *question))
        return Verdict("help", "negated", (negated.text,))

    talk = _words(spans, {Cat.TALK})
    if talk:
        return Verdict("talk", "talk", talk)
    if digits.talk:
        return Verdict("talk", "menu", ("3",))

    fine = _words(spans, {Cat.FINE})
    if not (fine or digits.fine):
        covered = {i for s in spans for i in range(s.start, s.end)}
        doubts = tuple(s.text for s in spans if s.cats - SAFE_CATS)
        return Verdict("unclear", "no_fine", (*doubts, *leftover_words(view, covered)))
    if question:
        return Verdict("unclear", "question", question)
    ellipsis = ELLIPSIS.search(view)
    if ellipsis:
        return Verdict("unclear", "hedge", (ellipsis.group(),))
    for reason, cats in _DOUBTS:
        words = _words(spans, cats)
        if words:
            return Verdict("unclear", reason, words)
    odd = tuple(s.text for s in spans if not s.cats & SAFE_CATS)
    if odd:
        # A word that only means something in another position ("ok are").
        return Verdict("unclear", "leftover", odd)
    if truncated:
        return Verdict("unclear", "truncated", ())
    if digits.ambiguous:
        return Verdict("unclear", "menu", tuple(sorted(digits.menu)))
    covered = {i for s in spans for i in range(s.start, s.end)}
    covered.update(i for a, b in digits.spans for i in range(a, b))
    leftover = leftover_words(view, covered)
    if leftover:
        return Verdict("unclear", "leftover", leftover)
    if _words(spans, {Cat.GREETING}) and not statement:
        # "oi tudo bem", "hola todo bien": a greeting that asks after someone.
        return Verdict("unclear", "question", _words(spans, {Cat.GREETING}) + fine)
    return Verdict("fine", "fine" if fine else "menu", fine or ("1",))


def has_unexplained(view: str, covered: set[int]) -> bool:
    """True if some meaningful character is not explained by a span."""
    return any(not is_noise(ch) for i, ch in enumerate(view) if i not in covered)

"""Words that only mean something together.

The classifier first finds keywords (:func:`i18n.reply_rules.resolve`); this
module then reads a few constructions that every language has, so that they
need no list of whole phrases:

* a negated problem word is a fine expression, in any word order and with
  intensifiers ("no problem at all", "koi problem nahi", "ဘာပြဿနာမှမရှိဘူး");
  a problem word not negated reports a problem, which is help;
* a staple with an absence word is a need ("nothing to eat", "khabar nei",
  "idekh yum alga", "水喝完了");
* a wanting or needing verb next to a talk word asks to talk ("necesito
  hablar"), not for a described need.

Each rule can only turn a reply into help or talk, or build a fine
expression that :func:`i18n.reply_rules.decide` still checks for questions,
hedges, the past and leftovers like any other.
"""

from __future__ import annotations

from i18n.reply_rules import ABSENCE, NEGATORS, Cat, Span, gap_allows_negation
from i18n.reply_text import QUESTION_MARKS

#: What a "no problem" run may be made of: the problem word, negators,
#: intensifiers listed as filler ("at all", "koi", "kei pani") and, inside the
#: run only, indefinite question words ("没什么问题", "ဘာပြဿနာမှမရှိဘူး").
_RUN_PARTS = ABSENCE | {Cat.PROBLEM, Cat.FILLER, Cat.QUESTION}
#: Doubts a run may hold; the fine expression made of it keeps them
#: ("問題なかった" is past, so unclear).
_RUN_DOUBTS = frozenset({Cat.PAST, Cat.HEDGE})
_RUN_ALLOWED = _RUN_PARTS | _RUN_DOUBTS | {Cat.GREETING, Cat.STATEMENT, Cat.QUESTION_START}


def _in_run(span: Span) -> bool:
    cats = span.cats - {Cat.FINE} if Cat.PROBLEM in span.cats else span.cats
    return bool(cats & _RUN_PARTS) and cats <= _RUN_ALLOWED


def _is_core(span: Span) -> bool:
    return bool(span.cats & ({Cat.PROBLEM} | ABSENCE)) and Cat.QUESTION not in span.cats


def _no_problem(view: str, spans: list[Span]) -> list[Span]:
    """Read "no problem (at all)", in any word order, as one fine expression.

    The run around a problem word is extended over adjacent negators and
    intensifiers (nothing but spaces between them). Its ends are trimmed to
    the problem word and the negators, so a question word at an end ("没问题吗")
    stays a question. Without a negator in the run nothing changes.
    """
    out = list(spans)
    i = 0
    while i < len(out):
        if Cat.PROBLEM not in out[i].cats or not _in_run(out[i]):
            i += 1
            continue
        # A fine idiom that is already a negated problem ("sem problema")
        # takes only absence words of negative concord ("sem problema
        # nenhum"), never another negator: "not no problem" is not fine.
        concord = Cat.FINE in out[i].cats

        def fits(span: Span, concord: bool = concord) -> bool:
            return _in_run(span) and not (concord and span.cats & NEGATORS)

        lo = hi = i
        while lo > 0 and fits(out[lo - 1]) and not view[out[lo - 1].end : out[lo].start].strip():
            lo -= 1
        while (
            hi + 1 < len(out)
            and fits(out[hi + 1])
            and not view[out[hi].end : out[hi + 1].start].strip()
        ):
            hi += 1
        # A word that may also ask ("bukan", "ទេ") never ends a run nor
        # counts as its negator: "gak ada masalah bukan" is a tag question.
        while lo < i and not _is_core(out[lo]):
            lo += 1
        while hi > i and not _is_core(out[hi]):
            hi -= 1
        if not any(_is_core(out[k]) and out[k].cats & ABSENCE for k in range(lo, hi + 1)):
            i += 1
            continue
        start, end = out[lo].start, out[hi].end
        doubts = {c for k in range(lo, hi + 1) for c in out[k].cats & _RUN_DOUBTS}
        out[lo : hi + 1] = [Span(start, end, view[start:end], frozenset({Cat.FINE, *doubts}))]
        i = lo + 1
    return out


def _missing_staples(view: str, spans: list[Span]) -> list[Span]:
    """A staple with an absence word in the same clause is a need.

    "nothing to eat", "khane ko kuch nahi", "idekh yum alga", "水喝完了",
    "acabou a comida": whichever comes first, and a few words apart.
    """
    out = []
    absences = [s for s in spans if s.cats & (ABSENCE | {Cat.DEPLETED})]
    for span in spans:
        if Cat.STAPLE in span.cats and Cat.NEEDS not in span.cats:
            for neg in absences:
                lo, hi = sorted((span, neg), key=lambda s: s.start)
                if lo.end <= hi.start and gap_allows_negation(view[lo.end : hi.start]):
                    text = view[lo.start : hi.end]
                    span = Span(span.start, span.end, text, span.cats | {Cat.NEEDS})
                    break
        out.append(span)
    return out


def _talk_modals(view: str, spans: list[Span]) -> list[Span]:
    """Read "need to talk", "necesito hablar", "cần người nói chuyện" as talk.

    A wanting or needing verb that is also listed as a need is not a need
    when a talk word follows it in the same clause.
    """
    out = []
    for i, span in enumerate(spans):
        if Cat.MODAL in span.cats and Cat.NEEDS in span.cats:
            # Verb-final languages put the talk word first ("කතා කරන්න ඕන").
            if _talk_beside(view, span, spans[i + 1 :], after=True) or _talk_beside(
                view, span, spans[:i][::-1], after=False
            ):
                span = Span(span.start, span.end, span.text, span.cats - {Cat.NEEDS})
        out.append(span)
    return out


def _talk_beside(view: str, modal: Span, others: list[Span], after: bool) -> bool:
    """True if a talk word is the next word-span on one side, in the same clause."""
    for other in others:
        gap = view[modal.end : other.start] if after else view[other.end : modal.start]
        if not gap_allows_negation(gap) or other.cats & {Cat.NEEDS, Cat.HELP}:
            return False
        if Cat.TALK in other.cats:
            return True
    return False


def _problems_reported(view: str, spans: list[Span]) -> list[Span]:
    """A problem word left after :func:`_no_problem` reports a problem: help.

    "問題があります", "we have a problem", "samasya aayo". Only negated problems
    are fine, so a negator we do not know leads to a false alarm, never to a
    closed check-in. Asked about ("what's wrong", "何か問題?") it stays unclear.
    """
    if QUESTION_MARKS.intersection(view) or any(Cat.QUESTION in s.cats for s in spans):
        return spans
    return [
        Span(s.start, s.end, s.text, s.cats | {Cat.NEEDS})
        if Cat.PROBLEM in s.cats and Cat.FINE not in s.cats
        else s
        for s in spans
    ]


def _thanked_talk(view: str, spans: list[Span]) -> list[Span]:
    """Read "thanks for the call, we're fine" as thanks, not as asking to talk.

    Only when the reply also says it is fine: a talk word right beside a
    thanks word, in the same clause, is then gratitude for the call
    ("お電話ありがとう", "obrigado pela ligação"). "Call me, thanks" has no
    fine word and stays talk.
    """
    if not any(Cat.FINE in s.cats for s in spans):
        return spans
    thanks = [s for s in spans if Cat.THANKS in s.cats]
    out = []
    for span in spans:
        if Cat.TALK in span.cats and span.cats <= {Cat.TALK, Cat.FILLER, Cat.STATEMENT}:
            for t in thanks:
                gap = view[t.end : span.start] if t.end <= span.start else view[span.end : t.start]
                if (t.end <= span.start or span.end <= t.start) and gap_allows_negation(gap):
                    span = Span(span.start, span.end, span.text, frozenset({Cat.FILLER}))
                    break
        out.append(span)
    return out


def combine(view: str, spans: list[Span]) -> list[Span]:
    """Give meaning to words that only mean something together."""
    spans = _problems_reported(view, _no_problem(view, spans))
    return _thanked_talk(view, _talk_modals(view, _missing_staples(view, spans)))

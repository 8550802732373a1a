"""Properties of the reply classifier, tried on generated replies (hypothesis).

The tables in ``test_classifier.py`` and the corpus check replies someone wrote down;
these check rules over every keyword of every language in combinations nobody wrote:
a fine phrase with any doubt added is never fine, a need is always help, and nothing
ever raises. Examples are derandomised (a fixed seed) and bounded, so CI is repeatable
and fast.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i18n.classifier import RESIDENT_LANGUAGES, ReplyKind, classify, load_keywords
from i18n.reply_rules import scope_for

FINE = ReplyKind.FINE
HELP = ReplyKind.HELP

CI = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Categories whose words must each keep a fine phrase from being fine.
DOUBTS = (
    "question",
    "hedge",
    "past",
    "reported",
    "negators_before",
    "negators_after",
    "negated",
    "not_fine",
    "help",
    "needs",
    "talk",
)


def _commands() -> frozenset[str]:
    keywords = load_keywords()
    words: set[str] = set()
    for kw in keywords.values():
        for key in ("stop", "start", "names"):
            words.update(kw.get(key))
    return frozenset(words)


def _pairs(keys: tuple[str, ...]) -> list[tuple[str, str]]:
    """(resident language, word) for every word in ``keys`` of a language in their scope."""
    keywords = load_keywords()
    pairs = []
    for code in RESIDENT_LANGUAGES:
        scope = scope_for(code).codes
        for source, kw in keywords.items():
            if source not in scope:
                continue
            for key in keys:
                for word in kw.get(key):
                    # Romaji is its own scope (reply_rules.ROMAJI).
                    if source in ("ja", "easy_ja") and word.isascii() and "ja_romaji" not in scope:
                        continue
                    pairs.append((code, word))
    return sorted(set(pairs))


FINE_PHRASES = _pairs(("fine",))
FINE_BY_LANGUAGE: dict[str, list[str]] = {}
for _code, _word in FINE_PHRASES:
    FINE_BY_LANGUAGE.setdefault(_code, []).append(_word)
DOUBT_WORDS = _pairs(DOUBTS)
NEED_WORDS = [(c, w) for c, w in _pairs(("needs",)) if w not in _commands()]
TAGS = ["?", "？", "¿", "؟", "...", "…", "。。。", "・・・", "right?", "ですよね", "だよね", "よね"]
LAUGHS = ["haha", "hehe", "ㅎㅎ", "ㅋㅋㅋ", "555", "www", "笑", "jaja", "kkk", "wkwk", "哈哈"]


@st.composite
def fine_with_doubt(draw: st.DrawFn) -> tuple[str, str]:
    code, doubt = draw(st.sampled_from(DOUBT_WORDS))
    fine = draw(st.sampled_from(FINE_BY_LANGUAGE[code]))
    sep = draw(st.sampled_from([" ", ", ", " ", "、"]))
    text = f"{fine}{sep}{doubt}" if draw(st.booleans()) else f"{doubt}{sep}{fine}"
    return code, text


@CI
@given(fine_with_doubt())
def test_a_fine_phrase_with_any_doubt_word_is_never_fine(case: tuple[str, str]) -> None:
    code, text = case
    assert classify(text, code).kind is not FINE, (code, text, classify(text, code))


@CI
@given(st.sampled_from(FINE_PHRASES), st.sampled_from(TAGS))
def test_a_question_mark_tag_question_or_ellipsis_is_never_fine(
    pair: tuple[str, str], tag: str
) -> None:
    code, fine = pair
    for text in (f"{fine}{tag}", f"{fine} {tag}"):
        assert classify(text, code).kind is not FINE, (code, text)


@CI
@given(st.sampled_from(NEED_WORDS), st.sampled_from(FINE_PHRASES))
def test_a_need_is_help_even_next_to_a_fine_phrase(
    need: tuple[str, str], fine: tuple[str, str]
) -> None:
    code, word = need
    assert classify(word, code).kind is HELP, (code, word, classify(word, code))
    for text in (f"{fine[1]} {word}", f"{word} {fine[1]}"):
        assert classify(text, code).kind is not FINE, (code, text)


@CI
@given(
    st.sampled_from(FINE_PHRASES),
    st.text(alphabet=st.characters(categories=["Ll", "Lo"]), min_size=2, max_size=8),
)
def test_an_unknown_word_beside_a_fine_phrase_keeps_it_out_of_fine(
    pair: tuple[str, str], noise: str
) -> None:
    """Any word no list explains (here: "zq" plus random letters) means "not fine"."""
    code, fine = pair
    unknown = f"zq{noise}"
    assert classify(f"{fine} {unknown}", code).kind is not FINE
    assert classify(f"{unknown} {fine}", code).kind is not FINE


@CI
@given(st.sampled_from(FINE_PHRASES), st.sampled_from(LAUGHS))
def test_laughter_around_a_fine_phrase_adds_no_doubt(pair: tuple[str, str], laugh: str) -> None:
    code, fine = pair
    assert classify(fine, code).kind is FINE
    assert classify(f"{fine} {laugh}", code).kind is FINE, (code, fine, laugh)


@settings(derandomize=True, max_examples=500, deadline=None)
@given(
    st.one_of(st.text(max_size=300), st.binary(max_size=100), st.none(), st.integers()),
    st.one_of(st.sampled_from([*RESIDENT_LANGUAGES, None]), st.text(max_size=10)),
)
def test_classify_never_raises_and_fine_always_names_its_words(text, locale) -> None:
    result = classify(text, locale)  # type: ignore[arg-type]
    assert isinstance(result.kind, ReplyKind)
    assert result.reason
    if result.kind is FINE:
        assert result.words and result.matched == result.words[0]

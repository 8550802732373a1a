"""The acceptance of the reply classifier, measured on the corpus in ``corpus/``.

One file per resident language (the file's name is the registered language),
one reply a line: ``label<TAB>text<TAB>optional note``; ``#`` starts a
comment. The labels are what a careful reader would decide: ``fine``,
``help``, ``talk`` or ``unclear``.

What must hold (issue 15):

* no reply that is not ``fine`` is ever read as fine (the one unsafe mistake);
* at least 95 % of all replies are read as labelled;
* at least 95 % of calls for help are read as help;
* at least 1,000 replies, at least 40 in every resident language.

Run with ``-s`` to see the per-language confusion summary; it is also part
of every failure message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from i18n.classifier import RESIDENT_LANGUAGES, ReplyKind, classify

CORPUS = Path(__file__).parent / "corpus"
LABELS = frozenset({"fine", "help", "talk", "unclear"})
MIN_TOTAL = 1000
MIN_PER_LANGUAGE = 40
MIN_ACCURACY = 0.95
MIN_HELP_RECALL = 0.95


@dataclass(frozen=True)
class Reply:
    """One labelled reply, with where it came from."""

    language: str
    line: int
    label: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.language}.tsv:{self.line}"


def _parse(path: Path) -> list[Reply]:
    replies = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) >= 2, f"{path.name}:{number}: expected label<TAB>text"
        label, text = fields[0].strip(), fields[1]
        assert label in LABELS, f"{path.name}:{number}: unknown label {label!r}"
        assert text.strip(), f"{path.name}:{number}: empty reply"
        replies.append(Reply(path.stem, number, label, text))
    return replies


@cache
def corpus() -> tuple[Reply, ...]:
    replies: list[Reply] = []
    for path in sorted(CORPUS.glob("*.tsv")):
        replies += _parse(path)
    return tuple(replies)


@cache
def verdicts() -> tuple[tuple[Reply, str, str], ...]:
    """Each reply with what the classifier read and why."""
    results = []
    for reply in corpus():
        result = classify(reply.text, reply.language)
        why = f"{result.reason}: {', '.join(result.words)}"
        results.append((reply, result.kind.value, why))
    return tuple(results)


def summary() -> str:
    """Per-language accuracy and confusion (label -> read as), then the misreads."""
    lines = ["language  n    accuracy  help-recall  confusion (label>read: count)"]
    by_language: dict[str, list[tuple[Reply, str, str]]] = {}
    for item in verdicts():
        by_language.setdefault(item[0].language, []).append(item)
    for language in sorted(by_language):
        items = by_language[language]
        right = sum(reply.label == read for reply, read, _ in items)
        helps = [read for reply, read, _ in items if reply.label == "help"]
        recall = f"{sum(r == 'help' for r in helps) / len(helps):.0%}" if helps else "-"
        confusion = Counter(
            f"{reply.label}>{read}" for reply, read, _ in items if reply.label != read
        )
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(confusion.items()))
        lines.append(
            f"{language:<9} {len(items):<4} {right / len(items):>7.1%}   {recall:>6}       {shown}"
        )
    lines.append("misreads:")
    for reply, read, why in verdicts():
        if reply.label != read:
            lines.append(f"  {reply.where}\t{reply.label} -> {read} ({why})\t{reply.text}")
    return "\n".join(lines)


def test_the_corpus_is_large_and_covers_every_language() -> None:
    counts = Counter(reply.language for reply in corpus())
    assert sum(counts.values()) >= MIN_TOTAL
    assert set(counts) == set(RESIDENT_LANGUAGES), "one file per resident language, no other"
    thin = {language: n for language, n in counts.items() if n < MIN_PER_LANGUAGE}
    assert not thin, f"fewer than {MIN_PER_LANGUAGE} replies: {thin}"


def test_no_reply_that_is_not_fine_is_read_as_fine() -> None:
    unsafe = [
        f"{reply.where}: {reply.label} read as fine ({why}): {reply.text}"
        for reply, read, why in verdicts()
        if read == ReplyKind.FINE.value and reply.label != "fine"
    ]
    assert not unsafe, "\n".join(unsafe)


def test_overall_accuracy() -> None:
    print("\n" + summary())
    right = sum(reply.label == read for reply, read, _ in verdicts())
    accuracy = right / len(verdicts())
    assert accuracy >= MIN_ACCURACY, f"accuracy {accuracy:.1%}\n{summary()}"


def test_calls_for_help_are_read_as_help() -> None:
    helps = [(reply, read) for reply, read, _ in verdicts() if reply.label == "help"]
    recall = sum(read == "help" for _, read in helps) / len(helps)
    assert recall >= MIN_HELP_RECALL, f"help recall {recall:.1%}\n{summary()}"


@pytest.mark.parametrize("language", RESIDENT_LANGUAGES)
def test_no_reply_reads_as_a_command(language: str) -> None:
    """STOP, START and a change of language never occur in the corpus."""
    commands = {ReplyKind.STOP.value, ReplyKind.START.value, ReplyKind.CHANGE_LANGUAGE.value}
    wrong = [
        f"{reply.where}: {read} ({why}): {reply.text}"
        for reply, read, why in verdicts()
        if reply.language == language and read in commands
    ]
    assert not wrong, "\n".join(wrong)

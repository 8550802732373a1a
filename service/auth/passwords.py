"""The password policy, after NIST SP 800-63B (section 3.1.1.2): length and a blocklist, no
composition rules.

A password is refused when, after NFKC normalisation, it

- has fewer than 12 characters (code points, so a Japanese passphrase counts as it reads),
  or is only spaces;
- is, or is built from, a commonly used or breached password (Django's list of the 20,000
  most common ones, read from the installed package) with digits, symbols, repeats or
  keyboard walks around it (``password1234``, ``qwertyuiop!!``);
- is mostly predictable: one or two characters or a short unit repeated (``aaaaaaaaaaaa``,
  ``fishfishfish``), or runs along a keyboard row or the alphabet (``1234567890ab``,
  ``qwertyuiopasdf``);
- is built from the user's own login, name or organization name.

Pure functions over plain strings: the service layer supplies the context words.
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import re
import unicodedata
from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from service.texts import N_, Text

MIN_LENGTH = 12
# Keeps hashing cheap; far beyond any passphrase a person types.
MAX_LENGTH = 200

# Rows a finger walks along, and the alphabet; both directions count.
_WALKS = (
    "1234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "abcdefghijklmnopqrstuvwxyz",
    "0987654321",
)
_NEIGHBOURS = {
    pair for row in _WALKS for a, b in itertools.pairwise(row) for pair in ((a, b), (b, a))
}
_SEPARATORS = re.compile(r"[\W_]+", re.UNICODE)
_EDGE_DIGITS = re.compile(r"^\d+|\d+$")


class Weakness(StrEnum):
    """Why a password is refused; each has a message (English here, catalogued for the
    dashboard in service/web/translation.py)."""

    too_short = "too_short"
    too_long = "too_long"
    blank = "blank"
    common = "common"
    predictable = "predictable"
    personal = "personal"


MESSAGES: dict[Weakness, Text] = {
    Weakness.too_short: N_(
        "the password is too short: use at least 12 characters "
        "(a few unrelated words make a good one)"
    ),
    Weakness.too_long: N_("the password is too long: use at most 200 characters"),
    Weakness.blank: N_("the password cannot be only spaces"),
    Weakness.common: N_(
        "this password is one of the most common or breached passwords, "
        "or built from one: choose another"
    ),
    Weakness.predictable: N_(
        "this password is too easy to guess: repeated characters or "
        "keyboard or alphabet sequences"
    ),
    Weakness.personal: N_(
        "the password is built from your login, your name or your "
        "organization's name: choose one that is not"
    ),
}


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Django's list of common and breached passwords, read without importing Django."""
    spec = importlib.util.find_spec("django")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the common-password list comes with Django: pip install django")
    path = Path(spec.submodule_search_locations[0]) / "contrib/auth/common-passwords.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return frozenset(line.strip() for line in handle if line.strip())


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _strip_predictable(text: str) -> str:
    """Drop every run of 3 or more characters that repeat (aaa) or walk (abc, 321, qwe)."""
    kept: list[str] = []
    start = 0
    for end in range(1, len(text) + 1):
        if end < len(text):
            a, b = text[end - 1], text[end]
            if a == b or (a, b) in _NEIGHBOURS:
                continue
        if end - start < 3:
            kept.append(text[start:end])
        start = end
    return "".join(kept)


def _core(folded: str) -> str:
    """The part a guesser would not get from rules: no separators, no runs, no repeats."""
    return _strip_predictable(_SEPARATORS.sub("", folded))


def _is_repeated(text: str) -> bool:
    """A short unit said again and again: fishfishfish, 123123123123."""
    size = len(text)
    return any(size % n == 0 and text[:n] * (size // n) == text for n in range(1, size // 2 + 1))


def _context_terms(context: Iterable[str]) -> list[str]:
    terms: set[str] = set()
    for raw in context:
        value = normalize(raw or "").casefold()
        if not value:
            continue
        if "@" in value:
            local = value.split("@", 1)[0]
            terms.add(_SEPARATORS.sub("", local))
            terms.update(_SEPARATORS.split(local))
        terms.add(_SEPARATORS.sub("", value))
        terms.update(_SEPARATORS.split(value))
    return sorted((t for t in terms if len(t) >= 3), key=len, reverse=True)


def weakness(password: str, *, context: Iterable[str] = ()) -> Weakness | None:
    """Why ``password`` is too weak, or None. ``context``: the login, the person's name and
    the organization's name, which a guesser who targets this account knows."""
    text = normalize(password)
    if not text.strip():
        return Weakness.blank
    if len(text) < MIN_LENGTH:
        return Weakness.too_short
    if len(text) > MAX_LENGTH:
        return Weakness.too_long
    folded = text.casefold()
    compact = _SEPARATORS.sub("", folded)
    core = _core(folded)
    common = common_passwords()
    bare = _EDGE_DIGITS.sub("", core)
    if {folded, compact, core, bare} & common:
        return Weakness.common
    if len(set(compact)) <= 2 or len(core) < 4 or _is_repeated(compact):
        return Weakness.predictable
    terms = _context_terms(context)
    personal = compact
    for term in terms:
        personal = personal.replace(term, "")
    if personal != compact and len(_strip_predictable(personal)) < 6:
        return Weakness.personal
    if personal != compact and _strip_predictable(personal) in common:
        return Weakness.personal
    return None

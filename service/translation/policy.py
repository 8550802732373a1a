"""What needs translating, and when to try again: pure functions over plain values."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

#: A reply is looked at by the job only if it was received within this window, so turning a
#: provider on translates what staff are working on now, not the whole history.
LOOKBACK = timedelta(days=2)
#: A rate-limited item is tried again after 30 s, 1 min, 2 min … up to an hour apart, and
#: given up (stored as failed) after this many tries or this long, whichever comes first.
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
MAX_TRIES = 12
GIVE_UP_AFTER = timedelta(hours=24)
#: Longest text sent: an SMS is at most 1,600 characters; anything longer is not a reply.
MAX_CHARS = 2000


def _is_kana(char: str) -> bool:
    code = ord(char)
    return 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9D


def _is_han(char: str) -> bool:
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def needs_translation(text: str | None) -> bool:
    """Whether a reply is free text staff may not be able to read.

    Not free text: empty, or nothing but digits, punctuation, symbols and emoji ("1",
    "２", "👍", "!!!"). Already readable: Japanese, meaning it has kana and its other
    letters are kanji or a few Latin letters ("大丈夫です", "OKです"). Kanji alone is not
    enough: "我没事" is Chinese. Everything else with a letter in it is free text, however
    short ("ok", "oi", "ổn"): the classifier may have read it, but staff should too.
    """
    if not text or not text.strip():
        return False
    kana = han = latin = other = 0
    for char in text:
        category = unicodedata.category(char)
        if not (category.startswith("L") or category == "Mn" or category == "Mc"):
            continue
        if _is_kana(char) or char == "ー":
            kana += 1
        elif _is_han(char):
            han += 1
        elif char.isascii():
            latin += 1
        else:
            other += 1
    if kana + han + latin + other == 0:
        return False
    japanese = kana > 0 and other == 0 and latin <= kana + han
    return not japanese


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """After a transient failure: try again at ``next_try_at``, or give up."""

    give_up: bool
    next_try_at: datetime | None


def after_transient_failure(
    *,
    tries: int,
    created_at: datetime,
    now: datetime,
    retry_after: float | None = None,
    jitter: float | None = None,
) -> RetryDecision:
    """Exponential backoff with jitter, never sooner than the provider asked.

    ``tries`` counts the attempt that just failed. ``jitter`` (0..1) is drawn at random
    unless given, so that items rate-limited together do not come back together.
    """
    if tries >= MAX_TRIES or now - created_at >= GIVE_UP_AFTER:
        return RetryDecision(give_up=True, next_try_at=None)
    delay = min(FIRST_RETRY * (2 ** max(tries - 1, 0)), MAX_RETRY)
    spread = random.random() if jitter is None else jitter
    delay = delay * (0.8 + 0.4 * spread)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return RetryDecision(give_up=False, next_try_at=now + delay)

"""The rules of an announcement, as pure functions over plain data: is the text acceptable,
who gets it, which languages still need staff, what it costs, and when it may leave.

Decisions documented here, and tested in ``tests/announcements/test_policy.py``:

* **Who.** The residents a round would contact by phone, who have a mobile number an SMS
  can reach: not moved out, not away, not stopped (``opted_out``: they replied STOP), with
  consent recorded. Everyone else is counted as skipped, by reason, and never texted.
* **Languages.** Every language among the recipients needs a text confirmed by staff. The
  Japanese original is confirmed by whoever wrote it. A language with no translation is
  sent in another one only when staff choose so for that language (``FALLBACKS``: the
  original Japanese, or an Easy Japanese text staff wrote and confirmed).
* **Quiet hours.** As for broadcasts (21:00 to 08:00 in the organization's time zone):
  an announcement sent inside them is queued for the end of quiet hours, unless staff
  override them; nothing is refused. It is a notice, not a check-in: nobody waits for it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from i18n.segments import sms_segments
from service.checkins.policy import in_quiet_hours, quiet_hours_end

SOURCE_LANGUAGE = "ja"
#: What a language with no translation may be sent in, when staff choose so.
FALLBACKS: tuple[str, ...] = ("easy_ja", "ja")
#: The Japanese original: about eight SMS segments in UCS-2.
MAX_SOURCE_CHARS = 500
#: A translation is often longer than its Japanese original.
MAX_TEXT_CHARS = 1000
#: Broadcasts' fixed quiet hours (``service.web.rounds.BROADCAST_QUIET`` too).
QUIET_HOURS = ("21:00", "08:00")

# A Japanese or international phone number: 090-1234-5678, 0768(22)1111, +81 90 1234 5678.
_PHONE = re.compile(r"(?<!\d)(?:\+\d{1,3}[\s-]?)?\(?0?\d{1,4}\)?[\s-]?\d{2,4}[\s-]?\d{3,4}(?!\d)")
_DIGITS = re.compile(r"\d")


def text_problem(text: str | None, limit: int) -> str | None:
    """``"empty"``, ``"too_long"`` or None for a text staff want sent."""
    stripped = (text or "").strip()
    if not stripped:
        return "empty"
    if len(stripped) > limit:
        return "too_long"
    return None


def looks_like_phone(text: str) -> bool:
    """Whether the text seems to carry a phone number (staff are warned, not refused:
    the council's own number is a fair thing to announce, a resident's is not)."""
    for match in _PHONE.finditer(_normalize_digits(text)):
        if len(_DIGITS.findall(match.group())) >= 10:
            return True
    return False


def _normalize_digits(text: str) -> str:
    """Full-width digits and dashes as ASCII, as a Japanese notice often writes them."""
    table = {ord("０") + i: str(i) for i in range(10)}
    table.update({ord("－"): "-", ord("ー"): "-", ord("‐"): "-", ord("（"): "(", ord("）"): ")"})
    table[ord("＋")] = "+"
    return text.translate(table)


def skip_reason(contact: bool, visit_reason: str | None, mobile: str | None) -> str | None:
    """Why a resident gets no announcement (None: they get one).

    ``contact`` and ``visit_reason`` are what rounds decide (``checkins.eligible``):
    moved out or away (no reason), stopped, no consent or no phone. An announcement is an
    SMS, so a resident with no mobile number, or whose number an SMS failed to for good,
    is skipped too."""
    if not contact:
        return visit_reason or "away_or_moved"
    if mobile is None:
        return "no_mobile"
    return None


@dataclass(frozen=True, slots=True)
class LanguageText:
    """A language's text as stored: its words, its fallback, whether staff confirmed it."""

    text: str | None
    fallback: str | None
    confirmed: bool


def needed_languages(
    recipient_languages: Mapping[str, int], texts: Mapping[str, LanguageText]
) -> list[str]:
    """The recipients' languages, and the languages confirmed fallbacks point to."""
    needed = set(recipient_languages)
    for language in list(needed):
        state = texts.get(language)
        if state is not None and state.fallback:
            needed.add(state.fallback)
    return sorted(needed)


def body_for(
    language: str, texts: Mapping[str, LanguageText], *, confirmed: bool = True
) -> str | None:
    """The text a reader of ``language`` gets, or None if staff have not confirmed one
    (with ``confirmed=False``: the text as it stands, confirmed or not, for the cost)."""
    state = texts.get(language)
    if state is None or (confirmed and not state.confirmed):
        return None
    if state.fallback:
        target = texts.get(state.fallback)
        if target is None or (confirmed and not target.confirmed) or target.fallback:
            return None
        return target.text
    return state.text or None


def open_languages(
    recipient_languages: Mapping[str, int], texts: Mapping[str, LanguageText]
) -> tuple[list[str], list[str]]:
    """(missing, unconfirmed): languages with no text at all, and with a text (or a
    fallback) staff have not confirmed, or whose fallback has no confirmed text."""
    missing: list[str] = []
    unconfirmed: list[str] = []
    for language in needed_languages(recipient_languages, texts):
        state = texts.get(language)
        if state is None or (not state.text and not state.fallback):
            missing.append(language)
        elif body_for(language, texts) is None:
            unconfirmed.append(language)
    return missing, unconfirmed


@dataclass(frozen=True, slots=True)
class CostLine:
    language: str
    recipients: int
    encoding: str
    segments_each: int
    segments: int
    confirmed: bool


def cost(
    recipient_languages: Mapping[str, int],
    bodies: Mapping[str, str | None],
    confirmed: Collection[str] | None = None,
) -> tuple[list[CostLine], int]:
    """Per language: recipients, encoding and segments of one message, and the language's
    total; and the grand total. ``bodies`` are the texts as they stand (drafts too, so
    staff see the cost while checking); ``confirmed`` the languages whose text staff have
    confirmed (all with a body, if not given). A language with no text yet costs nothing
    (and cannot be sent). Each resident gets one message: recipients × segments each."""
    lines = []
    for language, count in sorted(
        recipient_languages.items(), key=lambda item: (-item[1], item[0])
    ):
        body = bodies.get(language)
        info = sms_segments(body) if body else None
        lines.append(
            CostLine(
                language=language,
                recipients=count,
                encoding=info.encoding if info else "",
                segments_each=info.segments if info else 0,
                segments=count * info.segments if info else 0,
                confirmed=body is not None and (confirmed is None or language in confirmed),
            )
        )
    return lines, sum(line.segments for line in lines)


def send_time(now: datetime, tz: str, override_quiet_hours: bool) -> tuple[bool, datetime]:
    """(inside quiet hours now?, when the messages may leave)."""
    quiet = in_quiet_hours(now, tz, *QUIET_HOURS)
    if quiet and not override_quiet_hours:
        return True, quiet_hours_end(now, tz, QUIET_HOURS[1])
    return quiet, now

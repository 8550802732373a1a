"""Helpers that keep personal data out of logs."""

from __future__ import annotations

import re

# Separators people and libraries put between the digits of a phone number: spaces, ASCII
# and Japanese hyphens and long-vowel marks, dots, and ASCII or full-width brackets, as in
# "090-1234-5678", "+81 90 1234 5678", "(0768) 22-1234" or "０９０ー１２３４ー５６７８".
_SEPARATORS = r"\-‐‑‒–—―−ー－ .()（）"
_MIN_PHONE_DIGITS = 8

# Things that are not phone numbers but are made of digits and hyphens, tried first so
# that masking never mangles them: UUIDs, Twilio SIDs, ISO dates and times.
_NOT_PHONES = (
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    r"[A-Z]{2}[0-9a-fA-F]{32}",
    r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?)?(?!\d)",
)
_PHONE_RE = re.compile(
    "(?P<keep>" + "|".join(_NOT_PHONES) + ")"
    rf"|(?P<phone>[+(（]?\d[\d{_SEPARATORS}]{{6,}}\d)"
)


def mask_phone(phone: str | None) -> str:
    """Show only the last four digits, enough for staff to tell numbers apart."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    prefix = "+" if phone.strip().startswith("+") else ""
    return f"{prefix}{'*' * (len(digits) - 4)}{digits[-4:]}"


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("keep") is not None:
        return text
    if len(re.sub(r"\D", "", text)) < _MIN_PHONE_DIGITS:
        return text  # a count, a short code or a time: too short to be a phone number
    # Keep a leading bracket or trailing separator out of the mask, so "(0768) 22-1234"
    # reads "(******1234" rather than losing the sentence's punctuation.
    lead = text[0] if text[0] in "(（" else ""
    return lead + mask_phone(text[len(lead) :])


def mask_phones_in_text(text: str) -> str:
    """Mask anything in free text that looks like a phone number."""
    return _PHONE_RE.sub(_mask_match, text)

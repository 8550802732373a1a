"""Helpers that keep personal data out of logs."""

from __future__ import annotations

import re

_PHONE_RE = re.compile(r"\+?\d[\d\- ]{7,}\d")


def mask_phone(phone: str | None) -> str:
    """Show only the last four digits, enough for staff to tell numbers apart."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    prefix = "+" if phone.strip().startswith("+") else ""
    return f"{prefix}{'*' * (len(digits) - 4)}{digits[-4:]}"


def mask_phones_in_text(text: str) -> str:
    """Mask anything in free text that looks like a phone number."""
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)

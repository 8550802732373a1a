"""Phone number parsing: everything is stored as E.164, and landlines are voice-only."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from service.texts import N_, TextError

DEFAULT_REGION = "JP"

# Characters people type between digits that NFKC does not turn into an ASCII hyphen.
_DASHES = str.maketrans({c: "-" for c in "ー‐‑‒–—―−ｰ－"})


class PhoneKind(StrEnum):
    mobile = "mobile"
    landline = "landline"


class PhoneError(TextError):
    """Raised with a reason a member of staff can act on (a text, in their language)."""


@dataclass(frozen=True)
class ParsedPhone:
    e164: str
    kind: PhoneKind

    @property
    def can_receive_sms(self) -> bool:
        return self.kind == PhoneKind.mobile


_REASONS = {
    phonenumbers.ValidationResult.TOO_SHORT: N_("too short to be a phone number"),
    phonenumbers.ValidationResult.TOO_LONG: N_("too long to be a phone number"),
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: N_("unknown country code"),
    phonenumbers.ValidationResult.INVALID_LENGTH: N_("wrong number of digits"),
}

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_VOICE_ONLY_TYPES = {PhoneNumberType.FIXED_LINE, PhoneNumberType.VOIP}
_REFUSED_TYPES = {
    PhoneNumberType.TOLL_FREE: N_("toll-free numbers cannot receive calls from us"),
    PhoneNumberType.PREMIUM_RATE: N_("premium-rate numbers are not accepted"),
    PhoneNumberType.SHARED_COST: N_("shared-cost numbers are not accepted"),
    PhoneNumberType.PAGER: N_("pager numbers cannot receive check-ins"),
    PhoneNumberType.UAN: N_("company switchboard numbers are not accepted"),
}


_CACHE: dict[tuple[str, str], ParsedPhone] = {}
_CACHE_LIMIT = 250_000


def parse_phone(raw: str, region: str = DEFAULT_REGION) -> ParsedPhone:
    """Parse what staff typed (full-width digits, hyphens, brackets, +81) into E.164.

    Results are cached under both the typed form and the E.164 form, because an import
    parses each number once to validate it and again when the model re-validates it.
    """
    cached = _CACHE.get((raw, region))
    if cached is not None:
        return cached
    parsed = _parse_phone(raw, region)
    if len(_CACHE) > _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[(raw, region)] = parsed
    _CACHE[(parsed.e164, region)] = parsed
    return parsed


def _parse_phone(raw: str, region: str) -> ParsedPhone:
    text = unicodedata.normalize("NFKC", raw or "").translate(_DASHES).strip()
    if not text:
        raise PhoneError(N_("empty"))
    if _has_letters(text.replace("ext", "")):
        raise PhoneError(N_("contains letters"))
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneError(N_("not a phone number (%(reason)s)", reason=exc._msg)) from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible not in (
        phonenumbers.ValidationResult.IS_POSSIBLE,
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ):
        raise PhoneError(_REASONS.get(possible, N_("not a possible phone number")))
    # A valid number always has a type, so the type is worked out first and validity only
    # asked about a number without one: both walk the region's patterns (issue 20).
    number_type = phonenumbers.number_type(number)
    if number_type == PhoneNumberType.UNKNOWN and not phonenumbers.is_valid_number(number):
        region_code = phonenumbers.region_code_for_number(number) or region
        raise PhoneError(N_("not a valid number for %(region)s", region=region_code))
    if number_type in _REFUSED_TYPES:
        raise PhoneError(_REFUSED_TYPES[number_type])
    kind = PhoneKind.mobile if number_type in _MOBILE_TYPES else PhoneKind.landline
    if number_type not in _MOBILE_TYPES | _VOICE_ONLY_TYPES:
        # Unknown kinds are treated as voice-only: an SMS that never arrives is silent.
        kind = PhoneKind.landline
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return ParsedPhone(e164=e164, kind=kind)


_ASCII_LETTERS = re.compile("[A-Za-z]")


def _has_letters(text: str) -> bool:
    """Whether any character is a letter (``str.isalpha``); typed numbers are mostly ASCII
    once NFKC has folded full-width digits, and there a regular expression says it at once."""
    if text.isascii():
        return _ASCII_LETTERS.search(text) is not None
    return any(ch.isalpha() for ch in text)


def normalize_phone(raw: str | None) -> str | None:
    """Validator helper: None/blank stays None, anything else must parse."""
    if raw is None or not str(raw).strip():
        return None
    return parse_phone(str(raw)).e164


def phone_kind(e164: str | None) -> PhoneKind | None:
    return parse_phone(e164).kind if e164 else None


def display_phone(e164: str | None) -> str:
    """How staff write a number: 090-1234-5678 for Japan, +1 415-867-5309 abroad."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, DEFAULT_REGION)
    except NumberParseException:
        return e164
    if phonenumbers.region_code_for_number(number) == DEFAULT_REGION:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)

"""Phone numbers as staff type them, stored as E.164; landlines are voice-only."""

from __future__ import annotations

import pytest

from service.registry.phones import PhoneError, PhoneKind, display_phone, parse_phone


@pytest.mark.parametrize(("typed", "e164", "kind"), [
    ("090-1234-5678", "+819012345678", PhoneKind.mobile),
    ("０９０－１２３４－５６７８", "+819012345678", PhoneKind.mobile),
    ("+81 90 1234 5678", "+819012345678", PhoneKind.mobile),
    ("080ー1234ー5678", "+818012345678", PhoneKind.mobile),  # a long-vowel mark for a hyphen
    ("(0768) 22-1234", "+81768221234", PhoneKind.landline),
    ("0768221234", "+81768221234", PhoneKind.landline),
    ("050-1234-5678", "+815012345678", PhoneKind.landline),  # IP phones take no SMS
    ("+1 415 867 5309", "+14158675309", PhoneKind.mobile),
])
def test_accepted_forms_are_stored_as_e164(typed, e164, kind):
    parsed = parse_phone(typed)
    assert parsed.e164 == e164
    assert parsed.kind == kind
    assert parsed.can_receive_sms == (kind == PhoneKind.mobile)


@pytest.mark.parametrize(("typed", "reason"), [
    ("", "empty"),
    ("12345", "too short"),
    ("090-1234-567", "not a valid number"),
    ("0120-123-456", "toll-free"),
    ("電話なし", "contains letters"),
    ("abc-defg", "contains letters"),
    ("+999 1234 5678", "not a phone number"),
])
def test_impossible_numbers_are_refused_with_a_reason(typed, reason):
    with pytest.raises(PhoneError, match=reason):
        parse_phone(typed)


def test_numbers_are_shown_the_way_staff_write_them():
    assert display_phone("+819012345678") == "090-1234-5678"
    assert display_phone("+81768221234") == "0768-22-1234"
    assert display_phone("+14158675309") == "+1 415-867-5309"
    assert display_phone(None) == ""

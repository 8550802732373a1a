"""Reading the registry forms, and saying what is wrong with them in the staff member's
language.

The forms build the same request models the API reads (``ResidentCreate``,
``MemberUpdate``...), so the validation is the API's own; this module only turns a form into
such a model and an error (a pydantic ``ValidationError`` or a ``DomainError`` from the
commands) into named, catalogued messages, one per field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from service.errors import Conflict, DomainError, NotFound
from service.web.core import Staff, render_page
from service.web.translation import N_

# What each form field is called on screen.
FIELD_LABELS: dict[str, str] = {
    "name": N_("Name"),
    "name_kana": N_("Reading (kana)"),
    "external_id": N_("ID"),
    "phone": N_("Phone"),
    "phone2": N_("Second phone"),
    "language": N_("Language"),
    "languages": N_("Languages"),
    "preferred_channel": N_("Contact by"),
    "channels": N_("Channels, in order"),
    "site_id": N_("Site"),
    "unit": N_("Unit"),
    "household": N_("Household"),
    "consent_at": N_("Consent date"),
    "consent_method": N_("Consent method"),
    "status": N_("Status"),
    "away_until": N_("Away until"),
    "notes": N_("Notes"),
    "kind": N_("Role"),
    "address": N_("Address"),
    "municipality_code": N_("Municipality code"),
    "jma_area_code": N_("JMA area code"),
    "tsunami_area_code": N_("Tsunami forecast area code"),
    "member_id": N_("Member"),
    "rank": N_("Order"),
    "assignment_ids": N_("Order"),
    "email": N_("Login"),
    "full_name": N_("Name"),
    "role": N_("Role"),
    "is_active": N_("Active"),
    "password": N_("Password"),
}

# Messages for the checks a field fails, by field; then by the kind of check.
_FIELD_MESSAGES: dict[str, str] = {
    "phone": N_(
        "This is not a phone number we can call. Check the digits and the area code, "
        "for example 090-1234-5678 or 0768-22-1234."
    ),
    "phone2": N_(
        "This is not a phone number we can call. Check the digits and the area code, "
        "for example 090-1234-5678 or 0768-22-1234."
    ),
    "language": N_("Choose a language from the list."),
    "languages": N_("Choose languages from the list."),
    "municipality_code": N_("A municipality code has 5 or 6 digits."),
    "jma_area_code": N_("A JMA area code has 3 digits, for example 390."),
    "tsunami_area_code": N_("A JMA area code has 3 digits, for example 390."),
    "email": N_("Use an email address or a simple login name."),
    "away_until": N_("Someone who is away needs the date they come back."),
    "channels": N_("Use these channels, in the order to try them: line, whatsapp, sms, voice."),
}
_TYPE_MESSAGES: dict[str, str] = {
    "missing": N_("This is required."),
    "string_too_short": N_("This is required."),
    "string_too_long": N_("This is too long."),
    "date_from_datetime_parsing": N_("Give a date like 2026-11-01."),
    "date_parsing": N_("Give a date like 2026-11-01."),
    "date_type": N_("Give a date like 2026-11-01."),
    "enum": N_("Choose a value from the list."),
    "literal_error": N_("Choose a value from the list."),
    "uuid_parsing": N_("Choose a value from the list."),
    "uuid_type": N_("Choose a value from the list."),
    "int_parsing": N_("Give a whole number."),
    "greater_than_equal": N_("This number is too small."),
    "less_than_equal": N_("This number is too large."),
}
_REQUIRED_BLANK = N_("This is required.")
_INVALID = N_("This value is not valid.")

# Domain errors: a conflict or refusal the commands raise, by field.
_CONFLICT_MESSAGES: dict[str, str] = {
    "external_id": N_("Another record already has this ID."),
    "name": N_("A site with this name already exists."),
    "member_id": N_("This member is already assigned to this resident."),
    "rank": N_("Another member already has this place in the order."),
    "email": N_("A user with this login already exists."),
    "site_id": N_("Residents still live at this site: move them first."),
}
_INVALID_MESSAGES: dict[str, str] = {
    "site_id": N_("Choose a site from the list."),
    "member_id": N_("Choose a member from the list."),
    "resident_id": N_("This resident does not exist."),
    "away_until": N_("Someone who is away needs the date they come back."),
    "assignment_ids": N_("The page was out of date: reload it and try again."),
}


@dataclass
class FormErrors:
    """What is wrong with a form: catalogued messages with their values, by field."""

    by_field: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def add(self, name: str, message: str, **values: str) -> None:
        self.by_field.setdefault(name, (message, values))

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def attrs(self, name: str) -> Markup:
        """The attributes that mark a field as refused, for screen readers too."""
        if name not in self.by_field:
            return Markup("")
        return Markup(' aria-invalid="true" aria-describedby="form-errors"')

    def items(self) -> list[tuple[str, str, str, dict[str, str]]]:
        """(field, field label msgid, message msgid, values) for the summary at the top."""
        return [
            (name, FIELD_LABELS.get(name, N_("Form")), message, values)
            for name, (message, values) in self.by_field.items()
        ]


def validation_errors(error: ValidationError) -> FormErrors:
    errors = FormErrors()
    for item in error.errors():
        loc = item.get("loc") or ()
        name = str(loc[0]) if loc else ""
        kind = str(item.get("type", ""))
        text = str(item.get("msg", ""))
        if name in _FIELD_MESSAGES and kind not in ("missing", "string_too_long"):
            message = _FIELD_MESSAGES[name]
        elif "required and cannot be blank" in text:
            message = _REQUIRED_BLANK
        elif "away" in text and "away_until" in text:
            name, message = "away_until", _FIELD_MESSAGES["away_until"]
        else:
            message = _TYPE_MESSAGES.get(kind, _INVALID)
        errors.add(name, message)
    return errors


def domain_errors(error: DomainError, language: str) -> FormErrors:
    """A refusal from the commands, named by its field. A message with no wording here is
    shown as the command gave it (in ``language`` when the error carries a catalogued
    text), after a translated "Not saved"."""
    errors = FormErrors()
    name = error.field or ""
    if isinstance(error, NotFound):
        errors.add(name, N_("This record does not exist, or it belongs to another organization."))
    elif isinstance(error, Conflict) and name in _CONFLICT_MESSAGES:
        errors.add(name, _CONFLICT_MESSAGES[name])
    elif not isinstance(error, Conflict) and name in _INVALID_MESSAGES:
        errors.add(name, _INVALID_MESSAGES[name])
    else:
        text = getattr(error, "text", None)
        render = getattr(text, "render", None)
        reason = render(language) if callable(render) else error.message
        errors.add(name, N_("Not saved: %(reason)s"), reason=str(reason))
    return errors


# --- Reading forms ------------------------------------------------------------------------


def fields_of(record: Any) -> dict[str, Any]:
    """A record's stored values, as a form shows them."""
    return {name: getattr(record, name) for name in type(record).model_fields}


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def checked(form: FormData, name: str) -> bool:
    return text(form, name) not in ("", "0")


class BadDate(ValueError):
    """A date field that is not a date."""


def local_midnight_utc(value: str, timezone: str) -> datetime | None:
    """A date typed in the organization's time zone, as the UTC time of its midnight: the
    way the CSV import stores a consent date, so both read back as the same day."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise BadDate(value) from None
    return datetime.combine(day, time(0), ZoneInfo(timezone)).astimezone(UTC)


def local_day(value: datetime | None, timezone: str) -> date | None:
    """The organization's calendar day of a stored UTC time (a consent date, say)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(timezone)).date()


RESIDENT_TEXT_FIELDS = (
    "name",
    "name_kana",
    "external_id",
    "phone",
    "phone2",
    "language",
    "preferred_channel",
    "unit",
    "household",
    "consent_method",
    "notes",
)
RESIDENT_FLAGS = ("lives_alone", "elderly", "disability", "pregnancy", "needs_interpreter")


def resident_data(form: FormData, timezone: str, errors: FormErrors) -> dict[str, Any]:
    """The resident form as the API's body: blanks are None, the consent date is local."""
    data: dict[str, Any] = {name: text(form, name) or None for name in RESIDENT_TEXT_FIELDS}
    data["name"] = text(form, "name")  # blank is refused by the model, by name
    data["site_id"] = text(form, "site_id") or None
    for name in ("language", "preferred_channel"):
        if data[name] is None:
            del data[name]  # the default on a new resident, unchanged on an edit
    # "line, whatsapp, sms": the model checks each name (``registry.channels``).
    typed = text(form, "channels").replace("、", ",").replace(";", ",")
    data["channels"] = [name.strip() for name in typed.split(",") if name.strip()]
    for flag in RESIDENT_FLAGS:
        data[flag] = checked(form, flag)
    try:
        data["consent_at"] = local_midnight_utc(text(form, "consent_date"), timezone)
    except BadDate:
        errors.add("consent_at", N_("Give a date like 2026-11-01."))
    if "status" in form:
        data["status"] = text(form, "status") or None
        away = text(form, "away_until")
        try:
            data["away_until"] = date.fromisoformat(away) if away else None
        except ValueError:
            errors.add("away_until", N_("Give a date like 2026-11-01."))
    return data


MEMBER_TEXT_FIELDS = ("name", "name_kana", "external_id", "phone", "kind", "notes")


def member_data(form: FormData) -> dict[str, Any]:
    data: dict[str, Any] = {name: text(form, name) or None for name in MEMBER_TEXT_FIELDS}
    data["name"] = text(form, "name")
    data["phone"] = text(form, "phone")
    if data["kind"] is None:
        del data["kind"]  # the default on a new member, unchanged on an edit
    languages = [v for v in form.getlist("languages") if isinstance(v, str) and v]
    data["languages"] = languages or ["ja"]
    data["active"] = checked(form, "active")
    return data


SITE_TEXT_FIELDS = (
    "name",
    "address",
    "municipality_code",
    "jma_area_code",
    "tsunami_area_code",
    "notes",
)


def site_data(form: FormData) -> dict[str, Any]:
    data: dict[str, Any] = {name: text(form, name) or None for name in SITE_TEXT_FIELDS}
    data["name"] = text(form, "name")
    return data


def render_form(
    request: Request,
    staff: Staff,
    template: str,
    *,
    values: dict[str, Any],
    errors: FormErrors | None = None,
    **context: Any,
) -> HTMLResponse:
    """A registry or people form: 422 with each refused field named, else 200."""
    return render_page(
        request,
        template,
        staff=staff,
        status_code=422 if errors else 200,
        values=values,
        errors=errors or FormErrors(),
        **context,
    )

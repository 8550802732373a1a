"""Pydantic's validation problems in the reader's language.

English keeps Pydantic's own words, so API clients see what they always saw. Japanese
readers get a sentence from the ``service`` catalog for each error type staff meet (a
missing field, a wrong type, too long, not one of the allowed values). A validator that
raises :class:`~service.texts.TextError` is rendered from its own text in either language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.texts import N_, Text, TextError

_Builder = Callable[[Mapping[str, Any]], Text]

_JSON_KINDS: dict[str, Text] = {
    "string": N_("expected a string"),
    "boolean": N_("expected true or false"),
    "array": N_("expected an array (a list)"),
    "object": N_("expected an object"),
}


def _expected(ctx: Mapping[str, Any]) -> Text:
    return N_("must be one of: %(values)s", values=str(ctx.get("expected", "")))


_BY_TYPE: dict[str, _Builder] = {
    "missing": lambda ctx: N_("this field is required"),
    "null_not_allowed": lambda ctx: N_("may not be null"),

    "string_type": lambda ctx: N_("expected a string"),
    "bool_type": lambda ctx: N_("expected true or false"),
    "bool_parsing": lambda ctx: N_("expected true or false"),
    "int_type": lambda ctx: N_("expected a whole number"),
    "int_parsing": lambda ctx: N_("expected a whole number"),
    "int_from_float": lambda ctx: N_("expected a whole number"),
    "float_type": lambda ctx: N_("expected a number"),
    "float_parsing": lambda ctx: N_("expected a number"),
    "list_type": lambda ctx: N_("expected an array (a list)"),
    "dict_type": lambda ctx: N_("expected an object"),
    "model_type": lambda ctx: N_("expected an object"),
    "model_attributes_type": lambda ctx: N_("expected an object"),
    "string_too_short": lambda ctx: N_(
        "must be at least %(min)s characters", min=ctx.get("min_length", "")
    ),
    "string_too_long": lambda ctx: N_(
        "must be at most %(max)s characters", max=ctx.get("max_length", "")
    ),
    "too_short": lambda ctx: N_("needs at least %(min)s items", min=ctx.get("min_length", "")),
    "too_long": lambda ctx: N_("may have at most %(max)s items", max=ctx.get("max_length", "")),
    "greater_than_equal": lambda ctx: N_("must be %(limit)s or more", limit=ctx.get("ge", "")),
    "less_than_equal": lambda ctx: N_("must be %(limit)s or less", limit=ctx.get("le", "")),
    "greater_than": lambda ctx: N_("must be more than %(limit)s", limit=ctx.get("gt", "")),
    "less_than": lambda ctx: N_("must be less than %(limit)s", limit=ctx.get("lt", "")),
    "literal_error": _expected,
    "enum": _expected,
    "uuid_parsing": lambda ctx: N_("expected an id (a UUID)"),
    "uuid_type": lambda ctx: N_("expected an id (a UUID)"),
    "datetime_parsing": lambda ctx: N_(
        "expected a date and time with an offset, e.g. 2026-12-07T10:00:00+09:00"
    ),
    "datetime_from_date_parsing": lambda ctx: N_(
        "expected a date and time with an offset, e.g. 2026-12-07T10:00:00+09:00"
    ),
    "datetime_type": lambda ctx: N_(
        "expected a date and time with an offset, e.g. 2026-12-07T10:00:00+09:00"
    ),
    "timezone_aware": lambda ctx: N_(
        "expected a date and time with an offset, e.g. 2026-12-07T10:00:00+09:00"
    ),
    "date_parsing": lambda ctx: N_("expected a date, e.g. 2026-12-07"),
    "date_from_datetime_parsing": lambda ctx: N_("expected a date, e.g. 2026-12-07"),
    "date_type": lambda ctx: N_("expected a date, e.g. 2026-12-07"),
    "time_parsing": lambda ctx: N_("expected a time, e.g. 10:00"),
    "extra_forbidden": lambda ctx: N_("this field is not allowed here"),
    "json_invalid": lambda ctx: N_("the body is not valid JSON"),
    "url_parsing": lambda ctx: N_("expected a URL"),
    "string_pattern_mismatch": lambda ctx: N_("has the wrong form"),
}


def validation_text(error: Mapping[str, Any]) -> Text | None:
    """The catalog text for one Pydantic error, or ``None`` for a type it does not know."""
    ctx = error.get("ctx") or {}
    raised = ctx.get("error")
    if isinstance(raised, TextError):
        return raised.text
    if error.get("type") == "json_type":  # StrictBody's: the message names the kind
        by_message = {text.msgid: text for text in _JSON_KINDS.values()}
        return by_message.get(str(error.get("msg")), N_("wrong JSON type"))
    builder = _BY_TYPE.get(str(error.get("type")))
    return builder(ctx) if builder else None


def validation_message(error: Mapping[str, Any], language: str) -> str:
    """One Pydantic error's message in ``language`` (English: Pydantic's own words)."""
    message = str(error.get("msg", ""))
    if language == "en":
        return message.removeprefix("Value error, ")
    found = validation_text(error)
    if found is None:
        return N_("invalid value (%(detail)s)", detail=message).render(language)
    return found.render(language)


def localized_errors(errors: list[dict[str, Any]], language: str) -> list[dict[str, Any]]:
    """The errors with each ``msg`` in ``language``, in the shape FastAPI answers with."""
    result = []
    for error in errors:
        item = dict(error)
        if language != "en":
            item["msg"] = validation_message(error, language)
        ctx = item.get("ctx")
        if isinstance(ctx, dict) and isinstance(ctx.get("error"), BaseException):
            item["ctx"] = {**ctx, "error": {}}  # as FastAPI encodes a plain ValueError
        result.append(item)
    return result

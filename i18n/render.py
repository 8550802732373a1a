"""Render a message for one recipient, in that recipient's language.

There is no ambient locale: every call names the locale, because most texts are sent
from scheduler jobs and flows where no request (and no request locale) exists, and one
job sends to residents in many languages. A missing value raises instead of sending a
half-filled text to a vulnerable person.

Fallback order: the requested language (normalized, so "pt-BR" works), then its base
language ("pt_BR" → "pt"), then Easy Japanese. Unknown codes go straight to Easy
Japanese.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_format_date
from babel.dates import format_datetime as babel_format_datetime
from babel.dates import format_time as babel_format_time

from i18n.catalogs import LoadedCatalog, load_catalogs
from i18n.languages import FALLBACK_CODE, babel_locale, normalize_language_code
from i18n.messages import placeholders_in


class UnknownMessageError(KeyError):
    """No catalog in the fallback chain has this message id (a programming error)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


class MissingPlaceholderError(ValueError):
    """The caller did not pass a value for every placeholder in the chosen text."""

    def __init__(self, message_id: str, catalog: str, missing: frozenset[str]) -> None:
        self.message_id = message_id
        self.catalog = catalog
        self.missing = missing
        names = ", ".join(f"{{{name}}}" for name in sorted(missing))
        super().__init__(f"message {message_id!r} (catalog {catalog!r}) needs a value for {names}")


def _base(code: str) -> str:
    return code.split("_", 1)[0]


def fallback_chain(locale: str | None, locales_dir: Path | None = None) -> tuple[str, ...]:
    """Catalog codes to try, in order, for a recipient whose language is ``locale``."""
    available = load_catalogs(locales_dir)
    candidates: list[str] = []
    if locale:
        normalized = normalize_language_code(locale)
        for code in (locale, normalized):
            if code:
                candidates += [code, _base(code)]
    candidates.append(FALLBACK_CODE)
    return tuple(code for code in dict.fromkeys(candidates) if code in available)


def _pick(
    message_id: str, locale: str | None, locales_dir: Path | None
) -> tuple[LoadedCatalog, str]:
    catalogs = load_catalogs(locales_dir)
    for code in fallback_chain(locale, locales_dir):
        loaded = catalogs[code]
        if message_id in loaded.translated_ids:
            return loaded, loaded.translations.gettext(message_id)
    raise UnknownMessageError(
        f"no catalog has a translation for message {message_id!r} (asked for {locale!r})"
    )


def resolve_catalog(message_id: str, locale: str | None, locales_dir: Path | None = None) -> str:
    """Which catalog :func:`render` would use; lets status and tests see the fallback."""
    loaded, _text = _pick(message_id, locale, locales_dir)
    return loaded.code


def render(
    message_id: str,
    locale: str | None,
    *,
    locales_dir: Path | None = None,
    **values: object,
) -> str:
    """The text of ``message_id`` for a recipient whose language is ``locale``.

    ``values`` fill the ``{name}`` placeholders; values the text does not use are
    ignored so callers can pass one dict to several messages. Values are inserted
    verbatim (braces in a resident's name are not interpreted).
    """
    loaded, template = _pick(message_id, locale, locales_dir)
    needed = placeholders_in(template)
    missing = needed - values.keys()
    if missing:
        raise MissingPlaceholderError(message_id, loaded.code, frozenset(missing))
    return template.format_map({name: values[name] for name in needed})


def available_locales(locales_dir: Path | None = None) -> list[str]:
    """Catalog codes that exist and were compiled, in registry order."""
    return list(load_catalogs(locales_dir))


def catalogs(locales_dir: Path | None = None) -> Mapping[str, LoadedCatalog]:
    """The compiled catalog cache (read-only view), for status reporting."""
    return load_catalogs(locales_dir)


# --- Dates and times ------------------------------------------------------------------


def _zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _aware(value: datetime) -> datetime:
    """The database stores UTC; a naive value is taken to be UTC, never local time."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_datetime(
    value: datetime, locale: str | None, tz: str | tzinfo, format: str = "short"
) -> str:
    """A date and time as the recipient writes it, on the organization's clock.

    ``tz`` is passed explicitly (normally ``MIMAMORI_TIMEZONE``): a member in Ishikawa
    must read the local time of the visit, whatever the server's zone.
    """
    return babel_format_datetime(
        _aware(value), format=format, tzinfo=_zone(tz), locale=babel_locale(locale or "")
    )


def format_time(
    value: datetime, locale: str | None, tz: str | tzinfo, format: str = "short"
) -> str:
    """A time of day in the recipient's locale and the organization's timezone."""
    return babel_format_time(
        _aware(value), format=format, tzinfo=_zone(tz), locale=babel_locale(locale or "")
    )


def format_date(
    value: datetime, locale: str | None, tz: str | tzinfo, format: str = "medium"
) -> str:
    """A calendar date in the recipient's locale, taken on the organization's clock."""
    local = _aware(value).astimezone(_zone(tz))
    return babel_format_date(local.date(), format=format, locale=babel_locale(locale or ""))

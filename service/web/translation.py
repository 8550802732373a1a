"""The dashboard's language: Japanese first, English switchable, chosen per request.

There is no ambient locale. Each request picks a :class:`babel.support.Translations` from
the staff member's choice (kept in the signed session cookie) and hands the page an explicit
``_`` bound to it, the same explicit style the resident messages use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_format_date
from markupsafe import Markup, escape

from i18n.catalogs import DASHBOARD_CODES, load_dashboard_translations
from i18n.languages import display_name
from i18n.render import format_datetime, format_time

DEFAULT_UI_LANGUAGE = DASHBOARD_CODES[0]  # Japanese
UI_LANGUAGES: tuple[str, ...] = DASHBOARD_CODES


def N_(message: str) -> str:
    """Mark a message id for extraction; it is translated later, per request."""
    return message


def pick_ui_language(value: object) -> str:
    return value if isinstance(value, str) and value in UI_LANGUAGES else DEFAULT_UI_LANGUAGE


@dataclass(frozen=True)
class UiText:
    """Everything a page needs to speak the staff member's language."""

    language: str
    timezone: str

    @property
    def translations(self):  # type: ignore[no-untyped-def]
        return load_dashboard_translations(self.language)

    def gettext(self, message: str, **values: object) -> Markup:
        """The translation, HTML-escaped, with ``%(name)s`` values escaped too."""
        text = escape(self.translations.gettext(message))
        return text % values if values else text

    def plain(self, message: str, **values: object) -> str:
        """The translation as plain text, for headers and file names (not for HTML)."""
        text = self.translations.gettext(message)
        return text % values if values else text

    def datetime(self, value: datetime | None, format: str = "short") -> str:
        if value is None:
            return ""
        return format_datetime(value, self.language, self.timezone, format=format)

    def time(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return format_time(value, self.language, self.timezone, format="short")

    def date(self, value: date | None) -> str:
        if value is None:
            return ""
        return babel_format_date(value, format="medium", locale=self.language)

    def local_date(self, value: datetime) -> date:
        """The calendar day of a stored UTC time in the organization's time zone (a
        consent date stored as local midnight is that day, not the day before)."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(ZoneInfo(self.timezone)).date()

    def language_name(self, code: str | None) -> str:
        return display_name(code, self.language) if code else ""

    def number(self, value: int) -> str:
        return f"{value:,}"


Gettext = Callable[..., Markup]

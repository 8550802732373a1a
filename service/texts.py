"""Staff-facing texts outside the dashboard's pages, in Japanese or English.

The command line's output, domain errors (and so the API's error details) and CSV row
problems are :class:`Text` values: an English message id from the ``service`` catalog
domain (``i18n/locales/service.pot``) and its ``%(name)s`` values. Nothing is translated
until a caller that knows the reader renders it, explicitly: the command line in its
language (:func:`cli_language`), the API in the request's ``Accept-Language``
(:func:`accept_language`), the dashboard in the staff member's. There is no ambient
locale: ``str()`` of a text is English, for logs and for code that never shows it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from i18n.catalogs import DASHBOARD_CODES, load_service_translations

LANGUAGES: tuple[str, ...] = DASHBOARD_CODES  # ("ja", "en")
#: An installation speaks Japanese unless told otherwise, as the dashboard does.
DEFAULT_LANGUAGE = "ja"
#: What the API answers in when the request does not ask for Japanese.
API_DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class Text:
    """A message id and its values, rendered in a language only when someone reads it."""

    msgid: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def render(self, language: str) -> str:
        translated = load_service_translations(_known(language)).gettext(self.msgid)
        values = {name: render(value, language) for name, value in self.values.items()}
        try:
            return translated % values
        except (KeyError, ValueError, TypeError):  # a broken translation: the id still reads
            return self.msgid % values

    def __str__(self) -> str:
        return self.render("en")


def N_(msgid: str, /, **values: Any) -> Text:
    """Mark ``msgid`` for extraction into the ``service`` domain, with its values."""
    return Text(msgid, values)


def render(value: object, language: str) -> object:
    """A :class:`Text` in ``language``; lists of texts joined; anything else as it is."""
    if isinstance(value, Text):
        return value.render(language)
    if isinstance(value, list | tuple) and any(isinstance(v, Text) for v in value):
        return ", ".join(str(render(v, language)) for v in value)
    return value


def _known(language: str) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def language_of_locale(value: str | None) -> str | None:
    """``ja`` or ``en`` for a POSIX locale or language tag (``ja_JP.UTF-8``, ``en-GB``);
    ``None`` when it names neither (``C``, ``POSIX``, ``de_DE``)."""
    if not value:
        return None
    code = re.split(r"[_.@-]", value.strip(), maxsplit=1)[0].lower()
    return code if code in LANGUAGES else None


def cli_language(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The command line's language: ``--lang``, else ``MIMAMORI_LANGUAGE``, else the locale
    (``LC_ALL``, ``LC_MESSAGES``, ``LANG``, the first one set, as POSIX reads them), else
    Japanese. A locale that names neither Japanese nor English (``C.UTF-8`` on a server)
    gets the installation's Japanese."""
    env = os.environ if environ is None else environ
    for candidate in (explicit, env.get("MIMAMORI_LANGUAGE")):
        found = language_of_locale(candidate)
        if found:
            return found
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if env.get(name):
            return language_of_locale(env[name]) or DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([^\s;,]*))?")


def accept_language(header: str | None) -> str:
    """``ja`` when the request's ``Accept-Language`` prefers Japanese to English (q-values
    respected, ``q=0`` refuses), otherwise English: API clients are machines first."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((header or "").split(",")):
        match = _RANGE.match(part)
        if not match:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        language = language_of_locale(match.group(1))
        if language is None or quality <= 0:
            continue
        if best is None or (quality, -position) > (best[0], best[1]):
            best = (quality, -position, language)
    return best[2] if best else API_DEFAULT_LANGUAGE


class TextError(ValueError):
    """A ``ValueError`` that says what is wrong as a :class:`Text`.

    Raised in a Pydantic validator, it reaches the 422 answer in the caller's language:
    Pydantic keeps the exception in the error's ``ctx``. ``str()`` is the English text.
    """

    def __init__(self, text: Text | str) -> None:
        self.text = text if isinstance(text, Text) else Text(text)
        super().__init__(str(self.text))


def text_of(error: BaseException) -> Text:
    """What an exception says, as a text: its own when it has one, else its English words."""
    found = getattr(error, "text", None)
    return found if isinstance(found, Text) else Text("%(reason)s", {"reason": str(error)})

"""Typer's own words (help headings, usage lines, usage errors) in the command line's language.

Typer (0.29 and later) carries its own copy of Click whose messages are plain English
f-strings, not ``gettext`` calls, so no translation catalog can be installed for them. What
an operator sees of them passes through two places in ``typer.rich_utils``: its fixed strings
(the "Options" and "Commands" panel titles, "[default: …]", "Error", "Try … for help.") and
its ``highlighter``, which every usage line, option help and error message goes through.
:func:`translated_chrome` sets both for one run of the command line, and puts them back
after. The Japanese lives in the ``service`` catalog like every other line the command
line prints; :func:`translate` is the pure rule from Typer's English to it. English runs
change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.text import Text as RichText
from typer.core import TyperGroup

from service.texts import N_, Text, cli_language

_Rule = tuple[re.Pattern[str], Callable[[re.Match[str], str], Text]]

#: The parameter kinds Typer names in "Missing option '--x'." and the like.
_KINDS: dict[str, Text] = {
    "option": N_("option"),
    "argument": N_("argument"),
    "parameter": N_("parameter"),
}

#: Typer's fixed sentences.
_FIXED: dict[str, Text] = {
    "Show this message and exit.": N_("Show this message and exit."),
    "Missing command.": N_("Missing command."),
    "Aborted.": N_("Aborted."),
    "Aborted!": N_("Aborted."),
    "Options": N_("Options"),
    "Commands": N_("Commands"),
    "Arguments": N_("Arguments"),
    "Error": N_("Error"),
}

#: Pydantic's words for a value Typer could not convert (the reason after "Invalid value for").
_CONVERSIONS: tuple[tuple[re.Pattern[str], Text], ...] = (
    (re.compile(r"Input should be a valid integer\b.*", re.S), N_("expected a whole number")),
    (re.compile(r"Input should be a valid number\b.*", re.S), N_("expected a number")),
    (re.compile(r"Input should be a valid boolean\b.*", re.S), N_("expected true or false")),
)


_PYDANTIC_VALUE_ERROR = "Value error, "


def _kind(name: str, language: str) -> str:
    found = _KINDS.get(name)
    return found.render(language) if found else name


def _missing(match: re.Match[str], language: str) -> Text:
    kind = _kind(match.group("kind"), language)
    extra = match.group("extra")
    if extra:
        return N_(
            "Missing %(kind)s %(name)s. %(extra)s",
            kind=kind,
            name=match.group("name") or "",
            extra=translate(extra, language),
        )
    return N_("Missing %(kind)s %(name)s.", kind=kind, name=match.group("name") or "")


_RULES: tuple[_Rule, ...] = (
    (
        re.compile(r"(?P<message>.+)\. Did you mean (?P<suggestions>.+)\?", re.S),
        lambda m, lang: N_(
            "%(message)s Did you mean %(suggestions)s?",
            message=translate(m.group("message") + ".", lang),
            suggestions=m.group("suggestions"),
        ),
    ),
    (
        re.compile(r"Usage: (?P<usage>.*)", re.S),
        lambda m, lang: N_("Usage: %(usage)s", usage=m.group("usage")),
    ),
    (
        re.compile(r"Invalid value for (?P<name>.+?): (?P<reason>.*)", re.S),
        lambda m, lang: N_(
            "Invalid value for %(name)s: %(reason)s",
            name=m.group("name"),
            reason=translate(m.group("reason"), lang),
        ),
    ),
    (
        re.compile(r"Invalid value: (?P<reason>.*)", re.S),
        lambda m, lang: N_("Invalid value: %(reason)s", reason=translate(m.group("reason"), lang)),
    ),
    (
        re.compile(
            r"Missing (?P<kind>option|argument|parameter)(?: (?P<name>[^\n]+?))?\."
            r"(?: (?P<extra>.*))?",
            re.S,
        ),
        _missing,
    ),
    (
        re.compile(r"Choose from:\n\t(?P<choices>.*)", re.S),
        lambda m, lang: N_("Choose from:\n\t%(choices)s", choices=m.group("choices")),
    ),
    (
        re.compile(r"Missing parameter: (?P<name>.*)", re.S),
        lambda m, lang: N_(
            "Missing %(kind)s %(name)s.", kind=_kind("parameter", lang), name=m.group("name")
        ),
    ),
    (
        re.compile(r"No such option: (?P<name>\S+)(?: \(Possible options: (?P<options>.+)\))?"),
        lambda m, lang: (
            N_(
                "No such option: %(name)s (possible options: %(options)s)",
                name=m.group("name"),
                options=m.group("options"),
            )
            if m.group("options")
            else N_("No such option: %(name)s", name=m.group("name"))
        ),
    ),
    (
        re.compile(r"No such command (?P<name>.+)\."),
        lambda m, lang: N_("No such command %(name)s.", name=m.group("name")),
    ),
    (
        re.compile(r"Got unexpected extra argument\(s\) \((?P<args>.*)\)", re.S),
        lambda m, lang: N_("Got unexpected extra arguments (%(args)s)", args=m.group("args")),
    ),
    (
        re.compile(r"Option (?P<name>\S+) requires an argument\."),
        lambda m, lang: N_("Option %(name)s requires an argument.", name=m.group("name")),
    ),
    (
        re.compile(r"Option (?P<name>\S+) requires (?P<count>\d+) arguments\."),
        lambda m, lang: N_(
            "Option %(name)s requires %(count)s arguments.",
            name=m.group("name"),
            count=m.group("count"),
        ),
    ),
    (
        re.compile(r"Option (?P<name>\S+) does not take a value\."),
        lambda m, lang: N_("Option %(name)s does not take a value.", name=m.group("name")),
    ),
    (
        re.compile(r"Argument (?P<name>\S+) takes (?P<count>\d+) values\."),
        lambda m, lang: N_(
            "Argument %(name)s takes %(count)s values.",
            name=m.group("name"),
            count=m.group("count"),
        ),
    ),
    (
        re.compile(r"(?P<value>'.*?'|\S+) is not one of (?P<choices>.+)\.", re.S),
        lambda m, lang: N_(
            "%(value)s is not one of %(choices)s.",
            value=m.group("value"),
            choices=m.group("choices"),
        ),
    ),
    (
        re.compile(r"Value (?P<value>.+) is not a valid (?P<kind>\w+)\.", re.S),
        lambda m, lang: N_(
            "%(value)s is not a valid %(kind)s.", value=m.group("value"), kind=m.group("kind")
        ),
    ),
)


def translate(text: str, language: str) -> str:
    """Typer's English ``text`` in ``language``; anything else (our own already translated
    texts, what the user typed) comes back as it is."""
    if language == "en" or not text:
        return text
    if text.startswith(_PYDANTIC_VALUE_ERROR):  # a validator's ValueError, as Pydantic words it
        return translate(text.removeprefix(_PYDANTIC_VALUE_ERROR), language)
    fixed = _FIXED.get(text)
    if fixed is not None:
        return fixed.render(language)
    for pattern, text_of in _CONVERSIONS:
        if pattern.fullmatch(text):
            return text_of.render(language)
    for pattern, build in _RULES:
        match = pattern.fullmatch(text)
        if match:
            return build(match, language).render(language)
    return text


def _rich_strings(language: str) -> dict[str, str]:
    """``typer.rich_utils``'s fixed strings, in ``language`` (its ``{}`` fields kept)."""
    return {
        "DEPRECATED_STRING": N_("(deprecated) ").render(language),
        "DEFAULT_STRING": N_("[default: %(value)s]", value="{}").render(language),
        "ENVVAR_STRING": N_("[env var: %(name)s]", name="{}").render(language),
        "REQUIRED_LONG_STRING": N_("[required]").render(language),
        "ARGUMENTS_PANEL_TITLE": _FIXED["Arguments"].render(language),
        "OPTIONS_PANEL_TITLE": _FIXED["Options"].render(language),
        "COMMANDS_PANEL_TITLE": _FIXED["Commands"].render(language),
        "ERRORS_PANEL_TITLE": _FIXED["Error"].render(language),
        "ABORTED_TEXT": _FIXED["Aborted."].render(language),
        "RICH_HELP": N_(
            "Try %(command)s for help.", command="[blue]'{command_path} {help_option}'[/]"
        ).render(language),
    }


class _TranslatingHighlighter:
    """Typer's highlighter, seeing each text in the reader's language first."""

    def __init__(self, highlighter: Any, language: str) -> None:
        self._highlighter = highlighter
        self._language = language

    def __call__(self, text: str | RichText) -> RichText:
        if isinstance(text, str):
            return self._highlighter(translate(text, self._language))
        translated = translate(text.plain, self._language)
        if translated != text.plain:
            text = RichText(translated, style=text.style, justify=text.justify)
        return self._highlighter(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._highlighter, name)


@contextmanager
def translated_chrome(language: str) -> Iterator[None]:
    """For one run of the command line: Typer's chrome in ``language``, restored after."""
    if language == "en":
        yield
        return
    from typer import rich_utils

    replaced = {**_rich_strings(language)}
    replaced["highlighter"] = _TranslatingHighlighter(rich_utils.highlighter, language)
    saved = {name: getattr(rich_utils, name) for name in replaced}
    for name, value in replaced.items():
        setattr(rich_utils, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(rich_utils, name, value)


class TranslatedGroup(TyperGroup):
    """The ``mimamori`` group: every run speaks the command line's language, chrome included."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        with translated_chrome(cli_language()):
            return super().main(*args, **kwargs)

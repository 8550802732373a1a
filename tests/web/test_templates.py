"""The dashboard speaks only through its catalogs: no visible text hard-coded in a template,
and the Japanese and English catalogs complete and current (``python -m i18n.catalogs check``
covers the ``dashboard`` domain too)."""

from __future__ import annotations

import re
import shutil
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest

from i18n.catalogs import (
    LOCALES_DIR,
    check_catalogs,
    check_dashboard_catalogs,
    dashboard_po_path,
    load_dashboard_translations,
    update_dashboard_catalogs,
)
from service.web.core import TEMPLATES_DIR

# What a template prints comes from the catalogs or the data, so an expression becomes a
# marker; a statement or a comment prints nothing, so it becomes a space (it may sit inside a
# tag, as in ``<li{% if current %} aria-current="step"{% endif %}>``).
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.S)
_STATEMENT = re.compile(r"\{#.*?#\}|\{%.*?%\}", re.S)
_MARK = "\x00"
# Attributes a person reads or a screen reader speaks.
_SPOKEN_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "label"}
_BUTTON_TYPES = {"submit", "button", "reset"}


def _has_words(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("L") for ch in text.replace(_MARK, ""))


class _TextFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        values = dict(attrs)
        for name, value in attrs:
            if value is None:
                continue
            spoken = name in _SPOKEN_ATTRIBUTES or (
                name == "value" and tag == "input" and values.get("type") in _BUTTON_TYPES
            )
            if spoken and _has_words(value):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and _has_words(data):
            self.found.append(data.strip().replace(_MARK, "…"))


def hard_coded_text(source: str) -> list[str]:
    """Visible words in a template that do not come from ``_()`` or from data."""
    finder = _TextFinder()
    finder.feed(_EXPRESSION.sub(_MARK, _STATEMENT.sub(" ", source)))
    finder.close()
    return finder.found


def test_the_scanner_finds_text_outside_the_catalogs() -> None:
    assert hard_coded_text('<p>{{ _("Fine") }}</p>') == []
    assert hard_coded_text("<p>元気 {{ count }}</p>") == ["元気 …"]
    assert hard_coded_text('<input type="search" placeholder="Name">') == [
        "<input placeholder='Name'>"
    ]
    assert hard_coded_text('<input type="submit" value="Send">') == ["<input value='Send'>"]
    assert hard_coded_text('<input type="hidden" name="kind" value="residents">') == []
    assert hard_coded_text("<td>{{ n }} – {{ m }}: 42</td>") == []


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES_DIR.glob("*.html")), ids=str)
def test_templates_have_no_hard_coded_ui_text(template: str) -> None:
    source = (TEMPLATES_DIR / template).read_text(encoding="utf-8")
    assert hard_coded_text(source) == []


# --- The catalogs -----------------------------------------------------------------------------


@pytest.fixture
def dashboard_locales(tmp_path: Path) -> Path:
    target = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, target, ignore=shutil.ignore_patterns("*.mo"))
    return target


def test_dashboard_catalogs_are_complete_and_current() -> None:
    assert check_dashboard_catalogs() == []
    assert [p for p in check_catalogs() if p.catalog.startswith("dashboard")] == []


def test_japanese_is_the_default_and_english_is_complete() -> None:
    ja = load_dashboard_translations("ja")
    en = load_dashboard_translations("en")
    assert ja.gettext("Needs attention") == "対応が必要"
    assert en.gettext("Needs attention") == "Needs attention"
    assert load_dashboard_translations("xx").gettext("Board") == ja.gettext("Board")


def _set_translation(po: Path, msgid: str, msgstr: str) -> None:
    text = po.read_text(encoding="utf-8")
    start = text.index(f'msgid "{msgid}"\n')
    at = text.index("msgstr ", start)
    end = text.find("\n\n", at)
    end = len(text) if end == -1 else end
    po.write_text(f"{text[:at]}msgstr {msgstr}{text[end:]}", encoding="utf-8")


def test_check_fails_on_a_missing_japanese_translation(dashboard_locales: Path) -> None:
    _set_translation(dashboard_po_path("ja", dashboard_locales), "Needs attention", '""')
    problems = check_dashboard_catalogs(dashboard_locales)
    assert [(p.catalog, p.msgid, p.problem) for p in problems] == [
        ("dashboard:ja", "Needs attention", "translation is empty")
    ]


def test_check_fails_on_a_dropped_placeholder(dashboard_locales: Path) -> None:
    _set_translation(dashboard_po_path("ja", dashboard_locales), "Case %(code)s", '"ケース"')
    problems = check_dashboard_catalogs(dashboard_locales)
    assert [(p.msgid, p.problem) for p in problems] == [
        ("Case %(code)s", "placeholder %(code)s is missing")
    ]


def test_check_fails_when_a_template_gains_a_string(
    dashboard_locales: Path, tmp_path: Path
) -> None:
    source = tmp_path / "web"
    shutil.copytree(TEMPLATES_DIR.parent, source, ignore=shutil.ignore_patterns("__pycache__"))
    board = source / "templates" / "board.html"
    board.write_text(
        board.read_text(encoding="utf-8") + '\n{{ _("A brand new text") }}\n', encoding="utf-8"
    )
    stale = check_dashboard_catalogs(dashboard_locales, source)
    assert ("dashboard.pot", "A brand new text") in {(p.catalog, p.msgid) for p in stale}
    written = update_dashboard_catalogs(dashboard_locales, source)
    assert dashboard_po_path("ja", dashboard_locales) in written
    problems = check_dashboard_catalogs(dashboard_locales, source)
    # English is the source language and fills itself; Japanese waits for a translator.
    assert [(p.catalog, p.msgid, p.problem) for p in problems] == [
        ("dashboard:ja", "A brand new text", "translation is empty")
    ]
    load_dashboard_translations.cache_clear()


def test_update_on_current_dashboard_catalogs_writes_nothing(dashboard_locales: Path) -> None:
    assert update_dashboard_catalogs(dashboard_locales) == []
    load_dashboard_translations.cache_clear()

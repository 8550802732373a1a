"""Load, compile, update and check the committed gettext catalogs.

``.po`` files are the source of truth and are committed; ``.mo`` files are not. At
start-up each ``.po`` is parsed and compiled to an in-memory ``.mo`` that
:class:`babel.support.Translations` reads, so an installed copy of the package (which
ships only ``.po`` and ``.pot``) works without a build step.

Command line::

    python -m i18n.catalogs check    # fails on a stale template or a bad translation
    python -m i18n.catalogs update   # re-extract messages.pot and merge it into every .po
    python -m i18n.catalogs compile  # optional: write .mo files next to the .po files

``check`` and ``update`` also cover the two domains staff read, both Japanese and English
with the English text as message id: ``dashboard`` (``locales/dashboard.pot`` and
``locales/{ja,en}/LC_MESSAGES/dashboard.po``), extracted from the Jinja2 templates and
Python modules under ``service/web``, and ``service`` (``locales/service.pot`` and
``locales/{ja,en}/LC_MESSAGES/service.po``), extracted from every other module under
``service/``: the command line's output, domain errors and API error details, CSV row
errors. ``update`` fills new English entries with their id and leaves new Japanese entries
empty for ``check`` to reject until someone translates them.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Literal

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations

from i18n import messages as messages_module
from i18n.languages import CATALOG_CODES
from i18n.messages import MESSAGES, PlaceholderSyntaxError, placeholders_in

DOMAIN = "messages"
PACKAGE_DIR = Path(__file__).resolve().parent
LOCALES_DIR = PACKAGE_DIR / "locales"
TEMPLATE_FILENAME = f"{DOMAIN}.pot"
MESSAGES_SOURCE = Path(messages_module.__file__).resolve()

EXTRACT_KEYWORDS: dict[str, None] = {"N_": None}
COMMENT_TAGS = ("TRANSLATORS:",)

ReviewStatus = Literal["draft", "reviewed"]
REVIEW_STATUSES: tuple[str, ...] = ("draft", "reviewed")
REVIEW_HEADER = "X-Review-Status"
_REVIEW_RE = re.compile(r'^"X-Review-Status:\s*([^\\"]*)\\n"\s*$', re.MULTILINE)

_PROJECT = "Mimamori"
_VERSION = "1"
_COPYRIGHT = "Mimamori contributors"


class CatalogError(RuntimeError):
    """A catalog file cannot be read at all (as opposed to a content problem)."""


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """One reason the catalogs are not fit to ship, phrased for the person fixing it."""

    catalog: str
    msgid: str | None
    problem: str

    def __str__(self) -> str:
        where = self.catalog if self.msgid is None else f"{self.catalog}: msgid {self.msgid!r}"
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class LoadedCatalog:
    """A parsed ``.po`` file and its compiled translations."""

    code: str
    path: Path
    catalog: Catalog
    translations: Translations
    translated_ids: frozenset[str]
    review_status: str | None


# --- Paths ----------------------------------------------------------------------------


def template_path(locales_dir: Path | None = None) -> Path:
    return (locales_dir or LOCALES_DIR) / TEMPLATE_FILENAME


def po_path(code: str, locales_dir: Path | None = None) -> Path:
    return (locales_dir or LOCALES_DIR) / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalog_codes_on_disk(locales_dir: Path | None = None) -> list[str]:
    """Catalog codes that have a ``.po`` file, in registry order, then any extras."""
    root = locales_dir or LOCALES_DIR
    found = {
        path.parent.parent.name
        for path in root.glob(f"*/LC_MESSAGES/{DOMAIN}.po")
        if path.is_file()
    }
    ordered = [code for code in CATALOG_CODES if code in found]
    return ordered + sorted(found - set(ordered))


# --- Reading and compiling ------------------------------------------------------------


def read_review_status(path: Path) -> str | None:
    """The ``X-Review-Status`` header value.

    Babel's Catalog drops unknown header fields, so the header is read from the file
    text and written back by :func:`write_catalog`.
    """
    match = _REVIEW_RE.search(path.read_text(encoding="utf-8"))
    return match.group(1).strip() if match else None


def read_catalog(path: Path, locale: str | None = None) -> Catalog:
    try:
        with path.open("rb") as handle:
            return read_po(handle, locale=locale, domain=DOMAIN, abort_invalid=True)
    except Exception as error:  # babel raises several kinds; all mean "unreadable"
        raise CatalogError(f"cannot read catalog {path}: {error}") from error


def compile_translations(catalog: Catalog) -> Translations:
    """Compile to an in-memory ``.mo``; fuzzy and empty entries are left out."""
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def _translated_ids(catalog: Catalog) -> frozenset[str]:
    return frozenset(
        message.id
        for message in catalog
        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy
    )


def load_catalog(code: str, locales_dir: Path | None = None) -> LoadedCatalog:
    path = po_path(code, locales_dir)
    catalog = read_catalog(path)
    return LoadedCatalog(
        code=code,
        path=path,
        catalog=catalog,
        translations=compile_translations(catalog),
        translated_ids=_translated_ids(catalog),
        review_status=read_review_status(path),
    )


@cache
def _load_catalogs_cached(locales_dir: str) -> Mapping[str, LoadedCatalog]:
    root = Path(locales_dir)
    return {code: load_catalog(code, root) for code in catalog_codes_on_disk(root)}


def load_catalogs(locales_dir: Path | None = None) -> Mapping[str, LoadedCatalog]:
    """All catalogs, parsed and compiled once per process (the render cache)."""
    return _load_catalogs_cached(str((locales_dir or LOCALES_DIR).resolve()))


def clear_cache() -> None:
    """Forget compiled catalogs, e.g. after ``update`` rewrote them in this process."""
    _load_catalogs_cached.cache_clear()


# --- Extraction and update ------------------------------------------------------------


def extract_template(source: Path | None = None) -> Catalog:
    """Extract the template from the message-id module, as ``pybabel extract`` would."""
    source = source or MESSAGES_SOURCE
    template = Catalog(
        project=_PROJECT,
        version=_VERSION,
        copyright_holder=_COPYRIGHT,
        charset="utf-8",
        fuzzy=False,
    )
    for _lineno, message, comments, context in extract_from_file(
        "python",
        source,
        keywords=EXTRACT_KEYWORDS,
        comment_tags=COMMENT_TAGS,
        strip_comment_tags=True,
    ):
        template.add(message, None, auto_comments=comments, context=context)
    return template


def _message_ids(catalog: Catalog) -> list[str]:
    return [message.id for message in catalog if message.id and isinstance(message.id, str)]


def _template_signature(catalog: Catalog) -> list[tuple[str, tuple[str, ...]]]:
    return [
        # Babel re-wraps long comments when it writes a catalog; compare the words only.
        (message.id, tuple(" ".join(message.auto_comments).split()))
        for message in catalog
        if message.id and isinstance(message.id, str)
    ]


def _serialize(catalog: Catalog, review_status: str | None) -> str:
    buffer = BytesIO()
    write_po(buffer, catalog, width=0, no_location=True, ignore_obsolete=True)
    text = buffer.getvalue().decode("utf-8")
    if review_status is not None:
        header_end = text.index("\n\n")
        text = f'{text[:header_end]}\n"{REVIEW_HEADER}: {review_status}\\n"{text[header_end:]}'
    return text


def write_catalog(catalog: Catalog, path: Path, review_status: str | None) -> bool:
    """Write ``catalog`` to ``path`` if its text changed; True when the file was written."""
    text = _serialize(catalog, review_status)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def update_catalogs(locales_dir: Path | None = None, source: Path | None = None) -> list[Path]:
    """Re-extract the template and merge it into every catalog; returns files written.

    The template keeps its creation date when its content did not change, so running
    ``update`` on current catalogs writes nothing. Catalogs for registered languages that
    do not exist yet are created as drafts with empty entries, which ``check`` rejects
    until someone translates them.
    """
    root = locales_dir or LOCALES_DIR
    template = extract_template(source)
    existing_path = template_path(root)
    if existing_path.is_file():
        existing = read_catalog(existing_path)
        if _template_signature(existing) == _template_signature(template):
            template.creation_date = existing.creation_date
    written: list[Path] = []
    if write_catalog(template, existing_path, None):
        written.append(existing_path)
    codes = list(dict.fromkeys([*CATALOG_CODES, *catalog_codes_on_disk(root)]))
    for code in codes:
        path = po_path(code, root)
        if path.is_file():
            catalog = read_catalog(path)
            review_status = read_review_status(path) or "draft"
        else:
            catalog = Catalog(locale=code, domain=DOMAIN, charset="utf-8", fuzzy=False)
            catalog.project, catalog.version = _PROJECT, _VERSION
            catalog.language_team = f"{code} (draft; needs review by a native speaker)"
            review_status = "draft"
        catalog.update(template, no_fuzzy_matching=True, update_creation_date=True)
        catalog.fuzzy = False
        if write_catalog(catalog, path, review_status):
            written.append(path)
    written += update_dashboard_catalogs(root)
    written += update_dashboard_catalogs(root, domain=SERVICE_DOMAIN)
    clear_cache()
    return written


def compile_to_files(locales_dir: Path | None = None) -> list[Path]:
    """Write ``.mo`` files for tools that want them (the service itself does not)."""
    root = locales_dir or LOCALES_DIR
    written = []
    for code in catalog_codes_on_disk(root):
        path = po_path(code, root)
        target = path.with_suffix(".mo")
        with target.open("wb") as handle:
            write_mo(handle, read_catalog(path), use_fuzzy=False)
        written.append(target)
    for domain, code in ((d, c) for d in STAFF_DOMAINS for c in DASHBOARD_CODES):
        path = dashboard_po_path(code, root, domain)
        if path.is_file():
            target = path.with_suffix(".mo")
            with target.open("wb") as handle:
                write_mo(handle, _read_dashboard_catalog(path, domain=domain), use_fuzzy=False)
            written.append(target)
    return written


# --- Checking -------------------------------------------------------------------------


def _check_placeholders(code: str, msgid: str, text: str) -> list[CatalogProblem]:
    spec = MESSAGES.get(msgid)
    if spec is None:
        return []
    try:
        found = placeholders_in(text)
    except PlaceholderSyntaxError as error:
        return [CatalogProblem(code, msgid, str(error))]
    problems = [
        CatalogProblem(code, msgid, f"placeholder {{{name}}} is missing from the translation")
        for name in sorted(spec.placeholders - found)
    ]
    problems += [
        CatalogProblem(code, msgid, f"placeholder {{{name}}} is unknown (not in the template)")
        for name in sorted(found - spec.placeholders)
    ]
    return problems


def check_catalogs(
    locales_dir: Path | None = None, source: Path | None = None
) -> list[CatalogProblem]:
    """Every reason the committed catalogs are not fit to ship; empty means fine."""
    root = locales_dir or LOCALES_DIR
    problems: list[CatalogProblem] = []

    extracted_ids = _message_ids(extract_template(source))
    declared = set(MESSAGES)
    for msgid in sorted(set(extracted_ids) - declared):
        problems.append(
            CatalogProblem("messages.py", msgid, "marked with N_() but has no MessageSpec")
        )
    for msgid in sorted(declared - set(extracted_ids)):
        problems.append(CatalogProblem("messages.py", msgid, "has a MessageSpec but no N_() id"))

    pot = template_path(root)
    if not pot.is_file():
        problems.append(CatalogProblem(TEMPLATE_FILENAME, None, f"missing: {pot}"))
        template_ids = extracted_ids
    else:
        template_ids = _message_ids(read_catalog(pot))
        stale_added = sorted(set(extracted_ids) - set(template_ids))
        stale_removed = sorted(set(template_ids) - set(extracted_ids))
        for msgid in stale_added:
            problems.append(
                CatalogProblem(
                    TEMPLATE_FILENAME,
                    msgid,
                    "is in the source but not in the template; "
                    "run `python -m i18n.catalogs update`",
                )
            )
        for msgid in stale_removed:
            problems.append(
                CatalogProblem(
                    TEMPLATE_FILENAME,
                    msgid,
                    "is in the template but no longer in the source; "
                    "run `python -m i18n.catalogs update`",
                )
            )

    expected = list(dict.fromkeys(extracted_ids))
    on_disk = catalog_codes_on_disk(root)
    for code in CATALOG_CODES:
        if code not in on_disk:
            problems.append(CatalogProblem(code, None, f"catalog missing: {po_path(code, root)}"))

    for code in on_disk:
        path = po_path(code, root)
        try:
            catalog = read_catalog(path)
        except CatalogError as error:
            problems.append(CatalogProblem(code, None, str(error)))
            continue
        status = read_review_status(path)
        if status not in REVIEW_STATUSES:
            problems.append(
                CatalogProblem(
                    code,
                    None,
                    f"header {REVIEW_HEADER} must be one of {', '.join(REVIEW_STATUSES)}, "
                    f"got {status!r}",
                )
            )
        for msgid in expected:
            message = catalog.get(msgid)
            if message is None:
                problems.append(CatalogProblem(code, msgid, "entry is missing"))
                continue
            if not message.string or not str(message.string).strip():
                problems.append(CatalogProblem(code, msgid, "translation is empty"))
                continue
            if message.fuzzy:
                problems.append(
                    CatalogProblem(code, msgid, "translation is marked fuzzy; review it")
                )
            problems.extend(_check_placeholders(code, msgid, str(message.string)))
        for msgid in _message_ids(catalog):
            if msgid not in expected:
                problems.append(CatalogProblem(code, msgid, "entry is not in the template (stale)"))
    problems += check_dashboard_catalogs(root)
    problems += check_dashboard_catalogs(root, domain=SERVICE_DOMAIN)
    return problems


# --- The dashboard domain ---------------------------------------------------------------

DASHBOARD_DOMAIN = "dashboard"
#: Staff-facing texts outside the dashboard's pages: the command line, domain errors and
#: API error details, CSV row errors (``service/**`` except ``service/web``).
SERVICE_DOMAIN = "service"
STAFF_DOMAINS: tuple[str, ...] = (DASHBOARD_DOMAIN, SERVICE_DOMAIN)
#: The staff dashboard is Japanese first, with English switchable.
DASHBOARD_CODES: tuple[str, ...] = ("ja", "en")
DASHBOARD_SOURCE_LOCALE = "en"
DASHBOARD_KEYWORDS: dict[str, None] = {"_": None, "N_": None, "gettext": None}
_PYTHON_FORMAT = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)[sd]|%%")


def dashboard_source_dir() -> Path:
    """``service/web``, found without importing the service (i18n must not depend on it)."""
    spec = importlib.util.find_spec("service")
    if spec is None or not spec.submodule_search_locations:
        return PACKAGE_DIR.parent / "service" / "web"
    return Path(next(iter(spec.submodule_search_locations))) / "web"


def dashboard_template_path(
    locales_dir: Path | None = None, domain: str = DASHBOARD_DOMAIN
) -> Path:
    return (locales_dir or LOCALES_DIR) / f"{domain}.pot"


def dashboard_po_path(
    code: str, locales_dir: Path | None = None, domain: str = DASHBOARD_DOMAIN
) -> Path:
    return (locales_dir or LOCALES_DIR) / code / "LC_MESSAGES" / f"{domain}.po"


def _dashboard_sources(source_dir: Path) -> list[tuple[str, Path]]:
    """(extraction method, file) pairs in a stable order, so the template is reproducible."""
    sources: list[tuple[str, Path]] = []
    templates = source_dir / "templates"
    if templates.is_dir():
        for path in sorted(templates.rglob("*.html")):
            sources.append(("jinja2.ext:babel_extract", path))
    for path in sorted(source_dir.glob("*.py")):
        sources.append(("python", path))
    return sources


def _service_sources(source_dir: Path) -> list[tuple[str, Path]]:
    """Every Python module of the service except the dashboard's, in a stable order."""
    web = source_dir / "web"
    return [
        ("python", path)
        for path in sorted(source_dir.rglob("*.py"))
        if web not in path.parents and "__pycache__" not in path.parts
    ]


def _domain_sources(domain: str, source_dir: Path | None) -> list[tuple[str, Path]]:
    if domain == SERVICE_DOMAIN:
        return _service_sources(source_dir or dashboard_source_dir().parent)
    return _dashboard_sources(source_dir or dashboard_source_dir())


def extract_dashboard_template(
    source_dir: Path | None = None, domain: str = DASHBOARD_DOMAIN
) -> Catalog:
    """The dashboard's template: every ``_()`` in the templates, every ``N_()``/``_()`` in
    the Python modules, in file order, as ``pybabel extract`` with the Jinja2 extractor
    would find them. With ``domain="service"``, the ``service`` domain's from the rest of
    the service (``source_dir`` is then the ``service`` package)."""
    template = Catalog(
        project=_PROJECT,
        version=_VERSION,
        copyright_holder=_COPYRIGHT,
        charset="utf-8",
        fuzzy=False,
    )
    for method, path in _domain_sources(domain, source_dir):
        options = {"silent": "false"} if method != "python" else {}
        for _lineno, message, comments, context in extract_from_file(
            method,
            path,
            keywords=DASHBOARD_KEYWORDS,
            comment_tags=COMMENT_TAGS,
            strip_comment_tags=True,
            options=options,
        ):
            template.add(message, None, auto_comments=comments, context=context)
    return template


def _read_dashboard_catalog(
    path: Path, locale: str | None = None, domain: str = DASHBOARD_DOMAIN
) -> Catalog:
    try:
        with path.open("rb") as handle:
            return read_po(handle, locale=locale, domain=domain, abort_invalid=True)
    except Exception as error:
        raise CatalogError(f"cannot read catalog {path}: {error}") from error


def update_dashboard_catalogs(
    locales_dir: Path | None = None,
    source_dir: Path | None = None,
    domain: str = DASHBOARD_DOMAIN,
) -> list[Path]:
    """Re-extract ``dashboard.pot`` (or ``service.pot``) and merge it into the Japanese and
    English catalogs."""
    root = locales_dir or LOCALES_DIR
    template = extract_dashboard_template(source_dir, domain)
    pot = dashboard_template_path(root, domain)
    if pot.is_file():
        existing = _read_dashboard_catalog(pot, domain=domain)
        if _template_signature(existing) == _template_signature(template):
            template.creation_date = existing.creation_date
    written: list[Path] = []
    if write_catalog(template, pot, None):
        written.append(pot)
    for code in DASHBOARD_CODES:
        path = dashboard_po_path(code, root, domain)
        if path.is_file():
            catalog = _read_dashboard_catalog(path, domain=domain)
            review_status = read_review_status(path) or "draft"
        else:
            catalog = Catalog(locale=code, domain=domain, charset="utf-8", fuzzy=False)
            catalog.project, catalog.version = _PROJECT, _VERSION
            review_status = "draft"
        catalog.update(template, no_fuzzy_matching=True, update_creation_date=True)
        catalog.fuzzy = False
        if code == DASHBOARD_SOURCE_LOCALE:
            for message in catalog:
                if message.id and isinstance(message.id, str) and not message.string:
                    message.string = message.id
        if write_catalog(catalog, path, review_status):
            written.append(path)
    load_dashboard_translations.cache_clear()
    return written


def _python_format_names(text: str) -> set[str]:
    return {m.group(1) for m in _PYTHON_FORMAT.finditer(text) if m.group(1)}


def check_dashboard_catalogs(
    locales_dir: Path | None = None,
    source_dir: Path | None = None,
    domain: str = DASHBOARD_DOMAIN,
) -> list[CatalogProblem]:
    """Like :func:`check_catalogs`, for the dashboard (or the ``service`` domain): the
    template is current, every entry of both catalogs is translated, and ``%(name)s``
    placeholders match the message id."""
    root = locales_dir or LOCALES_DIR
    pot_name = f"{domain}.pot"
    where = "service/web" if domain == DASHBOARD_DOMAIN else "service (outside service/web)"
    problems: list[CatalogProblem] = []
    extracted = list(dict.fromkeys(_message_ids(extract_dashboard_template(source_dir, domain))))
    pot = dashboard_template_path(root, domain)
    if not pot.is_file():
        problems.append(CatalogProblem(pot_name, None, f"missing: {pot}"))
    else:
        template_ids = _message_ids(_read_dashboard_catalog(pot, domain=domain))
        hint = "run `python -m i18n.catalogs update`"
        for msgid in sorted(set(extracted) - set(template_ids)):
            problems.append(
                CatalogProblem(pot_name, msgid, f"is in {where} but not in the template; {hint}")
            )
        for msgid in sorted(set(template_ids) - set(extracted)):
            problems.append(
                CatalogProblem(pot_name, msgid, f"is in the template but not in {where}; {hint}")
            )
    for code in DASHBOARD_CODES:
        name = f"{domain}:{code}"
        path = dashboard_po_path(code, root, domain)
        if not path.is_file():
            problems.append(CatalogProblem(name, None, f"catalog missing: {path}"))
            continue
        try:
            catalog = _read_dashboard_catalog(path, domain=domain)
        except CatalogError as error:
            problems.append(CatalogProblem(name, None, str(error)))
            continue
        status = read_review_status(path)
        if status not in REVIEW_STATUSES:
            problems.append(
                CatalogProblem(
                    name,
                    None,
                    f"header {REVIEW_HEADER} must be one of {', '.join(REVIEW_STATUSES)}, "
                    f"got {status!r}",
                )
            )
        for msgid in extracted:
            message = catalog.get(msgid)
            if message is None:
                problems.append(CatalogProblem(name, msgid, "entry is missing"))
                continue
            text = str(message.string or "")
            if not text.strip():
                problems.append(CatalogProblem(name, msgid, "translation is empty"))
                continue
            if message.fuzzy:
                problems.append(
                    CatalogProblem(name, msgid, "translation is marked fuzzy; review it")
                )
            wanted, found = _python_format_names(msgid), _python_format_names(text)
            for missing in sorted(wanted - found):
                problems.append(
                    CatalogProblem(name, msgid, f"placeholder %({missing})s is missing")
                )
            for unknown in sorted(found - wanted):
                problems.append(
                    CatalogProblem(name, msgid, f"placeholder %({unknown})s is unknown")
                )
        for msgid in _message_ids(catalog):
            if msgid not in extracted:
                problems.append(CatalogProblem(name, msgid, "entry is not in the template (stale)"))
    return problems


@cache
def load_dashboard_translations(
    code: str, locales_dir: str | None = None, domain: str = DASHBOARD_DOMAIN
) -> Translations:
    """The compiled dashboard (or ``service``) catalog for ``code`` (Japanese when unknown),
    once per process."""
    if code not in DASHBOARD_CODES:
        code = DASHBOARD_CODES[0]
    root = Path(locales_dir) if locales_dir else LOCALES_DIR
    catalog = _read_dashboard_catalog(dashboard_po_path(code, root, domain), code, domain)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=domain)


def load_service_translations(code: str) -> Translations:
    """The ``service`` domain's compiled catalog: the command line, errors, CSV problems."""
    return load_dashboard_translations(code, None, SERVICE_DOMAIN)


# --- Command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m i18n.catalogs", description=__doc__)
    parser.add_argument("command", choices=("check", "update", "compile"))
    parser.add_argument("--locales-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "update":
        for path in update_catalogs(args.locales_dir):
            print(f"updated {path}")
        return 0
    if args.command == "compile":
        for path in compile_to_files(args.locales_dir):
            print(f"compiled {path}")
        return 0

    problems = check_catalogs(args.locales_dir)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(problems)} catalog problem(s) found", file=sys.stderr)
        return 1
    count = len(catalog_codes_on_disk(args.locales_dir))
    print(f"ok: template current, {count} catalogs complete with matching placeholders")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

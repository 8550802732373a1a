"""The catalog check that CI runs: it must pass on the real catalogs and fail on bad ones."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from i18n.catalogs import (
    LOCALES_DIR,
    check_catalogs,
    compile_translations,
    load_catalogs,
    main,
    po_path,
    read_catalog,
    read_review_status,
    template_path,
    update_catalogs,
)
from i18n.languages import CATALOG_CODES
from i18n.messages import MESSAGES

REPO = Path(__file__).resolve().parents[2]


def _replace_translation(po: Path, msgid: str, new_msgstr: str) -> None:
    """Rewrite one entry's msgstr in place, keeping the rest of the file byte-identical."""
    text = po.read_text(encoding="utf-8")
    start = text.index(f'msgid "{msgid}"\n')
    msgstr_at = text.index("msgstr ", start)
    end = text.find("\n\n", msgstr_at)
    end = len(text) if end == -1 else end
    po.write_text(f"{text[:msgstr_at]}msgstr {new_msgstr}{text[end:]}", encoding="utf-8")


def test_real_catalogs_pass_the_check() -> None:
    problems = check_catalogs()
    assert problems == [], "\n".join(map(str, problems))


def test_check_command_exits_zero_on_real_catalogs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "i18n.catalogs", "check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_fails_when_a_translation_drops_a_placeholder(locales_copy: Path, capsys) -> None:
    _replace_translation(
        po_path("vi", locales_copy),
        "resident.checkin",
        '"{org}: Chào bạn. Bạn có khỏe không? Trả lời 1, 2 hoặc 3."',
    )
    problems = check_catalogs(locales_copy)
    assert [(p.catalog, p.msgid) for p in problems] == [("vi", "resident.checkin")]
    assert "{name}" in str(problems[0]) and "missing" in str(problems[0])

    assert main(["check", "--locales-dir", str(locales_copy)]) == 1
    err = capsys.readouterr().err
    assert "vi" in err and "resident.checkin" in err and "{name}" in err


def test_check_fails_when_a_placeholder_is_renamed(locales_copy: Path) -> None:
    _replace_translation(
        po_path("ja", locales_copy), "resident.reply.ok", '"{organization}です。ありがとう。"'
    )
    messages = {str(problem) for problem in check_catalogs(locales_copy)}
    assert any("{org}" in m and "missing" in m for m in messages)
    assert any("{organization}" in m and "unknown" in m for m in messages)


def test_check_fails_on_a_positional_or_formatted_placeholder(locales_copy: Path) -> None:
    _replace_translation(po_path("en", locales_copy), "resident.reply.ok", '"{org!r}: Thanks."')
    problems = check_catalogs(locales_copy)
    assert [(p.catalog, p.msgid) for p in problems] == [("en", "resident.reply.ok")]


def test_check_fails_on_an_empty_translation(locales_copy: Path) -> None:
    _replace_translation(po_path("th", locales_copy), "voice.menu", '""')
    problems = check_catalogs(locales_copy)
    assert [(p.catalog, p.msgid, p.problem) for p in problems] == [
        ("th", "voice.menu", "translation is empty")
    ]


def test_check_fails_on_a_fuzzy_translation(locales_copy: Path) -> None:
    po = po_path("ko", locales_copy)
    text = po.read_text(encoding="utf-8")
    po.write_text(
        text.replace('msgid "voice.thanks"', '#, fuzzy\nmsgid "voice.thanks"', 1), "utf-8"
    )
    problems = check_catalogs(locales_copy)
    assert [(p.catalog, p.msgid) for p in problems] == [("ko", "voice.thanks")]
    assert "fuzzy" in problems[0].problem


def test_check_fails_on_a_missing_entry(locales_copy: Path) -> None:
    po = po_path("km", locales_copy)
    text = po.read_text(encoding="utf-8")
    start = text.index("#. Said after a key was pressed")
    end = text.index("\n\n", start) + 2
    po.write_text(text[:start] + text[end:], encoding="utf-8")
    problems = check_catalogs(locales_copy)
    assert [(p.catalog, p.msgid, p.problem) for p in problems] == [
        ("km", "voice.thanks", "entry is missing")
    ]


def test_check_fails_on_a_missing_catalog(locales_copy: Path) -> None:
    shutil.rmtree(locales_copy / "si")
    problems = check_catalogs(locales_copy)
    assert [(p.catalog, p.msgid) for p in problems] == [("si", None)]


def test_check_fails_when_the_template_is_stale(locales_copy: Path) -> None:
    pot = template_path(locales_copy)
    text = pot.read_text(encoding="utf-8")
    start = text.index("#. Confirms the result of a visit was recorded.")
    end = text.index("\n\n", start) + 2
    pot.write_text(text[:start] + text[end:], encoding="utf-8")
    problems = check_catalogs(locales_copy)
    stale = [p for p in problems if p.catalog == "messages.pot"]
    assert [p.msgid for p in stale] == ["member.outcome_recorded"]
    assert "update" in stale[0].problem


def test_check_fails_when_the_source_has_a_new_message(locales_copy: Path, tmp_path: Path) -> None:
    source = tmp_path / "messages.py"
    source.write_text(
        (LOCALES_DIR.parent / "messages.py").read_text(encoding="utf-8")
        + '\nRESIDENT_NEW = N_("resident.brand_new")\n',
        encoding="utf-8",
    )
    problems = check_catalogs(locales_copy, source=source)
    assert ("messages.pot", "resident.brand_new") in {(p.catalog, p.msgid) for p in problems}
    assert ("messages.py", "resident.brand_new") in {(p.catalog, p.msgid) for p in problems}


def test_check_fails_without_a_review_status(locales_copy: Path) -> None:
    po = po_path("id", locales_copy)
    po.write_text(
        po.read_text(encoding="utf-8").replace('"X-Review-Status: draft\\n"\n', ""), "utf-8"
    )
    problems = check_catalogs(locales_copy)
    assert [(p.catalog, p.msgid) for p in problems] == [("id", None)]


def test_update_on_current_catalogs_changes_nothing(locales_copy: Path) -> None:
    assert update_catalogs(locales_copy) == []
    for code in CATALOG_CODES:
        assert po_path(code, locales_copy).read_bytes() == po_path(code).read_bytes()


def test_update_adds_new_messages_as_empty_entries_the_check_rejects(
    locales_copy: Path, tmp_path: Path
) -> None:
    source = tmp_path / "messages.py"
    source.write_text(
        (LOCALES_DIR.parent / "messages.py").read_text(encoding="utf-8")
        + '\n# TRANSLATORS: test only\nRESIDENT_NEW = N_("resident.brand_new")\n',
        encoding="utf-8",
    )
    written = update_catalogs(locales_copy, source=source)
    assert template_path(locales_copy) in written
    catalog = read_catalog(po_path("vi", locales_copy))
    assert catalog.get("resident.brand_new") is not None
    assert read_review_status(po_path("vi", locales_copy)) == "draft"
    empty = {
        p.catalog
        for p in check_catalogs(locales_copy, source=source)
        if p.msgid == "resident.brand_new" and p.problem == "translation is empty"
    }
    assert empty == set(CATALOG_CODES)


def test_every_catalog_is_marked_draft_or_reviewed() -> None:
    for code in CATALOG_CODES:
        assert read_review_status(po_path(code)) in ("draft", "reviewed"), code


def test_catalogs_compile_in_memory_without_mo_files() -> None:
    assert not list(LOCALES_DIR.glob("*/LC_MESSAGES/*.mo"))
    loaded = load_catalogs()
    for code in CATALOG_CODES:
        assert loaded[code].translated_ids == set(MESSAGES), code


def test_fuzzy_entries_are_left_out_of_compiled_translations() -> None:
    catalog = read_catalog(po_path("en"))
    catalog.get("voice.thanks").flags.add("fuzzy")
    translations = compile_translations(catalog)
    assert translations.gettext("voice.thanks") == "voice.thanks"
    assert translations.gettext("voice.menu") != "voice.menu"


def test_pybabel_extract_with_pyproject_config_matches_the_template(tmp_path: Path) -> None:
    """`pybabel extract -F pyproject.toml` (the documented workflow) agrees with `update`."""
    beside_python = Path(sys.executable).parent / "pybabel"
    pybabel = str(beside_python) if beside_python.exists() else shutil.which("pybabel")
    assert pybabel, "pybabel is installed with babel"
    output = tmp_path / "extracted.pot"
    subprocess.run(
        [pybabel, "-q", "extract", "-F", "pyproject.toml", "-o", str(output)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    extracted = [m.id for m in read_catalog(output) if m.id]
    committed = [m.id for m in read_catalog(template_path()) if m.id]
    assert extracted == committed

"""Data behind ``mimamori i18n status``: how ready each language is.

Staff deciding whether to register residents in a language need to see, in one table,
whether every text is translated, whether a native speaker has reviewed it, whether
calls can speak it, and what a worst-case SMS costs.
"""

from __future__ import annotations

import json as json_module
import sys
from pathlib import Path
from typing import Any, TextIO

from i18n.catalogs import load_catalogs
from i18n.languages import LANGUAGES, Language
from i18n.messages import LONG_SAMPLE_VALUES, MESSAGES, RESIDENT_SMS_IDS
from i18n.render import fallback_chain, render
from i18n.segments import sms_segments


def worst_case_values(language: Language) -> dict[str, str]:
    """Long but realistic values; ``{language}`` is the language's own (long) name."""
    return {**LONG_SAMPLE_VALUES, "language": language.native_name}


def resident_sms_segments(
    language: Language, locales_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Encoding, units and segments of every resident SMS rendered with long values."""
    values = worst_case_values(language)
    result: dict[str, dict[str, Any]] = {}
    for message_id in RESIDENT_SMS_IDS:
        info = sms_segments(render(message_id, language.code, locales_dir=locales_dir, **values))
        result[message_id] = {
            "encoding": info.encoding,
            "units": info.units,
            "segments": info.segments,
        }
    return result


def status_rows(locales_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per supported language, JSON-serialisable."""
    catalogs = load_catalogs(locales_dir)
    total = len(MESSAGES)
    rows: list[dict[str, Any]] = []
    for language in LANGUAGES:
        chain = fallback_chain(language.code, locales_dir)
        catalog_code = chain[0] if chain else None
        loaded = catalogs.get(catalog_code) if catalog_code else None
        # A language served only by the Easy Japanese fallback is 0% translated.
        own = loaded is not None and catalog_code == language.catalog
        translated = len(loaded.translated_ids & MESSAGES.keys()) if own and loaded else 0
        segments = resident_sms_segments(language, locales_dir)
        rows.append(
            {
                "code": language.code,
                "native_name": language.native_name,
                "english_name": language.english_name,
                "catalog": catalog_code,
                "translated": translated,
                "total": total,
                "completeness": round(100.0 * translated / total, 1) if total else 100.0,
                "review_status": (loaded.review_status if own and loaded else None) or "missing",
                "voice": language.voice.voice if language.voice else None,
                "voice_language": language.voice.language if language.voice else None,
                "sms_encoding": language.sms_encoding,
                "segments": {message_id: s["segments"] for message_id, s in segments.items()},
                "max_segments": max(s["segments"] for s in segments.values()),
            }
        )
    return rows


def print_status(json: bool = False, file: TextIO | None = None) -> None:
    """Print the status table for people, or a JSON list for scripts (``--json``)."""
    out = file or sys.stdout
    rows = status_rows()
    if json:
        out.write(json_module.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title="Mimamori languages")
    for column in ("code", "language", "complete", "review", "voice", "encoding", "max segments"):
        table.add_column(column)
    for row in rows:
        voice = row["voice"] or "none (Easy Japanese)"
        table.add_row(
            row["code"],
            f"{row['native_name']} / {row['english_name']}",
            f"{row['completeness']:.0f}%",
            row["review_status"],
            voice,
            row["sms_encoding"],
            str(row["max_segments"]),
        )
    console = Console(file=out)
    console.print(table)
    console.print(
        "max segments: the longest resident SMS, rendered with a kanji council name and a "
        "long resident name (kanji forces UCS-2 in every language). "
        "Per-message counts: --json."
    )

"""The ``mimamori i18n status`` table, in the command line's language.

The rows come from :func:`i18n.status.status_rows` (the i18n layer knows no reader); every
heading, cell label and note here is a ``service`` catalog text, so a Japanese operator
reads the table in Japanese. Codes, counts, voices and names stay as they are.
"""

from __future__ import annotations

import json as json_module
import sys
from pathlib import Path
from typing import Any, TextIO

from i18n.languages import get_language
from i18n.names import LocalizedName
from i18n.status import SAMPLE_ORG, status_rows
from service.texts import N_, Text, cli_language, render

HEADINGS = (
    N_("code"),
    N_("language"),
    N_("complete"),
    N_("review"),
    N_("voice"),
    N_("encoding"),
    N_("max segments"),
    N_("org name: SMS"),
    N_("org name: call"),
)

SOURCE_LABELS = {
    "own": N_("own name"),
    "english": N_("English name"),
    "reading": N_("kana reading"),
    "japanese": N_("Japanese name"),
    "romanised": N_("romanised reading"),
    "generic": N_("generic phrase"),
}

REVIEW_LABELS = {
    "draft": N_("draft"),
    "reviewed": N_("reviewed"),
    "missing": N_("missing"),
}


def voice_cell(row: dict[str, Any]) -> list[Text | str]:
    """The voice column: what the call is spoken with, and the fallback for the rest."""
    sources: dict[str, str] = row["call_prompts"]
    total = len(sources)
    labels: dict[str, Text | str] = {
        "twilio_voice": row["voice"] or "Twilio",
        "recording_url": N_("recordings (URL)"),
        "recording": N_("recordings"),
        "engine": N_("espeak-ng prompts"),
    }
    counts: dict[str, int] = {}
    for source in sources.values():
        counts[source] = counts.get(source, 0) + 1
    parts = [
        labels[source]
        if count == total
        else Text(
            "%(what)s %(count)s/%(total)s", {"what": labels[source], "count": count, "total": total}
        )
        for source, count in counts.items()
        if source != "easy_japanese"
    ]
    fallback = counts.get("easy_japanese", 0)
    if fallback:
        if fallback == total:
            parts.append(N_("none: Easy Japanese"))
        else:
            parts.append(N_("Easy Japanese %(count)s/%(total)s", count=fallback, total=total))
        if row["call_engine"] and "engine" not in counts:
            parts.append(
                N_("espeak-ng prompts not built (%(command)s)", command="mimamori i18n build-audio")
            )
    return parts


def names_note(org: LocalizedName | None, org_label: str | None) -> Text:
    """Which organization names the segments were counted with."""
    if org is None:
        return N_(
            "Organization name: a sample (%(japanese)s, English %(english)s, reading "
            "%(reading)s): Latin-script languages get the Latin name, the others the kanji "
            "one. %(option)s counts with your organization's own names.",
            japanese=SAMPLE_ORG.japanese,
            english=repr(SAMPLE_ORG.names["en"]),
            reading=repr(SAMPLE_ORG.names["easy_ja"]),
            option="--org NAME",
        )
    return N_(
        "Organization name: %(name)s from the database (names in other languages: %(codes)s).",
        name=org_label or org.japanese,
        codes=", ".join(sorted(org.names)) or "-",
    )


SEGMENTS_NOTE = N_(
    "max segments: the longest resident SMS, rendered with the organization name each "
    "language gets and a long resident name; encoding: what those texts need (one kanji "
    "makes a whole SMS UCS-2). Per-message counts and the names: %(option)s.",
    option="--json",
)


def _language_name(row: dict[str, Any], language: str) -> str:
    """The language's own name, and its name in the reader's language."""
    known = get_language(row["code"])
    other = known.japanese_name if known is not None and language == "ja" else row["english_name"]
    return f"{row['native_name']} / {other}"


def print_status(
    json: bool = False,
    file: TextIO | None = None,
    org: LocalizedName | None = None,
    org_label: str | None = None,
    *,
    language: str | None = None,
    recordings_dir: Path | None = None,
    prompts_dir: Path | None = None,
) -> None:
    """Print the status table for people in ``language`` (the command line's by default), or
    a JSON list for scripts (``--json``, the same in every language). With ``org``
    (``--org``), segments are counted with that organization's real names."""
    out = file or sys.stdout
    rows = status_rows(org=org, recordings_dir=recordings_dir, prompts_dir=prompts_dir)
    if json:
        out.write(json_module.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return

    from rich.console import Console
    from rich.table import Table

    reader = language or cli_language()
    table = Table(title=N_("Mimamori languages").render(reader))
    for index, heading in enumerate(HEADINGS):
        table.add_column(heading.render(reader), no_wrap=index == 0)
    for row in rows:
        table.add_row(
            row["code"],
            _language_name(row, reader),
            f"{row['completeness']:.0f}%",
            str(render(REVIEW_LABELS.get(row["review_status"], row["review_status"]), reader)),
            "; ".join(str(render(part, reader)) for part in voice_cell(row)),
            row["sms_encoding"],
            str(row["max_segments"]),
            SOURCE_LABELS[row["org_name_source"]].render(reader),
            SOURCE_LABELS[row["org_name_spoken_source"]].render(reader),
        )
    console = Console(file=out)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a file or a pipe: no need to squeeze
    console.print(table)
    console.print(SEGMENTS_NOTE.render(reader), markup=False, highlight=False)
    console.print(names_note(org, org_label).render(reader), markup=False, highlight=False)

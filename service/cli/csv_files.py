"""``mimamori import`` and ``mimamori export``: the registry as CSV files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlmodel import Session

from service.cli.common import (
    _,
    cli_actor,
    console,
    fail,
    language,
    note,
    out,
    resolve_org,
    say,
    table,
    text,
    upgrade_schema,
    warn,
)
from service.config import get_settings
from service.texts import N_, render

import_app = typer.Typer(
    help=_("Import the registry from CSV (UTF-8, UTF-8 with BOM or CP932)."), no_args_is_help=True
)
export_app = typer.Typer(help=_("Export the registry to CSV."), no_args_is_help=True)

Kind = Literal["residents", "members", "assignments"]


def _run_import(
    kind: Kind,
    file: Path,
    org: str | None,
    dry_run: bool,
    apply_valid_rows: bool,
    reject_file: Path | None,
    as_json: bool,
) -> None:
    from service.db import get_engine
    from service.registry import csv_io

    if get_settings().is_sqlite:
        upgrade_schema()
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        fail(N_("Cannot read %(file)s: there is no such file.", file=str(file)))
    except IsADirectoryError:
        fail(N_("Cannot read %(file)s: it is a folder, not a file.", file=str(file)))
    except PermissionError:
        fail(N_("Cannot read %(file)s: permission denied.", file=str(file)))
    except OSError as exc:
        fail(N_("Cannot read %(file)s: %(reason)s", file=str(file), reason=exc.strerror or ""))
    with Session(get_engine()) as session:
        organization = resolve_org(session, org)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task(text(N_("Checking %(file)s", file=file.name)), total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                report = csv_io.import_csv(
                    session=session,
                    organization_id=organization.id,
                    kind=kind,
                    data=data,
                    actor=cli_actor(),
                    dry_run=dry_run,
                    apply_valid_rows=apply_valid_rows,
                    progress=progress,
                    language=language(),
                )
            except csv_io.CsvFileError as exc:
                session.rollback()
                fail(N_("%(file)s: %(problem)s", file=str(file), problem=exc.text))
            if report.applied:
                session.commit()
            else:
                session.rollback()
    if report.reject_csv is not None and report.applied:
        target = reject_file or file.with_name(f"{file.stem}.rejects.csv")
        encoding = "cp932" if report.encoding == "cp932" else "utf-8-sig"
        try:
            target.write_text(report.reject_csv, encoding=encoding, newline="")
        except UnicodeEncodeError:
            target.write_text(report.reject_csv, encoding="utf-8-sig", newline="")
        warn(
            N_(
                "%(count)s rejected rows written to %(file)s",
                count=report.rejected,
                file=str(target),
            )
        )
    _print_report(report, as_json)
    if report.errors and not report.applied:
        raise typer.Exit(1)


def _print_report(report, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    lang = language()
    if as_json:
        payload = report.as_dict(lang)
        payload.pop("reject_csv", None)
        out.print_json(json.dumps(payload, ensure_ascii=False))
        return
    if report.errors:
        problems = table(
            N_(
                "%(problems)s problems in %(rows)s rows",
                problems=len(report.errors),
                rows=report.rejected,
            ),
            [N_("line"), N_("column"), N_("value"), N_("problem")],
        )
        for err in report.errors:
            problems.add_row(
                str(err.row),
                str(render(err.column, lang)),
                err.value,
                str(render(err.reason, lang)),
            )
        out.print(problems)
    if report.new_sites:
        say(N_("New sites: %(sites)s", sites=", ".join(report.new_sites)))
    if report.ignored_columns:
        say(N_("Ignored columns: %(columns)s", columns=", ".join(report.ignored_columns)))
    counts = {
        "rows": report.total_rows,
        "encoding": report.encoding,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
    }
    if report.dry_run:
        say(
            N_(
                "%(rows)s rows (%(encoding)s): %(created)s would be created, %(updated)s would "
                "be updated, %(unchanged)s unchanged, %(rejected)s rejected.",
                **counts,
            )
        )
        say(N_("Dry run: nothing was changed."))
    elif report.applied:
        say(
            N_(
                "%(rows)s rows (%(encoding)s): %(created)s were created, %(updated)s were "
                "updated, %(unchanged)s unchanged, %(rejected)s rejected.",
                **counts,
            )
        )
    else:
        say(
            N_(
                "%(rows)s rows (%(encoding)s): %(created)s would have been created, "
                "%(updated)s would have been updated, %(unchanged)s unchanged, "
                "%(rejected)s rejected.",
                **counts,
            )
        )
        say(
            N_(
                "Nothing was changed, because some rows are bad. Fix them, or use "
                "--apply-valid-rows to apply the good rows and write the bad ones to a "
                "reject file."
            )
        )


_IMPORT_HELP = {
    "residents": _("Import residents from a CSV file (Japanese or English headers)."),
    "members": _("Import members from a CSV file (Japanese or English headers)."),
    "assignments": _("Import assignments from a CSV file (Japanese or English headers)."),
}


def _import_command(kind: Kind):  # type: ignore[no-untyped-def]
    def command(
        file: Annotated[Path, typer.Argument(help=_("The CSV file."))],
        org: Annotated[str | None, typer.Option("--org", help=_("Organization name."))] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Report only."))] = False,
        apply_valid_rows: Annotated[
            bool,
            typer.Option(
                "--apply-valid-rows",
                help=_("Apply the good rows; write bad ones to a reject file."),
            ),
        ] = False,
        reject_file: Annotated[
            Path | None,
            typer.Option(help=_("Where rejected rows go (default: FILE.rejects.csv).")),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help=_("Print the report as JSON."))
        ] = False,
    ) -> None:
        _run_import(kind, file, org, dry_run, apply_valid_rows, reject_file, as_json)

    return command


for _kind in ("residents", "members", "assignments"):
    import_app.command(_kind, help=_IMPORT_HELP[_kind])(_import_command(_kind))  # type: ignore[arg-type]


@export_app.command(
    "residents",
    help=_(
        "Export residents in the import format (dates in the organization's timezone). With "
        "several organizations, say which with --org."
    ),
)
def export_residents(
    file: Annotated[Path, typer.Argument(help=_("Where to write the CSV."))],
    org: Annotated[
        str | None,
        typer.Option("--org", help=_("Organization name (needed once there are several).")),
    ] = None,
    encoding: Annotated[
        str, typer.Option(help=_("cp932 (Excel, Shift_JIS), utf-8-sig (Excel, UTF-8) or utf-8."))
    ] = "utf-8-sig",
    headers: Annotated[str, typer.Option(help=_("ja or en column headings."))] = "ja",
) -> None:
    from service.db import session_scope
    from service.registry import csv_io

    if encoding not in ("cp932", "utf-8-sig", "utf-8") or headers not in ("ja", "en"):
        fail(N_("--encoding must be cp932, utf-8-sig or utf-8; --headers ja or en."))
    try:
        with session_scope() as session:
            organization = resolve_org(session, org)
            body = csv_io.export_residents(
                session=session,
                organization_id=organization.id,
                actor=cli_actor(),
                encoding=encoding,  # type: ignore[arg-type]
                headers=headers,  # type: ignore[arg-type]
            )
    except csv_io.ExportEncodingError as exc:
        fail(exc.text)
    file.write_bytes(body)
    note(N_("Wrote %(file)s.", file=str(file)))

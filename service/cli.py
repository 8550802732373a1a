"""The `mimamori` command line. This is the one place that wires service and scheduler together."""

from __future__ import annotations

import gc
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session, select

from service.audit.service import Actor
from service.config import get_settings

app = typer.Typer(
    help="Mimamori: disaster-time welfare checks (見守り) by SMS and voice call.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Staff users.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import the registry from CSV (UTF-8, UTF-8 with BOM or CP932).", no_args_is_help=True
)
export_app = typer.Typer(help="Export the registry to CSV.", no_args_is_help=True)
round_app = typer.Typer(help="Check-in rounds.", no_args_is_help=True)
schedule_app = typer.Typer(help="Recurring check-in schedules.", no_args_is_help=True)
i18n_app = typer.Typer(help="Languages and message catalogs.", no_args_is_help=True)
simulate_app = typer.Typer(
    help="Post signed Twilio-style webhooks to a running server.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(round_app, name="round")
app.add_typer(schedule_app, name="schedule")
app.add_typer(i18n_app, name="i18n")
app.add_typer(simulate_app, name="simulate")
org_app = typer.Typer(help="The organization.", no_args_is_help=True)
org_name_app = typer.Typer(
    help="The organization's name in other languages (SMS and calls use the reader's).",
    no_args_is_help=True,
)
site_app = typer.Typer(help="Housing sites.", no_args_is_help=True)
site_name_app = typer.Typer(
    help="A site's name in other languages (members' alerts use the reader's).",
    no_args_is_help=True,
)
org_sender_app = typer.Typer(
    help="The organization's own sender numbers and Messaging Service: SMS sent to them "
    "come to its inbox.",
    no_args_is_help=True,
)
app.add_typer(org_app, name="org")
org_app.add_typer(org_name_app, name="name")
org_app.add_typer(org_sender_app, name="senders")
app.add_typer(site_app, name="site")
site_app.add_typer(site_name_app, name="name")

console = Console(stderr=True)
out = Console()


def _cli_actor() -> Actor:
    try:
        who = getpass.getuser()
    except Exception:
        who = "unknown"
    return Actor(label=f"cli:{who}")


def _not_yet(feature: str) -> None:
    console.print(f"[yellow]{feature} is not available yet in this version of Mimamori.[/]")
    raise typer.Exit(2)


def _resolve_org(session: Session, name: str | None):  # type: ignore[no-untyped-def]
    from service.registry.models import Organization

    if name:
        org = session.exec(select(Organization).where(Organization.name == name)).first()
        if org is None:
            console.print(f"[red]No organization named {name!r}.[/]")
            raise typer.Exit(1)
        return org
    orgs = session.exec(select(Organization)).all()
    if not orgs:
        console.print("[red]There is no organization yet: run `mimamori user create` first.[/]")
        raise typer.Exit(1)
    if len(orgs) > 1:
        console.print("[red]There are several organizations; choose one with --org.[/]")
        raise typer.Exit(1)
    return orgs[0]


def _upgrade_schema() -> None:
    from service import migrate

    migrate.upgrade(get_settings().database_url)


# --- serve / scheduler / db -------------------------------------------------------------------


def _job_context():  # type: ignore[no-untyped-def]
    from scheduler.jobs import JobContext
    from service.clock import get_clock
    from service.db import get_engine
    from service.telephony.provider import make_provider

    settings = get_settings()
    return JobContext(
        engine=get_engine(), clock=get_clock(), settings=settings, provider=make_provider(settings)
    )


def _freeze_startup_objects() -> None:
    """Take what is loaded at startup out of the garbage collector's walks.

    The app, its routes, SQLAlchemy's metadata and the imported modules live as long as the
    process. Left in the collector's oldest generation, every full collection walks all of
    them: in a burst of SMS webhooks that was a 110 ms pause of the whole server, in which
    every reply waited (tests/bench/bench_telephony.py). Frozen, a full collection walks
    only what was created since. Nothing frozen is freed, which is what a process-long
    object needs.
    """
    gc.collect()
    gc.freeze()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the API, the Twilio webhooks and the dashboard (and, on SQLite, the scheduler)."""
    import uvicorn

    from scheduler.runner import start_in_thread
    from service.app import create_app
    from service.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if settings.is_sqlite:
        # The embedded default brings its own schema up to date: no separate step for newcomers.
        _upgrade_schema()
    else:
        from service import migrate
        from service.db import get_engine

        if not migrate.is_current(get_engine()):
            console.print("[yellow]The database schema is behind: run `mimamori db upgrade`.[/]")
    embedded = settings.embedded_scheduler
    if embedded is None:
        embedded = settings.is_sqlite
    stop = None
    if embedded:
        _thread, stop = start_in_thread(_job_context())
    application = create_app()
    _freeze_startup_objects()
    try:
        # Behind a reverse proxy, only the proxies named in MIMAMORI_FORWARDED_ALLOW_IPS may
        # say who the client is (X-Forwarded-For): login throttling counts per client address.
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_config=None,
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or "",
        )
    finally:
        if stop is not None:
            stop.set()


@app.command()
def scheduler() -> None:
    """Run the clock: residents' replies, due rounds, deadline sweeps, outbox dispatch and the
    watchdog.

    Several may run at once: one is active, the others stand by and take over within
    seconds if it stops (a PostgreSQL advisory lock elects the active one)."""
    import signal
    import threading

    from scheduler.runner import run
    from service.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if settings.scheduler_metrics_port:
        import prometheus_client

        prometheus_client.start_http_server(settings.scheduler_metrics_port)
    if settings.is_sqlite:
        _upgrade_schema()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(_job_context(), stop)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (Alembic migrations shipped in the package)."""
    _upgrade_schema()
    console.print("[green]The database schema is up to date.[/]")


# --- users ------------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login: an email address or a simple name.")],
    name: Annotated[str, typer.Option("--name", help="Full name, shown in the audit log.")],
    org: Annotated[str, typer.Option("--org", help="Organization; created if it is new.")],
    role: Annotated[str, typer.Option(help="admin, coordinator or viewer.")] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            help="Password (prompted for when omitted).", envvar="MIMAMORI_NEW_USER_PASSWORD"
        ),
    ] = None,
    timezone: Annotated[str, typer.Option(help="Timezone of a new organization.")] = "Asia/Tokyo",
) -> None:
    """Create a staff user, and the organization with it if it does not exist yet."""
    from pydantic import ValidationError

    from service.auth.models import UserCreate
    from service.auth.service import create_user, get_or_create_organization
    from service.db import session_scope
    from service.errors import DomainError

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        data = UserCreate(email=email, full_name=name, role=role, password=password)
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{'.'.join(map(str, err['loc']))}: {err['msg']}[/]")
        raise typer.Exit(1) from None
    if get_settings().is_sqlite:
        _upgrade_schema()
    try:
        with session_scope() as session:
            organization = get_or_create_organization(session=session, name=org, timezone=timezone)
            user = create_user(
                session=session, organization_id=organization.id, data=data, actor=_cli_actor()
            )
            user_id = user.id
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(1) from None
    console.print(f"[green]Created {role} {email} in {org} ({user_id}).[/]")


@user_app.command("set-password")
def user_set_password(
    email: Annotated[str, typer.Option(help="The user's login.")],
    password: Annotated[
        str | None,
        typer.Option(
            help="New password (prompted for when omitted).", envvar="MIMAMORI_NEW_USER_PASSWORD"
        ),
    ] = None,
) -> None:
    """Give a staff user a new password; every session and token they had ends."""
    from service.auth.service import change_password, get_user_by_email
    from service.db import session_scope
    from service.errors import DomainError

    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as session:
            user = get_user_by_email(session=session, email=email)
            if user is None:
                console.print(f"[red]No user has the login {email!r}.[/]")
                raise typer.Exit(1)
            change_password(session=session, user=user, password=password, actor=_cli_actor())
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(1) from None
    console.print(f"[green]New password set for {email}; their sessions have ended.[/]")


# --- import / export --------------------------------------------------------------------------


def _run_import(
    kind: Literal["residents", "members", "assignments"],
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
        _upgrade_schema()
    try:
        data = file.read_bytes()
    except OSError as exc:
        console.print(f"[red]Cannot read {file}: {exc.strerror}[/]")
        raise typer.Exit(1) from None
    with Session(get_engine()) as session:
        organization = _resolve_org(session, org)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task(f"Checking {file.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                report = csv_io.import_csv(
                    session=session,
                    organization_id=organization.id,
                    kind=kind,
                    data=data,
                    actor=_cli_actor(),
                    dry_run=dry_run,
                    apply_valid_rows=apply_valid_rows,
                    progress=progress,
                )
            except csv_io.CsvFileError as exc:
                session.rollback()
                console.print(f"[red]{file}: {exc}[/]")
                raise typer.Exit(1) from None
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
        console.print(f"[yellow]{report.rejected} rejected rows written to {target}[/]")
    _print_report(report, as_json)
    if report.errors and not report.applied:
        raise typer.Exit(1)


def _print_report(report, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        payload = report.as_dict()
        payload.pop("reject_csv", None)
        out.print_json(json.dumps(payload, ensure_ascii=False))
        return
    if report.errors:
        table = Table(title=f"{len(report.errors)} problems in {report.rejected} rows")
        for heading in ("line", "column", "value", "problem"):
            table.add_column(heading)
        for err in report.errors:
            table.add_row(str(err.row), err.column, err.value, err.reason)
        out.print(table)
    if report.new_sites:
        out.print(f"New sites: {', '.join(report.new_sites)}")
    if report.ignored_columns:
        out.print(f"Ignored columns: {', '.join(report.ignored_columns)}")
    verb = "would be" if report.dry_run else ("were" if report.applied else "would have been")
    out.print(
        f"{report.total_rows} rows ({report.encoding}): {report.created} {verb} created, "
        f"{report.updated} {verb} updated, {report.unchanged} unchanged, "
        f"{report.rejected} rejected."
    )
    if report.dry_run:
        out.print("Dry run: nothing was changed.")
    elif not report.applied:
        out.print(
            "Nothing was changed, because some rows are bad. Fix them, or use "
            "--apply-valid-rows to apply the good rows and write the bad ones to a "
            "reject file."
        )


def _import_command(kind: Literal["residents", "members", "assignments"]):  # type: ignore[no-untyped-def]
    def command(
        file: Annotated[Path, typer.Argument(help="The CSV file.")],
        org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only.")] = False,
        apply_valid_rows: Annotated[
            bool,
            typer.Option(
                "--apply-valid-rows", help="Apply the good rows; write bad ones to a reject file."
            ),
        ] = False,
        reject_file: Annotated[
            Path | None, typer.Option(help="Where rejected rows go (default: FILE.rejects.csv).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        _run_import(kind, file, org, dry_run, apply_valid_rows, reject_file, as_json)

    command.__doc__ = f"Import {kind} from a CSV file (Japanese or English headers)."
    return command


import_app.command("residents")(_import_command("residents"))
import_app.command("members")(_import_command("members"))
import_app.command("assignments")(_import_command("assignments"))


@export_app.command("residents")
def export_residents(
    file: Annotated[Path, typer.Argument(help="Where to write the CSV.")],
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
    encoding: Annotated[
        str, typer.Option(help="cp932 (Excel, Shift_JIS), utf-8-sig (Excel, UTF-8) or utf-8.")
    ] = "utf-8-sig",
    headers: Annotated[str, typer.Option(help="ja or en column headings.")] = "ja",
) -> None:
    """Export residents in the import format."""
    from service.db import session_scope
    from service.registry import csv_io

    if encoding not in ("cp932", "utf-8-sig", "utf-8") or headers not in ("ja", "en"):
        console.print("[red]--encoding must be cp932, utf-8-sig or utf-8; --headers ja or en.[/]")
        raise typer.Exit(1)
    try:
        with session_scope() as session:
            organization = _resolve_org(session, org)
            body = csv_io.export_residents(
                session=session,
                organization_id=organization.id,
                actor=_cli_actor(),
                encoding=encoding,  # type: ignore[arg-type]
                headers=headers,
            )  # type: ignore[arg-type]
    except csv_io.ExportEncodingError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    file.write_bytes(body)
    console.print(f"[green]Wrote {file}.[/]")


# --- later issues ------------------------------------------------------------------------------


@round_app.command("start")
def round_start(
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="Site name (repeat for several); all residents when omitted."),
    ] = None,
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
    override_quiet_hours: Annotated[
        bool,
        typer.Option(
            "--override-quiet-hours", help="Send even during quiet hours (say so explicitly)."
        ),
    ] = False,
    cause: Annotated[str | None, typer.Option(help="Why, shown to staff and members.")] = None,
    resident: Annotated[
        list[str] | None,
        typer.Option(
            "--resident", help="A resident's external id (repeat for several), instead of sites."
        ),
    ] = None,
) -> None:
    """Start a check-in round now (a broadcast to chosen sites or residents), as the API does."""
    from service.checkins import flows
    from service.checkins import service as checkins
    from service.checkins.models import RoundKind
    from service.clock import get_clock
    from service.db import get_engine
    from service.registry.models import Resident
    from service.registry.service import find_site_by_name

    if site and resident:
        console.print("[red]Choose either --site or --resident: a round asks one of them.[/]")
        raise typer.Exit(1)
    if get_settings().is_sqlite:
        _upgrade_schema()
    engine = get_engine()
    with Session(engine) as session:
        organization = _resolve_org(session, org)
        site_ids = []
        for name in site or []:
            found = find_site_by_name(session=session, organization_id=organization.id, name=name)
            if found is None:
                console.print(f"[red]No site named {name!r}.[/]")
                raise typer.Exit(1)
            site_ids.append(found.id)
        resident_ids = []
        for external_id in resident or []:
            person = session.exec(select(Resident).where(
                Resident.organization_id == organization.id,
                Resident.external_id == external_id)).first()
            if person is None:
                console.print(f"[red]No resident with the id {external_id!r}.[/]")
                raise typer.Exit(1)
            resident_ids.append(person.id)
        org_id = organization.id
    round_id = flows.start_broadcast(
        engine,
        organization_id=org_id,
        started_by=_cli_actor().label,
        now_fn=get_clock().now,
        site_ids=site_ids,
        resident_ids=resident_ids,
        override_quiet_hours=override_quiet_hours,
        cause=cause,
        kind=RoundKind.one_off if resident_ids else RoundKind.broadcast,
    )
    with Session(engine) as session:
        counts = checkins.round_counts(session, round_id)
    out.print(
        f"Round {round_id} started: {counts['total']} residents, "
        f"{counts['waiting']} being contacted, {counts['visit_list']} on the visit list."
    )


@schedule_app.command("create")
def schedule_create(
    name: Annotated[str, typer.Option(help="A name staff recognise, e.g. 毎朝の見守り.")],
    time_of_day: Annotated[str, typer.Option("--at", help="Local time, HH:MM.")] = "10:00",
    weekday: Annotated[list[int] | None, typer.Option(
        "--weekday", help="0 = Monday … 6 = Sunday (repeat); every day when omitted.")] = None,
    site: Annotated[list[str] | None, typer.Option(
        "--site", help="Only these sites (repeat); all residents when omitted.")] = None,
    flag: Annotated[str | None, typer.Option(
        help="Only residents with this flag, e.g. lives_alone.")] = None,
    quiet_start: Annotated[str, typer.Option(help="Quiet hours start.")] = "21:00",
    quiet_end: Annotated[str, typer.Option(help="Quiet hours end.")] = "08:00",
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
) -> None:
    """Create a recurring schedule (the same as POST /api/v1/schedules)."""
    from pydantic import ValidationError

    from service.audit.service import record
    from service.checkins import service as checkins
    from service.checkins.models import Schedule, ScheduleCreate, TargetKind
    from service.clock import get_clock
    from service.db import session_scope
    from service.registry.service import find_site_by_name

    if get_settings().is_sqlite:
        _upgrade_schema()
    with session_scope() as session:
        organization = _resolve_org(session, org)
        site_ids = []
        for site_name in site or []:
            found = find_site_by_name(session=session, organization_id=organization.id,
                                      name=site_name)
            if found is None:
                console.print(f"[red]No site named {site_name!r}.[/]")
                raise typer.Exit(1)
            site_ids.append(str(found.id))
        if site_ids and flag:
            console.print("[red]Choose either --site or --flag: a schedule targets one of them.[/]")
            raise typer.Exit(1)
        kind = TargetKind.sites if site_ids else TargetKind.flag if flag else TargetKind.all
        try:
            data = ScheduleCreate(name=name, time_of_day=time_of_day,
                                  weekdays=weekday or [0, 1, 2, 3, 4, 5, 6], target_kind=kind,
                                  target_site_ids=site_ids, target_flag=flag,
                                  quiet_start=quiet_start, quiet_end=quiet_end)
        except ValidationError as exc:
            for err in exc.errors():
                console.print(f"[red]{'.'.join(map(str, err['loc']))}: {err['msg']}[/]")
            raise typer.Exit(1) from None
        schedule = Schedule.model_validate(data, update={"organization_id": organization.id})
        schedule.next_run_at = checkins.next_run_after(schedule, get_clock().now(),
                                                       organization.timezone)
        session.add(schedule)
        session.flush()
        record(session=session, organization_id=organization.id, actor=_cli_actor(),
               action="create", entity_type="schedule", entity_id=schedule.id,
               fields=data.model_fields_set)
        out.print(f"Schedule {schedule.id} created; next run {schedule.next_run_at}.")


@schedule_app.command("list")
def schedule_list(
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
) -> None:
    """List schedules and when each runs next."""
    from service.checkins.models import Schedule
    from service.db import get_engine

    with Session(get_engine()) as session:
        organization = _resolve_org(session, org)
        rows = session.exec(select(Schedule).where(
            Schedule.organization_id == organization.id).order_by(Schedule.name)).all()
        table = Table(title="Schedules")
        for heading in ("id", "name", "at", "weekdays", "target", "active", "next run"):
            table.add_column(heading)
        for row in rows:
            table.add_row(str(row.id), row.name, row.time_of_day,
                          ",".join(map(str, row.weekdays)), row.target_kind,
                          "yes" if row.active else "no", str(row.next_run_at or "-"))
        out.print(table)


def _schedule_of(session: Session, organization_id, schedule_id: str):  # type: ignore[no-untyped-def]
    """The organization's schedule with this id, or exit naming it."""
    import uuid

    from service.checkins.models import Schedule

    try:
        schedule = session.get(Schedule, uuid.UUID(schedule_id))
    except ValueError:
        schedule = None
    if schedule is None or schedule.organization_id != organization_id:
        console.print(f"[red]No schedule {schedule_id}.[/]")
        raise typer.Exit(1)
    return schedule


def _set_schedule_active(schedule_id: str, org: str | None, active: bool) -> None:
    from service.audit.service import record
    from service.checkins import service as checkins
    from service.clock import get_clock
    from service.db import session_scope

    with session_scope() as session:
        organization = _resolve_org(session, org)
        schedule = _schedule_of(session, organization.id, schedule_id)
        schedule.active = active
        schedule.next_run_at = (checkins.next_run_after(schedule, get_clock().now(),
                                                        organization.timezone)
                                if active else None)
        session.add(schedule)
        record(session=session, organization_id=organization.id, actor=_cli_actor(),
               action="update", entity_type="schedule", entity_id=schedule.id,
               fields=["active"])
        out.print(f"Schedule {schedule.id} resumed; next run {schedule.next_run_at}."
                  if active else f"Schedule {schedule.id} paused.")


@schedule_app.command("update")
def schedule_update(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    time_of_day: Annotated[str | None, typer.Option("--at", help="Local time, HH:MM.")] = None,
    weekday: Annotated[list[int] | None, typer.Option(
        "--weekday", help="0 = Monday … 6 = Sunday (repeat): replaces the days.")] = None,
    quiet_start: Annotated[str | None, typer.Option(help="Quiet hours start.")] = None,
    quiet_end: Annotated[str | None, typer.Option(help="Quiet hours end.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
) -> None:
    """Change a schedule's name, time, days or quiet hours (as PATCH /api/v1/schedules/ID)."""
    from pydantic import ValidationError

    from service.audit.service import record
    from service.checkins import service as checkins
    from service.checkins.models import ScheduleUpdate
    from service.clock import get_clock
    from service.db import session_scope

    given = {"name": name, "time_of_day": time_of_day, "weekdays": weekday,
             "quiet_start": quiet_start, "quiet_end": quiet_end}
    try:
        changes = ScheduleUpdate(**{k: v for k, v in given.items() if v is not None}).model_dump(
            exclude_unset=True)
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{'.'.join(map(str, err['loc']))}: {err['msg']}[/]")
        raise typer.Exit(1) from None
    if not changes:
        console.print("[red]Nothing to change: give --name, --at, --weekday or quiet hours.[/]")
        raise typer.Exit(1)
    with session_scope() as session:
        organization = _resolve_org(session, org)
        schedule = _schedule_of(session, organization.id, schedule_id)
        schedule.sqlmodel_update(changes)
        schedule.next_run_at = (checkins.next_run_after(schedule, get_clock().now(),
                                                        organization.timezone)
                                if schedule.active else None)
        session.add(schedule)
        record(session=session, organization_id=organization.id, actor=_cli_actor(),
               action="update", entity_type="schedule", entity_id=schedule.id,
               fields=changes.keys())
        out.print(f"Schedule {schedule.id} updated; next run {schedule.next_run_at or '-'}.")


@schedule_app.command("pause")
def schedule_pause(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
) -> None:
    """Stop a schedule starting rounds, keeping it (the same as PATCH active=false)."""
    _set_schedule_active(schedule_id, org, active=False)


@schedule_app.command("resume")
def schedule_resume(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
) -> None:
    """Start a paused schedule again from its next run time."""
    _set_schedule_active(schedule_id, org, active=True)


@schedule_app.command("delete")
def schedule_delete(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
) -> None:
    """Delete a schedule. Rounds it already started are kept."""
    from service.audit.service import record
    from service.db import session_scope

    with session_scope() as session:
        organization = _resolve_org(session, org)
        schedule = _schedule_of(session, organization.id, schedule_id)
        session.delete(schedule)
        record(session=session, organization_id=organization.id, actor=_cli_actor(),
               action="delete", entity_type="schedule", entity_id=schedule.id)
    out.print("Deleted.")


@i18n_app.command("status")
def i18n_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Count SMS segments with this organization's names, read from the database "
            "(a sample name without it).",
        ),
    ] = None,
) -> None:
    """One row per language: completeness, review state, voice support, SMS segments."""
    try:
        from i18n.status import print_status
    except ImportError:
        _not_yet("Language status")
        return
    settings = get_settings()
    names, label = _org_names(org) if org is not None else (None, None)
    print_status(
        json=as_json,
        org=names,
        org_label=label,
        recordings_dir=settings.voice_audio_dir,
        prompts_dir=settings.voice_prompts_dir,
    )


@i18n_app.command("build-audio")
def i18n_build_audio(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write to (default: MIMAMORI_VOICE_PROMPTS_DIR, else inside the "
            "installed i18n package, where the service looks).",
        ),
    ] = None,
    languages: Annotated[
        list[str] | None, typer.Option("--language", help="Only this language (repeatable).")
    ] = None,
) -> None:
    """Render the voice prompts of languages Twilio cannot speak with espeak-ng (and sox)."""
    from i18n import audio

    target = out_dir or audio.prompts_dir(get_settings().voice_prompts_dir)
    try:
        report = audio.build(target, languages or None)
    except audio.AudioBuildError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    names = ", ".join(report.languages) or "no language"
    out.print(f"{report.files} audio files for {names} in {report.out_dir}")
    for code, prompt_id in report.untranslated:
        out.print(f"{code}: {prompt_id} is not translated; calls say it in Easy Japanese")


# --- names in other languages ---------------------------------------------------------------


def _org_names(org: str):  # type: ignore[no-untyped-def]
    """The organization's names from the database, for ``i18n status --org``."""
    from i18n.names import LocalizedName
    from service.db import get_engine

    if get_settings().is_sqlite:
        _upgrade_schema()
    with Session(get_engine()) as session:
        organization = _resolve_org(session, org)
        return LocalizedName.of(organization), organization.name


def _change_names(org: str | None, site: str | None, changes: dict[str, str | None]) -> None:
    """Merge ``changes`` into the organization's (or a site's) names as the API does:
    validated, audited, and a ``None`` name removes that language's. Prints the names."""
    from pydantic import ValidationError

    from service.db import session_scope
    from service.errors import DomainError
    from service.registry import service as registry
    from service.registry.models import OrganizationUpdate, SiteUpdate

    try:
        data = SiteUpdate(names=changes) if site else OrganizationUpdate(names=changes)
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{err['msg'].removeprefix('Value error, ')}[/]", highlight=False)
        raise typer.Exit(1) from None
    if get_settings().is_sqlite:
        _upgrade_schema()
    try:
        with session_scope() as session:
            organization = _resolve_org(session, org)
            record = organization
            if site:
                found = registry.find_site_by_name(
                    session=session, organization_id=organization.id, name=site
                )
                if found is None:
                    console.print(f"[red]No site named {site!r}.[/]", highlight=False)
                    raise typer.Exit(1)
                record = registry.update_site(
                    session=session,
                    organization_id=organization.id,
                    site_id=found.id,
                    data=data,  # type: ignore[arg-type]
                    actor=_cli_actor(),
                )
            elif changes:
                registry.update_organization(
                    session=session,
                    organization_id=organization.id,
                    data=data,  # type: ignore[arg-type]
                    actor=_cli_actor(),
                )
            _print_names(record.name, dict(record.names))
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/]", highlight=False)
        raise typer.Exit(1) from None


def _print_names(name: str, names: dict[str, str]) -> None:
    """The names, and a warning where a Latin name would turn GSM-7 texts into UCS-2."""
    from i18n.segments import is_gsm7

    out.print(name, highlight=False)
    for code, text in sorted(names.items()):
        out.print(f"  {code}: {text}", highlight=False)
        if code in ("en", "fil", "id") and not is_gsm7(text):
            console.print(
                f"[yellow]{code}: {text!r} has letters outside GSM-7: SMS that carry it are "
                "sent as UCS-2 (70 characters a segment instead of 160).[/]",
                highlight=False,
            )


_LANG = typer.Option("--lang", help="Language code, e.g. en, vi, easy_ja (the kana reading).")
_ORG = typer.Option("--org", help="Organization name.")
_SITE = typer.Option("--site", help="The site's (Japanese) name.")


@org_name_app.command("set")
def org_name_set(
    name: Annotated[str, typer.Argument(help="The name in that language.")],
    lang: Annotated[str, _LANG],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    """Set the organization's name in one language (easy_ja: its kana reading)."""
    _change_names(org, None, {lang: name})


@org_name_app.command("remove")
def org_name_remove(lang: Annotated[str, _LANG], org: Annotated[str | None, _ORG] = None) -> None:
    """Remove the organization's name in one language: its readers get the fallback."""
    _change_names(org, None, {lang: None})


@org_name_app.command("list")
def org_name_list(org: Annotated[str | None, _ORG] = None) -> None:
    """The organization's names in other languages."""
    _change_names(org, None, {})


@site_name_app.command("set")
def site_name_set(
    name: Annotated[str, typer.Argument(help="The name in that language.")],
    lang: Annotated[str, _LANG],
    site: Annotated[str, _SITE],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    """Set a site's name in one language (easy_ja: its kana reading)."""
    _change_names(org, site, {lang: name})


@site_name_app.command("remove")
def site_name_remove(
    lang: Annotated[str, _LANG],
    site: Annotated[str, _SITE],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    """Remove a site's name in one language."""
    _change_names(org, site, {lang: None})


@site_name_app.command("list")
def site_name_list(site: Annotated[str, _SITE], org: Annotated[str | None, _ORG] = None) -> None:
    """A site's names in other languages."""
    _change_names(org, site, {})


def _change_senders(org: str | None, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Apply ``change`` to the organization's senders as the API does (validated, unique
    across organizations, audited); prints them."""
    from pydantic import ValidationError

    from service.db import session_scope
    from service.errors import DomainError
    from service.registry import service as registry
    from service.registry.models import OrganizationUpdate

    if get_settings().is_sqlite:
        _upgrade_schema()
    try:
        with session_scope() as session:
            organization = _resolve_org(session, org)
            current = registry.organization_senders(session, organization.id)
            wanted = change(current)
            if wanted != current:
                try:
                    data = OrganizationUpdate(**wanted)
                except ValidationError as exc:
                    for err in exc.errors():
                        message = err["msg"].removeprefix("Value error, ")
                        console.print(f"[red]{message}[/]", highlight=False)
                    raise typer.Exit(1) from None
                registry.update_organization(
                    session=session, organization_id=organization.id, data=data, actor=_cli_actor()
                )
                current = registry.organization_senders(session, organization.id)
            out.print(organization.name, highlight=False)
            for number in current["sender_numbers"]:
                out.print(f"  number: {number}", highlight=False)
            if current["messaging_service_sid"]:
                service_sid = current["messaging_service_sid"]
                out.print(f"  messaging service: {service_sid}", highlight=False)
            if not current["sender_numbers"] and not current["messaging_service_sid"]:
                out.print("  (no sender numbers: the installation's own are used)", highlight=False)
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/]", highlight=False)
        raise typer.Exit(1) from None


_NUMBERS = typer.Argument(help="Phone numbers, e.g. 050-1234-5678 or +81501234567.")


@org_sender_app.command("list")
def org_senders_list(org: Annotated[str | None, _ORG] = None) -> None:
    """The organization's sender numbers and Messaging Service."""
    _change_senders(org, lambda current: current)


@org_sender_app.command("add")
def org_senders_add(
    numbers: Annotated[list[str], _NUMBERS], org: Annotated[str | None, _ORG] = None
) -> None:
    """Add sender numbers (each may belong to one organization only)."""
    _change_senders(
        org,
        lambda current: {**current, "sender_numbers": [*current["sender_numbers"], *numbers]},
    )


@org_sender_app.command("remove")
def org_senders_remove(
    numbers: Annotated[list[str], _NUMBERS], org: Annotated[str | None, _ORG] = None
) -> None:
    """Remove sender numbers (typed in any form the registry accepts)."""
    from service.registry.phones import PhoneError, normalize_phone

    gone: set[str | None] = set()
    for raw in numbers:
        try:
            gone.add(normalize_phone(raw))
        except PhoneError as exc:
            console.print(f"[red]invalid number {raw!r}: {exc}[/]", highlight=False)
            raise typer.Exit(1) from None
    _change_senders(
        org,
        lambda current: {
            **current,
            "sender_numbers": [n for n in current["sender_numbers"] if n not in gone],
        },
    )


@org_sender_app.command("service")
def org_senders_service(
    sid: Annotated[str, typer.Argument(help='The Messaging Service SID (MG…); "" removes it.')],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    """Set (or, with "", remove) the organization's Twilio Messaging Service."""
    _change_senders(org, lambda current: {**current, "messaging_service_sid": sid or None})


def _post_signed(path: str, params: dict[str, str], url: str | None) -> str:
    import httpx

    from service.telephony.signature import sign

    settings = get_settings()
    signed_for = f"{settings.public_url}{path}"
    target = f"{(url or settings.public_url).rstrip('/')}{path}"
    signature = sign(signed_for, params, settings.webhook_auth_tokens()[0])
    response = httpx.post(
        target, data=params, headers={"X-Twilio-Signature": signature}, timeout=15
    )
    if response.status_code >= 400:
        console.print(f"[red]{path}: HTTP {response.status_code} {response.text}[/]")
        raise typer.Exit(1)
    return response.text


def _twiml_text(xml: str) -> str:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(xml)
    # A <Play> (a recorded prompt, e.g. in Nepali) is shown as its URL, in the spoken order.
    return " ".join(
        (el.text or "").strip() if el.tag != "Play" else f"[audio {(el.text or '').strip()}]"
        for el in root.iter()
        if el.tag in ("Message", "Say", "Play")
    )


@simulate_app.command("sms")
def simulate_sms(
    text: Annotated[str, typer.Argument(help="The message text.")],
    from_: Annotated[str, typer.Option("--from", help="Sender's number.")],
    to: Annotated[str, typer.Option(help="Our number.")] = "+815000000000",
    url: Annotated[str | None, typer.Option(help="Server (default: MIMAMORI_PUBLIC_URL).")] = None,
) -> None:
    """Post a signed inbound SMS, as Twilio would, and print the reply."""
    import uuid

    from service.registry.phones import PhoneError, parse_phone

    try:
        sender = parse_phone(from_).e164
    except PhoneError as exc:
        console.print(f"[red]--from: {exc}[/]")
        raise typer.Exit(1) from None
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": to,
        "Body": text,
        "NumMedia": "0",
    }
    reply = _twiml_text(_post_signed("/twilio/sms", params, url))
    out.print(f"Reply: {reply}" if reply else "No reply.")


@simulate_app.command("call")
def simulate_call(
    to: Annotated[str, typer.Option("--to", help="The resident's number we called.")],
    digits: Annotated[str, typer.Option(help="Keys pressed (empty for none).")] = "1",
    machine: Annotated[
        bool, typer.Option("--machine", help="An answering machine answers.")
    ] = False,
    url: Annotated[str | None, typer.Option(help="Server (default: MIMAMORI_PUBLIC_URL).")] = None,
) -> None:
    """Answer our latest call to a number: post the signed call webhooks, with keypad digits."""
    from sqlalchemy import select as sa_select

    from service.db import get_engine
    from service.registry.phones import PhoneError, parse_phone
    from service.telephony.models import OutboxMessage

    try:
        number = parse_phone(to).e164
    except PhoneError as exc:
        console.print(f"[red]--to: {exc}[/]")
        raise typer.Exit(1) from None
    with Session(get_engine()) as session:
        call = (
            session.execute(
                sa_select(OutboxMessage)
                .where(
                    OutboxMessage.to_phone == number,
                    OutboxMessage.channel == "call",
                    OutboxMessage.sid.is_not(None),
                )
                .order_by(  # type: ignore[union-attr]
                    OutboxMessage.created_at.desc()
                )
                .limit(1)
            )
            .scalars()
            .first()
        )  # type: ignore[attr-defined]
    if call is None:
        console.print(f"[red]No call has been placed to {to} yet.[/]")
        raise typer.Exit(1)
    query = f"?attempt={call.id}"
    base = {
        "CallSid": call.sid or "",
        "AccountSid": "AC" + "0" * 32,
        "To": number,
        "From": "+815000000000",
        "Direction": "outbound-api",
    }
    answered = {
        **base,
        "CallStatus": "in-progress",
        "AnsweredBy": "machine_end_beep" if machine else "human",
    }
    out.print(f"Call: {_twiml_text(_post_signed('/twilio/voice' + query, answered, url))}")
    if not machine:
        gathered = {**base, "CallStatus": "in-progress", "Digits": digits}
        result = _post_signed("/twilio/voice/gather" + query, gathered, url)
        out.print(f"After keys {digits!r}: {_twiml_text(result)}")
    _post_signed("/twilio/voice/status" + query, {**base, "CallStatus": "completed"}, url)


@simulate_app.command("status")
def simulate_status(
    sid: Annotated[str, typer.Option(help="The message SID.")],
    status: Annotated[str, typer.Argument(help="queued, sent, delivered, undelivered, failed")],
    error_code: Annotated[str | None, typer.Option(help="Twilio ErrorCode, e.g. 30003.")] = None,
    url: Annotated[str | None, typer.Option(help="Server (default: MIMAMORI_PUBLIC_URL).")] = None,
) -> None:
    """Post a signed delivery status callback, as Twilio would."""
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
    if error_code:
        params["ErrorCode"] = error_code
    _post_signed("/twilio/status", params, url)
    out.print(f"Posted {status} for {sid}.")


@app.command()
def demo(
    database: Annotated[
        Path | None,
        typer.Option(help="Keep the demo in this new SQLite file (default: a temporary one)."),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards, until Ctrl-C."),
    ] = True,
    port: Annotated[int, typer.Option(help="Port for the dashboard.")] = 8000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed replays the same morning.")] = 2024,
) -> None:
    """Run a whole morning's welfare check on a fresh embedded database."""
    from service.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(database=database, serve=serve, port=port, seed=seed)
    try:
        code = run_demo(options, out=out, err=console)
    except DemoError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if code:
        raise typer.Exit(code)


def main() -> None:
    app(prog_name="mimamori")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

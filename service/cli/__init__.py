"""The `mimamori` command line. This is the one place that wires service and scheduler together.

The commands live beside this module, one module per group (users, CSV files, rounds and
schedules, names and senders, simulated webhooks); everything they print goes through the
``service`` catalog domain (:mod:`service.cli.common`).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Annotated

import typer

from service.cli import csv_files, names, rounds, simulate, users
from service.cli.chrome import TranslatedGroup
from service.cli.common import _, fail, note, upgrade_schema, warn
from service.cli.simulate import _twiml_text
from service.config import get_settings
from service.texts import N_

__all__ = ["_twiml_text", "app", "main"]

app = typer.Typer(
    help=_("Mimamori: disaster-time welfare checks (見守り) by SMS and voice call."),
    no_args_is_help=True,
    add_completion=False,
    cls=TranslatedGroup,
)
db_app = typer.Typer(help=_("Database schema."), no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users.user_app, name="user")
app.add_typer(csv_files.import_app, name="import")
app.add_typer(csv_files.export_app, name="export")
app.add_typer(rounds.round_app, name="round")
app.add_typer(rounds.schedule_app, name="schedule")
app.add_typer(names.i18n_app, name="i18n")
app.add_typer(simulate.simulate_app, name="simulate")
app.add_typer(names.org_app, name="org")
app.add_typer(names.site_app, name="site")


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


def _hint_first_login() -> None:
    """Nobody can log in to a new installation: say how the first login is made."""
    from sqlalchemy import func, select

    from service.auth.models import User
    from service.db import get_engine

    try:
        with get_engine().connect() as connection:
            users_count = connection.execute(select(func.count()).select_from(User)).scalar_one()
    except Exception:  # no schema yet: `db upgrade` is said separately
        return
    if users_count == 0:
        warn(
            N_(
                "Nobody can log in yet: make the first login with `mimamori user create "
                "--email ... --name ... --org ...` (an administrator, and the organization "
                "with it)."
            )
        )


@app.command(
    help=_("Run the API, the Twilio webhooks and the dashboard (and, on SQLite, the scheduler).")
)
def serve(
    host: Annotated[str, typer.Option(help=_("Interface to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=_("Port to listen on."))] = 8000,
) -> None:
    import uvicorn

    from scheduler.runner import start_in_thread
    from service.app import create_app
    from service.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if settings.is_sqlite:
        # The embedded default brings its own schema up to date: no separate step for newcomers.
        upgrade_schema()
    else:
        from service import migrate
        from service.db import get_engine

        if not migrate.is_current(get_engine()):
            warn(N_("The database schema is behind: run `mimamori db upgrade`."))
    _hint_first_login()
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


@app.command(
    help=_(
        "Run the clock: residents' replies, due rounds, deadline sweeps, outbox dispatch and "
        "the watchdog. Several may run at once: one is active, the others stand by and take "
        "over within seconds if it stops (a PostgreSQL advisory lock elects the active one)."
    )
)
def scheduler() -> None:
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
        upgrade_schema()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(_job_context(), stop)


@db_app.command(
    "upgrade",
    help=_("Bring the database schema up to date (Alembic migrations shipped in the package)."),
)
def db_upgrade() -> None:
    upgrade_schema()
    note(N_("The database schema is up to date."))


@app.command(help=_("Run a whole morning's welfare check on a fresh embedded database."))
def demo(
    database: Annotated[
        Path | None,
        typer.Option(help=_("Keep the demo in this new SQLite file (default: a temporary one).")),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help=_("Serve the dashboard afterwards, until Ctrl-C.")),
    ] = True,
    port: Annotated[int, typer.Option(help=_("Port for the dashboard."))] = 8000,
    seed: Annotated[
        int, typer.Option(help=_("Seed: the same seed replays the same morning."))
    ] = 2024,
) -> None:
    from service.cli.common import console, out
    from service.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(database=database, serve=serve, port=port, seed=seed)
    try:
        code = run_demo(options, out=out, err=console)
    except DemoError as exc:
        fail(N_("The demo stopped: %(reason)s", reason=exc.text))
    if code:
        raise typer.Exit(code)


def main() -> None:
    app(prog_name="mimamori")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

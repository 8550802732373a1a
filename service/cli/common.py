"""What every command shares: the consoles, the language, the organization, the actor.

Every line a command prints is a :class:`~service.texts.Text` from the ``service`` catalog
domain, rendered in the command line's language (``MIMAMORI_LANGUAGE``, else the locale,
else Japanese; see :func:`service.texts.cli_language`). Help texts are rendered once, when
the command line is built, in the same language.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, select

import service.models  # noqa: F401  (every table: a flush resolves its foreign keys)
from service.audit.service import Actor
from service.config import get_settings
from service.texts import N_, Text, cli_language

console = Console(stderr=True)
out = Console()


def language() -> str:
    """Read at every print, so a test (or a caller) that changes the environment is heard."""
    return cli_language()


def _(msgid: str) -> str:
    """A help text in the command line's language (marked for the ``service`` domain)."""
    return N_(msgid).render(language())


def text(message: Text) -> str:
    return message.render(language())


def say(message: Text, *, style: str | None = None) -> None:
    """One line of a command's result, on standard output."""
    out.print(text(message), style=style, markup=False, highlight=False)


def note(message: Text, *, style: str | None = "green") -> None:
    """A remark about what happened, on standard error (scripts read standard output)."""
    console.print(text(message), style=style, markup=False, highlight=False)


def warn(message: Text) -> None:
    note(message, style="yellow")


def fail(message: Text, code: int = 1) -> NoReturn:
    """Say what is wrong, in red on standard error, and stop with ``code``."""
    console.print(text(message), style="red", markup=False, highlight=False)
    raise typer.Exit(code)


def fail_validation(errors: list[dict[str, Any]]) -> NoReturn:
    """Pydantic's problems with what was typed, one per line, in the user's language."""
    from service.validation_text import validation_message

    for err in errors:
        where = ".".join(str(part) for part in err.get("loc", ()))
        problem = validation_message(err, language())
        line = f"{where}: {problem}" if where else problem
        console.print(line, style="red", markup=False, highlight=False)
    raise typer.Exit(1)


def table(title: Text | None, headings: list[Text]) -> Table:
    result = Table(title=text(title) if title is not None else None)
    for heading in headings:
        result.add_column(text(heading))
    return result


def local_time(value: datetime | None, timezone: str) -> str:
    """A time as people read it, in the organization's timezone: 2026/12/07 10:00."""
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y/%m/%d %H:%M")


def cli_actor() -> Actor:
    try:
        who = getpass.getuser()
    except Exception:
        who = "unknown"
    return Actor(label=f"cli:{who}")


def upgrade_schema() -> None:
    from service import migrate

    migrate.upgrade(get_settings().database_url)


def resolve_org(session: Session, name: str | None):  # type: ignore[no-untyped-def]
    from service.registry.models import Organization

    if name:
        org = session.exec(select(Organization).where(Organization.name == name)).first()
        if org is None:
            fail(N_("No organization named %(name)s.", name=repr(name)))
        return org
    orgs = session.exec(select(Organization).order_by(Organization.name)).all()
    if not orgs:
        fail(N_("There is no organization yet: run `mimamori user create` first."))
    if len(orgs) > 1:
        names = ", ".join(org.name for org in orgs)
        fail(
            N_(
                "There are %(count)s organizations (%(names)s): say which one with "
                "--org, e.g. --org %(example)s.",
                count=len(orgs),
                names=names,
                example=orgs[0].name,
            )
        )
    return orgs[0]

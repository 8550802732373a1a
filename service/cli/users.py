"""``mimamori user``: staff logins made from a shell (the first one, and forgotten passwords)."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import _, cli_actor, fail, fail_validation, note, text, upgrade_schema
from service.config import get_settings
from service.texts import N_

user_app = typer.Typer(help=_("Staff users."), no_args_is_help=True)


@user_app.command(
    "create", help=_("Create a staff user, and the organization with it if it does not exist yet.")
)
def user_create(
    email: Annotated[str, typer.Option(help=_("Login: an email address or a simple name."))],
    name: Annotated[str, typer.Option("--name", help=_("Full name, shown in the audit log."))],
    org: Annotated[str, typer.Option("--org", help=_("Organization; created if it is new."))],
    role: Annotated[str, typer.Option(help=_("admin, coordinator or viewer."))] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            help=_("Password (prompted for when omitted)."), envvar="MIMAMORI_NEW_USER_PASSWORD"
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option(help=_("Timezone of a new organization."))
    ] = "Asia/Tokyo",
) -> None:
    from pydantic import ValidationError

    from service.auth.models import UserCreate
    from service.auth.service import create_user, get_or_create_organization
    from service.db import session_scope
    from service.errors import DomainError

    if password is None:
        password = typer.prompt(text(N_("Password")), hide_input=True, confirmation_prompt=True)
    try:
        data = UserCreate(email=email, full_name=name, role=role, password=password)
    except ValidationError as exc:
        fail_validation(exc.errors())
    if get_settings().is_sqlite:
        upgrade_schema()
    try:
        with session_scope() as session:
            organization = get_or_create_organization(session=session, name=org, timezone=timezone)
            user = create_user(
                session=session, organization_id=organization.id, data=data, actor=cli_actor()
            )
            user_id = user.id
    except DomainError as exc:
        fail(exc.text)
    note(
        N_(
            "Created %(role)s %(email)s in %(org)s (%(id)s).",
            role=role,
            email=email,
            org=org,
            id=str(user_id),
        )
    )


@user_app.command(
    "set-password",
    help=_("Give a staff user a new password; every session and token they had ends."),
)
def user_set_password(
    email: Annotated[str, typer.Option(help=_("The user's login."))],
    password: Annotated[
        str | None,
        typer.Option(
            help=_("New password (prompted for when omitted)."),
            envvar="MIMAMORI_NEW_USER_PASSWORD",
        ),
    ] = None,
) -> None:
    from service.auth.service import change_password, get_user_by_email
    from service.db import session_scope
    from service.errors import DomainError

    if password is None:
        password = typer.prompt(text(N_("New password")), hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as session:
            user = get_user_by_email(session=session, email=email)
            if user is None:
                fail(N_("No user has the login %(email)s.", email=repr(email)))
            change_password(session=session, user=user, password=password, actor=cli_actor())
    except DomainError as exc:
        fail(exc.text)
    note(N_("New password set for %(email)s; their sessions have ended.", email=email))

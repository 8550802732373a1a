"""``mimamori org``, ``mimamori site`` and ``mimamori i18n``: names in other languages, the
organization's sender numbers, and the message catalogs' status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from service.cli.common import (
    _,
    cli_actor,
    console,
    fail,
    fail_validation,
    out,
    resolve_org,
    say,
    text,
    upgrade_schema,
)
from service.config import get_settings
from service.texts import N_

i18n_app = typer.Typer(help=_("Languages and message catalogs."), no_args_is_help=True)
org_app = typer.Typer(help=_("The organization."), no_args_is_help=True)
org_name_app = typer.Typer(
    help=_("The organization's name in other languages (SMS and calls use the reader's)."),
    no_args_is_help=True,
)
site_app = typer.Typer(help=_("Housing sites."), no_args_is_help=True)
site_name_app = typer.Typer(
    help=_("A site's name in other languages (members' alerts use the reader's)."),
    no_args_is_help=True,
)
org_sender_app = typer.Typer(
    help=_(
        "The organization's own sender numbers and Messaging Service: SMS sent to them "
        "come to its inbox."
    ),
    no_args_is_help=True,
)
org_app.add_typer(org_name_app, name="name")
org_app.add_typer(org_sender_app, name="senders")
site_app.add_typer(site_name_app, name="name")


@i18n_app.command(
    "status",
    help=_("One row per language: completeness, review state, voice support, SMS segments."),
)
def i18n_status(
    as_json: Annotated[bool, typer.Option("--json", help=_("Print JSON."))] = False,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help=_(
                "Count SMS segments with this organization's names, read from the database "
                "(a sample name without it)."
            ),
        ),
    ] = None,
) -> None:
    from service.cli.language_status import print_status

    settings = get_settings()
    names, label = _org_names(org) if org is not None else (None, None)
    print_status(
        json=as_json,
        org=names,
        org_label=label,
        recordings_dir=settings.voice_audio_dir,
        prompts_dir=settings.voice_prompts_dir,
    )


@i18n_app.command(
    "build-audio",
    help=_("Render the voice prompts of languages Twilio cannot speak with espeak-ng (and sox)."),
)
def i18n_build_audio(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=_(
                "Folder to write to (default: MIMAMORI_VOICE_PROMPTS_DIR, else inside the "
                "installed i18n package, where the service looks)."
            ),
        ),
    ] = None,
    languages: Annotated[
        list[str] | None,
        typer.Option("--language", help=_("Only this language (repeatable).")),
    ] = None,
) -> None:
    from i18n import audio

    target = out_dir or audio.prompts_dir(get_settings().voice_prompts_dir)
    try:
        report = audio.build(target, languages or None)
    except audio.AudioBuildError as error:
        fail(N_("The voice prompts could not be built: %(reason)s", reason=str(error)))
    names = ", ".join(report.languages) or text(N_("no language"))
    say(
        N_(
            "%(count)s audio files for %(languages)s in %(folder)s",
            count=report.files,
            languages=names,
            folder=str(report.out_dir),
        )
    )
    for code, prompt_id in report.untranslated:
        say(
            N_(
                "%(language)s: %(prompt)s is not translated; calls say it in Easy Japanese",
                language=code,
                prompt=prompt_id,
            )
        )


def _org_names(org: str):  # type: ignore[no-untyped-def]
    """The organization's names from the database, for ``i18n status --org``."""
    from i18n.names import LocalizedName
    from service.db import get_engine

    if get_settings().is_sqlite:
        upgrade_schema()
    with Session(get_engine()) as session:
        organization = resolve_org(session, org)
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
        fail_validation([{**err, "loc": ()} for err in exc.errors()])
    if get_settings().is_sqlite:
        upgrade_schema()
    try:
        with session_scope() as session:
            organization = resolve_org(session, org)
            record = organization
            if site:
                found = registry.find_site_by_name(
                    session=session, organization_id=organization.id, name=site
                )
                if found is None:
                    fail(N_("No site named %(name)s.", name=repr(site)))
                record = registry.update_site(
                    session=session,
                    organization_id=organization.id,
                    site_id=found.id,
                    data=data,  # type: ignore[arg-type]
                    actor=cli_actor(),
                )
            elif changes:
                registry.update_organization(
                    session=session,
                    organization_id=organization.id,
                    data=data,  # type: ignore[arg-type]
                    actor=cli_actor(),
                )
            _print_names(record.name, dict(record.names))
    except DomainError as exc:
        fail(exc.text)


def _print_names(name: str, names: dict[str, str]) -> None:
    """The names, and a warning where a Latin name would turn GSM-7 texts into UCS-2."""
    from i18n.segments import is_gsm7

    out.print(name, highlight=False, markup=False)
    for code, value in sorted(names.items()):
        say(N_("  %(language)s: %(name)s", language=code, name=value))
        if code in ("en", "fil", "id") and not is_gsm7(value):
            console.print(
                text(
                    N_(
                        "%(language)s: %(name)s has letters outside GSM-7: SMS that carry it "
                        "are sent as UCS-2 (70 characters a segment instead of 160).",
                        language=code,
                        name=repr(value),
                    )
                ),
                style="yellow",
                highlight=False,
                markup=False,
            )


_LANG = typer.Option("--lang", help=_("Language code, e.g. en, vi, easy_ja (the kana reading)."))
_ORG = typer.Option("--org", help=_("Organization name (needed once there are several)."))
_SITE = typer.Option("--site", help=_("The site's (Japanese) name."))
_NAME = typer.Argument(help=_("The name in that language."))


@org_name_app.command(
    "set", help=_("Set the organization's name in one language (easy_ja: its kana reading).")
)
def org_name_set(
    name: Annotated[str, _NAME],
    lang: Annotated[str, _LANG],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    _change_names(org, None, {lang: name})


@org_name_app.command(
    "remove",
    help=_("Remove the organization's name in one language: its readers get the fallback."),
)
def org_name_remove(lang: Annotated[str, _LANG], org: Annotated[str | None, _ORG] = None) -> None:
    _change_names(org, None, {lang: None})


@org_name_app.command("list", help=_("The organization's names in other languages."))
def org_name_list(org: Annotated[str | None, _ORG] = None) -> None:
    _change_names(org, None, {})


@site_name_app.command(
    "set", help=_("Set a site's name in one language (easy_ja: its kana reading).")
)
def site_name_set(
    name: Annotated[str, _NAME],
    lang: Annotated[str, _LANG],
    site: Annotated[str, _SITE],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    _change_names(org, site, {lang: name})


@site_name_app.command("remove", help=_("Remove a site's name in one language."))
def site_name_remove(
    lang: Annotated[str, _LANG],
    site: Annotated[str, _SITE],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    _change_names(org, site, {lang: None})


@site_name_app.command("list", help=_("A site's names in other languages."))
def site_name_list(site: Annotated[str, _SITE], org: Annotated[str | None, _ORG] = None) -> None:
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
        upgrade_schema()
    try:
        with session_scope() as session:
            organization = resolve_org(session, org)
            current = registry.organization_senders(session, organization.id)
            wanted = change(current)
            if wanted != current:
                try:
                    data = OrganizationUpdate(**wanted)
                except ValidationError as exc:
                    fail_validation([{**err, "loc": ()} for err in exc.errors()])
                registry.update_organization(
                    session=session, organization_id=organization.id, data=data, actor=cli_actor()
                )
                current = registry.organization_senders(session, organization.id)
            out.print(organization.name, highlight=False, markup=False)
            for number in current["sender_numbers"]:
                say(N_("  number: %(number)s", number=number))
            if current["messaging_service_sid"]:
                say(
                    N_(
                        "  messaging service: %(sid)s",
                        sid=current["messaging_service_sid"],
                    )
                )
            if not current["sender_numbers"] and not current["messaging_service_sid"]:
                say(N_("  (no sender numbers: the installation's own are used)"))
    except DomainError as exc:
        fail(exc.text)


_NUMBERS = typer.Argument(help=_("Phone numbers, e.g. 050-1234-5678 or +81501234567."))


@org_sender_app.command("list", help=_("The organization's sender numbers and Messaging Service."))
def org_senders_list(org: Annotated[str | None, _ORG] = None) -> None:
    _change_senders(org, lambda current: current)


@org_sender_app.command(
    "add", help=_("Add sender numbers (each may belong to one organization only).")
)
def org_senders_add(
    numbers: Annotated[list[str], _NUMBERS], org: Annotated[str | None, _ORG] = None
) -> None:
    _change_senders(
        org,
        lambda current: {**current, "sender_numbers": [*current["sender_numbers"], *numbers]},
    )


@org_sender_app.command(
    "remove", help=_("Remove sender numbers (typed in any form the registry accepts).")
)
def org_senders_remove(
    numbers: Annotated[list[str], _NUMBERS], org: Annotated[str | None, _ORG] = None
) -> None:
    from service.registry.phones import PhoneError, normalize_phone

    gone: set[str | None] = set()
    for raw in numbers:
        try:
            gone.add(normalize_phone(raw))
        except PhoneError as exc:
            fail(N_("invalid number %(number)s: %(reason)s", number=repr(raw), reason=exc.text))
    _change_senders(
        org,
        lambda current: {
            **current,
            "sender_numbers": [n for n in current["sender_numbers"] if n not in gone],
        },
    )


@org_sender_app.command(
    "service",
    help=_('Set (or, with "", remove) the organization\'s Twilio Messaging Service.'),
)
def org_senders_service(
    sid: Annotated[str, typer.Argument(help=_('The Messaging Service SID (MG…); "" removes it.'))],
    org: Annotated[str | None, _ORG] = None,
) -> None:
    _change_senders(org, lambda current: {**current, "messaging_service_sid": sid or None})

"""``mimamori round`` and ``mimamori schedule``: check-in rounds now, and on a timetable.

Times are printed in the organization's timezone, as people read them (2026/12/07 10:00).
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session, select

from service.cli.common import (
    _,
    cli_actor,
    fail,
    fail_validation,
    local_time,
    out,
    resolve_org,
    say,
    table,
    text,
    upgrade_schema,
)
from service.config import get_settings
from service.texts import N_, Text

round_app = typer.Typer(help=_("Check-in rounds."), no_args_is_help=True)
schedule_app = typer.Typer(help=_("Recurring check-in schedules."), no_args_is_help=True)

_ORG_HELP = _("Organization name (needed once there are several).")
WEEKDAYS: tuple[Text, ...] = (
    N_("Mon"),
    N_("Tue"),
    N_("Wed"),
    N_("Thu"),
    N_("Fri"),
    N_("Sat"),
    N_("Sun"),
)


@round_app.command(
    "start",
    help=_(
        "Start a check-in round now (a broadcast to chosen sites or residents), as the API "
        "does. In quiet hours the messages wait for their end unless --override-quiet-hours."
    ),
)
def round_start(
    site: Annotated[
        list[str] | None,
        typer.Option(
            "--site", help=_("Site name (repeat for several); all residents when omitted.")
        ),
    ] = None,
    org: Annotated[str | None, typer.Option("--org", help=_ORG_HELP)] = None,
    override_quiet_hours: Annotated[
        bool,
        typer.Option(
            "--override-quiet-hours", help=_("Send even during quiet hours (say so explicitly).")
        ),
    ] = False,
    cause: Annotated[str | None, typer.Option(help=_("Why, shown to staff and members."))] = None,
    resident: Annotated[
        list[str] | None,
        typer.Option(
            "--resident",
            help=_("A resident's external id (repeat for several), instead of sites."),
        ),
    ] = None,
) -> None:
    from service.checkins import flows
    from service.checkins import service as checkins
    from service.checkins.models import Round, RoundKind
    from service.checkins.policy import in_quiet_hours, quiet_hours_end
    from service.clock import get_clock
    from service.db import get_engine
    from service.registry.models import Resident
    from service.registry.service import find_site_by_name

    if site and resident:
        fail(N_("Choose either --site or --resident: a round asks one of them."))
    if get_settings().is_sqlite:
        upgrade_schema()
    engine = get_engine()
    with Session(engine) as session:
        organization = resolve_org(session, org)
        site_ids = []
        for name in site or []:
            found = find_site_by_name(session=session, organization_id=organization.id, name=name)
            if found is None:
                fail(N_("No site named %(name)s.", name=repr(name)))
            site_ids.append(found.id)
        resident_ids = []
        for external_id in resident or []:
            person = session.exec(
                select(Resident).where(
                    Resident.organization_id == organization.id,
                    Resident.external_id == external_id,
                )
            ).first()
            if person is None:
                fail(N_("No resident with the id %(id)s.", id=repr(external_id)))
            resident_ids.append(person.id)
        org_id, timezone = organization.id, organization.timezone
    round_id = flows.start_broadcast(
        engine,
        organization_id=org_id,
        started_by=cli_actor().label,
        now_fn=get_clock().now,
        site_ids=site_ids,
        resident_ids=resident_ids,
        override_quiet_hours=override_quiet_hours,
        cause=cause,
        kind=RoundKind.one_off if resident_ids else RoundKind.broadcast,
    )
    with Session(engine) as session:
        counts = checkins.round_counts(session, round_id)
        round_ = session.get(Round, round_id)
        assert round_ is not None
        started = round_.started_at
        held = not round_.override_quiet_hours and in_quiet_hours(
            started, timezone, round_.quiet_start, round_.quiet_end
        )
        send_at = quiet_hours_end(started, timezone, round_.quiet_end) if held else None
    values = {
        "id": str(round_id),
        "total": counts["total"],
        "waiting": counts["waiting"],
        "visits": counts["visit_list"],
    }
    if send_at is None:
        say(
            N_(
                "Round %(id)s started: %(total)s residents, %(waiting)s being contacted, "
                "%(visits)s on the visit list.",
                **values,
            )
        )
        return
    say(
        N_(
            "Round %(id)s started in quiet hours: %(total)s residents; the messages to "
            "%(waiting)s wait and go out at %(at)s (--override-quiet-hours sends at once); "
            "%(visits)s on the visit list.",
            at=local_time(send_at, timezone),
            **values,
        )
    )


@schedule_app.command(
    "create", help=_("Create a recurring schedule (the same as POST /api/v1/schedules).")
)
def schedule_create(
    name: Annotated[str, typer.Option(help=_("A name staff recognise, e.g. 毎朝の見守り."))],
    time_of_day: Annotated[str, typer.Option("--at", help=_("Local time, HH:MM."))] = "10:00",
    weekday: Annotated[
        list[int] | None,
        typer.Option(
            "--weekday", help=_("0 = Monday … 6 = Sunday (repeat); every day when omitted.")
        ),
    ] = None,
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help=_("Only these sites (repeat); all residents when omitted.")),
    ] = None,
    flag: Annotated[
        str | None, typer.Option(help=_("Only residents with this flag, e.g. lives_alone."))
    ] = None,
    quiet_start: Annotated[str, typer.Option(help=_("Quiet hours start."))] = "21:00",
    quiet_end: Annotated[str, typer.Option(help=_("Quiet hours end."))] = "08:00",
    org: Annotated[str | None, typer.Option("--org", help=_ORG_HELP)] = None,
) -> None:
    from pydantic import ValidationError

    from service.audit.service import record
    from service.checkins import service as checkins
    from service.checkins.models import Schedule, ScheduleCreate, TargetKind
    from service.clock import get_clock
    from service.db import session_scope
    from service.registry.service import find_site_by_name

    if get_settings().is_sqlite:
        upgrade_schema()
    with session_scope() as session:
        organization = resolve_org(session, org)
        site_ids = []
        for site_name in site or []:
            found = find_site_by_name(
                session=session, organization_id=organization.id, name=site_name
            )
            if found is None:
                fail(N_("No site named %(name)s.", name=repr(site_name)))
            site_ids.append(str(found.id))
        if site_ids and flag:
            fail(N_("Choose either --site or --flag: a schedule targets one of them."))
        kind = TargetKind.sites if site_ids else TargetKind.flag if flag else TargetKind.all
        try:
            data = ScheduleCreate(
                name=name,
                time_of_day=time_of_day,
                weekdays=weekday or [0, 1, 2, 3, 4, 5, 6],
                target_kind=kind,
                target_site_ids=site_ids,
                target_flag=flag,
                quiet_start=quiet_start,
                quiet_end=quiet_end,
            )
        except ValidationError as exc:
            fail_validation(exc.errors())
        schedule = Schedule.model_validate(data, update={"organization_id": organization.id})
        schedule.next_run_at = checkins.next_run_after(
            schedule, get_clock().now(), organization.timezone
        )
        session.add(schedule)
        session.flush()
        record(
            session=session,
            organization_id=organization.id,
            actor=cli_actor(),
            action="create",
            entity_type="schedule",
            entity_id=schedule.id,
            fields=data.model_fields_set,
        )
        say(
            N_(
                "Schedule %(id)s created; next run %(at)s.",
                id=str(schedule.id),
                at=local_time(schedule.next_run_at, organization.timezone),
            )
        )


def _target(schedule, session: Session) -> Text:  # type: ignore[no-untyped-def]
    import uuid

    from service.registry.models import Site

    if schedule.target_kind == "sites":
        names = []
        for site_id in schedule.target_site_ids:
            found = session.get(Site, uuid.UUID(site_id))
            names.append(found.name if found is not None else site_id)
        return N_("sites: %(names)s", names=", ".join(names))
    if schedule.target_kind == "flag":
        return N_("flag: %(flag)s", flag=schedule.target_flag or "")
    if schedule.target_kind == "residents":
        return N_("%(count)s residents", count=len(schedule.target_resident_ids))
    return N_("all residents")


@schedule_app.command("list", help=_("List schedules and when each runs next."))
def schedule_list(
    org: Annotated[str | None, typer.Option("--org", help=_ORG_HELP)] = None,
) -> None:
    from service.checkins.models import Schedule
    from service.db import get_engine

    with Session(get_engine()) as session:
        organization = resolve_org(session, org)
        rows = session.exec(
            select(Schedule)
            .where(Schedule.organization_id == organization.id)
            .order_by(Schedule.name)
        ).all()
        listing = table(
            N_("Schedules (times in %(timezone)s)", timezone=organization.timezone),
            [
                N_("id"),
                N_("name"),
                N_("at"),
                N_("weekdays"),
                N_("target"),
                N_("active"),
                N_("next run"),
            ],
        )
        for row in rows:
            listing.add_row(
                str(row.id),
                row.name,
                row.time_of_day,
                " ".join(text(WEEKDAYS[day]) for day in row.weekdays),
                text(_target(row, session)),
                text(N_("yes") if row.active else N_("no")),
                local_time(row.next_run_at, organization.timezone),
            )
        out.print(listing)


def _schedule_of(session: Session, organization_id, schedule_id: str):  # type: ignore[no-untyped-def]
    """The organization's schedule with this id, or exit naming it."""
    import uuid

    from service.checkins.models import Schedule

    try:
        schedule = session.get(Schedule, uuid.UUID(schedule_id))
    except ValueError:
        schedule = None
    if schedule is None or schedule.organization_id != organization_id:
        fail(N_("No schedule %(id)s.", id=schedule_id))
    return schedule


def _set_schedule_active(schedule_id: str, org: str | None, active: bool) -> None:
    from service.audit.service import record
    from service.checkins import service as checkins
    from service.clock import get_clock
    from service.db import session_scope

    with session_scope() as session:
        organization = resolve_org(session, org)
        schedule = _schedule_of(session, organization.id, schedule_id)
        schedule.active = active
        schedule.next_run_at = (
            checkins.next_run_after(schedule, get_clock().now(), organization.timezone)
            if active
            else None
        )
        session.add(schedule)
        record(
            session=session,
            organization_id=organization.id,
            actor=cli_actor(),
            action="update",
            entity_type="schedule",
            entity_id=schedule.id,
            fields=["active"],
        )
        if active:
            say(
                N_(
                    "Schedule %(id)s resumed; next run %(at)s.",
                    id=str(schedule.id),
                    at=local_time(schedule.next_run_at, organization.timezone),
                )
            )
        else:
            say(N_("Schedule %(id)s paused.", id=str(schedule.id)))


@schedule_app.command(
    "update",
    help=_("Change a schedule's name, time, days or quiet hours (as PATCH /api/v1/schedules/ID)."),
)
def schedule_update(
    schedule_id: Annotated[str, typer.Argument(help=_("The schedule's id."))],
    name: Annotated[str | None, typer.Option(help=_("A new name."))] = None,
    time_of_day: Annotated[str | None, typer.Option("--at", help=_("Local time, HH:MM."))] = None,
    weekday: Annotated[
        list[int] | None,
        typer.Option("--weekday", help=_("0 = Monday … 6 = Sunday (repeat): replaces the days.")),
    ] = None,
    quiet_start: Annotated[str | None, typer.Option(help=_("Quiet hours start."))] = None,
    quiet_end: Annotated[str | None, typer.Option(help=_("Quiet hours end."))] = None,
    org: Annotated[str | None, typer.Option("--org", help=_ORG_HELP)] = None,
) -> None:
    from pydantic import ValidationError

    from service.audit.service import record
    from service.checkins import service as checkins
    from service.checkins.models import ScheduleUpdate
    from service.clock import get_clock
    from service.db import session_scope

    given = {
        "name": name,
        "time_of_day": time_of_day,
        "weekdays": weekday,
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
    }
    try:
        changes = ScheduleUpdate(**{k: v for k, v in given.items() if v is not None}).model_dump(
            exclude_unset=True
        )
    except ValidationError as exc:
        fail_validation(exc.errors())
    if not changes:
        fail(N_("Nothing to change: give --name, --at, --weekday or quiet hours."))
    with session_scope() as session:
        organization = resolve_org(session, org)
        schedule = _schedule_of(session, organization.id, schedule_id)
        schedule.sqlmodel_update(changes)
        schedule.next_run_at = (
            checkins.next_run_after(schedule, get_clock().now(), organization.timezone)
            if schedule.active
            else None
        )
        session.add(schedule)
        record(
            session=session,
            organization_id=organization.id,
            actor=cli_actor(),
            action="update",
            entity_type="schedule",
            entity_id=schedule.id,
            fields=changes.keys(),
        )
        say(
            N_(
                "Schedule %(id)s updated; next run %(at)s.",
                id=str(schedule.id),
                at=local_time(schedule.next_run_at, organization.timezone),
            )
        )


@schedule_app.command(
    "pause", help=_("Stop a schedule starting rounds, keeping it (the same as PATCH active=false).")
)
def schedule_pause(
    schedule_id: Annotated[str, typer.Argument(help=_("The schedule's id."))],
    org: Annotated[str | None, typer.Option("--org", help=_ORG_HELP)] = None,
) -> None:
    _set_schedule_active(schedule_id, org, active=False)


@schedule_app.command("resume", help=_("Start a paused schedule again from its next run time."))
def schedule_resume(
    schedule_id: Annotated[str, typer.Argument(help=_("The schedule's id."))],
    org: Annotated[str | None, typer.Option("--org", help=_ORG_HELP)] = None,
) -> None:
    _set_schedule_active(schedule_id, org, active=True)


@schedule_app.command("delete", help=_("Delete a schedule. Rounds it already started are kept."))
def schedule_delete(
    schedule_id: Annotated[str, typer.Argument(help=_("The schedule's id."))],
    org: Annotated[str | None, typer.Option("--org", help=_ORG_HELP)] = None,
) -> None:
    from service.audit.service import record
    from service.db import session_scope

    with session_scope() as session:
        organization = resolve_org(session, org)
        schedule = _schedule_of(session, organization.id, schedule_id)
        session.delete(schedule)
        record(
            session=session,
            organization_id=organization.id,
            actor=cli_actor(),
            action="delete",
            entity_type="schedule",
            entity_id=schedule.id,
        )
    say(N_("Schedule %(id)s deleted.", id=schedule_id))

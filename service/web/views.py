"""The staff dashboard's pages, served under ``/``.

Server-rendered and usable without JavaScript: every action is a plain form that posts,
redirects and shows a notice (post/redirect/get). The only script polls the board's live
fragment. State changes go through the same service functions (and, where the API already
has the whole action, the same route functions) as ``/api/v1``, so the dashboard and the
API behave and audit alike.
"""

from __future__ import annotations

import base64
import binascii
import uuid
import zlib
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlmodel import Session

from i18n.languages import LANGUAGES
from service.auth import service as auth_service
from service.auth.deps import actor_for
from service.checkins import commands
from service.checkins import service as checkins
from service.checkins.models import (
    DEFAULT_PLAN,
    TARGET_FLAGS,
    CheckInState,
    Round,
    RoundStart,
    Schedule,
    ScheduleCreate,
    ScheduleUpdate,
    TargetKind,
)
from service.clock import get_clock
from service.common import utcnow
from service.config import get_settings
from service.db import SessionDep
from service.errors import DomainError, NotFound
from service.escalations.models import (
    AcknowledgeRequest,
    Escalation,
    EscalationState,
    Outcome,
    ReassignRequest,
    ResolveRequest,
)
from service.registry import csv_io
from service.registry import service as registry
from service.registry.models import (
    Assignment,
    Member,
    Resident,
    ResidentStatus,
    ResidentUpdate,
    Site,
)
from service.web import board as board_data
from service.web.account import end_all_sessions, login_refused
from service.web.core import (
    ActingStaff,
    CsrfChecked,
    Staff,
    StaffDep,
    flash,
    log_in,
    log_out,
    render_page,
    safe_next,
    ui_language,
)
from service.web.resident_card import latest_word
from service.web.rounds import preview_broadcast
from service.web.translation import N_, UI_LANGUAGES

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
POLL_SECONDS = 5
MAX_IMPORT_BYTES = 20 * 1024 * 1024
# The packed upload in the preview form: base64 of at most MAX_IMPORT_BYTES compressed.
MAX_PAYLOAD_CHARS = (MAX_IMPORT_BYTES + MAX_IMPORT_BYTES // 100 + 1024) * 4 // 3 + 4
LANGUAGE_CODES = [language.code for language in LANGUAGES]

FormStr = Annotated[str, Form()]


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _not_found(request: Request, staff: Staff) -> HTMLResponse:
    return render_page(
        request,
        "error.html",
        staff=staff,
        status_code=404,
        title=N_("Not found"),
        message=N_("This page does not exist, or it belongs to another organization."),
    )


def _domain_error(request: Request, error: DomainError) -> None:
    reason = error.text.render(ui_language(request))
    flash(request, "error", N_("Not saved: %(reason)s"), reason=reason)


def _page_number(value: int | None) -> int:
    return max(1, value or 1)


# --- Login, logout, language ------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render_page(
        request, "login.html", next=safe_next(next), error=None, error_values={}, email=""
    )


@router.post("/login", response_class=HTMLResponse, dependencies=[CsrfChecked])
def login(
    request: Request,
    session: SessionDep,
    email: FormStr = "",
    password: FormStr = "",
    next: FormStr = "/",
) -> Response:
    user = auth_service.login_throttled(
        session=session,
        settings=get_settings(),
        login=email,
        password=password,
        address=request.client.host if request.client else None,
        now=utcnow(),
    )
    if user is None or isinstance(user, int):
        return login_refused(request, user, next=safe_next(next), email=email)
    session.commit()
    log_in(request, user)
    return _see_other(safe_next(next))


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, session: SessionDep) -> RedirectResponse:
    """Ends this session and every other one of the same user (and their API tokens)."""
    end_all_sessions(request, session)
    log_out(request)
    return _see_other("/login")


@router.post("/language", dependencies=[CsrfChecked])
def choose_language(request: Request, language: FormStr = "", next: FormStr = "/") -> Response:
    if language in UI_LANGUAGES:
        request.session["lang"] = language
    return _see_other(safe_next(next))


# --- The board --------------------------------------------------------------------------------


def _board_context(session: Session, staff: Staff, round_id: uuid.UUID | None) -> dict[str, Any]:
    org_id = staff.organization_id
    rounds = board_data.recent_rounds(session, org_id)
    if round_id is not None and all(r.id != round_id for r in rounds):
        chosen = session.get(Round, round_id)
        if chosen is not None and chosen.organization_id == org_id:
            rounds = [chosen, *rounds]
    # Sites are counted for the round shown (the one asked for, else the newest) alone.
    shown = next((r.id for r in rounds if r.id == round_id), rounds[0].id if rounds else None)
    summaries = board_data.summarize(session, org_id, rounds, sites_for={shown} if shown else None)
    selected = next((s for s in summaries if s.round.id == round_id), None) or (
        summaries[0] if summaries else None
    )
    attention, attention_total = board_data.needs_attention(session, org_id)
    now = get_clock().now()
    chart = (
        board_data.response_chart(session, selected.round, selected.counts.total, now)
        if selected
        else None
    )
    return {
        "summaries": summaries,
        "selected": selected,
        "attention": attention,
        "attention_total": attention_total,
        "open_tasks": board_data.open_task_count(session, org_id),
        "chart": chart,
        "updated_at": now,
        "answer_buckets": board_data.ANSWER_BUCKETS,
        "case_buckets": board_data.CASE_BUCKETS,
    }


@router.get("/", response_class=HTMLResponse)
def board(
    request: Request, session: SessionDep, staff: StaffDep, round: str | None = None
) -> HTMLResponse:
    round_id = _uuid(round)
    context = _board_context(session, staff, round_id)
    live_url = "/board/live" + (f"?round={round_id}" if round_id else "")
    return render_page(
        request,
        "board.html",
        staff=staff,
        live_url=live_url,
        poll_seconds=POLL_SECONDS,
        **context,
    )


@router.get("/board/live", response_class=HTMLResponse)
def board_live(
    request: Request, session: SessionDep, staff: StaffDep, round: str | None = None
) -> HTMLResponse:
    """The part of the board that changes, for the page's light polling."""
    context = _board_context(session, staff, _uuid(round))
    return render_page(request, "_board_live.html", staff=staff, **context)


# --- Rounds and schedules ---------------------------------------------------------------------


def _sites(session: Session, staff: Staff) -> list[Site]:
    return registry.list_sites(session=session, organization_id=staff.organization_id)


def _schedules(session: Session, staff: Staff) -> list[Schedule]:
    return list(
        session.execute(
            select(Schedule)
            .where(Schedule.organization_id == staff.organization_id)
            .order_by(Schedule.name)
        ).scalars()
    )


@router.get("/rounds", response_class=HTMLResponse)
def rounds_page(request: Request, session: SessionDep, staff: StaffDep) -> HTMLResponse:
    rounds = board_data.recent_rounds(session, staff.organization_id, limit=20)
    return render_page(
        request,
        "rounds.html",
        staff=staff,
        summaries=board_data.summarize(session, staff.organization_id, rounds),
        sites=_sites(session, staff),
        schedules=_schedules(session, staff),
        site_names={str(s.id): s.name for s in _sites(session, staff)},
    )


@router.get("/rounds/{round_id}", response_class=HTMLResponse)
def round_page(
    request: Request,
    session: SessionDep,
    staff: StaffDep,
    round_id: uuid.UUID,
    state: str | None = None,
    page: int | None = None,
) -> HTMLResponse:
    round_ = session.get(Round, round_id)
    if round_ is None or round_.organization_id != staff.organization_id:
        return _not_found(request, staff)
    summary = board_data.summarize(session, staff.organization_id, [round_])[0]
    chart = board_data.response_chart(session, round_, summary.counts.total, get_clock().now())
    chosen_state = state if state in {s.value for s in CheckInState} else None
    page_number = _page_number(page)
    listing = commands.list_round_checkins(
        session=session,
        user=staff.user,
        round_id=round_id,
        state=CheckInState(chosen_state) if chosen_state else None,
        flagged=None,
        skip=(page_number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    return render_page(
        request,
        "round.html",
        staff=staff,
        summary=summary,
        chart=chart,
        checkins=listing.data,
        count=listing.count,
        page=page_number,
        pages=max(1, -(-listing.count // PAGE_SIZE)),
        state=chosen_state or "",
        states=[s.value for s in CheckInState],
        answer_buckets=board_data.ANSWER_BUCKETS,
        case_buckets=board_data.CASE_BUCKETS,
    )


def _chosen_sites(session: Session, staff: Staff, raw: list[str]) -> list[uuid.UUID]:
    known = {s.id for s in _sites(session, staff)}
    chosen = [site_id for site_id in (_uuid(v) for v in raw) if site_id in known]
    return list(dict.fromkeys(chosen))


@router.post("/rounds/confirm", response_class=HTMLResponse, dependencies=[CsrfChecked])
def confirm_broadcast(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    site_ids: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI reads the default
    cause: FormStr = "",
    override_quiet_hours: FormStr = "",
) -> Response:
    """Step one of a broadcast: show what would happen. Nothing is sent from here."""
    chosen = _chosen_sites(session, staff, site_ids)
    if not chosen:
        flash(request, "error", N_("Choose at least one site."))
        return _see_other("/rounds")
    preview = preview_broadcast(
        session,
        organization=staff.org,
        site_ids=chosen,
        override_quiet_hours=bool(override_quiet_hours),
        now=get_clock().now(),
    )
    names = {s.id: s.name for s in _sites(session, staff)}
    return render_page(
        request,
        "round_confirm.html",
        staff=staff,
        preview=preview,
        site_names=[names[s] for s in chosen],
        cause=cause.strip()[:300],
    )


@router.post("/rounds/start", dependencies=[CsrfChecked])
def start_broadcast(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    site_ids: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI reads the default
    cause: FormStr = "",
    override_quiet_hours: FormStr = "",
) -> RedirectResponse:
    chosen = _chosen_sites(session, staff, site_ids)
    if not chosen:
        flash(request, "error", N_("Choose at least one site."))
        return _see_other("/rounds")
    try:
        started = commands.start_broadcast(
            session=session,
            user=staff.user,
            data=RoundStart(
                site_ids=chosen,
                override_quiet_hours=bool(override_quiet_hours),
                cause=cause.strip()[:300] or None,
            ),
        )
    except DomainError as error:
        _domain_error(request, error)
        return _see_other("/rounds")
    flash(request, "ok", N_("The check-in has started."))
    return _see_other(f"/?round={started.id}")


def _schedule_form_data(
    name: str,
    time_of_day: str,
    weekdays: list[str],
    target_kind: str,
    target_site_ids: list[str],
    target_flag: str,
    quiet_start: str,
    quiet_end: str,
    active: str,
) -> dict[str, Any]:
    return {
        "name": name.strip(),
        "time_of_day": time_of_day,
        "weekdays": sorted({int(d) for d in weekdays if d.isdigit()}),
        "target_kind": target_kind if target_kind in {k.value for k in TargetKind} else "all",
        "target_site_ids": [str(s) for s in (_uuid(v) for v in target_site_ids) if s],
        "target_flag": target_flag or None,
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
        "active": bool(active),
    }


@router.get("/schedules/new", response_class=HTMLResponse)
def new_schedule(request: Request, session: SessionDep, staff: ActingStaff) -> HTMLResponse:
    blank = Schedule(organization_id=staff.organization_id, name="")
    return render_page(
        request,
        "schedule.html",
        staff=staff,
        schedule=blank,
        is_new=True,
        sites=_sites(session, staff),
        flags=TARGET_FLAGS,
        plan=DEFAULT_PLAN,
    )


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(
    request: Request, session: SessionDep, staff: StaffDep, schedule_id: uuid.UUID
) -> HTMLResponse:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.organization_id != staff.organization_id:
        return _not_found(request, staff)
    return render_page(
        request,
        "schedule.html",
        staff=staff,
        schedule=schedule,
        is_new=False,
        sites=_sites(session, staff),
        flags=TARGET_FLAGS,
        plan=schedule.plan,
    )


@router.post("/schedules", dependencies=[CsrfChecked])
def create_schedule(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    name: FormStr = "",
    time_of_day: FormStr = "10:00",
    weekdays: Annotated[list[str], Form()] = [],  # noqa: B006
    target_kind: FormStr = "all",
    target_site_ids: Annotated[list[str], Form()] = [],  # noqa: B006
    target_flag: FormStr = "",
    quiet_start: FormStr = "21:00",
    quiet_end: FormStr = "08:00",
    active: FormStr = "",
) -> RedirectResponse:
    data = _schedule_form_data(
        name,
        time_of_day,
        weekdays,
        target_kind,
        target_site_ids,
        target_flag,
        quiet_start,
        quiet_end,
        active,
    )
    try:
        created = commands.create_schedule(
            session=session, user=staff.user, data=ScheduleCreate.model_validate(data)
        )
    except DomainError as error:
        _domain_error(request, error)
        return _see_other("/schedules/new")
    except ValueError as error:
        flash(request, "error", N_("Not saved: %(reason)s"), reason=_first_error(error))
        return _see_other("/schedules/new")
    flash(request, "ok", N_("Schedule saved."))
    return _see_other(f"/schedules/{created.id}")


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            first = found[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            return f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
    return str(error)


@router.post("/schedules/{schedule_id}", dependencies=[CsrfChecked])
def update_schedule(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    schedule_id: uuid.UUID,
    name: FormStr = "",
    time_of_day: FormStr = "10:00",
    weekdays: Annotated[list[str], Form()] = [],  # noqa: B006
    target_kind: FormStr = "all",
    target_site_ids: Annotated[list[str], Form()] = [],  # noqa: B006
    target_flag: FormStr = "",
    quiet_start: FormStr = "21:00",
    quiet_end: FormStr = "08:00",
    active: FormStr = "",
) -> RedirectResponse:
    data = _schedule_form_data(
        name,
        time_of_day,
        weekdays,
        target_kind,
        target_site_ids,
        target_flag,
        quiet_start,
        quiet_end,
        active,
    )
    try:
        # The same checks as creating one, so an edit cannot leave a schedule unusable.
        ScheduleCreate.model_validate(data)
        commands.update_schedule(
            session=session,
            user=staff.user,
            schedule_id=schedule_id,
            data=ScheduleUpdate.model_validate(data),
        )
    except DomainError as error:
        _domain_error(request, error)
    except ValueError as error:
        flash(request, "error", N_("Not saved: %(reason)s"), reason=_first_error(error))
    else:
        flash(request, "ok", N_("Schedule saved."))
    return _see_other(f"/schedules/{schedule_id}")


@router.post("/schedules/{schedule_id}/delete", dependencies=[CsrfChecked])
def delete_schedule(
    request: Request, session: SessionDep, staff: ActingStaff, schedule_id: uuid.UUID
) -> RedirectResponse:
    try:
        commands.delete_schedule(session=session, user=staff.user, schedule_id=schedule_id)
    except DomainError as error:
        _domain_error(request, error)
        return _see_other("/rounds")
    flash(request, "ok", N_("Schedule deleted."))
    return _see_other("/rounds")


# --- Residents --------------------------------------------------------------------------------


def _members_by_id(session: Session, staff: Staff) -> dict[uuid.UUID, Member]:
    members, _count = registry.list_members(
        session=session, organization_id=staff.organization_id, limit=500
    )
    return {m.id: m for m in members}


@router.get("/residents/{resident_id}", response_class=HTMLResponse)
def resident_page(
    request: Request, session: SessionDep, staff: StaffDep, resident_id: uuid.UUID
) -> HTMLResponse:
    try:
        resident = registry.get_resident(
            session=session,
            organization_id=staff.organization_id,
            resident_id=resident_id,
            actor=actor_for(staff.user),  # reading a resident is audited
        )
    except NotFound:
        return _not_found(request, staff)
    session.commit()
    site = session.get(Site, resident.site_id) if resident.site_id else None
    assignments, _count = registry.list_assignments(
        session=session, organization_id=staff.organization_id, resident_id=resident.id
    )
    members = _members_by_id(session, staff)
    open_items = checkins.resident_open_items(session, resident.id)
    latest = latest_word(session, resident.id, open_items["checkin"])
    timeline = commands.build_timeline(session, resident.id)
    timeline.reverse()  # newest first: what happened last is what staff look for
    return render_page(
        request,
        "resident.html",
        staff=staff,
        resident=resident,
        site=site,
        assignments=assignments,
        members=members,
        open_items=open_items,
        latest=latest,
        timeline=timeline,
        languages=LANGUAGES,
        today=staff.text.local_date(get_clock().now()),  # the organization's day, not UTC's
    )


def _update_resident(
    request: Request, session: Session, staff: Staff, resident_id: uuid.UUID, **changes: Any
) -> bool:
    try:
        registry.update_resident(
            session=session,
            organization_id=staff.organization_id,
            resident_id=resident_id,
            data=ResidentUpdate(**changes),
            actor=actor_for(staff.user),
        )
    except DomainError as error:
        session.rollback()
        _domain_error(request, error)
        return False
    except ValueError as error:
        session.rollback()
        flash(request, "error", N_("Not saved: %(reason)s"), reason=_first_error(error))
        return False
    session.commit()
    return True


def _resident_url(resident_id: uuid.UUID) -> str:
    return f"/residents/{resident_id}"


@router.post("/residents/{resident_id}/note", dependencies=[CsrfChecked])
def add_note(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    resident_id: uuid.UUID,
    text: FormStr = "",
) -> RedirectResponse:
    try:
        commands.add_note(
            session=session,
            user=staff.user,
            resident_id=resident_id,
            data=commands.NoteCreate(text=text),
        )
    except DomainError as error:
        _domain_error(request, error)
    else:
        flash(request, "ok", N_("Note added."))
    return _see_other(_resident_url(resident_id))


@router.post("/residents/{resident_id}/away", dependencies=[CsrfChecked])
def mark_away(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    resident_id: uuid.UUID,
    away_until: FormStr = "",
) -> RedirectResponse:
    try:
        until = date.fromisoformat(away_until)
    except ValueError:
        flash(request, "error", N_("Give the date they come back."))
        return _see_other(_resident_url(resident_id))
    if _update_resident(
        request, session, staff, resident_id, status=ResidentStatus.away, away_until=until
    ):
        flash(request, "ok", N_("Marked away until %(date)s."), date=staff.text.date(until))
    return _see_other(_resident_url(resident_id))


@router.post("/residents/{resident_id}/moved-out", dependencies=[CsrfChecked])
def mark_moved_out(
    request: Request, session: SessionDep, staff: ActingStaff, resident_id: uuid.UUID
) -> RedirectResponse:
    if _update_resident(request, session, staff, resident_id, status=ResidentStatus.moved_out):
        flash(request, "ok", N_("Marked as moved out."))
    return _see_other(_resident_url(resident_id))


@router.post("/residents/{resident_id}/active", dependencies=[CsrfChecked])
def mark_active(
    request: Request, session: SessionDep, staff: ActingStaff, resident_id: uuid.UUID
) -> RedirectResponse:
    if _update_resident(
        request, session, staff, resident_id, status=ResidentStatus.active, away_until=None
    ):
        flash(request, "ok", N_("Marked as living here again."))
    return _see_other(_resident_url(resident_id))


@router.post("/residents/{resident_id}/language", dependencies=[CsrfChecked])
def change_language(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    resident_id: uuid.UUID,
    language: FormStr = "",
) -> RedirectResponse:
    if language not in LANGUAGE_CODES:
        flash(request, "error", N_("Choose a language from the list."))
    elif _update_resident(request, session, staff, resident_id, language=language):
        flash(request, "ok", N_("Language changed."))
    return _see_other(_resident_url(resident_id))


@router.post("/residents/{resident_id}/checkin", dependencies=[CsrfChecked])
def check_in_now(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    resident_id: uuid.UUID,
    override_quiet_hours: FormStr = "",
) -> RedirectResponse:
    try:
        commands.start_broadcast(
            session=session,
            user=staff.user,
            data=RoundStart(
                resident_ids=[resident_id], override_quiet_hours=bool(override_quiet_hours)
            ),
        )
    except DomainError as error:
        _domain_error(request, error)
    else:
        flash(request, "ok", N_("A check-in is on its way."))
    return _see_other(_resident_url(resident_id))


# --- Cases ------------------------------------------------------------------------------------


@router.get("/cases", response_class=HTMLResponse)
def cases_page(
    request: Request, session: SessionDep, staff: StaffDep, resolved: int | None = None
) -> HTMLResponse:
    if resolved:
        rows = session.execute(
            select(Escalation, Resident.name)
            .join(Resident, Resident.id == Escalation.resident_id)
            .where(
                Escalation.organization_id == staff.organization_id,
                Escalation.state == EscalationState.resolved,
            )
            .order_by(Escalation.resolved_at.desc())  # type: ignore[union-attr]
            .limit(100)
        ).all()
        return render_page(
            request, "cases.html", staff=staff, resolved=True, items=[], resolved_rows=rows, total=0
        )
    items, total = board_data.needs_attention(session, staff.organization_id, limit=500)
    return render_page(
        request,
        "cases.html",
        staff=staff,
        resolved=False,
        items=items,
        resolved_rows=[],
        total=total,
    )


def _case(session: Session, staff: Staff, escalation_id: uuid.UUID) -> Escalation | None:
    escalation = session.get(Escalation, escalation_id)
    if escalation is None or escalation.organization_id != staff.organization_id:
        return None
    return escalation


@router.get("/cases/{escalation_id}", response_class=HTMLResponse)
def case_page(
    request: Request, session: SessionDep, staff: StaffDep, escalation_id: uuid.UUID
) -> HTMLResponse:
    escalation = _case(session, staff, escalation_id)
    if escalation is None:
        return _not_found(request, staff)
    resident = session.get(Resident, escalation.resident_id)
    assert resident is not None
    site = session.get(Site, resident.site_id) if resident.site_id else None
    members = _members_by_id(session, staff)
    events = [
        item
        for item in commands.build_timeline(session, resident.id)
        if item.escalation_id == escalation.id
    ]
    events.reverse()
    return render_page(
        request,
        "case.html",
        staff=staff,
        case=escalation,
        resident=resident,
        site=site,
        members=members,
        active_members=[m for m in members.values() if m.active],
        events=events,
        outcomes=[o.value for o in Outcome],
    )


def _case_action(request: Request, escalation_id: uuid.UUID, action: Any) -> RedirectResponse:
    try:
        action()
    except DomainError as error:
        _domain_error(request, error)
    return _see_other(f"/cases/{escalation_id}")


@router.post("/cases/{escalation_id}/acknowledge", dependencies=[CsrfChecked])
def acknowledge_case(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    escalation_id: uuid.UUID,
    member_id: FormStr = "",
    note: FormStr = "",
) -> RedirectResponse:
    def act() -> None:
        commands.acknowledge(
            session=session,
            user=staff.user,
            escalation_id=escalation_id,
            data=AcknowledgeRequest(member_id=_uuid(member_id), note=note.strip() or None),
        )
        flash(request, "ok", N_("Acknowledged on the member's behalf."))

    return _case_action(request, escalation_id, act)


@router.post("/cases/{escalation_id}/reassign", dependencies=[CsrfChecked])
def reassign_case(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    escalation_id: uuid.UUID,
    member_id: FormStr = "",
) -> RedirectResponse:
    member = _uuid(member_id)
    if member is None:
        flash(request, "error", N_("Choose a member."))
        return _see_other(f"/cases/{escalation_id}")

    def act() -> None:
        commands.reassign(
            session=session,
            user=staff.user,
            escalation_id=escalation_id,
            data=ReassignRequest(member_id=member),
        )
        flash(request, "ok", N_("Reassigned: the member is being alerted."))

    return _case_action(request, escalation_id, act)


@router.post("/cases/{escalation_id}/resolve", dependencies=[CsrfChecked])
def resolve_case(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    escalation_id: uuid.UUID,
    outcome: FormStr = "",
    member_id: FormStr = "",
    note: FormStr = "",
) -> RedirectResponse:
    if outcome not in {o.value for o in Outcome}:
        flash(request, "error", N_("Choose the outcome of the visit."))
        return _see_other(f"/cases/{escalation_id}")

    def act() -> None:
        commands.resolve(
            session=session,
            user=staff.user,
            escalation_id=escalation_id,
            data=ResolveRequest(
                outcome=Outcome(outcome), member_id=_uuid(member_id), note=note.strip() or None
            ),
        )
        flash(request, "ok", N_("Outcome recorded. The case is closed."))

    return _case_action(request, escalation_id, act)


# --- Registry ---------------------------------------------------------------------------------


# The residents, members and sites screens are in registry_screens.py and member_screens.py.


@router.get("/registry/assignments", response_class=HTMLResponse)
def assignments_page(
    request: Request, session: SessionDep, staff: StaffDep, page: int | None = None
) -> HTMLResponse:
    page_number = _page_number(page)
    base = (
        select(Assignment, Resident.name, Resident.external_id, Member.name)
        .join(Resident, Resident.id == Assignment.resident_id)
        .join(Member, Member.id == Assignment.member_id)
        .where(Assignment.organization_id == staff.organization_id)
    )
    count = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(
        base.order_by(Resident.name_kana, Resident.name, Assignment.rank)
        .offset((page_number - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return render_page(
        request,
        "assignments.html",
        staff=staff,
        rows=rows,
        count=count,
        page=page_number,
        pages=max(1, -(-count // PAGE_SIZE)),
    )


IMPORT_KINDS = ("residents", "members", "assignments")


def _pack(data: bytes) -> str:
    """The uploaded file travels in the preview form, so any replica can apply it."""
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


class _PayloadTooLarge(Exception):
    """The payload inflates past the upload limit: a crafted form, not a file we packed."""


def _unpack(payload: str) -> bytes | None:
    """The packed upload, inflated at most to the upload limit.

    The payload comes back from the browser, so it is untrusted: a small field can inflate
    to gigabytes. ``max_length`` stops the inflation itself at the limit.
    """
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise _PayloadTooLarge
    try:
        packed = base64.b64decode(payload.encode("ascii"), validate=True)
        inflater = zlib.decompressobj()
        data = inflater.decompress(packed, MAX_IMPORT_BYTES)
        if inflater.unconsumed_tail or inflater.decompress(b"", 1):
            raise _PayloadTooLarge
        if not inflater.eof:
            return None  # truncated
        return data
    except (binascii.Error, zlib.error, ValueError):
        return None


def _run_import(
    session: Session,
    staff: Staff,
    kind: str,
    data: bytes,
    *,
    dry_run: bool,
    apply_valid_rows: bool = False,
) -> csv_io.ImportReport:
    try:
        report = csv_io.import_csv(
            session=session,
            organization_id=staff.organization_id,
            kind=kind,  # type: ignore[arg-type]
            data=data,
            actor=actor_for(staff.user),
            dry_run=dry_run,
            apply_valid_rows=apply_valid_rows,
            language=staff.text.language,
        )
    except Exception:
        session.rollback()
        raise
    if report.applied:
        session.commit()
    else:
        session.rollback()
    return report


@router.get("/registry/import", response_class=HTMLResponse)
def import_form(request: Request, staff: StaffDep) -> HTMLResponse:
    return render_page(request, "import.html", staff=staff, report=None, kind="residents")


@router.post("/registry/import", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def import_preview(
    request: Request,
    session: SessionDep,
    staff: ActingStaff,
    file: Annotated[UploadFile | None, File()] = None,
    kind: Annotated[str, Form()] = "residents",
) -> Response:
    """Step one: a dry run that lists every bad row. Nothing is written."""
    kind = kind if kind in IMPORT_KINDS else "residents"
    data = await file.read(MAX_IMPORT_BYTES + 1) if file is not None else b""
    if not data:
        flash(request, "error", N_("Choose a CSV file."))
        return _see_other("/registry/import")
    if len(data) > MAX_IMPORT_BYTES:
        flash(request, "error", N_("The file is too large for the dashboard; split it."))
        return _see_other("/registry/import")
    try:
        report = await run_in_threadpool(_run_import, session, staff, kind, data, dry_run=True)
    except csv_io.CsvFileError as error:
        flash(
            request,
            "error",
            N_("The file cannot be read: %(reason)s"),
            reason=error.text.render(staff.text.language),
        )
        return _see_other("/registry/import")
    return render_page(
        request,
        "import.html",
        staff=staff,
        report=report,
        kind=kind,
        payload=_pack(data),
        filename=(file.filename if file else "") or "upload.csv",
    )


async def _payload_form(request: Request) -> tuple[str, bytes | None, str]:
    form = await request.form()
    kind = str(form.get("kind", "residents"))
    kind = kind if kind in IMPORT_KINDS else "residents"
    try:
        data = _unpack(str(form.get("payload", "")))
    except _PayloadTooLarge:
        flash(request, "error", N_("The file is too large for the dashboard; split it."))
        return kind, None, ""
    if data is None:
        flash(request, "error", N_("The upload was lost; choose the file again."))
    return kind, data, str(form.get("mode", ""))


@router.post("/registry/import/apply", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def import_apply(request: Request, session: SessionDep, staff: ActingStaff) -> Response:
    kind, data, mode = await _payload_form(request)
    if data is None:
        return _see_other("/registry/import")
    try:
        report = await run_in_threadpool(
            _run_import,
            session,
            staff,
            kind,
            data,
            dry_run=False,
            apply_valid_rows=mode == "valid_rows",
        )
    except csv_io.CsvFileError as error:
        flash(
            request,
            "error",
            N_("The file cannot be read: %(reason)s"),
            reason=error.text.render(staff.text.language),
        )
        return _see_other("/registry/import")
    return render_page(
        request,
        "import.html",
        staff=staff,
        report=report,
        kind=kind,
        payload=_pack(data),
        filename="",
    )


@router.post("/registry/import/rejects", dependencies=[CsrfChecked])
async def import_rejects(request: Request, session: SessionDep, staff: ActingStaff) -> Response:
    """The bad rows as they came, with the line and the reason, to fix in Excel."""
    kind, data, _mode = await _payload_form(request)
    if data is None:
        return _see_other("/registry/import")
    try:
        report = await run_in_threadpool(_run_import, session, staff, kind, data, dry_run=True)
    except csv_io.CsvFileError as error:
        flash(
            request,
            "error",
            N_("The file cannot be read: %(reason)s"),
            reason=error.text.render(staff.text.language),
        )
        return _see_other("/registry/import")
    body = (report.reject_csv or "").encode("utf-8-sig")
    return Response(
        content=body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{kind}-rejects.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/registry/export", dependencies=[CsrfChecked])
def export_residents(
    request: Request, session: SessionDep, staff: ActingStaff, encoding: FormStr = "cp932"
) -> Response:
    chosen = encoding if encoding in ("cp932", "utf-8-sig") else "cp932"
    try:
        body = csv_io.export_residents(
            session=session,
            organization_id=staff.organization_id,
            actor=actor_for(staff.user),
            encoding=chosen,  # type: ignore[arg-type]
        )
    except csv_io.ExportEncodingError as error:
        session.rollback()
        flash(
            request,
            "error",
            N_("Not exported: %(reason)s"),
            reason=error.text.render(staff.text.language),
        )
        return _see_other("/registry/import")
    session.commit()
    charset = "shift_jis" if chosen == "cp932" else "utf-8"
    return Response(
        content=body,
        media_type=f"text/csv; charset={charset}",
        headers={
            "Content-Disposition": 'attachment; filename="residents.csv"',
            "Cache-Control": "no-store",
        },
    )

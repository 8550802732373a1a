"""What the board shows: counts per round and site, the "needs attention" list, and the
responses-over-time chart. Read-only queries shaped for the page; the state changes
themselves live in the domain services."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, cast, extract, func, select
from sqlmodel import Session

from service.checkins.models import CheckIn, CheckInState, Round, StaffTask
from service.checkins.routing import unrouted_tasks_filter
from service.common import aware
from service.escalations.models import Escalation, EscalationState
from service.escalations.service import OPEN_STATES, urgency
from service.registry.models import Resident, Site
from service.web.labels import BOARD_BUCKETS

RECENT_ROUNDS = 6
ATTENTION_LIMIT = 50

# The first group partitions a round; the second says how its cases are going.
ANSWER_BUCKETS = (
    "ok",
    "needs_help",
    "wants_talk",
    "unclear",
    "waiting",
    "no_reply",
    "unreachable",
    "visit_list",
)
CASE_BUCKETS = ("escalated", "acknowledged", "resolved")
assert set(ANSWER_BUCKETS + CASE_BUCKETS) == set(BOARD_BUCKETS)


def _answer_bucket(state: str, flagged: bool) -> str | None:
    if state == CheckInState.waiting:
        return "unclear" if flagged else "waiting"
    if state in (CheckInState.visit_list, CheckInState.opted_out):
        return "visit_list"
    if state == CheckInState.superseded:
        return None  # away, moved out, or replaced by a newer round: not in this round
    return str(state)


def _case_bucket(escalation_state: str | None) -> str | None:
    if escalation_state in (EscalationState.alerting, EscalationState.exhausted):
        return "escalated"
    if escalation_state == EscalationState.acknowledged:
        return "acknowledged"
    if escalation_state == EscalationState.resolved:
        return "resolved"
    return None


@dataclass
class Counts:
    values: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.values[b] for b in ANSWER_BUCKETS)

    @property
    def answered(self) -> int:
        return sum(self.values[b] for b in ("ok", "needs_help", "wants_talk"))

    def __getitem__(self, bucket: str) -> int:
        return self.values[bucket]


@dataclass
class SiteRow:
    site_id: uuid.UUID | None
    name: str | None
    counts: Counts


@dataclass
class RoundSummary:
    round: Round
    counts: Counts
    sites: list[SiteRow]


def count_rounds(
    session: Session,
    organization_id: uuid.UUID,
    round_ids: list[uuid.UUID],
    by_site: set[uuid.UUID] | None = None,
) -> dict[uuid.UUID, dict[uuid.UUID | None, Counts]]:
    """Counts by round and site in grouped queries: the board's only heavy read. Only the
    rounds in ``by_site`` (default: all) are counted per site, which needs each check-in's
    resident; the others are counted as a whole, under the key None."""
    result: dict[uuid.UUID, dict[uuid.UUID | None, Counts]] = {r: {} for r in round_ids}
    per_site = [r for r in round_ids if by_site is None or r in by_site]
    whole = [r for r in round_ids if r not in per_site]
    grouped = (CheckIn.state, CheckIn.flagged, Escalation.state)
    rows: list[Any] = []
    if per_site:
        rows += session.execute(
            select(CheckIn.round_id, Resident.site_id, *grouped, func.count())
            .join(Resident, Resident.id == CheckIn.resident_id)
            .outerjoin(Escalation, Escalation.id == CheckIn.escalation_id)
            .where(CheckIn.organization_id == organization_id, CheckIn.round_id.in_(per_site))  # type: ignore[attr-defined]
            .group_by(CheckIn.round_id, Resident.site_id, *grouped)
        ).all()
    if whole:
        rows += [
            (round_id, None, *rest)
            for round_id, *rest in session.execute(
                select(CheckIn.round_id, *grouped, func.count())
                .outerjoin(Escalation, Escalation.id == CheckIn.escalation_id)
                .where(CheckIn.organization_id == organization_id, CheckIn.round_id.in_(whole))  # type: ignore[attr-defined]
                .group_by(CheckIn.round_id, *grouped)
            ).all()
        ]
    for round_id, site_id, state, flagged, escalation_state, count in rows:
        counts = result[round_id].setdefault(site_id, Counts())
        answer = _answer_bucket(str(state), bool(flagged))
        if answer is None:
            continue
        counts.values[answer] += count
        bucket = _case_bucket(str(escalation_state) if escalation_state else None)
        if bucket:
            counts.values[bucket] += count
    return result


def recent_rounds(session: Session, organization_id: uuid.UUID, limit: int = RECENT_ROUNDS):  # type: ignore[no-untyped-def]
    return list(
        session.execute(
            select(Round)
            .where(Round.organization_id == organization_id)
            .order_by(Round.started_at.desc())  # type: ignore[attr-defined]
            .limit(limit)
        ).scalars()
    )


def summarize(
    session: Session,
    organization_id: uuid.UUID,
    rounds: list[Round],
    sites_for: set[uuid.UUID] | None = None,
) -> list[RoundSummary]:
    """Each round's counts; per site only for the rounds in ``sites_for`` (default: all),
    the others with no site rows (the board shows sites for the selected round alone)."""
    counted = count_rounds(session, organization_id, [r.id for r in rounds], sites_for)
    site_names = dict(
        session.execute(
            select(Site.id, Site.name).where(Site.organization_id == organization_id)
        ).all()
    )
    summaries = []
    for round_ in rounds:
        by_site = counted[round_.id]
        total = Counts()
        for counts in by_site.values():
            total.values.update(counts.values)
        sites = [
            SiteRow(site_id=site_id, name=site_names.get(site_id) if site_id else None, counts=c)
            for site_id, c in by_site.items()
            if sites_for is None or round_.id in sites_for
        ]
        sites.sort(key=lambda row: (row.name is None, row.name or ""))
        summaries.append(RoundSummary(round=round_, counts=total, sites=sites))
    return summaries


# --- Needs attention ------------------------------------------------------------------------


@dataclass
class AttentionItem:
    escalation: Escalation
    resident_id: uuid.UUID
    resident_name: str
    unit: str | None
    site: str | None
    language: str
    urgency: int


def needs_attention(
    session: Session, organization_id: uuid.UUID, limit: int = ATTENTION_LIMIT
) -> tuple[list[AttentionItem], int]:
    open_filter = and_(
        Escalation.organization_id == organization_id,
        Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
    )
    total = session.execute(
        select(func.count()).select_from(Escalation).where(open_filter)
    ).scalar_one()
    rank = urgency().label("urgency")
    rows = session.execute(
        select(Escalation, Resident.name, Resident.unit, Site.name, Resident.language, rank)
        .join(Resident, Resident.id == Escalation.resident_id)
        .outerjoin(Site, Site.id == Resident.site_id)
        .where(open_filter)
        .order_by(rank, Escalation.created_at, Escalation.id)
        .limit(limit)
    ).all()
    items = [
        AttentionItem(
            escalation=escalation,
            resident_id=escalation.resident_id,
            resident_name=name,
            unit=unit,
            site=site,
            language=language,
            urgency=level,
        )
        for escalation, name, unit, site, language, level in rows
    ]
    return items, total


def open_task_count(session: Session, organization_id: uuid.UUID) -> int:
    """The inbox's open items: the organization's own and every unrouted message."""
    return session.execute(
        select(func.count())
        .select_from(StaffTask)
        .where(unrouted_tasks_filter(organization_id), StaffTask.closed_at.is_(None))  # type: ignore[union-attr]
    ).scalar_one()


# --- The chart ------------------------------------------------------------------------------

CHART_WIDTH = 560
CHART_HEIGHT = 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 24, 16, 36
CHART_BINS = 48


@dataclass
class Series:
    key: str  # "replied" or "ok"
    points: str  # the SVG polyline's points
    last: int


@dataclass
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    y_max: int
    series: list[Series]
    x_ticks: list[tuple[float, datetime]]
    y_ticks: list[tuple[float, int]]
    total: int
    replied: int


def _tick_step(value: int) -> int:
    """A round step (1, 2, 5, 10, 20, 50, ...) that needs at most five ticks up to value."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if value <= step * 5:
                return step
        magnitude *= 10


def _reply_bins(
    session: Session, round_: Round, start: datetime, now: datetime
) -> tuple[int, float, dict[str, list[int]]]:
    """How many of the round's residents replied, the chart's span in seconds, and the
    replies and "fine" answers per bin. PostgreSQL counts the bins itself (a million-resident
    round has hundreds of thousands of replies: they never leave the database); SQLite's
    date arithmetic is not exact enough for that, so its rows are binned here."""
    round_replies = (CheckIn.round_id == round_.id, CheckIn.replied_at.is_not(None))  # type: ignore[union-attr]
    series: dict[str, list[int]] = {"replied": [0] * (CHART_BINS + 1), "ok": [0] * (CHART_BINS + 1)}

    def span_to(last: datetime | None) -> float:
        end = max(now, last) if last is not None else now
        return (max(end, start + timedelta(minutes=10)) - start).total_seconds()

    def add(index: int, state_ok: bool, count: int) -> None:
        index = min(max(index, 0), CHART_BINS)
        series["replied"][index] += count
        if state_ok:
            series["ok"][index] += count

    if session.get_bind().dialect.name != "postgresql":
        times = [
            (aware(at), str(state))
            for at, state in session.execute(
                select(CheckIn.replied_at, CheckIn.state).where(*round_replies)
            ).all()
        ]
        span = span_to(max(t for t, _ in times) if times else None)
        for at, state in times:
            add(
                int((at - start).total_seconds() / span * CHART_BINS) if span else 0,
                state == "ok",
                1,
            )
        return len(times), span, series
    replied, last = session.execute(
        select(func.count(), func.max(CheckIn.replied_at)).where(*round_replies)
    ).one()
    span = span_to(aware(last))
    # The same arithmetic as above, in double precision: (seconds / span) * bins, truncated.
    seconds = cast(extract("epoch", CheckIn.replied_at - start), Float)
    index = func.floor(seconds / span * CHART_BINS)
    is_ok = CheckIn.state == CheckInState.ok.value
    for bin_index, state_ok, count in session.execute(
        select(index, is_ok, func.count()).where(*round_replies).group_by(index, is_ok)
    ).all():
        add(int(bin_index), bool(state_ok), count)
    return replied, span, series


def response_chart(session: Session, round_: Round, total: int, now: datetime) -> Chart:
    """Cumulative replies and "fine" answers since the round started, drawn on the server so
    the page needs no charting script."""
    start = aware(round_.started_at)
    assert start is not None
    replied, span, binned = _reply_bins(session, round_, start, now)
    left, right = MARGIN_LEFT, CHART_WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, CHART_HEIGHT - MARGIN_BOTTOM
    step = _tick_step(max(total, replied, 1))
    y_max = -(-max(total, replied, 1) // step) * step

    def x_at(moment: datetime) -> float:
        offset = min(max((moment - start).total_seconds(), 0.0), span)
        return round(left + (right - left) * offset / span, 1)

    def y_at(count: int) -> float:
        return round(bottom - (bottom - top) * count / y_max, 1)

    series = []
    for key in ("replied", "ok"):
        points, running = [], 0
        for index, count in enumerate(binned[key]):
            running += count
            moment = start + timedelta(seconds=span * index / CHART_BINS)
            points.append(f"{x_at(moment)},{y_at(running)}")
        series.append(Series(key=key, points=" ".join(points), last=running))
    x_ticks = [
        (x_at(start + timedelta(seconds=span * i / 4)), start + timedelta(seconds=span * i / 4))
        for i in range(5)
    ]
    y_ticks = [(y_at(value), value) for value in range(0, y_max + 1, step)]
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        y_max=y_max,
        series=series,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        total=total,
        replied=replied,
    )

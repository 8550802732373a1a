"""What the board shows: counts per round and site, the "needs attention" list, and the
responses-over-time chart. Read-only queries shaped for the page; the state changes
themselves live in the domain services."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
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
    session: Session, organization_id: uuid.UUID, round_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID | None, Counts]]:
    """Counts by round and site in one grouped query: the board's only heavy read."""
    result: dict[uuid.UUID, dict[uuid.UUID | None, Counts]] = {r: {} for r in round_ids}
    if not round_ids:
        return result
    rows = session.execute(
        select(
            CheckIn.round_id,
            Resident.site_id,
            CheckIn.state,
            CheckIn.flagged,
            Escalation.state,
            func.count(),
        )
        .join(Resident, Resident.id == CheckIn.resident_id)
        .outerjoin(Escalation, Escalation.id == CheckIn.escalation_id)
        .where(CheckIn.organization_id == organization_id, CheckIn.round_id.in_(round_ids))  # type: ignore[attr-defined]
        .group_by(
            CheckIn.round_id, Resident.site_id, CheckIn.state, CheckIn.flagged, Escalation.state
        )
    ).all()
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
    session: Session, organization_id: uuid.UUID, rounds: list[Round]
) -> list[RoundSummary]:
    counted = count_rounds(session, organization_id, [r.id for r in rounds])
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


def response_chart(session: Session, round_: Round, total: int, now: datetime) -> Chart:
    """Cumulative replies and "fine" answers since the round started, drawn on the server so
    the page needs no charting script."""
    rows = session.execute(
        select(CheckIn.replied_at, CheckIn.state).where(
            CheckIn.round_id == round_.id,
            CheckIn.replied_at.is_not(None),  # type: ignore[union-attr]
        )
    ).all()
    start = aware(round_.started_at)
    assert start is not None
    times = [(aware(at), str(state)) for at, state in rows]
    end = max([now, *[t for t, _ in times]]) if times else now
    end = max(end, start + timedelta(minutes=10))
    span = (end - start).total_seconds()
    left, right = MARGIN_LEFT, CHART_WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, CHART_HEIGHT - MARGIN_BOTTOM
    step = _tick_step(max(total, len(times), 1))
    y_max = -(-max(total, len(times), 1) // step) * step

    def x_at(moment: datetime) -> float:
        offset = min(max((moment - start).total_seconds(), 0.0), span)
        return round(left + (right - left) * offset / span, 1)

    def y_at(count: int) -> float:
        return round(bottom - (bottom - top) * count / y_max, 1)

    series = []
    for key, keep in (("replied", None), ("ok", CheckInState.ok.value)):
        bins = [0] * (CHART_BINS + 1)
        for at, state in times:
            if keep is not None and state != keep:
                continue
            index = int((at - start).total_seconds() / span * CHART_BINS) if span else 0
            bins[min(max(index, 0), CHART_BINS)] += 1
        points, running = [], 0
        for index, count in enumerate(bins):
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
        replied=len(times),
    )

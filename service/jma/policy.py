"""The trigger policy as pure functions: given a parsed bulletin, an organization's settings,
its sites and what it already triggered, decide what to do.

Nothing here touches the database or the clock, so every rule (threshold, 未入電, drills,
cancellations, aftershocks, report age) can be pinned by a table of cases. The service
(`service.jma.service`) loads the inputs, calls :func:`decide` and acts on the answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from service.jma.parser import Bulletin, BulletinKind, Intensity, TsunamiKind

__all__ = [
    "CAUSE_MAX_LENGTH",
    "FIVE_LOWER",
    "TSUNAMI_KIND_BY_NAME",
    "AreaHit",
    "AreaKind",
    "Decision",
    "PolicySettings",
    "PriorTrigger",
    "SiteAreas",
    "Verdict",
    "aftershock_allows",
    "area_family",
    "cause_text",
    "decide",
    "intensity_label",
    "intensity_level",
    "tsunami_label",
]

CAUSE_MAX_LENGTH: Final = 300  # Round.cause and Escalation.cause are VARCHAR(300)
FIVE_LOWER: Final = Intensity("5-")  # 震度5弱: where commercial 安否確認 services start


class AreaKind(StrEnum):
    """Earthquake areas (地震情報／細分区域) and tsunami forecast areas are separate code
    systems: 390 is 石川県能登 for a quake but a different coast for a tsunami."""

    QUAKE = "quake"
    TSUNAMI = "tsunami"


def area_family(kind: BulletinKind) -> AreaKind:
    return AreaKind.TSUNAMI if kind is BulletinKind.VTSE41 else AreaKind.QUAKE


class Verdict(StrEnum):
    BROADCAST = "broadcast"  # check on the residents of the hit sites (after any hold-off)
    BELOW_THRESHOLD = "below_threshold"  # the org's sites are in the bulletin, not hard enough
    AFTERSHOCK_SUPPRESSED = "aftershock_suppressed"  # already checked for this, not stronger
    TOO_OLD = "too_old"  # the report is older than the policy's max age
    DISABLED = "disabled"  # the organization switched automatic checks off
    CANCEL = "cancel"  # a 取消: withdraw what the cancelled bulletin started


TSUNAMI_KIND_BY_NAME: Final[Mapping[str, TsunamiKind]] = {
    "advisory": TsunamiKind.ADVISORY,
    "warning": TsunamiKind.WARNING,
    "major_warning": TsunamiKind.MAJOR_WARNING,
}

_INTENSITY_JA: Final = {"5-": "5弱", "5+": "5強", "6-": "6弱", "6+": "6強"}
_TSUNAMI_JA: Final = {
    TsunamiKind.MAJOR_WARNING: "大津波警報",
    TsunamiKind.WARNING: "津波警報",
    TsunamiKind.ADVISORY: "津波注意報",
    TsunamiKind.FORECAST: "津波予報",
}


def intensity_level(intensity: Intensity) -> int:
    """A sortable integer that keeps 未入電 ("5- or more, not yet reported") above a
    confirmed 5-, exactly as Intensity orders them, so it can be stored in a column."""
    return intensity.rank * 2 + (1 if intensity.unreceived else 0)


def intensity_label(intensity: Intensity) -> str:
    """震度 in the form staff read on TV: "5強", and "5弱以上(未入電)" for missing data."""
    if intensity.unreceived:
        return "5弱以上(未入電)"
    return _INTENSITY_JA.get(intensity.value, intensity.value)


def tsunami_label(kind: TsunamiKind) -> str:
    return _TSUNAMI_JA.get(kind, kind.name)


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """One organization's trigger policy, as plain values (see JmaTriggerPolicy)."""

    enabled: bool = True
    min_intensity: Intensity = FIVE_LOWER
    # None: tsunami bulletins never start a round for this organization.
    tsunami_min_kind: TsunamiKind | None = TsunamiKind.WARNING
    hold_off: timedelta = timedelta(0)
    aftershock_window: timedelta = timedelta(hours=6)
    new_quake_in_window_starts_broadcast: bool = False
    override_quiet_hours: bool = True
    max_report_age: timedelta = timedelta(minutes=60)
    dry_run_drills: bool = True


@dataclass(frozen=True, slots=True)
class SiteAreas:
    site_id: uuid.UUID
    quake_area: str | None
    tsunami_area: str | None


@dataclass(frozen=True, slots=True)
class AreaHit:
    """One area of the bulletin that concerns the organization, with how hard it was hit."""

    kind: AreaKind
    code: str
    name: str
    level: int  # intensity_level(...) or int(TsunamiKind)
    label: str  # "6弱", "津波警報"


@dataclass(frozen=True, slots=True)
class PriorTrigger:
    """A broadcast this organization already started (or has pending) for an area."""

    kind: AreaKind
    code: str
    event_id: str
    level: int
    at: datetime  # the report time of the bulletin that triggered it


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    # A drill (訓練) or test (試験): nothing may be sent; the verdict is what would have happened.
    dry_run: bool
    reason: str
    site_ids: tuple[uuid.UUID, ...] = ()  # the sites to check on (BROADCAST only)
    hits: tuple[AreaHit, ...] = ()  # the areas that trigger it
    suppressed: tuple[AreaHit, ...] = ()  # areas over the threshold held back by the window
    mentioned_site_ids: tuple[uuid.UUID, ...] = ()  # sites whose area the bulletin names
    cause: str | None = None
    fire_at: datetime | None = None
    top_level: int = 0
    extra: dict[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------------- the rules


def _site_hit(bulletin: Bulletin, site: SiteAreas) -> AreaHit | None:
    """How the bulletin concerns one site, whatever the threshold (None: not at all)."""
    if area_family(bulletin.kind) is AreaKind.TSUNAMI:
        code = site.tsunami_area
        if code is None or code not in bulletin.tsunami:
            return None
        kind = bulletin.tsunami[code]
        return AreaHit(
            AreaKind.TSUNAMI,
            code,
            bulletin.tsunami_area_names.get(code, code),
            int(kind),
            tsunami_label(kind),
        )
    code = site.quake_area
    if code is None or code not in bulletin.area_intensities:
        return None
    intensity = bulletin.area_intensities[code]
    return AreaHit(
        AreaKind.QUAKE,
        code,
        bulletin.area_names.get(code, code),
        intensity_level(intensity),
        intensity_label(intensity),
    )


def _threshold(bulletin: Bulletin, policy: PolicySettings) -> int | None:
    if area_family(bulletin.kind) is AreaKind.TSUNAMI:
        return None if policy.tsunami_min_kind is None else int(policy.tsunami_min_kind)
    return intensity_level(policy.min_intensity)


def aftershock_allows(
    hit: AreaHit,
    *,
    event_id: str,
    at: datetime,
    priors: Iterable[PriorTrigger],
    window: timedelta,
    new_quake_starts_broadcast: bool,
) -> bool:
    """May this hit start another broadcast, given what the area already triggered?

    - A further report of the same event starts one only if it is stronger than anything
      that event already triggered here, however long ago (a VXSE53 that repeats the
      VXSE51's intensity is not a new reason to ask).
    - Within the window, another event starts one only if it is stronger than the strongest
      broadcast in the window, or if the policy says every new quake counts.
    - The window is measured between report times, in both directions, so bulletins that
      arrive out of order are judged the same way.
    """
    same_area = [p for p in priors if p.kind == hit.kind and p.code == hit.code]
    same_event = [p for p in same_area if p.event_id == event_id]
    if same_event and hit.level <= max(p.level for p in same_event):
        return False
    in_window = [p for p in same_area if abs(at - p.at) <= window]
    if not in_window:
        return True
    if hit.level > max(p.level for p in in_window):
        return True
    return new_quake_starts_broadcast and not same_event


def decide(
    bulletin: Bulletin,
    policy: PolicySettings,
    sites: Sequence[SiteAreas],
    priors: Iterable[PriorTrigger],
    *,
    now: datetime,
    timezone: str = "Asia/Tokyo",
) -> Decision:
    """What one organization does about one bulletin."""
    dry_run = not bulletin.is_real
    if bulletin.is_cancelled:
        return Decision(
            Verdict.CANCEL, dry_run, f"{bulletin.kind} {bulletin.event_id} was cancelled (取消)"
        )
    hits_by_site = {site.site_id: _site_hit(bulletin, site) for site in sites}
    mentioned = tuple(site_id for site_id, hit in hits_by_site.items() if hit is not None)
    if not policy.enabled:
        return Decision(
            Verdict.DISABLED,
            dry_run,
            "automatic checks are switched off",
            mentioned_site_ids=mentioned,
        )
    age = now - bulletin.report_datetime
    if age > policy.max_report_age:
        return Decision(
            Verdict.TOO_OLD,
            dry_run,
            f"the report is {int(age.total_seconds() // 60)} min old "
            f"(limit {int(policy.max_report_age.total_seconds() // 60)} min)",
            mentioned_site_ids=mentioned,
        )
    threshold = _threshold(bulletin, policy)
    over = {
        site_id: hit
        for site_id, hit in hits_by_site.items()
        if hit is not None and threshold is not None and hit.level >= threshold
    }
    if not over:
        return Decision(
            Verdict.BELOW_THRESHOLD,
            dry_run,
            "no site of this organization is in an area at or above the threshold"
            if mentioned
            else "no site of this organization is in the bulletin",
            mentioned_site_ids=mentioned,
        )
    prior_list = list(priors)
    allowed: dict[tuple[AreaKind, str], bool] = {}
    for hit in over.values():
        key = (hit.kind, hit.code)
        if key not in allowed:
            allowed[key] = aftershock_allows(
                hit,
                event_id=bulletin.event_id,
                at=bulletin.report_datetime,
                priors=prior_list,
                window=policy.aftershock_window,
                new_quake_starts_broadcast=policy.new_quake_in_window_starts_broadcast,
            )
    firing = {site_id: hit for site_id, hit in over.items() if allowed[(hit.kind, hit.code)]}
    hits = _unique(hit for hit in firing.values())
    held = _unique(hit for hit in over.values() if not allowed[(hit.kind, hit.code)])
    if not firing:
        return Decision(
            Verdict.AFTERSHOCK_SUPPRESSED,
            dry_run,
            "already checked on these areas for an equal or stronger report",
            suppressed=held,
            mentioned_site_ids=mentioned,
        )
    return Decision(
        Verdict.BROADCAST,
        dry_run,
        f"{len(firing)} site(s) at or above the threshold",
        site_ids=tuple(site_id for site_id in hits_by_site if site_id in firing),
        hits=hits,
        suppressed=held,
        mentioned_site_ids=mentioned,
        cause=cause_text(bulletin, hits, timezone),
        fire_at=now + policy.hold_off,
        top_level=max(hit.level for hit in hits),
    )


def _unique(hits: Iterable[AreaHit]) -> tuple[AreaHit, ...]:
    """Distinct areas, strongest first (then by code, so the order is stable)."""
    seen: dict[tuple[AreaKind, str], AreaHit] = {}
    for hit in hits:
        seen.setdefault((hit.kind, hit.code), hit)
    return tuple(sorted(seen.values(), key=lambda h: (-h.level, h.code)))


def cause_text(bulletin: Bulletin, hits: Sequence[AreaHit], timezone: str) -> str:
    """The round's cause, shown on the board and in members' alerts.

    For example "震度5強 石川県能登 2026-12-01 03:12": the strongest hit among the
    organization's own areas (not the bulletin's maximum, which may be far away), its area,
    and when the quake happened, in the organization's time zone. A drill never gets here.
    """
    top = hits[0]
    what = f"震度{top.label}" if top.kind is AreaKind.QUAKE else top.label
    place = top.name + ("ほか" if len(hits) > 1 else "")
    when = bulletin.report_datetime
    if bulletin.earthquake is not None and bulletin.earthquake.origin_time is not None:
        when = bulletin.earthquake.origin_time
    elif bulletin.target_datetime is not None:
        when = bulletin.target_datetime
    local = when.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
    return f"{what} {place} {local}"[:CAUSE_MAX_LENGTH]

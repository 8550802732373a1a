"""Acting on JMA bulletins: decide per organization, hold off, fire, cancel, dry-run drills.

The flow for one bulletin (from the feed poller or the push endpoint):

1. Record it under its identity (kind, event, report time, info type, serial, status). The
   unique key makes a second delivery, from either source, a no-op.
2. For every organization with a site in a named area, run the pure policy
   (:func:`service.jma.policy.decide`) and record the decision.
3. A broadcast becomes a pending trigger with ``fire_at = now + hold-off``; a later report of
   the same event merges into it rather than starting a second round minutes later.
4. Due triggers fire: the claim of the trigger and the new round commit together, so a
   trigger starts exactly one round even if the push endpoint and the scheduler race.
5. A 取消 cancels the pending triggers its event started; one that already fired is
   reported to staff, since a message already sent cannot be unsent.

Drills (訓練) and tests (試験) run steps 1-2 only: nothing is sent, and the decision row says
what would have happened and to how many residents.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.audit.service import Actor, record
from service.checkins import service as checkins
from service.checkins.models import RoundKind
from service.common import aware
from service.jma.models import (
    JmaAreaTrigger,
    JmaBulletin,
    JmaDecision,
    JmaDecisionPublic,
    JmaPendingTrigger,
    JmaTriggerPolicy,
    JmaTriggerPolicyPublic,
    JmaTriggerPolicyUpdate,
    policy_settings,
)
from service.jma.parser import Bulletin, InfoType
from service.jma.policy import (
    AreaHit,
    AreaKind,
    Decision,
    PolicySettings,
    PriorTrigger,
    SiteAreas,
    Verdict,
    area_family,
    decide,
)
from service.registry.models import Organization, Resident, Site

log = logging.getLogger(__name__)
JMA_ACTOR = Actor(label="jma")
CANCELLED_AFTER_BROADCAST = "cancelled_after_broadcast"


@dataclass(frozen=True)
class OrgDecision:
    organization_id: uuid.UUID
    decision_id: uuid.UUID
    verdict: str
    dry_run: bool
    cause: str | None
    site_ids: tuple[uuid.UUID, ...]
    pending_trigger_id: uuid.UUID | None = None
    would_contact: int | None = None
    would_visit: int | None = None


@dataclass
class ProcessResult:
    bulletin_id: uuid.UUID
    duplicate: bool
    decisions: list[OrgDecision] = field(default_factory=list)
    round_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def broadcasts(self) -> int:
        """Broadcasts decided for real (started now, or pending a hold-off)."""
        return sum(
            1 for d in self.decisions if d.verdict == Verdict.BROADCAST.value and not d.dry_run
        )


def bulletin_identity(bulletin: Bulletin) -> str:
    """What makes two deliveries the same bulletin, whatever bytes they came as.

    JMA reissues a document with a new report time or serial when anything changes, so
    these five fields (and the status, so a drill can never shadow a real report) identify
    one bulletin; re-encoding or re-wrapping by a relay does not change them.
    """
    return "|".join(
        [
            bulletin.kind.value,
            bulletin.event_id,
            bulletin.report_datetime.isoformat(),
            bulletin.info_type.value,
            "" if bulletin.serial is None else str(bulletin.serial),
            bulletin.status.value,
        ]
    )


def _utc(value: datetime) -> datetime:
    """JMA writes +09:00; the database holds UTC (SQLite drops the offset on the way in)."""
    return value.astimezone(UTC)


def _describe(bulletin: Bulletin) -> str:
    # Log text avoids long digit runs: the log filter masks anything that looks like a phone
    # number, and a JMA event id or an ISO date does.
    when = bulletin.report_datetime.strftime("%Y/%m/%d %H:%M:%S%z")
    return f"{bulletin.kind} {bulletin.status}/{bulletin.info_type} of {when}"


# --- Processing -----------------------------------------------------------------------------------


def process_bulletin(
    engine: Engine,
    bulletin: Bulletin,
    *,
    now_fn: Callable[[], datetime],
    source: str = "push",
    document: bytes | str | None = None,
) -> ProcessResult:
    """Decide and act on one parsed bulletin, once, however often it is delivered."""
    now = _utc(now_fn())
    identity = bulletin_identity(bulletin)
    with Session(engine) as session:
        existing = _bulletin_id(session, identity)
        if existing is not None:
            log.info("JMA %s already processed; ignored", _describe(bulletin))
            return ProcessResult(bulletin_id=existing, duplicate=True)
        row = _bulletin_row(bulletin, identity, source, document, now)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            # Another process (the poller, or a second push) recorded it first.
            session.rollback()
            existing = _bulletin_id(session, identity)
            assert existing is not None
            return ProcessResult(bulletin_id=existing, duplicate=True)
        decisions = _decide_all(session, bulletin, row, now)
        session.commit()
        bulletin_id = row.id
    for decision in decisions:
        log.info(
            "JMA %s: organization %s: %s%s",
            _describe(bulletin),
            decision.organization_id,
            decision.verdict,
            " (dry run)" if decision.dry_run else "",
            extra={"event": "jma.decision", "kind": bulletin.kind.value},
        )
    pending = {d.pending_trigger_id for d in decisions if d.pending_trigger_id is not None}
    round_ids = fire_due_triggers(engine, now_fn, trigger_ids=pending) if pending else []
    return ProcessResult(
        bulletin_id=bulletin_id, duplicate=False, decisions=decisions, round_ids=round_ids
    )


def _bulletin_id(session: Session, identity: str) -> uuid.UUID | None:
    return session.execute(
        select(JmaBulletin.id).where(JmaBulletin.identity == identity)
    ).scalar_one_or_none()


def _bulletin_row(
    bulletin: Bulletin,
    identity: str,
    source: str,
    document: bytes | str | None,
    now: datetime,
) -> JmaBulletin:
    if isinstance(document, str):
        document = document.encode("utf-8")
    digest = hashlib.sha256(document if document is not None else identity.encode()).hexdigest()
    return JmaBulletin(
        identity=identity,
        sha256=digest,
        kind=bulletin.kind.value,
        event_id=bulletin.event_id,
        report_datetime=_utc(bulletin.report_datetime),
        info_type=bulletin.info_type.value,
        status=bulletin.status.value,
        serial=bulletin.serial,
        title=bulletin.title[:200],
        headline=bulletin.headline or None,
        max_intensity=str(bulletin.max_intensity) if bulletin.max_intensity else None,
        max_tsunami=bulletin.max_tsunami.name.lower() if bulletin.max_tsunami else None,
        source=source[:16],
        received_at=now,
    )


def _decide_all(
    session: Session, bulletin: Bulletin, row: JmaBulletin, now: datetime
) -> list[OrgDecision]:
    if bulletin.is_cancelled:
        return _apply_cancellation(session, bulletin, row, now)
    family = area_family(bulletin.kind)
    codes = set(bulletin.tsunami if family is AreaKind.TSUNAMI else bulletin.area_intensities)
    if not codes:
        return []
    if bulletin.is_real and _already_cancelled(session, bulletin):
        log.warning("JMA %s arrived after its own 取消; nothing started", _describe(bulletin))
        return []
    column = Site.tsunami_area_code if family is AreaKind.TSUNAMI else Site.jma_area_code
    by_org: dict[uuid.UUID, list[SiteAreas]] = defaultdict(list)
    for site_id, org_id, quake_area, tsunami_area in session.execute(
        select(Site.id, Site.organization_id, Site.jma_area_code, Site.tsunami_area_code)
        .where(column.in_(sorted(codes)))  # type: ignore[union-attr]
        .order_by(Site.organization_id, Site.name)
    ):
        by_org[org_id].append(SiteAreas(site_id, quake_area, tsunami_area))
    results: list[OrgDecision] = []
    for org_id, sites in by_org.items():
        org = session.get(Organization, org_id)
        assert org is not None
        policy = policy_settings(session.get(JmaTriggerPolicy, org_id))
        if not bulletin.is_real and not policy.dry_run_drills:
            continue
        priors = _priors(session, org_id, family, codes, bulletin, policy.aftershock_window)
        decision = decide(bulletin, policy, sites, priors, now=now, timezone=org.timezone)
        results.append(_record_decision(session, org, bulletin, row, decision, policy, now))
    return results


def _already_cancelled(session: Session, bulletin: Bulletin) -> bool:
    """A 取消 for this event and kind, reported at or after this bulletin, was processed."""
    return (
        session.execute(
            select(JmaBulletin.id).where(
                JmaBulletin.event_id == bulletin.event_id,
                JmaBulletin.kind == bulletin.kind.value,
                JmaBulletin.info_type == InfoType.CANCELLED.value,
                JmaBulletin.status == bulletin.status.value,
                JmaBulletin.report_datetime >= _utc(bulletin.report_datetime),
            )
        ).first()
        is not None
    )


def _priors(
    session: Session,
    organization_id: uuid.UUID,
    family: AreaKind,
    codes: set[str],
    bulletin: Bulletin,
    window: timedelta,
) -> list[PriorTrigger]:
    at = _utc(bulletin.report_datetime)
    rows = session.execute(
        select(JmaAreaTrigger).where(
            JmaAreaTrigger.organization_id == organization_id,
            JmaAreaTrigger.area_kind == family.value,
            JmaAreaTrigger.area_code.in_(sorted(codes)),  # type: ignore[attr-defined]
            JmaAreaTrigger.cancelled_at.is_(None),  # type: ignore[union-attr]
            or_(
                JmaAreaTrigger.event_id == bulletin.event_id,
                and_(JmaAreaTrigger.at >= at - window, JmaAreaTrigger.at <= at + window),
            ),
        )
    ).scalars()
    return [
        PriorTrigger(
            kind=AreaKind(r.area_kind),
            code=r.area_code,
            event_id=r.event_id,
            level=r.level,
            at=aware(r.at),  # type: ignore[arg-type]
        )
        for r in rows
    ]


def _hit_dict(hit: AreaHit) -> dict[str, Any]:
    return {"kind": hit.kind.value, "code": hit.code, "name": hit.name, "label": hit.label}


def _record_decision(
    session: Session,
    org: Organization,
    bulletin: Bulletin,
    row: JmaBulletin,
    decision: Decision,
    policy: PolicySettings,
    now: datetime,
) -> OrgDecision:
    would_contact = would_visit = None
    pending: JmaPendingTrigger | None = None
    if decision.verdict is Verdict.BROADCAST and decision.dry_run:
        would_contact, would_visit = _would_reach(session, org, decision.site_ids, now)
    elif decision.verdict is Verdict.BROADCAST:
        pending = _merge_or_create_pending(session, org, bulletin, row, decision, policy, now)
        for hit in decision.hits:
            session.add(
                JmaAreaTrigger(
                    organization_id=org.id,
                    pending_trigger_id=pending.id,
                    area_kind=hit.kind.value,
                    area_code=hit.code,
                    event_id=bulletin.event_id,
                    level=hit.level,
                    label=hit.label,
                    at=_utc(bulletin.report_datetime),
                )
            )
    entry = JmaDecision(
        bulletin_id=row.id,
        organization_id=org.id,
        verdict=decision.verdict.value,
        dry_run=decision.dry_run,
        reason=decision.reason[:300],
        cause=decision.cause,
        site_ids=[str(s) for s in decision.site_ids],
        areas=[_hit_dict(h) for h in decision.hits],
        suppressed_areas=[_hit_dict(h) for h in decision.suppressed],
        would_contact=would_contact,
        would_visit=would_visit,
        pending_trigger_id=pending.id if pending else None,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    if decision.verdict is Verdict.BROADCAST or decision.dry_run:
        record(
            session=session,
            organization_id=org.id,
            actor=JMA_ACTOR,
            action="jma.dry_run" if decision.dry_run else "jma.broadcast",
            entity_type="jma_bulletin",
            entity_id=row.id,
            detail={
                "verdict": decision.verdict.value,
                "kind": bulletin.kind.value,
                "event_id": bulletin.event_id,
                "status": bulletin.status.value,
                "cause": decision.cause,
                "sites": len(decision.site_ids),
                "would_contact": would_contact,
                "would_visit": would_visit,
                "fire_at": pending.fire_at.isoformat() if pending else None,
            },
        )
    return OrgDecision(
        organization_id=org.id,
        decision_id=entry.id,
        verdict=decision.verdict.value,
        dry_run=decision.dry_run,
        cause=decision.cause,
        site_ids=decision.site_ids,
        pending_trigger_id=pending.id if pending else None,
        would_contact=would_contact,
        would_visit=would_visit,
    )


def _merge_or_create_pending(
    session: Session,
    org: Organization,
    bulletin: Bulletin,
    row: JmaBulletin,
    decision: Decision,
    policy: PolicySettings,
    now: datetime,
) -> JmaPendingTrigger:
    """One round per event and organization while the hold-off runs: a stronger VXSE53
    after a VXSE51 widens the waiting trigger instead of starting a second round."""
    family = area_family(bulletin.kind)
    query = select(JmaPendingTrigger).where(
        JmaPendingTrigger.organization_id == org.id,
        JmaPendingTrigger.event_id == bulletin.event_id,
        JmaPendingTrigger.area_kind == family.value,
        JmaPendingTrigger.fired_at.is_(None),  # type: ignore[union-attr]
        JmaPendingTrigger.cancelled_at.is_(None),  # type: ignore[union-attr]
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    existing = session.execute(query).scalars().first()
    sites = [str(s) for s in decision.site_ids]
    assert decision.cause is not None and decision.fire_at is not None and sites
    if existing is not None:
        existing.site_ids = sorted(set(existing.site_ids) | set(sites))
        existing.bulletin_kinds = sorted(set(existing.bulletin_kinds) | {bulletin.kind.value})
        if decision.top_level > existing.top_level:
            existing.cause = decision.cause
            existing.top_level = decision.top_level
        session.add(existing)
        session.flush()
        return existing
    pending = JmaPendingTrigger(
        organization_id=org.id,
        bulletin_id=row.id,
        event_id=bulletin.event_id,
        area_kind=family.value,
        bulletin_kinds=[bulletin.kind.value],
        site_ids=sites,
        cause=decision.cause,
        top_level=decision.top_level,
        override_quiet_hours=policy.override_quiet_hours,
        started_by=f"jma:{bulletin.kind.value} {bulletin.event_id}",
        created_at=now,
        fire_at=decision.fire_at,
    )
    session.add(pending)
    session.flush()
    return pending


def _would_reach(
    session: Session, org: Organization, site_ids: Sequence[uuid.UUID], now: datetime
) -> tuple[int, int]:
    """(contacted, visit list) for a dry run, by the same eligibility rule a round uses."""
    today = now.astimezone(ZoneInfo(org.timezone)).date()
    contact = visit = 0
    for resident in session.execute(
        select(
            Resident.status,
            Resident.away_until,
            Resident.consent_at,
            Resident.phone,
            Resident.phone2,
        ).where(
            Resident.organization_id == org.id,
            Resident.site_id.in_(list(site_ids)),  # type: ignore[union-attr]
        )
    ):
        reachable, visit_reason = checkins.eligible(resident, today)
        if reachable:
            contact += 1
        elif visit_reason is not None:
            visit += 1
    return contact, visit


# --- Cancellation ---------------------------------------------------------------------------------


def _apply_cancellation(
    session: Session, bulletin: Bulletin, row: JmaBulletin, now: datetime
) -> list[OrgDecision]:
    """A 取消 withdraws the bulletin of that kind for that event: a trigger it supports alone
    is cancelled if it has not fired; one that fired is reported, because it cannot be
    undone. Drills have nothing to withdraw."""
    if not bulletin.is_real:
        return []
    kind = bulletin.kind.value
    results: list[OrgDecision] = []
    triggers = session.execute(
        select(JmaPendingTrigger).where(
            JmaPendingTrigger.event_id == bulletin.event_id,
            JmaPendingTrigger.area_kind == area_family(bulletin.kind).value,
            JmaPendingTrigger.cancelled_at.is_(None),  # type: ignore[union-attr]
        )
    ).scalars()
    for trigger in list(triggers):
        if kind not in trigger.bulletin_kinds:
            continue
        remaining = [k for k in trigger.bulletin_kinds if k != kind]
        verdict, reason = Verdict.CANCEL.value, f"{kind} was cancelled (取消)"
        if trigger.fired_at is None and remaining:
            trigger.bulletin_kinds = remaining
            session.add(trigger)
            reason += f"; still supported by {', '.join(remaining)}"
        elif trigger.fired_at is None and _cancel_trigger(session, trigger.id, now, reason):
            reason += "; the pending check was cancelled before anyone was contacted"
        else:
            session.refresh(trigger)
            verdict = CANCELLED_AFTER_BROADCAST
            reason += "; the check had already started and cannot be withdrawn"
            log.warning(
                "JMA %s cancels a report whose check already started (round %s)",
                _describe(bulletin),
                trigger.round_id,
                extra={"event": "jma.cancelled_after_broadcast"},
            )
        entry = JmaDecision(
            bulletin_id=row.id,
            organization_id=trigger.organization_id,
            verdict=verdict,
            dry_run=False,
            reason=reason[:300],
            cause=trigger.cause,
            site_ids=list(trigger.site_ids),
            pending_trigger_id=trigger.id,
            created_at=now,
        )
        session.add(entry)
        session.flush()
        record(
            session=session,
            organization_id=trigger.organization_id,
            actor=JMA_ACTOR,
            action=f"jma.{verdict}"[:40],
            entity_type="jma_bulletin",
            entity_id=row.id,
            detail={
                "kind": kind,
                "event_id": bulletin.event_id,
                "cause": trigger.cause,
                "round_id": str(trigger.round_id) if trigger.round_id else None,
                "reason": reason,
            },
        )
        results.append(
            OrgDecision(
                organization_id=trigger.organization_id,
                decision_id=entry.id,
                verdict=verdict,
                dry_run=False,
                cause=trigger.cause,
                site_ids=tuple(uuid.UUID(s) for s in trigger.site_ids),
                pending_trigger_id=trigger.id,
            )
        )
    return results


def _cancel_trigger(session: Session, trigger_id: uuid.UUID, now: datetime, reason: str) -> bool:
    """Cancel only if it has not fired: the same conditional UPDATE the firing uses, so
    whichever commits first wins and the other sees it."""
    cancelled = session.execute(
        update(JmaPendingTrigger)
        .where(
            JmaPendingTrigger.id == trigger_id,
            JmaPendingTrigger.fired_at.is_(None),  # type: ignore[union-attr]
            JmaPendingTrigger.cancelled_at.is_(None),  # type: ignore[union-attr]
        )
        .values(cancelled_at=now, cancel_reason=reason[:300])
    ).rowcount
    if cancelled != 1:
        return False
    session.execute(
        update(JmaAreaTrigger)
        .where(JmaAreaTrigger.pending_trigger_id == trigger_id)
        .values(cancelled_at=now)
    )
    return True


# --- Firing ---------------------------------------------------------------------------------------


def fire_due_triggers(
    engine: Engine,
    now_fn: Callable[[], datetime],
    *,
    trigger_ids: set[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """Start the round of every trigger whose hold-off is over. Safe to run concurrently and
    repeatedly: each trigger is claimed in the same transaction that creates its round."""

    def utc_now() -> datetime:
        return _utc(now_fn())

    now = utc_now()
    with Session(engine) as session:
        query = (
            select(JmaPendingTrigger.id)
            .where(
                JmaPendingTrigger.fired_at.is_(None),  # type: ignore[union-attr]
                JmaPendingTrigger.cancelled_at.is_(None),  # type: ignore[union-attr]
                JmaPendingTrigger.fire_at <= now,
            )
            .order_by(JmaPendingTrigger.fire_at)
        )
        if trigger_ids is not None:
            query = query.where(JmaPendingTrigger.id.in_(list(trigger_ids)))  # type: ignore[attr-defined]
        due = list(session.execute(query).scalars())
    started: list[uuid.UUID] = []
    for trigger_id in due:
        try:
            round_id = _fire(engine, trigger_id, utc_now)
        except Exception:
            log.exception("JMA trigger %s could not start its round; it stays due", trigger_id)
            continue
        if round_id is None:
            continue
        started.append(round_id)
        try:
            checkins.fan_out_round(lambda: Session(engine), round_id, utc_now)
        except Exception:
            log.exception("fan-out of JMA round %s failed; the sweep resumes it", round_id)
    return started


def _fire(
    engine: Engine, trigger_id: uuid.UUID, now_fn: Callable[[], datetime]
) -> uuid.UUID | None:
    now = _utc(now_fn())
    with Session(engine) as session:
        claimed = session.execute(
            update(JmaPendingTrigger)
            .where(
                JmaPendingTrigger.id == trigger_id,
                JmaPendingTrigger.fired_at.is_(None),  # type: ignore[union-attr]
                JmaPendingTrigger.cancelled_at.is_(None),  # type: ignore[union-attr]
                JmaPendingTrigger.fire_at <= now,
            )
            .values(fired_at=now)
        ).rowcount
        if claimed != 1:
            session.rollback()
            return None
        trigger = session.get(JmaPendingTrigger, trigger_id)
        assert trigger is not None
        site_ids = list(
            session.execute(
                select(Site.id).where(
                    Site.organization_id == trigger.organization_id,
                    Site.id.in_([uuid.UUID(s) for s in trigger.site_ids]),  # type: ignore[attr-defined]
                )
            ).scalars()
        )
        if not site_ids:
            # Never start a round without sites: an empty site list means "everyone".
            trigger.cancel_reason = "its sites were deleted before the hold-off ended"
            session.add(trigger)
            session.commit()
            log.warning("JMA trigger %s had no sites left; nothing started", trigger_id)
            return None
        round_ = checkins.start_round(
            session,
            organization_id=trigger.organization_id,
            kind=RoundKind.broadcast,
            started_by=trigger.started_by,
            now=now,
            site_ids=site_ids,
            override_quiet_hours=trigger.override_quiet_hours,
            cause=trigger.cause,
        )
        trigger.round_id = round_.id
        session.add(trigger)
        lateness = (now - aware(trigger.fire_at)).total_seconds()  # type: ignore[operator]
        record(
            session=session,
            organization_id=trigger.organization_id,
            actor=JMA_ACTOR,
            action="jma.round_started",
            entity_type="round",
            entity_id=round_.id,
            detail={
                "trigger_id": str(trigger.id),
                "cause": trigger.cause,
                "sites": len(site_ids),
                "late_seconds": round(lateness) if lateness > 60 else 0,
            },
        )
        session.commit()
        round_id = round_.id
    log.info(
        "JMA trigger %s started round %s",
        trigger_id,
        round_id,
        extra={"event": "jma.round_started"},
    )
    return round_id


# --- Policy and decisions for the API -------------------------------------------------------------


def get_policy(*, session: Session, organization_id: uuid.UUID) -> JmaTriggerPolicyPublic:
    row = session.get(JmaTriggerPolicy, organization_id)
    base = row if row is not None else JmaTriggerPolicy(organization_id=organization_id)
    public = JmaTriggerPolicyPublic.model_validate(base, from_attributes=True)
    public.is_default = row is None
    if row is None:
        public.updated_at = None
        public.updated_by = None
    public.sites_following_quake_areas = _count_sites(session, organization_id, Site.jma_area_code)
    public.sites_following_tsunami_areas = _count_sites(
        session, organization_id, Site.tsunami_area_code
    )
    return public


def _count_sites(session: Session, organization_id: uuid.UUID, column: Any) -> int:
    return session.execute(
        select(func.count())
        .select_from(Site)
        .where(Site.organization_id == organization_id, column.is_not(None))
    ).scalar_one()


def update_policy(
    *,
    session: Session,
    organization_id: uuid.UUID,
    data: JmaTriggerPolicyUpdate,
    actor: Actor,
    now: datetime,
) -> JmaTriggerPolicyPublic:
    changes = data.model_dump(exclude_unset=True)
    row = session.get(JmaTriggerPolicy, organization_id)
    created = row is None
    if row is None:
        # Inserted with the defaults first, then changed: an INSERT would replace a None
        # (tsunami triggers off) by the column default.
        row = JmaTriggerPolicy(organization_id=organization_id, updated_at=now)
        session.add(row)
        session.flush()
    # A field sent as null means "keep" except tsunami_min_kind, where null means "off".
    changes = {k: v for k, v in changes.items() if v is not None or k == "tsunami_min_kind"}
    row.sqlmodel_update(changes)
    row.updated_at = now
    row.updated_by = actor.label[:200]
    session.add(row)
    session.flush()
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="create" if created else "update",
        entity_type="jma_trigger_policy",
        entity_id=organization_id,
        fields=changes.keys(),
        detail={k: v for k, v in changes.items()},
    )
    return get_policy(session=session, organization_id=organization_id)


def list_decisions(
    *, session: Session, organization_id: uuid.UUID, limit: int = 50
) -> list[JmaDecisionPublic]:
    rows = session.execute(
        select(JmaDecision, JmaBulletin, JmaPendingTrigger)
        .join(JmaBulletin, JmaBulletin.id == JmaDecision.bulletin_id)
        .outerjoin(JmaPendingTrigger, JmaPendingTrigger.id == JmaDecision.pending_trigger_id)
        .where(JmaDecision.organization_id == organization_id)
        .order_by(JmaDecision.created_at.desc(), JmaBulletin.report_datetime.desc())  # type: ignore[attr-defined]
        .limit(limit)
    ).all()
    out = []
    for decision, bulletin, trigger in rows:
        out.append(
            JmaDecisionPublic(
                id=decision.id,
                created_at=aware(decision.created_at),  # type: ignore[arg-type]
                verdict=decision.verdict,
                dry_run=decision.dry_run,
                reason=decision.reason,
                cause=decision.cause,
                site_ids=decision.site_ids,
                areas=decision.areas,
                suppressed_areas=decision.suppressed_areas,
                would_contact=decision.would_contact,
                would_visit=decision.would_visit,
                bulletin_kind=bulletin.kind,
                bulletin_title=bulletin.title,
                event_id=bulletin.event_id,
                report_datetime=aware(bulletin.report_datetime),  # type: ignore[arg-type]
                status=bulletin.status,
                info_type=bulletin.info_type,
                fire_at=aware(trigger.fire_at) if trigger else None,
                fired_at=aware(trigger.fired_at) if trigger else None,
                cancelled_at=aware(trigger.cancelled_at) if trigger else None,
                round_id=trigger.round_id if trigger else None,
            )
        )
    return out


__all__ = [
    "CANCELLED_AFTER_BROADCAST",
    "OrgDecision",
    "ProcessResult",
    "bulletin_identity",
    "fire_due_triggers",
    "get_policy",
    "list_decisions",
    "process_bulletin",
    "update_policy",
]

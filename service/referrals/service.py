"""Referral commands: consent, send, answer, record, close; and what each side reads.

Every function runs in the caller's transaction (the caller commits on success and rolls
back on a ``DomainError``, so nothing is applied halfway), is scoped by the caller's
organization, and is audited: in the referring organization's log and, for anything the
partner reads or does, in the partner's log too. The partner's log never holds the
resident's personal details: ids, statuses and categories only.

A partner reads a referral only while it is open and the partnership is active; otherwise
it is a 404, like anything of an organization that is not yours.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from service.audit.service import Actor, record
from service.auth.models import Role, User
from service.checkins.models import StaffTask, TaskKind
from service.common import utcnow
from service.errors import DomainError, Invalid, NotFound
from service.escalations.models import Escalation
from service.partners import service as partners
from service.partners.models import Partnership, PartnershipStatus
from service.referrals import policy
from service.referrals.models import (
    OPEN_REFERRAL,
    ConsentCreate,
    Referral,
    ReferralConsent,
    ReferralCreate,
    ReferralStatus,
    SourceKind,
)
from service.registry.models import Organization, Resident, Site
from service.texts import N_, Text
from service.timeline.service import timeline


class RoleNeeded(DomainError):
    status_code = 403
    kind = "forbidden"


def _actor(user: User, minimum: Role = Role.coordinator) -> Actor:
    if Role(user.role).level < minimum.level:
        raise RoleNeeded(
            N_(
                "this action needs the %(needed)s role; you are %(role)s",
                needed=minimum.value,
                role=str(user.role),
            )
        )
    return Actor(label=f"{user.full_name} <{user.email}>", user_id=user.id)


def _reader(user: User) -> Actor:
    return Actor(label=f"{user.full_name} <{user.email}>", user_id=user.id)


def _referral_not_found() -> NotFound:
    return NotFound(N_("no such referral"))


def _partner_not_found() -> NotFound:
    return NotFound(N_("no such partner organization"))


def _resident(session: Session, org_id: uuid.UUID, resident_id: uuid.UUID) -> Resident:
    resident = session.get(Resident, resident_id)
    if resident is None or resident.organization_id != org_id:
        raise NotFound(N_("no such resident"))
    return resident


def org_name(session: Session, org_id: uuid.UUID) -> str | None:
    org = session.get(Organization, org_id)
    return org.name if org else None


# --- Consent ----------------------------------------------------------------------------------


def active_consent(
    session: Session, resident_id: uuid.UUID, partner_org_id: uuid.UUID
) -> ReferralConsent | None:
    """The resident's latest consent to share with this partner that is not withdrawn."""
    return session.exec(
        select(ReferralConsent)
        .where(
            ReferralConsent.resident_id == resident_id,
            ReferralConsent.partner_org_id == partner_org_id,
            col(ReferralConsent.withdrawn_at).is_(None),
        )
        .order_by(col(ReferralConsent.recorded_at).desc())
    ).first()


def record_consent(
    *, session: Session, user: User, resident_id: uuid.UUID, data: ConsentCreate
) -> ReferralConsent:
    """Staff record that the resident agreed to share with this (active) partner: who
    recorded it, when, how, and whether notes and health details are included."""
    who = _actor(user)
    org_id = user.organization_id
    resident = _resident(session, org_id, resident_id)
    if not partners.are_partners(session, org_id, data.partner_org_id):
        raise _partner_not_found()
    consent = ReferralConsent(
        organization_id=org_id,
        resident_id=resident.id,
        partner_org_id=data.partner_org_id,
        method=data.method,
        share_notes=data.share_notes,
        share_health=data.share_health,
        recorded_by=user.id,
    )
    session.add(consent)
    session.flush()
    scope = {"method": str(data.method), "notes": data.share_notes, "health": data.share_health}
    record(
        session=session,
        organization_id=org_id,
        actor=who,
        action="consent_record",
        entity_type="resident",
        entity_id=resident.id,
        detail={"partner_org_id": str(data.partner_org_id), "consent_id": str(consent.id), **scope},
    )
    timeline(
        session,
        resident_id=resident.id,
        organization_id=org_id,
        kind="referral_consent",
        at=consent.recorded_at,
        actor=who.label,
        detail={"partner": org_name(session, data.partner_org_id), **scope},
    )
    return consent


def withdraw_consent(*, session: Session, user: User, consent_id: uuid.UUID) -> ReferralConsent:
    """The resident takes consent back: their consent to share with that partner ends (every
    consent recorded for it, not only this one, or an older one would stay in force),
    referrals sent under any of them close, and the partner's access to them ends with it."""
    who = _actor(user)
    consent = session.get(ReferralConsent, consent_id)
    if consent is None or consent.organization_id != user.organization_id:
        raise NotFound(N_("no such consent"))
    if consent.withdrawn_at is not None:  # already taken back: a retry changes nothing
        return consent
    same_partner = session.exec(
        select(ReferralConsent).where(
            ReferralConsent.organization_id == user.organization_id,
            ReferralConsent.resident_id == consent.resident_id,
            ReferralConsent.partner_org_id == consent.partner_org_id,
            col(ReferralConsent.withdrawn_at).is_(None),
        )
    ).all()
    for each in same_partner:
        _withdraw_one(session, user, who, each)
    return consent


def close_for_ended_partnership(session: Session, user: User, partnership: Partnership) -> None:
    """The partnership a referral was sent under has ended: each of its open referrals
    closes, audited in both organizations and shown on the referring side's timeline, so
    that staff see it needs someone else rather than "waiting for the partner" forever."""
    who = _actor(user)
    now = utcnow()
    open_ones = session.exec(
        select(Referral).where(
            Referral.partnership_id == partnership.id,
            col(Referral.status).in_(list(OPEN_REFERRAL)),
        )
    ).all()
    for referral in open_ones:
        referral.status = ReferralStatus.closed
        referral.closed_at, referral.closed_by = now, user.id
        session.add(referral)
        for org_id in (referral.organization_id, referral.partner_org_id):
            record(
                session=session,
                organization_id=org_id,
                actor=who,
                action="referral_close",
                entity_type="referral",
                entity_id=referral.id,
                detail={"status": str(referral.status), "why": "partnership_ended"},
            )
        _timeline(session, referral, who, "referral_closed", {"why": "partnership_ended"})


def _withdraw_one(session: Session, user: User, who: Actor, consent: ReferralConsent) -> None:
    if consent.withdrawn_at is None:
        consent.withdrawn_at, consent.withdrawn_by = utcnow(), user.id
        session.add(consent)
        record(
            session=session,
            organization_id=user.organization_id,
            actor=who,
            action="consent_withdraw",
            entity_type="resident",
            entity_id=consent.resident_id,
            detail={"consent_id": str(consent.id), "partner_org_id": str(consent.partner_org_id)},
        )
        open_ones = session.exec(
            select(Referral).where(
                Referral.consent_id == consent.id, col(Referral.status).in_(list(OPEN_REFERRAL))
            )
        ).all()
        for referral in open_ones:
            _move(session, referral, who, user, "close", {"why": "consent_withdrawn"})


def list_consents(*, session: Session, user: User, resident_id: uuid.UUID) -> list[ReferralConsent]:
    _resident(session, user.organization_id, resident_id)
    return list(
        session.exec(
            select(ReferralConsent)
            .where(
                ReferralConsent.organization_id == user.organization_id,
                ReferralConsent.resident_id == resident_id,
            )
            .order_by(col(ReferralConsent.recorded_at).desc())
        ).all()
    )


# --- Sending ----------------------------------------------------------------------------------


def _source(
    session: Session, org_id: uuid.UUID, kind: SourceKind, source_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]:
    """(resident id, escalation id, task id) of the case or task being referred."""
    if kind == SourceKind.case:
        case = session.get(Escalation, source_id)
        if case is None or case.organization_id != org_id:
            raise NotFound(N_("no such case"))
        return case.resident_id, case.id, None
    task = session.get(StaffTask, source_id)
    if task is None or task.organization_id != org_id:
        raise NotFound(N_("no such task"))
    if kind == SourceKind.callback and task.kind != TaskKind.callback:
        raise Invalid(N_("this task is not a call-back"), field="source_kind")
    if task.resident_id is None:
        raise Invalid(
            N_("this inbox item belongs to no resident; link it to one first"), field="source_id"
        )
    return task.resident_id, None, task.id


def source_resident(
    session: Session, org_id: uuid.UUID, kind: SourceKind, source_id: uuid.UUID
) -> uuid.UUID:
    """The resident whose case or task would be referred (404 if not the caller's)."""
    resident_id = _source(session, org_id, kind, source_id)[0]
    return _resident(session, org_id, resident_id).id


def _facts(session: Session, resident: Resident) -> policy.PersonFacts:
    site = session.get(Site, resident.site_id) if resident.site_id else None
    flags = frozenset(flag for flag in policy.HEALTH_FLAGS if getattr(resident, flag, False))
    return policy.PersonFacts(
        name=resident.name,
        phone=resident.phone,
        site=site.name if site else None,
        language=resident.language,
        notes=resident.notes,
        flags=flags,
    )


def send_referral(*, session: Session, user: User, data: ReferralCreate) -> Referral:
    """Refer a resident's case, call-back or inbox item to an active partner.

    With the resident's consent to share with that partner, the referral carries their
    name, phone, site and language (and notes or health details if consented). Without
    it, only an anonymous request can be sent (``anonymous: true``): language, place and
    reason, nothing personal."""
    who = _actor(user)
    org_id = user.organization_id
    resident_id, escalation_id, task_id = _source(session, org_id, data.source_kind, data.source_id)
    resident = _resident(session, org_id, resident_id)
    partnership = _active_partnership(session, org_id, data.partner_org_id)
    facts = _facts(session, resident)
    consent = None
    if not data.anonymous:
        consent = active_consent(session, resident.id, data.partner_org_id)
        if consent is None or not _consent_in_force(session, consent):
            raise Invalid(
                N_(
                    "the resident has not consented to sharing with this partner; record"
                    " their consent first, or send an anonymous request"
                ),
                field="anonymous",
            )
    scope = policy.ConsentScope(consent.share_notes, consent.share_health) if consent else None
    # An anonymous request names only the area staff type (a town: "in Wajima"); never the
    # resident's housing site by default, which with the language can single them out.
    area = data.area
    referral = Referral(
        organization_id=org_id,
        partner_org_id=data.partner_org_id,
        partnership_id=partnership,
        resident_id=resident.id,
        source_kind=data.source_kind,
        escalation_id=escalation_id,
        task_id=task_id,
        consent_id=consent.id if consent else None,
        anonymous=data.anonymous,
        reason=data.reason,
        language=data.language or resident.language,
        area=area,
        shared=policy.shared_person(facts, scope),
        created_by=user.id,
    )
    session.add(referral)
    session.flush()
    shared_fields = sorted(referral.shared)
    record(
        session=session,
        organization_id=org_id,
        actor=who,
        action="referral_send",
        entity_type="referral",
        entity_id=referral.id,
        fields=shared_fields,
        detail={
            "resident_id": str(resident.id),
            "partner_org_id": str(data.partner_org_id),
            "anonymous": data.anonymous,
        },
    )
    record(
        session=session,
        organization_id=data.partner_org_id,
        actor=who,
        action="referral_receive",
        entity_type="referral",
        entity_id=referral.id,
        fields=shared_fields,
        detail={"from_org_id": str(org_id), "anonymous": data.anonymous},
    )
    _timeline(session, referral, who, "referral_sent", {})
    return referral


def _consent_in_force(session: Session, consent: ReferralConsent) -> bool:
    """Still not withdrawn (row-locked till commit: a withdrawal made meanwhile wins)."""
    held = session.execute(
        update(ReferralConsent)
        .where(col(ReferralConsent.id) == consent.id, col(ReferralConsent.withdrawn_at).is_(None))
        .values(withdrawn_at=None)
        .execution_options(synchronize_session=False)
    )
    return held.rowcount == 1  # type: ignore[attr-defined]


def _active_partnership(session: Session, org_id: uuid.UUID, partner_id: uuid.UUID) -> uuid.UUID:
    for row in partners.list_partnerships(session, org_id, include_closed=False):
        if row.status == "active" and row.other_side(org_id) == partner_id:
            return row.id
    raise _partner_not_found()


def _timeline(
    session: Session, referral: Referral, who: Actor, kind: str, extra: dict[str, Any]
) -> None:
    """A step of the referral on the referring side's resident timeline (and case)."""
    detail: dict[str, Any] = {
        "referral_id": str(referral.id),
        "partner": org_name(session, referral.partner_org_id),
        "referral_reason": str(referral.reason),
        "language": referral.language,
        "anonymous": referral.anonymous,
        "status": str(referral.status),
        **extra,
    }
    timeline(
        session,
        resident_id=referral.resident_id,
        organization_id=referral.organization_id,
        kind=kind,
        at=utcnow(),
        escalation_id=referral.escalation_id,
        actor=who.label,
        detail=detail,
    )


# --- Reading ----------------------------------------------------------------------------------


def get_sent(*, session: Session, user: User, referral_id: uuid.UUID) -> Referral:
    """One of the organization's own referrals, the read audited."""
    referral = session.get(Referral, referral_id)
    if referral is None or referral.organization_id != user.organization_id:
        raise _referral_not_found()
    record(
        session=session,
        organization_id=user.organization_id,
        actor=_reader(user),
        action="read",
        entity_type="referral",
        entity_id=referral.id,
        detail={"resident_id": str(referral.resident_id)},
    )
    return referral


def list_sent(
    *,
    session: Session,
    user: User,
    resident_id: uuid.UUID | None = None,
    escalation_id: uuid.UUID | None = None,
    open_only: bool = False,
) -> list[Referral]:
    query = select(Referral).where(Referral.organization_id == user.organization_id)
    if resident_id is not None:
        query = query.where(Referral.resident_id == resident_id)
    if escalation_id is not None:
        query = query.where(Referral.escalation_id == escalation_id)
    if open_only:
        query = query.where(col(Referral.status).in_(list(OPEN_REFERRAL)))
    rows = list(session.exec(query.order_by(col(Referral.created_at).desc())).all())
    record(
        session=session,
        organization_id=user.organization_id,
        actor=_reader(user),
        action="list",
        entity_type="referral",
        detail={"returned": len(rows)},
    )
    return rows


def _partnership_active(session: Session, referral: Referral) -> bool:
    """Whether the partnership the referral was sent under is still active: a referral left
    open when a partnership ended stays hidden even if the two partner again later."""
    partnership = session.get(Partnership, referral.partnership_id)
    return partnership is not None and partnership.status == PartnershipStatus.active


def _readable_by_partner(session: Session, org_id: uuid.UUID, referral_id: uuid.UUID) -> Referral:
    referral = session.get(Referral, referral_id)
    if (
        referral is None
        or referral.partner_org_id != org_id
        or not policy.partner_can_read(referral.status, _partnership_active(session, referral))
    ):
        raise _referral_not_found()
    return referral


def _audit_partner_read(session: Session, user: User, referral: Referral, action: str) -> None:
    """A partner's read, in both logs; neither entry holds anything personal."""
    who = _reader(user)
    for org_id, other in (
        (referral.partner_org_id, referral.organization_id),
        (referral.organization_id, referral.partner_org_id),
    ):
        record(
            session=session,
            organization_id=org_id,
            actor=who,
            action=action,
            entity_type="referral",
            entity_id=referral.id,
            fields=sorted(referral.shared),
            detail={"by_org_id": str(user.organization_id), "other_org_id": str(other)},
        )


def get_received(*, session: Session, user: User, referral_id: uuid.UUID) -> Referral:
    """A referral the caller's organization received, while it is open and the two are
    partners; otherwise a 404."""
    referral = _readable_by_partner(session, user.organization_id, referral_id)
    _audit_partner_read(session, user, referral, "partner_read")
    return referral


def list_received(*, session: Session, user: User) -> list[Referral]:
    """The open referrals partners sent to the caller's organization: its inbox."""
    org_id = user.organization_id
    rows = list(
        session.exec(
            select(Referral)
            .join(Partnership, col(Partnership.id) == Referral.partnership_id)
            .where(
                Referral.partner_org_id == org_id,
                Partnership.status == PartnershipStatus.active,
                col(Referral.status).in_(list(OPEN_REFERRAL)),
            )
            .order_by(col(Referral.created_at).desc())
        ).all()
    )
    for referral in rows:
        _audit_partner_read(session, user, referral, "partner_list")
    return rows


# --- Moving it along --------------------------------------------------------------------------

_TIMELINE_KEYS = {"outcome": "referral_outcome", "outcome_note": "note", "contact_note": "note"}

_TIMELINE_KIND = {
    "accept": "referral_accepted",
    "decline": "referral_declined",
    "contact": "referral_contact",
    "outcome": "referral_outcome",
    "close": "referral_closed",
}


def _move(
    session: Session,
    referral: Referral,
    who: Actor,
    user: User,
    move: str,
    extra: dict[str, Any],
) -> Referral:
    side = "partner" if user.organization_id == referral.partner_org_id else "referrer"
    refusal: Text | None = policy.refuse_move(move, side, referral.status)
    if refusal is not None:
        raise Invalid(refusal, field="status")
    _claim(session, referral)
    now = utcnow()
    status = policy.NEXT_STATUS[move]
    if status is not None:
        referral.status = status
    if move in ("accept", "decline"):
        referral.answered_by, referral.answered_at = user.id, now
    if move == "contact":
        referral.contacted_at = now
    if status in (ReferralStatus.declined, ReferralStatus.closed):
        referral.closed_at, referral.closed_by = now, user.id
    session.add(referral)
    for org_id in (referral.organization_id, referral.partner_org_id):
        record(
            session=session,
            organization_id=org_id,
            actor=who,
            action=f"referral_{move}",
            entity_type="referral",
            entity_id=referral.id,
            fields=sorted(k for k in extra if k != "why"),
            detail={"status": str(referral.status), "by_org_id": str(user.organization_id)},
        )
    _timeline(session, referral, who, _TIMELINE_KIND[move], extra)
    return referral


def _claim(session: Session, referral: Referral) -> None:
    """Only if still in the status read: a step must not undo the other side's move made
    meanwhile (reopen a closed referral, giving the partner its access back)."""
    read_as = referral.status
    claimed = session.execute(
        update(Referral)
        .where(col(Referral.id) == referral.id, col(Referral.status) == read_as)
        .values(status=read_as)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(referral, ["status"])
        raise Invalid(
            N_(
                "this referral is %(status)s; this step is not possible now",
                status=str(referral.status),
            ),
            field="status",
        )


def _partner_move(
    session: Session, user: User, referral_id: uuid.UUID, move: str, **changes: Any
) -> Referral:
    who = _actor(user)
    referral = _readable_by_partner(session, user.organization_id, referral_id)
    refusal = policy.refuse_move(move, "partner", referral.status)
    if refusal is not None:
        raise Invalid(refusal, field="status")
    for name, value in changes.items():
        setattr(referral, name, value)
    # On the timeline, under names that do not collide with a case's own reason and outcome.
    extra = {_TIMELINE_KEYS.get(k, k): v for k, v in changes.items() if v is not None}
    return _move(session, referral, who, user, move, extra)


def accept(
    *,
    session: Session,
    user: User,
    referral_id: uuid.UUID,
    contact_name: str,
    contact_phone: str | None = None,
) -> Referral:
    """The partner takes the referral on, naming the person of theirs who will help (for
    an anonymous request, that person is what the referring side gets back)."""
    return _partner_move(
        session, user, referral_id, "accept", contact_name=contact_name, contact_phone=contact_phone
    )


def decline(
    *, session: Session, user: User, referral_id: uuid.UUID, reason: str | None = None
) -> Referral:
    """The partner cannot help: the referral closes and its access ends."""
    return _partner_move(session, user, referral_id, "decline", decline_reason=reason)


def record_contact(
    *, session: Session, user: User, referral_id: uuid.UUID, note: str | None = None
) -> Referral:
    """The partner reached the resident (or the person it found for an anonymous request)."""
    return _partner_move(session, user, referral_id, "contact", contact_note=note)


def record_outcome(
    *, session: Session, user: User, referral_id: uuid.UUID, outcome: str, note: str | None = None
) -> Referral:
    """The partner records what happened; the referral closes and its access ends."""
    return _partner_move(session, user, referral_id, "outcome", outcome=outcome, outcome_note=note)


def close(*, session: Session, user: User, referral_id: uuid.UUID) -> Referral:
    """The referring side withdraws or closes its referral; the partner's access ends."""
    who = _actor(user)
    referral = session.get(Referral, referral_id)
    if referral is None or referral.organization_id != user.organization_id:
        raise _referral_not_found()
    return _move(session, referral, who, user, "close", {})

"""Partnerships: who works with whom, and the admin commands that change it.

Other domains ask only two questions, :func:`partner_org_ids` and :func:`are_partners`;
both count ``active`` partnerships only. The commands (invite, accept, decline, end) are
admin-only, run in the caller's transaction (the caller commits, or rolls back on a
``DomainError``) and are audited in BOTH organizations' logs. A partnership of another pair
is, to the caller, not there at all (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from service.audit.service import Actor, record
from service.auth.models import Role, User
from service.common import utcnow
from service.errors import Conflict, DomainError, Invalid, NotFound
from service.partners.models import OPEN_STATUSES, Partnership, PartnershipStatus, pair_key
from service.registry.models import Organization
from service.texts import N_


class AdminOnly(DomainError):
    """Only an organization's admin may make or end a partnership."""

    status_code = 403
    kind = "forbidden"


def _not_found() -> NotFound:
    return NotFound(N_("no such partnership"))


def partner_org_ids(session: Session, org_id: uuid.UUID) -> set[uuid.UUID]:
    """The organizations ``org_id`` has an active partnership with."""
    rows = session.exec(
        select(Partnership).where(
            Partnership.status == PartnershipStatus.active,
            or_(Partnership.inviter_org_id == org_id, Partnership.invitee_org_id == org_id),
        )
    ).all()
    return {row.other_side(org_id) for row in rows}


def are_partners(session: Session, a: uuid.UUID, b: uuid.UUID) -> bool:
    """Whether ``a`` and ``b`` have an active partnership (never true of one with itself)."""
    if a == b:
        return False
    row = session.exec(
        select(Partnership.id).where(
            Partnership.status == PartnershipStatus.active, Partnership.open_pair == pair_key(a, b)
        )
    ).first()
    return row is not None


def list_partnerships(
    session: Session, org_id: uuid.UUID, *, include_closed: bool = True
) -> list[Partnership]:
    """The organization's partnerships, sent and received, newest first."""
    query = select(Partnership).where(
        or_(Partnership.inviter_org_id == org_id, Partnership.invitee_org_id == org_id)
    )
    if not include_closed:
        query = query.where(col(Partnership.status).in_(list(OPEN_STATUSES)))
    return list(session.exec(query.order_by(col(Partnership.created_at).desc())).all())


def get_partnership(session: Session, org_id: uuid.UUID, partnership_id: uuid.UUID) -> Partnership:
    """One of the organization's partnerships; any other is a 404."""
    row = session.get(Partnership, partnership_id)
    if row is None or org_id not in (row.inviter_org_id, row.invitee_org_id):
        raise _not_found()
    return row


def _admin(actor: User) -> Actor:
    if Role(actor.role).level < Role.admin.level:
        raise AdminOnly(
            N_(
                "this action needs the %(needed)s role; you are %(role)s",
                needed=Role.admin.value,
                role=str(actor.role),
            )
        )
    return Actor(label=f"{actor.full_name} <{actor.email}>", user_id=actor.id)


def _audit_both(
    session: Session, row: Partnership, who: Actor, action: str, actor_org: uuid.UUID
) -> None:
    for org_id in (row.inviter_org_id, row.invitee_org_id):
        record(
            session=session,
            organization_id=org_id,
            actor=who,
            action=action,
            entity_type="partnership",
            entity_id=row.id,
            fields=["status"],
            detail={
                "status": str(row.status),
                "partner_org_id": str(row.other_side(org_id)),
                "by_org_id": str(actor_org),
            },
        )


def invite(session: Session, actor: User, other_org_id: uuid.UUID) -> Partnership:
    """The actor's organization invites ``other_org_id``; its admin then accepts or declines."""
    who = _admin(actor)
    org_id = actor.organization_id
    if other_org_id == org_id:
        raise Invalid(N_("an organization cannot partner with itself"), field="organization_id")
    if session.get(Organization, other_org_id) is None:
        raise NotFound(N_("no such organization"))
    key = pair_key(org_id, other_org_id)
    if session.exec(select(Partnership.id).where(Partnership.open_pair == key)).first():
        raise Conflict(
            N_("these organizations already have an open invitation or partnership"),
            field="organization_id",
        )
    row = Partnership(
        inviter_org_id=org_id,
        invitee_org_id=other_org_id,
        status=PartnershipStatus.invited,
        invited_by=actor.id,
        open_pair=key,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # a concurrent invitation of the same pair won the race
        raise Conflict(
            N_("these organizations already have an open invitation or partnership"),
            field="organization_id",
        ) from None
    _audit_both(session, row, who, "partnership_invite", org_id)
    return row


def _still(session: Session, row: Partnership) -> bool:
    """Whether the partnership is still in the status it was read in (compare-and-set): the
    other side may have answered or ended it meanwhile, and a step decided on what is no
    longer true must not undo that. If not, ``row`` is refreshed to what it is now."""
    claimed = session.execute(
        update(Partnership)
        .where(col(Partnership.id) == row.id, col(Partnership.status) == row.status)
        .values(status=row.status)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        return True
    session.refresh(row)
    return False


def _answer(
    session: Session, actor: User, partnership_id: uuid.UUID, status: PartnershipStatus
) -> Partnership:
    who = _admin(actor)
    row = get_partnership(session, actor.organization_id, partnership_id)
    if row.invitee_org_id != actor.organization_id:
        raise Conflict(N_("only the invited organization can answer an invitation"))
    if row.status != PartnershipStatus.invited or not _still(session, row):
        raise Conflict(
            N_("this partnership is %(status)s, not an open invitation", status=str(row.status))
        )
    now = utcnow()
    row.status = status
    if status == PartnershipStatus.active:
        row.accepted_by, row.accepted_at = actor.id, now
    else:
        row.ended_by, row.ended_at, row.open_pair = actor.id, now, None
    session.add(row)
    action = "partnership_accept" if status == PartnershipStatus.active else "partnership_decline"
    _audit_both(session, row, who, action, actor.organization_id)
    return row


def accept(session: Session, actor: User, partnership_id: uuid.UUID) -> Partnership:
    """The invited organization's admin accepts: the two are partners from now on."""
    return _answer(session, actor, partnership_id, PartnershipStatus.active)


def decline(session: Session, actor: User, partnership_id: uuid.UUID) -> Partnership:
    """The invited organization's admin declines; either side may invite again later."""
    return _answer(session, actor, partnership_id, PartnershipStatus.declined)


#: Called inside ``end()``'s transaction once a partnership has ended, so that what depends on
#: it in the layers above (a referral still open) closes with it. The layers above install
#: their hooks where the application is put together (``service.bootstrap.wire``).
EndHook = Callable[[Session, User, Partnership], None]
_END_HOOKS: list[EndHook] = []


def on_partnership_end(hook: EndHook) -> None:
    """Install ``hook`` to run when a partnership ends (idempotent)."""
    if hook not in _END_HOOKS:
        _END_HOOKS.append(hook)


def end(session: Session, actor: User, partnership_id: uuid.UUID) -> Partnership:
    """Either side ends an active partnership (or withdraws an open invitation), at any
    time; whatever depends on it (open referrals, shared interpreters) stops with it."""
    who = _admin(actor)
    row = get_partnership(session, actor.organization_id, partnership_id)
    if row.status not in OPEN_STATUSES or not _still(session, row):
        raise Conflict(N_("this partnership is already %(status)s", status=str(row.status)))
    row.status = PartnershipStatus.ended
    row.ended_by, row.ended_at, row.open_pair = actor.id, utcnow(), None
    session.add(row)
    _audit_both(session, row, who, "partnership_end", actor.organization_id)
    for hook in _END_HOOKS:
        hook(session, actor, row)
    return row

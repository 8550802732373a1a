"""Shared interpreters (issue 21, item 3): a partner organization offers its interpreters
or supporters for given languages, and a call for help from a resident who needs an
interpreter, in an organization with nobody for that language, alerts one of them.

- An offer belongs to the offering organization and is open to all its ACTIVE partners;
  withdrawing it, or the partnership ending, stops new alerts at once (the escalation asks
  :func:`partner_interpreter_for` at the moment it builds its chain).
- The organization's own interpreter is always preferred (:func:`choose_interpreter`).
- The commands (offer, withdraw) are admin-only, run in the caller's transaction and are
  audited in the offering organization's log and in each active partner's.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Column, String, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from service.audit.service import Actor, record
from service.auth.models import Role, User
from service.common import id_field, timestamp_field, utcnow
from service.errors import DomainError, Invalid, NotFound
from service.partners.service import partner_org_ids
from service.registry.models import Member, MemberKind, Organization
from service.texts import N_

#: The kinds of member an organization may offer to its partners.
OFFERABLE_KINDS = (MemberKind.interpreter, MemberKind.supporter)


class InterpreterOffer(SQLModel, table=True):
    """One member offered to the organization's partners, for some of their languages.
    One row per member: offering again changes the languages and makes it active again."""

    __tablename__ = "interpreter_offer"
    __table_args__ = (UniqueConstraint("member_id", name="uq_interpreter_offer_member"),)

    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    member_id: uuid.UUID = Field(foreign_key="member.id", ondelete="CASCADE")
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    offered_by: str = Field(max_length=200)
    offered_at: datetime = timestamp_field()
    withdrawn_by: str | None = Field(default=None, sa_type=String(200))
    withdrawn_at: datetime | None = timestamp_field(nullable=True)


class InterpreterOfferCreate(SQLModel):
    member_id: uuid.UUID
    languages: list[str] = Field(min_length=1, max_length=21)


class InterpreterOfferPublic(SQLModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    organization_name: str = ""
    member_id: uuid.UUID
    member_name: str = ""
    member_kind: str = ""
    languages: list[str]
    active: bool
    offered_by: str
    offered_at: datetime
    withdrawn_by: str | None = None
    withdrawn_at: datetime | None = None


class InterpreterOffersPublic(SQLModel):
    data: list[InterpreterOfferPublic]
    count: int


class AdminOnly(DomainError):
    """Only an organization's admin may offer or withdraw its interpreters."""

    status_code = 403
    kind = "forbidden"


# --------------------------------------------------------------------------- the rule


@dataclass(frozen=True, slots=True)
class Candidate:
    """A member who might interpret: the organization's own, or one a partner offered
    (``offered``: the languages of the offer; ``partner``: the offer's organization is an
    active partner now)."""

    member_id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    kind: str
    languages: tuple[str, ...]
    offered: tuple[str, ...] = ()
    partner: bool = False


def choose_interpreter(
    language: str,
    own: Sequence[Candidate],
    offered: Sequence[Candidate],
    *,
    excluded: Collection[uuid.UUID] = (),
) -> Candidate | None:
    """Who interprets for a resident who speaks ``language``: the organization's own member
    who speaks it, always first; else a member an ACTIVE partner offered FOR that language
    (what they speak beyond their offer is not offered). ``excluded``: members who may not
    be alerted now (already in the chain, or with another open case of the same code).
    Each list is taken in its order (the caller sorts: kind, then name)."""
    for candidate in own:
        if language in candidate.languages and candidate.member_id not in excluded:
            return candidate
    for candidate in offered:
        if (
            candidate.partner
            and language in candidate.offered
            and language in candidate.languages
            and candidate.member_id not in excluded
        ):
            return candidate
    return None


# --------------------------------------------------------------------------- queries


def offered_candidates(
    session: Session, organization_id: uuid.UUID, language: str
) -> list[Candidate]:
    """Members that ``organization_id``'s active partners offer now for ``language``, by
    kind (interpreters first), name and id: withdrawn offers, inactive members and offers of
    organizations that are no longer partners are left out."""
    partners = partner_org_ids(session, organization_id)
    if not partners:
        return []
    rows = session.exec(
        select(InterpreterOffer, Member)
        .join(Member, col(Member.id) == InterpreterOffer.member_id)
        .where(
            col(InterpreterOffer.organization_id).in_(list(partners)),
            col(InterpreterOffer.active).is_(True),
            col(Member.active).is_(True),
            col(Member.organization_id) == InterpreterOffer.organization_id,
            col(Member.kind).in_([k.value for k in OFFERABLE_KINDS]),
        )
    ).all()
    found = [
        Candidate(
            member_id=member.id,
            organization_id=member.organization_id,
            name=member.name,
            kind=str(member.kind),
            languages=tuple(member.languages or ()),
            offered=tuple(offer.languages or ()),
            partner=member.organization_id in partners,
        )
        for offer, member in rows
        if language in (offer.languages or ())
    ]
    return sorted(found, key=lambda c: (c.kind, c.name, str(c.member_id)))


def offered_member_ids(session: Session, organization_id: uuid.UUID) -> set[uuid.UUID]:
    """The members ``organization_id``'s active partners offer now, for any language."""
    partners = partner_org_ids(session, organization_id)
    if not partners:
        return set()
    return set(
        session.exec(
            select(InterpreterOffer.member_id).where(
                col(InterpreterOffer.organization_id).in_(list(partners)),
                col(InterpreterOffer.active).is_(True),
            )
        ).all()
    )


# --------------------------------------------------------------------------- commands


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


def _audit(
    session: Session, offer: InterpreterOffer, who: Actor, action: str, fields: Iterable[str]
) -> None:
    """In the offering organization's log and in each active partner's: the offer is theirs
    to use. Only the member's id and the languages: nothing about any resident."""
    detail = {
        "member_id": str(offer.member_id),
        "languages": list(offer.languages),
        "active": offer.active,
        "offering_org_id": str(offer.organization_id),
    }
    for org_id in [offer.organization_id, *sorted(partner_org_ids(session, offer.organization_id))]:
        record(
            session=session,
            organization_id=org_id,
            actor=who,
            action=action,
            entity_type="interpreter_offer",
            entity_id=offer.id,
            fields=fields,
            detail=detail,
        )


def _offered_languages(member: Member, languages: Sequence[str]) -> list[str]:
    from i18n.languages import normalize_language_code

    codes: list[str] = []
    for value in languages:
        code = normalize_language_code(str(value))
        if code is None:
            raise Invalid(
                N_("unsupported language %(value)s", value=repr(value)), field="languages"
            )
        if code in ("ja", "easy_ja"):
            raise Invalid(
                N_("Japanese needs no interpreter: offer the other languages"), field="languages"
            )
        if code not in (member.languages or []):
            raise Invalid(
                N_(
                    "%(name)s does not speak %(language)s: offer only their languages",
                    name=member.name,
                    language=code,
                ),
                field="languages",
            )
        if code not in codes:
            codes.append(code)
    if not codes:
        raise Invalid(N_("offer at least one language"), field="languages")
    return codes


def offer_interpreter(
    session: Session, *, actor: User, data: InterpreterOfferCreate, now: datetime | None = None
) -> InterpreterOffer:
    """The actor's organization offers one of its interpreters or supporters to its
    partners for ``languages`` (offering again replaces the languages)."""
    who = _admin(actor)
    member = session.get(Member, data.member_id)
    if member is None or member.organization_id != actor.organization_id:
        raise NotFound(N_("no such member"))
    if member.kind not in OFFERABLE_KINDS:
        raise Invalid(
            N_("only an interpreter or a supporter can be offered to partners"),
            field="member_id",
        )
    if not member.active:
        raise Invalid(N_("this member is inactive"), field="member_id")
    languages = _offered_languages(member, data.languages)
    now = now or utcnow()
    offer = session.exec(
        select(InterpreterOffer).where(InterpreterOffer.member_id == member.id)
    ).first()
    if offer is None:
        offer = InterpreterOffer(
            organization_id=member.organization_id,
            member_id=member.id,
            languages=languages,
            offered_by=who.label,
            offered_at=now,
        )
    else:
        offer.languages = list(languages)
        offer.active = True
        offer.offered_by, offer.offered_at = who.label, now
        offer.withdrawn_by = offer.withdrawn_at = None
    session.add(offer)
    session.flush()
    _audit(session, offer, who, "interpreter_offer", ["languages", "active"])
    return offer


def withdraw_offer(
    session: Session, *, actor: User, offer_id: uuid.UUID, now: datetime | None = None
) -> InterpreterOffer:
    """The offering organization withdraws an offer: no new alert reaches the member from a
    partner from now on (alerts already sent still take their answer)."""
    who = _admin(actor)
    offer = get_offer(session, organization_id=actor.organization_id, offer_id=offer_id)
    if offer.active:
        offer.active = False
        offer.withdrawn_by, offer.withdrawn_at = who.label, now or utcnow()
        session.add(offer)
        session.flush()
        _audit(session, offer, who, "interpreter_withdraw", ["active"])
    return offer


def get_offer(
    session: Session, *, organization_id: uuid.UUID, offer_id: uuid.UUID
) -> InterpreterOffer:
    """One of the organization's own offers; any other is a 404."""
    offer = session.get(InterpreterOffer, offer_id)
    if offer is None or offer.organization_id != organization_id:
        raise NotFound(N_("no such interpreter offer"))
    return offer


def public_offers(session: Session, offers: Sequence[InterpreterOffer]) -> InterpreterOffersPublic:
    members = (
        {
            m.id: m
            for m in session.exec(
                select(Member).where(col(Member.id).in_([o.member_id for o in offers]))
            ).all()
        }
        if offers
        else {}
    )
    orgs = (
        {
            o.id: o
            for o in session.exec(
                select(Organization).where(
                    col(Organization.id).in_(list({o.organization_id for o in offers}))
                )
            ).all()
        }
        if offers
        else {}
    )
    data = []
    for offer in offers:
        member, org = members.get(offer.member_id), orgs.get(offer.organization_id)
        data.append(
            InterpreterOfferPublic(
                **offer.model_dump(exclude={"languages"}),
                languages=list(offer.languages),
                member_name=member.name if member else "",
                member_kind=str(member.kind) if member else "",
                organization_name=org.name if org else "",
            )
        )
    return InterpreterOffersPublic(data=data, count=len(data))


def list_own_offers(session: Session, *, organization_id: uuid.UUID) -> InterpreterOffersPublic:
    """What the organization offers its partners (withdrawn offers too), newest first."""
    offers = session.exec(
        select(InterpreterOffer)
        .where(InterpreterOffer.organization_id == organization_id)
        .order_by(col(InterpreterOffer.offered_at).desc())
    ).all()
    return public_offers(session, offers)


def list_partner_offers(session: Session, *, organization_id: uuid.UUID) -> InterpreterOffersPublic:
    """What the organization's active partners offer it now: the member's name, kind and
    offered languages only (no phone: the alert goes out from the service)."""
    partners = partner_org_ids(session, organization_id)
    if not partners:
        return InterpreterOffersPublic(data=[], count=0)
    offers = session.exec(
        select(InterpreterOffer)
        .where(
            col(InterpreterOffer.organization_id).in_(list(partners)),
            col(InterpreterOffer.active).is_(True),
        )
        .order_by(col(InterpreterOffer.offered_at).desc())
    ).all()
    return public_offers(session, offers)

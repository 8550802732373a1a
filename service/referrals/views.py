"""Partnerships and referrals under /api/v1 (issue 21).

Thin routes over ``service.partners.service`` and ``service.referrals.service``, which the
dashboard calls too. Each route commits what its command did; a ``DomainError`` leaves
nothing behind (the session is closed without a commit).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import Session, select

from service.auth.deps import Admin, Coordinator, CurrentUser
from service.common import Page
from service.db import SessionDep
from service.errors import ErrorResponse, Invalid, NotFound
from service.partners import service as partners
from service.partners.models import Partnership, PartnershipInvite, PartnershipPublic
from service.referrals import service as referrals
from service.referrals.models import (
    ConsentCreate,
    ConsentPublic,
    PartnerReferralPublic,
    Referral,
    ReferralAnswer,
    ReferralConsent,
    ReferralContact,
    ReferralCreate,
    ReferralDecline,
    ReferralOutcomeCreate,
    ReferralPublic,
)
from service.registry.models import Organization
from service.texts import N_

router = APIRouter()

# --- Partnerships -------------------------------------------------------------------------------


def partnership_public(session: Session, row: Partnership, org_id: uuid.UUID) -> PartnershipPublic:
    other = row.other_side(org_id)
    return PartnershipPublic.model_validate(
        row,
        update={
            "partner_org_id": other,
            "partner_name": referrals.org_name(session, other),
            "direction": "sent" if row.inviter_org_id == org_id else "received",
        },
    )


@router.get("/partnerships", response_model=Page[PartnershipPublic], tags=["partners"])
def list_partnerships(session: SessionDep, user: CurrentUser) -> Page[PartnershipPublic]:
    rows = partners.list_partnerships(session, user.organization_id)
    data = [partnership_public(session, row, user.organization_id) for row in rows]
    return Page(data=data, count=len(data))


def _organization_to_invite(session: Session, data: PartnershipInvite) -> uuid.UUID:
    if data.organization_id is not None:
        return data.organization_id
    name = (data.organization_name or "").strip()
    if not name:
        raise Invalid(N_("give organization_id or organization_name"), field="organization_id")
    org = session.exec(select(Organization).where(Organization.name == name)).first()
    if org is None:
        raise NotFound(N_("no such organization"))
    return org.id


@router.post(
    "/partnerships",
    response_model=PartnershipPublic,
    status_code=201,
    tags=["partners"],
    responses={404: {"model": ErrorResponse, "description": "No such organization."}},
)
def invite_partner(session: SessionDep, user: Admin, data: PartnershipInvite) -> PartnershipPublic:
    row = partners.invite(session, user, _organization_to_invite(session, data))
    session.commit()
    return partnership_public(session, row, user.organization_id)


def _partnership_route(action: str):  # type: ignore[no-untyped-def]
    command = {"accept": partners.accept, "decline": partners.decline, "end": partners.end}[action]

    def route(session: SessionDep, user: Admin, partnership_id: uuid.UUID) -> PartnershipPublic:
        row = command(session, user, partnership_id)
        session.commit()
        return partnership_public(session, row, user.organization_id)

    route.__name__ = f"{action}_partnership"
    return route


for _action in ("accept", "decline", "end"):
    router.post(
        f"/partnerships/{{partnership_id}}/{_action}",
        response_model=PartnershipPublic,
        tags=["partners"],
    )(_partnership_route(_action))


# --- Consent --------------------------------------------------------------------------------------


@router.post(
    "/residents/{resident_id}/referral-consents",
    response_model=ConsentPublic,
    status_code=201,
    tags=["referrals"],
)
def record_consent(
    session: SessionDep, user: Coordinator, resident_id: uuid.UUID, data: ConsentCreate
) -> ReferralConsent:
    consent = referrals.record_consent(
        session=session, user=user, resident_id=resident_id, data=data
    )
    session.commit()
    return consent


@router.get(
    "/residents/{resident_id}/referral-consents",
    response_model=Page[ConsentPublic],
    tags=["referrals"],
)
def list_consents(session: SessionDep, user: CurrentUser, resident_id: uuid.UUID) -> Page[Any]:
    rows = referrals.list_consents(session=session, user=user, resident_id=resident_id)
    return Page(data=rows, count=len(rows))


@router.post(
    "/referral-consents/{consent_id}/withdraw", response_model=ConsentPublic, tags=["referrals"]
)
def withdraw_consent(
    session: SessionDep, user: Coordinator, consent_id: uuid.UUID
) -> ReferralConsent:
    consent = referrals.withdraw_consent(session=session, user=user, consent_id=consent_id)
    session.commit()
    return consent


# --- Referrals: the referring side ---------------------------------------------------------------


def referral_public(session: Session, referral: Referral) -> ReferralPublic:
    return ReferralPublic.model_validate(
        referral, update={"partner_name": referrals.org_name(session, referral.partner_org_id)}
    )


def partner_view(session: Session, referral: Referral) -> PartnerReferralPublic:
    """Only what the referral carries: the copy made when it was sent, nothing read anew."""
    return PartnerReferralPublic(
        id=referral.id,
        from_org_id=referral.organization_id,
        from_org_name=referrals.org_name(session, referral.organization_id),
        anonymous=referral.anonymous,
        reason=referral.reason,
        language=referral.language,
        area=referral.area,
        person=dict(referral.shared) or None,
        status=referral.status,
        created_at=referral.created_at,
        answered_at=referral.answered_at,
        contact_name=referral.contact_name,
        contact_phone=referral.contact_phone,
        contacted_at=referral.contacted_at,
        outcome=referral.outcome,
        outcome_note=referral.outcome_note,
    )


@router.post(
    "/referrals",
    response_model=ReferralPublic,
    status_code=201,
    tags=["referrals"],
    responses={
        404: {
            "model": ErrorResponse,
            "description": "No such case or task, or the organization is not an active partner.",
        }
    },
)
def send_referral(session: SessionDep, user: Coordinator, data: ReferralCreate) -> ReferralPublic:
    referral = referrals.send_referral(session=session, user=user, data=data)
    session.commit()
    return referral_public(session, referral)


@router.get("/referrals", response_model=Page[ReferralPublic], tags=["referrals"])
def list_sent(
    session: SessionDep,
    user: CurrentUser,
    resident_id: Annotated[uuid.UUID | None, Query()] = None,
    escalation_id: Annotated[uuid.UUID | None, Query()] = None,
    open_only: bool = False,
) -> Page[ReferralPublic]:
    rows = referrals.list_sent(
        session=session,
        user=user,
        resident_id=resident_id,
        escalation_id=escalation_id,
        open_only=open_only,
    )
    session.commit()
    data = [referral_public(session, row) for row in rows]
    return Page(data=data, count=len(data))


@router.get("/referrals/{referral_id}", response_model=ReferralPublic, tags=["referrals"])
def get_sent(session: SessionDep, user: CurrentUser, referral_id: uuid.UUID) -> ReferralPublic:
    referral = referrals.get_sent(session=session, user=user, referral_id=referral_id)
    session.commit()
    return referral_public(session, referral)


@router.post("/referrals/{referral_id}/close", response_model=ReferralPublic, tags=["referrals"])
def close_referral(
    session: SessionDep, user: Coordinator, referral_id: uuid.UUID
) -> ReferralPublic:
    referral = referrals.close(session=session, user=user, referral_id=referral_id)
    session.commit()
    return referral_public(session, referral)


# --- Referrals: the partner's side ---------------------------------------------------------------


@router.get("/referrals-received", response_model=Page[PartnerReferralPublic], tags=["referrals"])
def list_received(session: SessionDep, user: CurrentUser) -> Page[PartnerReferralPublic]:
    rows = referrals.list_received(session=session, user=user)
    session.commit()
    data = [partner_view(session, row) for row in rows]
    return Page(data=data, count=len(data))


@router.get(
    "/referrals-received/{referral_id}",
    response_model=PartnerReferralPublic,
    tags=["referrals"],
)
def get_received(
    session: SessionDep, user: CurrentUser, referral_id: uuid.UUID
) -> PartnerReferralPublic:
    referral = referrals.get_received(session=session, user=user, referral_id=referral_id)
    session.commit()
    return partner_view(session, referral)


@router.post(
    "/referrals-received/{referral_id}/accept",
    response_model=PartnerReferralPublic,
    tags=["referrals"],
)
def accept_referral(
    session: SessionDep, user: Coordinator, referral_id: uuid.UUID, data: ReferralAnswer
) -> PartnerReferralPublic:
    referral = referrals.accept(
        session=session,
        user=user,
        referral_id=referral_id,
        contact_name=data.contact_name,
        contact_phone=data.contact_phone,
    )
    session.commit()
    return partner_view(session, referral)


@router.post(
    "/referrals-received/{referral_id}/decline",
    response_model=PartnerReferralPublic,
    tags=["referrals"],
)
def decline_referral(
    session: SessionDep, user: Coordinator, referral_id: uuid.UUID, data: ReferralDecline
) -> PartnerReferralPublic:
    referral = referrals.decline(
        session=session, user=user, referral_id=referral_id, reason=data.reason
    )
    session.commit()
    return partner_view(session, referral)


@router.post(
    "/referrals-received/{referral_id}/contact",
    response_model=PartnerReferralPublic,
    tags=["referrals"],
)
def record_contact(
    session: SessionDep, user: Coordinator, referral_id: uuid.UUID, data: ReferralContact
) -> PartnerReferralPublic:
    referral = referrals.record_contact(
        session=session, user=user, referral_id=referral_id, note=data.note
    )
    session.commit()
    return partner_view(session, referral)


@router.post(
    "/referrals-received/{referral_id}/outcome",
    response_model=PartnerReferralPublic,
    tags=["referrals"],
)
def record_outcome(
    session: SessionDep, user: Coordinator, referral_id: uuid.UUID, data: ReferralOutcomeCreate
) -> PartnerReferralPublic:
    referral = referrals.record_outcome(
        session=session, user=user, referral_id=referral_id, outcome=data.outcome, note=data.note
    )
    session.commit()
    return partner_view(session, referral)

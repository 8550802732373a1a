"""Shared interpreters under /api/v1 (issue 21, item 3): an admin offers the organization's
interpreters and supporters to its partners, withdraws them, and sees what partners offer.

Thin routes over ``service.partners.interpreters``, which the dashboard calls too. Each
route commits what its command did; a ``DomainError`` leaves nothing behind.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from service.auth.deps import Admin, CurrentUser
from service.db import SessionDep
from service.errors import ErrorResponse
from service.partners import interpreters
from service.partners.interpreters import (
    InterpreterOfferCreate,
    InterpreterOfferPublic,
    InterpreterOffersPublic,
)

router = APIRouter(tags=["partners"])


def _one(session: SessionDep, offer: interpreters.InterpreterOffer) -> InterpreterOfferPublic:
    return interpreters.public_offers(session, [offer]).data[0]


@router.get("/interpreter-offers", response_model=InterpreterOffersPublic)
def list_own_offers(session: SessionDep, user: Admin) -> InterpreterOffersPublic:
    """What the organization offers its partners, withdrawn offers included."""
    return interpreters.list_own_offers(session, organization_id=user.organization_id)


@router.get("/interpreter-offers/from-partners", response_model=InterpreterOffersPublic)
def list_partner_offers(session: SessionDep, user: CurrentUser) -> InterpreterOffersPublic:
    """What active partners offer now: name, kind and languages (never a phone)."""
    return interpreters.list_partner_offers(session, organization_id=user.organization_id)


@router.post(
    "/interpreter-offers",
    response_model=InterpreterOfferPublic,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"model": ErrorResponse, "description": "No such member."}},
)
def offer_interpreter(
    session: SessionDep, user: Admin, data: InterpreterOfferCreate
) -> InterpreterOfferPublic:
    """Offer one of the organization's interpreters or supporters for some of their
    languages (admin only; offering again replaces the languages)."""
    offer = interpreters.offer_interpreter(session, actor=user, data=data)
    session.commit()
    return _one(session, offer)


@router.post(
    "/interpreter-offers/{offer_id}/withdraw",
    response_model=InterpreterOfferPublic,
    responses={404: {"model": ErrorResponse, "description": "No such offer."}},
)
def withdraw_offer(session: SessionDep, user: Admin, offer_id: uuid.UUID) -> InterpreterOfferPublic:
    """Withdraw an offer (admin only): no new alert reaches the member from a partner."""
    offer = interpreters.withdraw_offer(session, actor=user, offer_id=offer_id)
    session.commit()
    return _one(session, offer)

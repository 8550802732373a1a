"""Partnerships: invited by one admin, accepted by the other's, ended by either (issue 21)."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.audit.service import Actor
from service.auth.models import Role, User, UserCreate
from service.auth.service import create_user, get_or_create_organization
from service.errors import Conflict, Invalid, NotFound
from service.partners import service as partners
from service.partners.models import PartnershipStatus
from service.partners.service import AdminOnly


def _user(session: Session, org: str, role: Role = Role.admin) -> User:
    organization = get_or_create_organization(session=session, name=org)
    user = create_user(
        session=session,
        organization_id=organization.id,
        data=UserCreate(
            email=f"{role.value}-{uuid.uuid4().hex[:8]}@example.jp",
            full_name=f"{org} {role.value}",
            role=role,
            password="correct horse battery staple",
        ),
        actor=Actor(label="test"),
    )
    session.commit()
    return user


@pytest.fixture
def council(session: Session) -> User:
    return _user(session, "輪島市社会福祉協議会")


@pytest.fixture
def group(session: Session) -> User:
    return _user(session, "能登ベトナム人支援の会")


def test_invited_then_accepted_makes_partners_on_both_sides(session, council, group):
    row = partners.invite(session, council, group.organization_id)
    session.commit()
    assert row.status == PartnershipStatus.invited
    assert not partners.are_partners(session, council.organization_id, group.organization_id)
    assert partners.partner_org_ids(session, group.organization_id) == set()

    partners.accept(session, group, row.id)
    session.commit()
    assert partners.are_partners(session, council.organization_id, group.organization_id)
    assert partners.are_partners(session, group.organization_id, council.organization_id)
    assert partners.partner_org_ids(session, council.organization_id) == {group.organization_id}
    assert partners.partner_org_ids(session, group.organization_id) == {council.organization_id}
    for org_id in (council.organization_id, group.organization_id):
        actions = session.exec(
            select(AuditEntry.action).where(
                AuditEntry.organization_id == org_id, AuditEntry.entity_type == "partnership"
            )
        ).all()
        assert sorted(actions) == ["partnership_accept", "partnership_invite"]


def test_either_side_ends_and_then_they_are_not_partners(session, council, group):
    row = partners.invite(session, council, group.organization_id)
    partners.accept(session, group, row.id)
    session.commit()
    partners.end(session, group, row.id)
    session.commit()
    assert row.status == PartnershipStatus.ended and row.ended_by == group.id
    assert not partners.are_partners(session, council.organization_id, group.organization_id)
    with pytest.raises(Conflict):
        partners.end(session, council, row.id)
    # Ended, the pair may start again, from either side.
    again = partners.invite(session, group, council.organization_id)
    session.commit()
    assert again.status == PartnershipStatus.invited


def test_one_open_partnership_per_pair_in_either_direction(session, council, group):
    partners.invite(session, council, group.organization_id)
    session.commit()
    with pytest.raises(Conflict):
        partners.invite(session, group, council.organization_id)
    session.rollback()
    with pytest.raises(Conflict):
        partners.invite(session, council, group.organization_id)


def test_only_the_invited_side_answers_and_only_once(session, council, group):
    row = partners.invite(session, council, group.organization_id)
    session.commit()
    with pytest.raises(Conflict):
        partners.accept(session, council, row.id)
    partners.decline(session, group, row.id)
    session.commit()
    assert row.status == PartnershipStatus.declined
    with pytest.raises(Conflict):
        partners.accept(session, group, row.id)
    assert not partners.are_partners(session, council.organization_id, group.organization_id)


def test_admin_only_and_other_pairs_are_not_found(session, council, group):
    coordinator = _user(session, "輪島市社会福祉協議会", Role.coordinator)
    stranger = _user(session, "天草市社会福祉協議会")
    with pytest.raises(AdminOnly):
        partners.invite(session, coordinator, group.organization_id)
    row = partners.invite(session, council, group.organization_id)
    session.commit()
    with pytest.raises(NotFound):
        partners.accept(session, stranger, row.id)
    with pytest.raises(NotFound):
        partners.end(session, stranger, row.id)
    with pytest.raises(NotFound):
        partners.invite(session, council, uuid.uuid4())
    with pytest.raises(Invalid):
        partners.invite(session, council, council.organization_id)
    assert not partners.are_partners(session, council.organization_id, council.organization_id)
